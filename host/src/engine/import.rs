//! Import from an application: the accounts that exist only there become
//! directory users, linked to the accounts they came from.
//!
//! [`remote_users`] lists the application's accounts, each `new` (no
//! directory user manages it) or `imported` (the ledger links it). Nothing
//! is written. [`import_users`] then, for the chosen new accounts:
//! - reads each through the connector's `read-user` (the connector owns the
//!   mapping both ways);
//! - links it to the directory user of the same userName when there is one
//!   and that user holds no account of the application yet (one that does
//!   is refused with a dead letter: relinking would orphan its account), or
//!   creates that user;
//! - adds the user to a group bound to the application (created and bound
//!   when missing), so that the account stays in scope: an imported account
//!   is never deactivated for being outside every bound group;
//! - records an event for each.
//!
//! The ledger is written last, after the user is in scope, so that the
//! engine never sees a linked account outside the scope (it would
//! deactivate it). Its empty document hash makes the next sync send the
//! directory's document once, after which the account is managed as any.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::directory_user::directory_attributes;
use super::provision::{SyncError, Target};
use crate::store::Timestamp;
use crate::store::{
    GroupKey, GroupWrite, LedgerEntry, Member, MemberKind, Outcome, StoreError, UserKey, UserWrite,
};

pub const IMPORT: &str = "user_import";

/// Accounts asked for per listing request.
const PAGE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportStatus {
    /// Exists only in the application.
    New,
    /// Linked to a directory user.
    Imported,
}

/// One account of the application, as an import sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemoteUser {
    pub remote_id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub status: ImportStatus,
    /// The directory user it is linked to, when imported.
    pub directory_user_id: Option<String>,
    #[serde(skip)]
    document: Value,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Imported {
    /// Directory users created.
    pub created: u64,
    /// Accounts linked to a directory user of the same userName.
    pub linked: u64,
    /// Accounts the connector could not read (an event says why).
    pub failed: u64,
    /// Accounts refused because the directory user of their userName is
    /// already linked to another account of the application (an event and
    /// a dead letter say which): linking it would orphan that account.
    pub refused: u64,
    /// The bound group the imported users were added to.
    pub group: String,
}

