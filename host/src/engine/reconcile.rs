//! The periodic reconcile: the application read back and compared with the
//! ledger, and every drift repaired with an event.
//!
//! Events keep the application in step with the directory; the reconcile
//! catches what happened in the application itself:
//! - an account changed there: the attributes the connector's document
//!   sets are compared with what the application holds (attributes the
//!   document does not set are the application's own and never compared);
//!   the ones that differ are sent again;
//! - an account deactivated by the host and reactivated there: deactivated
//!   again;
//! - an account deleted there: it is provisioned again (lookup, then
//!   create), as any user in scope without an account is;
//! - a user in scope who has no account (a create that failed for good
//!   earlier, say): provisioned.
//!
//! An unchanged application costs the listing and nothing else: no write
//! request, no store write. A listing that fails part-way ends the
//! reconcile without repairing anything, since an account missing from a
//! partial listing is not known to be gone.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::provision::{
    CREATE, DEACTIVATED, DEPROVISION, SyncError, Synced, Target, UPDATE, sync_user,
};
use crate::runtime::contract::UpdateMethod;
use crate::scim_client::ScimRequest;
use crate::store::{LedgerEntry, Outcome};

/// Accounts asked for per listing request.
const PAGE: usize = 500;

pub const RECONCILE: &str = "reconcile";

/// What a reconcile found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Reconciled {
    /// Accounts the application listed.
    pub listed: u64,
    /// Accounts changed in the application, restored.
    pub repaired: u64,
    /// Accounts deleted in the application, provisioned again.
    pub recreated: u64,
    /// Users in scope without an account, provisioned.
    pub provisioned: u64,
}

/// Reads the target application's users back and repairs every drift.
pub async fn reconcile_users(target: &Target<'_>) -> Result<Reconciled, SyncError> {
    let store = target.store;
    let app_id = &target.app.id;
    let ledger: HashMap<String, LedgerEntry> = store
        .ledger_entries(app_id, "user")?
        .into_iter()
        .map(|entry| (entry.remote_id.clone(), entry))
        .collect();
    let mut done = Reconciled::default();
    let mut seen: HashSet<String> = HashSet::with_capacity(ledger.len());
    let mut pages = target.client.pages("/Users", PAGE);
    while let Some(resources) = pages.next().await? {
        for resource in &resources {
            done.listed += 1;
            let Some(remote_id) = resource.get("id").and_then(Value::as_str) else {
                continue;
            };
            let Some(entry) = ledger.get(remote_id) else {
                continue;
            };
            seen.insert(remote_id.to_string());
            if repair(target, entry, resource).await? {
                done.repaired += 1;
            }
        }
    }
    for entry in ledger
        .values()
        .filter(|entry| !seen.contains(&entry.remote_id))
    {
        store.remove_ledger_entry(app_id, "user", &entry.object_id)?;
        if entry.doc_hash == DEACTIVATED {
            // Out of scope already: gone is as good as deactivated.
            target.record(
                &entry.object_id,
                DEPROVISION,
                Outcome::Success,
                Some("drift: deleted in the application".into()),
                None,
                format!(
                    "deactivated account {} was deleted in the application; forgotten",
                    entry.remote_id
                ),
            );
            continue;
        }
        target.record(
            &entry.object_id,
            CREATE,
            Outcome::Success,
            Some("drift: deleted in the application".into()),
            None,
            format!(
                "account {} no longer exists in the application: provisioning it again",
                entry.remote_id
            ),
        );
        if matches!(
            sync_user(target, &entry.object_id).await,
            Ok(Synced::Created | Synced::TakenOver)
        ) {
            done.recreated += 1;
        }
    }
    let linked: HashSet<&str> = ledger
        .values()
        .map(|entry| entry.object_id.as_str())
        .collect();
    for user_id in store.users_in_scope(app_id)? {
        if linked.contains(user_id.as_str()) {
            continue;
        }
        if matches!(
            sync_user(target, &user_id).await,
            Ok(Synced::Created | Synced::TakenOver)
        ) {
            done.provisioned += 1;
        }
    }
    Ok(done)
}

