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
use super::groups::{directory_group, pushed_group};
use super::provision::{
    DEACTIVATED, Desired, SyncError, changed_attributes, desired_document, hash, settings_of,
};
use crate::runtime::LoadedPlugin;
use crate::runtime::contract::{Offboarding, UpdateMethod};
use crate::store::{AppRecord, Store};

/// One operation a sync would send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Planned {
    /// `user` or `group`.
    pub object_kind: String,
    pub object_id: String,
    /// userName or displayName, when the object still exists.
    pub name: Option<String>,
    /// For users `create_or_take_over`, `update`, `password`, `deactivate`,
    /// `delete`, `refused`; for groups `create_or_take_over_group`, `update_group`,
    /// `add_members`, `remove_members`.
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
    let passwords = super::passwords::support(plugin, app);
    // Which users have a password of their own waiting for this
    // application (never the password itself).
    let passwords_waiting: BTreeSet<String> = store
        .passwords()?
        .into_iter()
        .filter(|password| !password.delivered_to.contains(&app.id))
        .map(|password| password.user_id)
        .collect();
    let mut planned = Vec::new();
    for user_id in everyone {
        let user = store.get_user(user_id)?;
        let entry = ledger.get(user_id);
        let user_name = user.as_ref().map(|user| user.user_name.clone());
        let operation = |operation: &str, attributes: Vec<String>, detail: String| Planned {
            object_kind: "user".into(),
            object_id: user_id.clone(),
            name: user_name.clone(),
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
        let own_password = passwords_waiting.contains(user_id);
        match entry {
            None => planned.push(operation(
                "create_or_take_over",
                Vec::new(),
                format!(
                    "no account linked yet: looked up by the connector's filters, else created{}",
                    match (passwords.on_create, own_password) {
                        (false, _) => "",
                        (true, true) => " with the password the user set",
                        (true, false) => " with a temporary password",
                    }
                ),
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
        if let (Some(entry), Some(method), true) = (entry, passwords.on_change, own_password) {
            let verb = match method {
                UpdateMethod::Patch => "PATCH",
                UpdateMethod::Put => "PUT",
            };
            planned.push(operation(
                "password",
                vec!["password".into()],
                format!(
                    "the password the user set (not shown): {verb} /Users/{}",
                    entry.remote_id
                ),
            ));
        }
    }
    if app.manage_groups && capabilities.groups {
        plan_groups(store, plugin, app, &in_scope, &mut planned)?;
    }
    Ok(planned)
}

/// The group operations a sync would send: the bound groups, their
/// documents and their membership.
fn plan_groups(
    store: &dyn Store,
    plugin: &LoadedPlugin,
    app: &AppRecord,
    in_scope: &BTreeSet<String>,
    planned: &mut Vec<Planned>,
) -> Result<(), SyncError> {
    let settings = settings_of(app);
    for bound in store.bindings(&app.id)? {
        let Some(group) = store.get_group_without_members(&bound.id)? else {
            continue;
        };
        let operation = |operation: &str, attributes: Vec<String>, detail: String| Planned {
            object_kind: "group".into(),
            object_id: group.id.clone(),
            name: Some(group.display_name.clone()),
            operation: operation.to_string(),
            attributes,
            detail,
        };
        let users: Vec<String> = store
            .users_of(std::slice::from_ref(&group.id))?
            .into_iter()
            .filter(|user| in_scope.contains(user))
            .collect();
        let linked: BTreeSet<String> = store
            .remote_ids(&app.id, "user", &users)?
            .into_iter()
            .map(|(_, remote)| remote)
            .collect();
        let waiting = users.len() - linked.len();
        let Some(entry) = store.ledger_entry(&app.id, "group", &group.id)? else {
            if !users.is_empty() {
                planned.push(operation(
                    "create_or_take_over_group",
                    Vec::new(),
                    format!(
                        "looked up by displayName, else created; then {} member(s) added",
                        users.len()
                    ),
                ));
            }
            continue;
        };
        let (pushed, members) = pushed_group(&entry);
        let resource = match plugin.map_group(&directory_group(&group), &settings) {
            Ok(called) => called.value.value(),
            Err(error) => {
                planned.push(operation(
                    "refused",
                    Vec::new(),
                    format!("the connector refused the group: {error}"),
                ));
                continue;
            }
        };
        if hash(&pushed.to_string()) != hash(&resource.to_string()) {
            let names = changed_attributes(&pushed, &resource)
                .map(|(_, names)| names)
                .unwrap_or_default();
            planned.push(operation(
                "update_group",
                names,
                crate::scim_client::group_path(&entry.remote_id),
            ));
        }
        let adding = linked.difference(&members).count() + waiting;
        let removing = members.difference(&linked).count();
        if adding > 0 {
            planned.push(operation(
                "add_members",
                Vec::new(),
                format!("{adding} member(s) added to /Groups/{}", entry.remote_id),
            ));
        }
        if removing > 0 {
            planned.push(operation(
                "remove_members",
                Vec::new(),
                format!(
                    "{removing} member(s) removed from /Groups/{}",
                    entry.remote_id
                ),
            ));
        }
    }
    Ok(())
}