/// Every account of the target application, new or imported.
pub async fn remote_users(target: &Target<'_>) -> Result<Vec<RemoteUser>, SyncError> {
    let linked: HashMap<String, String> = target
        .store
        .ledger_links(&target.app.id, "user")
        .await?
        .into_iter()
        .map(|(object_id, remote_id)| (remote_id, object_id))
        .collect();
    let mut users = Vec::new();
    target
        .client
        .pages("/Users", PAGE)
        .read_ahead(|resources| {
            for resource in resources {
                let (Some(remote_id), Some(user_name)) = (
                    resource.get("id").and_then(Value::as_str),
                    resource.get("userName").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let directory_user_id = linked.get(remote_id).cloned();
                users.push(RemoteUser {
                    remote_id: remote_id.to_string(),
                    user_name: user_name.to_string(),
                    display_name: resource
                        .get("displayName")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    status: if directory_user_id.is_some() {
                        ImportStatus::Imported
                    } else {
                        ImportStatus::New
                    },
                    directory_user_id,
                    document: resource,
                });
            }
        })
        .await?;
    Ok(users)
}

/// Imports the new accounts among `chosen` (remote ids; every new account
/// when `None`) into the directory, in `group_name`.
pub async fn import_users(
    target: &Target<'_>,
    chosen: Option<&[String]>,
    group_name: &str,
) -> Result<Imported, SyncError> {
    let store = target.store;
    let accounts: Vec<RemoteUser> = remote_users(target)
        .await?
        .into_iter()
        .filter(|account| account.status == ImportStatus::New)
        .filter(|account| chosen.is_none_or(|ids| ids.contains(&account.remote_id)))
        .collect();
    let group = match store
        .find_groups(GroupKey::DisplayName, group_name)
        .await?
        .pop()
    {
        Some(group) => group,
        None => {
            store
                .create_group(GroupWrite {
                    display_name: group_name.to_string(),
                    external_id: None,
                    attributes: serde_json::Map::from_iter([(
                        "displayName".to_string(),
                        Value::String(group_name.to_string()),
                    )]),
                    members: None,
                })
                .await?
        }
    };
    store.bind(&target.app.id, &group.id).await?;
    let mut done = Imported {
        group: group.display_name.clone(),
        ..Imported::default()
    };
    let settings = target.settings();
    for account in accounts {
        let read = match target
            .plugin
            .read_user(&account.document.to_string(), &settings)
        {
            Ok(called) => called.value,
            Err(error) => {
                done.failed += 1;
                target
                    .record(
                        &account.remote_id,
                        IMPORT,
                        Outcome::Failure,
                        Some("read-user".into()),
                        None,
                        format!(
                            "account {} ({}): {error}",
                            account.remote_id, account.user_name
                        ),
                    )
                    .await;
                continue;
            }
        };
        let existing = store
            .find_users(UserKey::UserName, &read.username)
            .await?
            .pop();
        // The user's lock, held until the account is linked: once the user
        // joins the bound group the engine may sync it, and a sync before
        // the link would look the account up and take it over itself.
        let mut _one_at_a_time = None;
        let (user_id, rule) = match existing {
            Some(user) => {
                _one_at_a_time =
                    Some(super::locks::lock_object(store, &target.app.id, "user", &user.id).await?);
                if let Some(held) = store.ledger_entry(&target.app.id, "user", &user.id).await? {
                    done.refused += 1;
                    let why = format!(
                        "the directory user {} already holds account {}; linking would \
                         leave that account unmanaged",
                        user.id, held.remote_id
                    );
                    refuse(target, &user.id, &account, why).await;
                    continue;
                }
                done.linked += 1;
                (user.id, "linked to the directory user of the same userName")
            }
            None => {
                let (attributes, active) = directory_attributes(&read);
                let user = store
                    .create_user(UserWrite {
                        password: None,
                        user_name: read.username.clone(),
                        external_id: None,
                        active,
                        attributes,
                    })
                    .await?;
                done.created += 1;
                _one_at_a_time =
                    Some(super::locks::lock_object(store, &target.app.id, "user", &user.id).await?);
                (user.id, "created in the directory")
            }
        };
        store
            .change_members(
                &group.id,
                &[Member {
                    id: user_id.clone(),
                    kind: MemberKind::User,
                }],
                &[],
            )
            .await?;
        match link(target, &user_id, &account.remote_id).await {
            Ok(()) => {}
            // Linked by another host between the listing and now.
            Err(StoreError::LinkedElsewhere { holder, .. }) => {
                done.refused += 1;
                let why = format!("it is already linked to {holder}");
                refuse(target, &user_id, &account, why).await;
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        target
            .record(
                &user_id,
                IMPORT,
                Outcome::Success,
                Some(rule.into()),
                None,
                format!(
                    "account {} ({}) imported into {}",
                    account.remote_id, read.username, group.display_name
                ),
            )
            .await;
    }
    Ok(done)
}

/// Records why an account was not imported, as a failure event and a dead
/// letter of the directory user it would have been linked to.
async fn refuse(target: &Target<'_>, user_id: &str, account: &RemoteUser, why: String) {
    let reason = format!(
        "account {} ({}) not imported: {why}",
        account.remote_id, account.user_name
    );
    target
        .dead_letter("user", user_id, IMPORT, reason.clone(), None)
        .await;
    target
        .record(
            user_id,
            IMPORT,
            Outcome::Failure,
            Some("already linked".into()),
            None,
            reason,
        )
        .await;
}

async fn link(target: &Target<'_>, user_id: &str, remote_id: &str) -> Result<(), StoreError> {
    target
        .store
        .put_ledger_entry(&LedgerEntry {
            app_id: target.app.id.clone(),
            object_kind: "user".into(),
            object_id: user_id.to_string(),
            remote_id: remote_id.to_string(),
            doc_hash: String::new(),
            document: None,
            updated: Timestamp::now(),
        })
        .await
}
