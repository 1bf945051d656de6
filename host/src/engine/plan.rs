//! Plan before apply: what a sync of every user of an application would
//! send, computed without sending anything.
//!
//! The plan runs the same steps as [`super::provision::sync_user`] up to
//! the request: scope, the connector's document, the ledger. It cannot know
//! whether an account without a ledger entry exists in the application (that
//! takes a lookup), so such a user is planned as "create or take over".

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use utoipa::ToSchema;

use super::directory_user::directory_user;
use super::provision::{
    DEACTIVATED, Desired, SyncError, changed_attributes, desired_document, hash, settings_of,
};
use crate::runtime::LoadedPlugin;
use crate::runtime::contract::{Offboarding, UpdateMethod};
use crate::store::{AppRecord, Store};

/// One operation a sync would send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Planned {
    pub user_id: String,
    /// userName, when the user still exists.
    pub user_name: Option<String>,
    /// `create_or_take_over`, `update`, `deactivate`, `delete`, `refused`.
    pub operation: String,
    /// For an update, the attributes that would change (empty: the whole
    /// document would be sent).
    pub attributes: Vec<String>,
    /// Why, in a few words.
    pub detail: String,
}

/// What a sync of every user of `app` would send, in user-id order.
pub fn plan(
    store: &dyn Store,
    plugin: &LoadedPlugin,
    app: &AppRecord,
) -> Result<Vec<Planned>, SyncError> {
    let in_scope: BTreeSet<String> = store.users_in_scope(&app.id)?.into_iter().collect();
    let ledger: HashMap<String, _> = store
        .ledger_entries(&app.id, "user")?
        .into_iter()
        .map(|entry| (entry.object_id.clone(), entry))
        .collect();
    let mut everyone: BTreeSet<&String> = in_scope.iter().collect();
    everyone.extend(ledger.keys());
    let settings = settings_of(app);
    let capabilities = &plugin.manifest().capabilities;
    let mut planned = Vec::new();
    for user_id in everyone {
        let user = store.get_user(user_id)?;
        let entry = ledger.get(user_id);
        let user_name = user.as_ref().map(|user| user.user_name.clone());
        let operation = |operation: &str, attributes: Vec<String>, detail: String| Planned {
            user_id: user_id.clone(),
            user_name: user_name.clone(),
            operation: operation.to_string(),
            attributes,
            detail,
        };
        let Some(user) = user.filter(|_| in_scope.contains(user_id)) else {
            match (entry, capabilities.offboarding) {
                (Some(entry), Offboarding::Delete) => planned.push(operation(
                    "delete",
                    Vec::new(),
                    format!("out of scope: DELETE /Users/{}", entry.remote_id),
                )),
                (Some(entry), Offboarding::Deactivate) if entry.doc_hash != DEACTIVATED => planned
                    .push(operation(
                        "deactivate",
                        vec!["active".into()],
                        format!(
                            "out of scope: PATCH /Users/{} active=false",
                            entry.remote_id
                        ),
                    )),
                _ => {}
            }
            continue;
        };
        let body = match desired_document(plugin, &directory_user(&user), &settings) {
            Ok(body) => body,
            Err(Desired::Refused(error)) => {
                planned.push(operation(
                    "refused",
                    Vec::new(),
                    format!("the connector refused the user: {error}"),
                ));
                continue;
            }
            Err(Desired::Failed(error)) => return Err(error),
        };
        match entry {
            None => planned.push(operation(
                "create_or_take_over",
                Vec::new(),
                "no account linked yet: looked up by the connector's filters, else created".into(),
            )),
            Some(entry) if entry.doc_hash == hash(&body.to_string()) => {}
            Some(entry) => {
                let previous = entry
                    .document
                    .as_deref()
                    .and_then(|text| serde_json::from_str(text).ok());
                let changed = match (previous, &capabilities.update_method) {
                    (Some(previous), UpdateMethod::Patch) => changed_attributes(&previous, &body),
                    _ => None,
                };
                planned.push(match changed {
                    Some((_, names)) => {
                        operation("update", names, format!("PATCH /Users/{}", entry.remote_id))
                    }
                    None => operation(
                        "update",
                        Vec::new(),
                        format!("PUT /Users/{}", entry.remote_id),
                    ),
                });
            }
        }
    }
    Ok(planned)
}