/// Restores one account to what the ledger says the application accepted;
/// whether anything was sent.
async fn repair(
    target: &Target<'_>,
    entry: &LedgerEntry,
    remote: &Value,
) -> Result<bool, SyncError> {
    let path = format!("/Users/{}", entry.remote_id);
    let rule = Some("drift: changed in the application".to_string());
    if entry.doc_hash == DEACTIVATED {
        if remote.get("active") != Some(&Value::Bool(true)) {
            return Ok(false);
        }
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "active", "value": false }],
        });
        let request = ScimRequest::with_body(reqwest::Method::PATCH, path.clone(), body);
        return match target.client.send(&request).await {
            Ok(answer) => {
                target.record(
                    &entry.object_id,
                    DEPROVISION,
                    Outcome::Success,
                    rule,
                    Some(answer.status.as_u16()),
                    format!("PATCH {path} active=false: reactivated in the application"),
                );
                Ok(true)
            }
            Err(error) => {
                target.failed(&entry.object_id, DEPROVISION, rule, &error);
                Err(error.into())
            }
        };
    }
    let Some(ours) = entry
        .document
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return Ok(false);
    };
    let differing = differing_attributes(&ours, remote);
    if differing.is_empty() {
        return Ok(false);
    }
    let request = match target.plugin.manifest().capabilities.update_method {
        UpdateMethod::Patch => {
            let operations: Vec<Value> = differing
                .iter()
                .map(|name| json!({ "op": "replace", "path": name, "value": ours[name.as_str()] }))
                .collect();
            ScimRequest::with_body(
                reqwest::Method::PATCH,
                path.clone(),
                json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": operations,
                }),
            )
        }
        UpdateMethod::Put => ScimRequest::with_body(reqwest::Method::PUT, path.clone(), ours),
    };
    match target.client.send(&request).await {
        Ok(answer) => {
            target.record(
                &entry.object_id,
                UPDATE,
                Outcome::Success,
                rule,
                Some(answer.status.as_u16()),
                format!(
                    "{} {path} ({}): changed in the application, restored",
                    request.method,
                    differing.join(", ")
                ),
            );
            Ok(true)
        }
        // Deleted between the listing and now: the next reconcile sees it.
        Err(error) if error.status() == Some(404) => Ok(false),
        Err(error) => {
            target.failed(&entry.object_id, UPDATE, rule, &error);
            Err(error.into())
        }
    }
}

/// The top-level attributes of `ours` that `remote` does not hold as sent.
/// Attribute names are compared without regard to case, as SCIM's are;
/// `remote` may hold more than `ours` (defaults, attributes of its own).
pub fn differing_attributes(ours: &Value, remote: &Value) -> Vec<String> {
    let (Value::Object(ours), Value::Object(_)) = (ours, remote) else {
        return Vec::new();
    };
    ours.iter()
        .filter(|(name, _)| !matches!(name.as_str(), "schemas" | "id" | "meta"))
        .filter(|(name, value)| !field(remote, name).is_some_and(|theirs| contains(theirs, value)))
        .map(|(name, _)| name.clone())
        .collect()
}

fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// Whether `theirs` holds everything `ours` says: objects key by key,
/// arrays element by element (in any order), scalars equal.
fn contains(theirs: &Value, ours: &Value) -> bool {
    match (theirs, ours) {
        (Value::Object(_), Value::Object(ours)) => ours
            .iter()
            .all(|(name, value)| field(theirs, name).is_some_and(|theirs| contains(theirs, value))),
        (Value::Array(theirs), Value::Array(ours)) => ours
            .iter()
            .all(|value| theirs.iter().any(|theirs| contains(theirs, value))),
        (theirs, ours) => theirs == ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_document_sets_is_compared() {
        let ours = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada",
            "name": { "givenName": "Ada" },
            "emails": [{ "value": "ada@example.com", "primary": true }],
            "active": true,
        });
        // The application adds defaults and attributes of its own, in its
        // own order and case.
        let same = json!({
            "id": "x", "meta": {}, "UserName": "ada",
            "name": { "givenName": "Ada", "formatted": "Ada" },
            "emails": [{ "value": "other@example.com" }, { "value": "ada@example.com", "primary": true, "type": "work" }],
            "active": true, "locale": "en",
        });
        assert!(differing_attributes(&ours, &same).is_empty());
        let changed = json!({
            "userName": "ada", "name": { "givenName": "Adah" },
            "emails": [{ "value": "ada@example.com", "primary": true }],
        });
        assert_eq!(differing_attributes(&ours, &changed), ["active", "name"]);
    }
}
