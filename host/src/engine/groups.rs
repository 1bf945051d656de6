//! Groups pushed to an application, and the connector's group-management
//! rules.
//!
//! [`sync_group`] is level-triggered, like [`super::provision::sync_user`]:
//! it reads what the directory wants (the group's document and members) and
//! what the application holds (the ledger), and sends only the difference.
//! Its invariants:
//! - a group is pushed only while "manage groups and group membership" is on
//!   for the application, its connector supports groups, and the group is
//!   bound to the application;
//! - an empty group is never created; a group already pushed stays when it
//!   empties;
//! - an existing group of the same displayName is taken over, never
//!   duplicated; more than one, one that does not carry that displayName,
//!   or one another directory group holds is refused
//!   ([`super::takeover`]);
//! - the members pushed are the group's users (nested groups included) that
//!   have an account in the application; a user whose account is created
//!   later joins when it is;
//! - the host removes only members it manages: those it added, and those of
//!   a taken-over group that were already the directory's. An account the
//!   application holds for someone else is never removed from a group;
//! - membership changes go in chunks of the connector's
//!   `max-members-per-patch`, and the ledger records each chunk once it is
//!   accepted, so a retry after a crash resends at most one chunk (adding a
//!   member twice or removing an absent one is harmless in SCIM).
//!
//! [`sync_groups`] syncs many groups, each ending as [`sync_group`] would
//! end it: they are locked and read in chunks, each chunk in one snapshot
//! in which the accounts of all their members are looked up together.
//!
//! [`apply_group_event`] is how the connector's rules take part: for a user
//! removed from a group, a group unbound or deleted, and group management
//! disabled, the host gathers the facts, asks the connector's
//! `on-group-event`, and follows the decision. A member decision applies to
//! users the event took out of the application's scope; a user still in
//! scope stays provisioned whatever the decision says, because scope is the
//! directory's to decide. The decision's group action applies when the
//! group stops being managed (unbound, deleted, management disabled); a
//! group that is still managed keeps the directory's membership.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::locks::{HeldUser, ObjectLock, hold_user};
use super::provision::{SyncError, Synced, Target, changed_attributes, hash, offboard};
use super::takeover::{Candidate, LookupKind, vet};
use crate::runtime::contract::{
    AccountAction, DirectoryGroup, GroupAction, GroupEvent, GroupEventFacts, MemberFacts,
    Offboarding, UpdateMethod,
};
use crate::scim_client::{ScimClientError, ScimRequest, group_path, percent_encode};
use crate::store::Timestamp;
use crate::store::{Event, GroupRecord, LedgerChange, LedgerEntry, Outcome, Store, StoreError};

pub const GROUP_CREATE: &str = "group_create_provision";
pub const GROUP_UPDATE: &str = "group_update_provision";
pub const GROUP_DELETE: &str = "group_delete_provision";
/// An account left as it is in the application and no longer managed.
pub const USER_RELEASE: &str = "user_release";

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What a group sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupSynced {
    /// Not pushed: group management is off, the connector has no groups,
    /// or the group is not bound (or no longer exists).
    NotManaged,
    Unchanged,
    /// An empty group that was never pushed: nothing to create.
    Empty,
    Created,
    TakenOver,
    Updated,
    /// The connector refused the group or the lookup was ambiguous; an
    /// event says why.
    Refused,
}

/// What the ledger holds for a pushed group: the document last accepted and
/// the remote ids of the members the host manages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PushedGroup {
    resource: Value,
    members: BTreeSet<String>,
}

/// A directory group as the connector contract's record.
pub fn directory_group(group: &GroupRecord) -> DirectoryGroup {
    DirectoryGroup {
        id: group.id.clone(),
        name: group.display_name.clone(),
        description: group
            .attributes
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Whether groups are pushed to the target application at all.
pub fn groups_managed(target: &Target<'_>) -> bool {
    target.app.manage_groups && target.plugin.manifest().capabilities.groups
}

fn chunk_size(target: &Target<'_>) -> usize {
    usize::try_from(target.plugin.manifest().capabilities.max_members_per_patch)
        .unwrap_or(usize::MAX)
        .max(1)
}

fn member_values<S: AsRef<str>>(remote_ids: &[S]) -> Value {
    Value::Array(
        remote_ids
            .iter()
            .map(|id| json!({ "value": id.as_ref() }))
            .collect(),
    )
}

/// The members a SCIM Group document lists, by remote id.
fn listed_members(group: &Value) -> BTreeSet<String> {
    group
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|member| member.get("value").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// A SCIM string literal: JSON's escaping is SCIM's.
fn literal(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// The PATCH bodies that add `add` to a group and remove `remove` from it,
/// in chunks of the connector's `max-members-per-patch`, as a sync sends
/// them: for the reconcile, which restores membership changed in the
/// application.
pub(crate) fn membership_patches(
    target: &Target<'_>,
    add: &[String],
    remove: &[String],
) -> Vec<Value> {
    let chunk = chunk_size(target);
    let added = add.chunks(chunk).map(|ids| {
        json!({ "schemas": [PATCH_OP],
            "Operations": [{ "op": "add", "path": "members", "value": member_values(ids) }] })
    });
    let removed = remove.chunks(chunk).map(|ids| {
        let operations: Vec<Value> = ids
            .iter()
            .map(|id| json!({ "op": "remove", "path": format!("members[value eq {}]", literal(id)) }))
            .collect();
        json!({ "schemas": [PATCH_OP], "Operations": operations })
    });
    added.chain(removed).collect()
}

impl Target<'_> {
    async fn record_group(
        &self,
        group_id: &str,
        operation: &str,
        outcome: Outcome,
        rule: Option<String>,
        status: Option<u16>,
        summary: String,
    ) {
        self.record_object("group", group_id, operation, outcome, rule, status, summary)
            .await;
    }

    async fn group_failed(
        &self,
        group_id: &str,
        operation: &str,
        rule: Option<String>,
        error: &ScimClientError,
    ) {
        // Nothing happened in the application: the engine that took over
        // records what it does.
        if matches!(error, ScimClientError::NotSent(_)) {
            return;
        }
        if error.is_permanent() {
            self.dead_letter(
                "group",
                group_id,
                operation,
                error.to_string(),
                error.status(),
            )
            .await;
        }
        self.record_group(
            group_id,
            operation,
            Outcome::Failure,
            rule,
            error.status(),
            error.to_string(),
        )
        .await;
    }

    /// Writes what the application holds of the group; with `event`, the
    /// event that says so in the same transaction (a link refused keeps
    /// neither).
    async fn link_group(
        &self,
        group_id: &str,
        remote_id: &str,
        doc_hash: &str,
        pushed: &PushedGroup,
        event: Option<Event>,
    ) -> Result<(), StoreError> {
        let document = serde_json::to_string(pushed)
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        let entry = LedgerEntry {
            app_id: self.app.id.clone(),
            object_kind: "group".into(),
            object_id: group_id.to_string(),
            remote_id: remote_id.to_string(),
            doc_hash: doc_hash.to_string(),
            document: Some(document),
            updated: Timestamp::now(),
        };
        let change = LedgerChange::Put(&entry);
        // Where hosts share the store, only while this host still holds the
        // group (its lease, taken with the group's lock).
        match event {
            _ if self.store.shared_by_hosts() => {
                self.store
                    .record_with_ledger_holding(super::locks::holder(), change, event)
                    .await
            }
            Some(event) => self.store.record_with_ledger(change, event).await,
            None => self.store.put_ledger_entry(&entry).await,
        }
    }

    /// A successful event about one of the application's groups.
    fn group_event(
        &self,
        group_id: &str,
        operation: &str,
        rule: String,
        status: Option<u16>,
        summary: String,
    ) -> Event {
        self.event(
            "group",
            group_id,
            operation,
            Outcome::Success,
            Some(rule),
            status,
            summary,
        )
    }
}

/// What the ledger says a pushed group holds: its document and the remote
/// ids of the members the host manages.
pub(crate) fn pushed_group(entry: &LedgerEntry) -> (Value, BTreeSet<String>) {
    let pushed = pushed_of(entry);
    (pushed.resource, pushed.members)
}

fn pushed_of(entry: &LedgerEntry) -> PushedGroup {
    entry
        .document
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// Brings the target application's copy of `group_id` to what the
/// directory wants.
pub async fn sync_group(target: &Target<'_>, group_id: &str) -> Result<GroupSynced, SyncError> {
    let _lock = super::locks::lock_object(target.store, &target.app.id, "group", group_id).await?;
    sync_held_group(target, group_id, HeldGroup { read: None, _lock }, None).await
}

/// [`sync_group`] for a caller waiting on the answer: a transient failure
/// is tried once more at once (lookup-before-create makes that safe).
pub async fn sync_group_now(target: &Target<'_>, group_id: &str) -> Result<GroupSynced, SyncError> {
    match sync_group(target, group_id).await {
        Err(SyncError::Application(error)) if !error.is_permanent() => {
            sync_group(target, group_id).await
        }
        other => other,
    }
}

async fn sync_group_once(target: &Target<'_>, group_id: &str) -> Result<GroupSynced, SyncError> {
    if !groups_managed(target) {
        return Ok(GroupSynced::NotManaged);
    }
    let read = read_groups(target, vec![group_id.to_owned()])
        .await?
        .pop()
        .unwrap_or(Ok(None))?;
    sync_group_read(target, group_id, read).await
}

/// Groups a sync of many locks and reads at once ([`sync_groups`]).
const GROUPS_READ_AT_ONCE: usize = 8;

/// Chunks of groups being locked and read at once, ahead of their syncs
/// ([`sync_groups`]).
const CHUNKS_READ_AT_ONCE: usize = 2;

/// Groups locked and read that wait for a place among those in flight
/// ([`sync_groups`]).
const GROUPS_HELD_READY: usize = 16;

/// Groups synced at once, among a sync of many, that are too large to be
/// read with others ([`MEMBERS_READ_AT_ONCE`]): each holds its members and
/// their accounts, read on a thread of the blocking pool of its own, for
/// its whole sync, so many of them at once cost memory and no time.
const LARGE_GROUPS_AT_ONCE: usize = 4;

/// [`sync_group`] for each of `group_ids`, `in_flight` at a time: each
/// result beside its group. Groups are locked and read
/// [`GROUPS_READ_AT_ONCE`] at a time, in one store call and one snapshot
/// for them all ([`read_groups`]; past [`MEMBERS_READ_AT_ONCE`] members,
/// the chunk's remaining groups are read each on its own, under its lock,
/// when its turn comes). The chunks are locked and read ahead of the
/// syncs, [`CHUNKS_READ_AT_ONCE`] at once on the blocking pool, until
/// [`GROUPS_HELD_READY`] groups wait for a place among those in flight: a
/// read takes longer than a group's requests, and a group whose place
/// frees finds the next one read. Chunks hold different groups and each
/// takes its locks in order, so no two wait on each other. Groups read on
/// their own are synced [`LARGE_GROUPS_AT_ONCE`] at a time. Each group is
/// let go when its sync ends.
pub async fn sync_groups<'g>(
    target: &Target<'_>,
    group_ids: &'g [String],
    in_flight: usize,
) -> Vec<(&'g String, Result<GroupSynced, SyncError>)> {
    use futures_util::StreamExt;
    // A group named twice is synced once.
    let mut named = std::collections::HashSet::with_capacity(group_ids.len());
    let unique: Vec<&'g String> = group_ids
        .iter()
        .filter(|group_id| named.insert(*group_id))
        .collect();
    if !groups_managed(target) {
        return unique
            .into_iter()
            .map(|group_id| (group_id, Ok(GroupSynced::NotManaged)))
            .collect();
    }
    let large = tokio::sync::Semaphore::new(LARGE_GROUPS_AT_ONCE);
    let large = &large;
    // The reads feed the syncs through a channel: read ahead inside the
    // syncs' stream, the next chunks would be started only when a sync ends
    // and frees a place, and the syncs in flight would run out of groups
    // while they are read.
    let (ready, mut waiting) = tokio::sync::mpsc::channel(GROUPS_HELD_READY);
    let reading = async move {
        let mut chunks = futures_util::stream::iter(unique.chunks(GROUPS_READ_AT_ONCE))
            .map(|chunk| async move { (chunk, hold_groups(target, chunk).await) })
            .buffered(CHUNKS_READ_AT_ONCE);
        while let Some((chunk, held)) = chunks.next().await {
            for item in held_of_chunk(chunk, held) {
                if ready.send(item).await.is_err() {
                    return;
                }
            }
        }
    };
    let held = futures_util::stream::poll_fn(move |context| waiting.poll_recv(context));
    let syncing = held
        .map(|(group_id, held)| async move {
            let synced = match held {
                Ok(held) => sync_held_group(target, group_id, held, Some(large)).await,
                Err(error) => Err(error),
            };
            (group_id, synced)
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>();
    futures_util::future::join(reading, syncing).await.1
}

/// Each group of a chunk beside its lock and read; a chunk whose locks or
/// read failed as a whole fails each of its groups, as a sync that cannot
/// read its group does.
fn held_of_chunk<'g>(
    chunk: &[&'g String],
    held: Result<Vec<(&'g String, HeldGroup)>, StoreError>,
) -> Vec<(&'g String, Result<HeldGroup, SyncError>)> {
    match held {
        Ok(held) => held
            .into_iter()
            .map(|(group_id, held)| (group_id, Ok(held)))
            .collect(),
        Err(error) => {
            let reason = error.to_string();
            chunk
                .iter()
                .map(|&group_id| {
                    let failed = StoreError::Backend(reason.clone());
                    (group_id, Err(SyncError::Store(failed)))
                })
                .collect()
        }
    }
}

/// A group locked for its sync, and what was read of it under the lock:
/// `None` when it was locked alone or its chunk's read stopped before it
/// ([`MEMBERS_READ_AT_ONCE`]), and it is read on its own when its turn
/// comes.
struct HeldGroup {
    read: Option<Result<Option<GroupRead>, StoreError>>,
    _lock: ObjectLock,
}

/// Locks each of `chunk` (in id order, as every holder of several locks
/// takes them) and reads them together: each group beside its lock and
/// read, in the chunk's order. The groups of `chunk` are distinct.
async fn hold_groups<'g>(
    target: &Target<'_>,
    chunk: &[&'g String],
) -> Result<Vec<(&'g String, HeldGroup)>, StoreError> {
    let mut ordered: Vec<&String> = chunk.to_vec();
    ordered.sort();
    let mut locks = std::collections::HashMap::with_capacity(ordered.len());
    for group_id in ordered {
        let lock =
            super::locks::lock_object(target.store, &target.app.id, "group", group_id).await?;
        locks.insert(group_id, lock);
    }
    let mut reads = read_groups(target, chunk.iter().map(|&id| id.clone()).collect())
        .await?
        .into_iter();
    Ok(chunk
        .iter()
        .filter_map(|&group_id| {
            let read = reads.next();
            let _lock = locks.remove(group_id)?;
            Some((group_id, HeldGroup { read, _lock }))
        })
        .collect())
}

/// [`sync_group`] once the group is locked and read. Among a sync of many,
/// a group read on its own (past its chunk's members) first waits for one
/// of the `large` turns.
async fn sync_held_group(
    target: &Target<'_>,
    group_id: &str,
    held: HeldGroup,
    large: Option<&tokio::sync::Semaphore>,
) -> Result<GroupSynced, SyncError> {
    let HeldGroup { read, _lock } = held;
    let synced = match read {
        Some(read) => sync_group_read(target, group_id, read?).await,
        None => {
            let _turn = match large {
                Some(large) => large.acquire().await.ok(),
                None => None,
            };
            sync_group_once(target, group_id).await
        }
    };
    match synced {
        // Deleted in the application meanwhile: the ledger forgot it, and
        // the group is found or created again (still under its lock).
        Err(SyncError::Application(error)) if error.status() == Some(404) => {
            sync_group_once(target, group_id).await
        }
        other => other,
    }
}

/// The rest of a group's sync, from what was read of it.
async fn sync_group_read(
    target: &Target<'_>,
    group_id: &str,
    read: Option<GroupRead>,
) -> Result<GroupSynced, SyncError> {
    let store = target.store;
    let Some(GroupRead {
        group,
        entry,
        desired,
    }) = read
    else {
        return Ok(GroupSynced::NotManaged);
    };
    let resource = match target
        .plugin
        .map_group(&directory_group(&group), &target.settings())
    {
        Ok(called) => called.value.value(),
        Err(error) if !error.is_plugin_fault() => {
            let operation = if entry.is_some() {
                GROUP_UPDATE
            } else {
                GROUP_CREATE
            };
            let reason = format!("the connector refused {}: {error}", group.display_name);
            target
                .dead_letter("group", group_id, operation, reason.clone(), None)
                .await;
            target
                .record_group(
                    group_id,
                    operation,
                    Outcome::Failure,
                    Some("mapping".into()),
                    None,
                    reason,
                )
                .await;
            return Ok(GroupSynced::Refused);
        }
        Err(error) => {
            return Err(SyncError::Connector {
                connector: target.plugin.name().to_string(),
                reason: error.to_string(),
            });
        }
    };
    let doc_hash = hash(&resource.to_string());

    let (remote_id, mut pushed, mut outcome) = match entry {
        Some(entry) => (entry.remote_id.clone(), pushed_of(&entry), None),
        None if desired.is_empty() => return Ok(GroupSynced::Empty),
        None => match find_or_create(target, &group, &resource, &doc_hash, &desired).await? {
            Found::Linked {
                remote_id,
                pushed,
                synced,
            } => (remote_id, pushed, Some(synced)),
            Found::Refused => return Ok(GroupSynced::Refused),
        },
    };
    let current_hash = hash(&pushed.resource.to_string());
    if current_hash != doc_hash || pushed.members != desired {
        let put = matches!(
            target.plugin.manifest().capabilities.update_method,
            UpdateMethod::Put
        );
        let sent = if put {
            put_group(target, &group, &remote_id, &resource, &mut pushed, &desired).await
        } else {
            patch_group(target, &group, &remote_id, &resource, &mut pushed, &desired).await
        };
        match sent {
            Ok(true) => {
                outcome.get_or_insert(GroupSynced::Updated);
            }
            Ok(false) => {}
            Err(SyncError::Application(error)) if error.status() == Some(404) => {
                store
                    .remove_ledger_entry(&target.app.id, "group", group_id)
                    .await?;
                return Err(error.into());
            }
            Err(error) => return Err(error),
        }
    }
    Ok(outcome.unwrap_or(GroupSynced::Unchanged))
}

/// What a group's sync reads of the store.
struct GroupRead {
    group: GroupRecord,
    entry: Option<LedgerEntry>,
    /// The accounts in the application of the group's users (nested groups
    /// included): the members the directory wants there.
    desired: BTreeSet<String>,
}

/// Accounts of members a read of several groups looks up at most: once
/// the groups read hold this many users, the groups after them are left
/// to be read on their own, so that a chunk of large groups does not hold
/// all their members at once. Chunks read at once hold
/// [`CHUNKS_READ_AT_ONCE`] times this between them.
const MEMBERS_READ_AT_ONCE: usize = 1_024;

/// `group_ids`, each with its ledger entry and the accounts its users hold
/// in the application, read in one store call from one snapshot: each
/// group's read in the order asked, `None` for a group that is gone or not
/// bound to the application. The first group is always read; the read
/// stops early past [`MEMBERS_READ_AT_ONCE`] users, leaving out the
/// groups after. One call for many groups rather than several
/// for each: a call is a trip to the blocking pool and back, and a read
/// transaction of its own starts from a cold page cache, while the members'
/// accounts of many groups are looked up together, each once, in the
/// ledger's order ([`read_groups_now`]).
async fn read_groups(
    target: &Target<'_>,
    group_ids: Vec<String>,
) -> Result<Vec<Result<Option<GroupRead>, StoreError>>, StoreError> {
    let app_id = target.app.id.clone();
    target
        .store
        .run(move |store| {
            let mut read = Ok(Vec::new());
            store.in_one_read(&mut || {
                read = read_groups_now(store, &app_id, &group_ids, MEMBERS_READ_AT_ONCE);
            });
            read
        })
        .await
}

/// [`read_groups`] on the blocking pool, stopping past `member_budget`
/// users. A group that cannot be read fails alone; a failed lookup of the
/// members' accounts fails the call.
fn read_groups_now(
    store: &dyn Store,
    app_id: &str,
    group_ids: &[String],
    member_budget: usize,
) -> Result<Vec<Result<Option<GroupRead>, StoreError>>, StoreError> {
    let mut found = Vec::with_capacity(group_ids.len());
    let mut members = 0;
    for group_id in group_ids {
        if !found.is_empty() && members >= member_budget {
            break;
        }
        let read = group_and_users(store, app_id, group_id);
        if let Ok(Some(found)) = &read {
            members += found.users.len();
        }
        found.push(read);
    }
    let users: BTreeSet<&String> = found
        .iter()
        .filter_map(|found| found.as_ref().ok()?.as_ref())
        .flat_map(|found| &found.users)
        .collect();
    let users: Vec<String> = users.into_iter().cloned().collect();
    let accounts: std::collections::HashMap<String, String> = store
        .remote_ids(app_id, "user", &users)?
        .into_iter()
        .collect();
    Ok(found
        .into_iter()
        .map(|found| {
            Ok(found?.map(
                |GroupAndUsers {
                     group,
                     entry,
                     users,
                 }| GroupRead {
                    group,
                    entry,
                    desired: users
                        .iter()
                        .filter_map(|user| accounts.get(user).cloned())
                        .collect(),
                },
            ))
        })
        .collect())
}

/// A group, its ledger entry and its users (nested groups included).
struct GroupAndUsers {
    group: GroupRecord,
    entry: Option<LedgerEntry>,
    users: Vec<String>,
}

/// The group, its ledger entry and its users, if it exists and is bound to
/// the application.
fn group_and_users(
    store: &dyn Store,
    app_id: &str,
    group_id: &str,
) -> Result<Option<GroupAndUsers>, StoreError> {
    let Some(group) = store.get_group_without_members(group_id)? else {
        return Ok(None);
    };
    let bound = store
        .bound_groups_containing(app_id, group_id)?
        .iter()
        .any(|bound| bound == group_id);
    if !bound {
        return Ok(None);
    }
    let entry = store.ledger_entry(app_id, "group", group_id)?;
    let users = store.users_of(&[group_id.to_owned()])?;
    Ok(Some(GroupAndUsers {
        group,
        entry,
        users,
    }))
}

enum Found {
    Linked {
        remote_id: String,
        pushed: PushedGroup,
        synced: GroupSynced,
    },
    Refused,
}

/// Looks the group up by displayName; takes over the one match or creates
/// the group (without members: they follow in chunks).
async fn find_or_create(
    target: &Target<'_>,
    group: &GroupRecord,
    resource: &Value,
    doc_hash: &str,
    desired: &BTreeSet<String>,
) -> Result<Found, SyncError> {
    let filter = format!("displayName eq {}", literal(&group.display_name));
    let request = ScimRequest::get(format!("/Groups?filter={}", percent_encode(&filter)));
    let answer = match target.send(&request).await {
        Ok(answer) => answer,
        Err(error) => {
            target
                .group_failed(&group.id, GROUP_CREATE, Some(filter), &error)
                .await;
            return Err(error.into());
        }
    };
    let refuse = async |reason: String| -> Result<Found, SyncError> {
        target
            .dead_letter("group", &group.id, GROUP_CREATE, reason.clone(), None)
            .await;
        target
            .record_group(
                &group.id,
                GROUP_CREATE,
                Outcome::Failure,
                Some(filter.clone()),
                Some(answer.status.as_u16()),
                reason,
            )
            .await;
        Ok(Found::Refused)
    };
    match vet(LookupKind::Group, &filter, answer.body()) {
        Candidate::None => {}
        Candidate::Refused(reason) => return refuse(reason).await,
        Candidate::One(remote_id) => {
            let _group = super::locks::lock_object(
                target.store,
                &target.app.id,
                "group account",
                &remote_id,
            )
            .await?;
            if let Some(holder) = target
                .store
                .ledger_holder(&target.app.id, "group", &remote_id)
                .await?
                .filter(|holder| holder.object_id != group.id)
            {
                return refuse(format!(
                    "group {remote_id} is already linked to directory group {}; it is not \
                     taken over for {}",
                    holder.object_id, group.display_name
                ))
                .await;
            }
            // The one resource the answer lists (`vet` found no other).
            let one = answer
                .body()
                .pointer("/Resources/0")
                .unwrap_or(&Value::Null);
            // The members already there that the directory wants are
            // managed from now on; the others are left alone.
            let listed = if one.get("members").is_some() {
                listed_members(one)
            } else {
                let path = group_path(&remote_id);
                match target.send(&ScimRequest::get(path)).await {
                    Ok(read) => listed_members(read.body()),
                    Err(error) => {
                        target
                            .group_failed(
                                &group.id,
                                GROUP_CREATE,
                                Some(format!("takeover: {filter}")),
                                &error,
                            )
                            .await;
                        return Err(error.into());
                    }
                }
            };
            let pushed = PushedGroup {
                // Nothing of ours was sent yet: the update that follows
                // sends every attribute of the directory's document.
                resource: json!({}),
                members: listed.intersection(desired).cloned().collect(),
            };
            let linked = target.group_event(
                &group.id,
                GROUP_CREATE,
                format!("takeover: {filter}"),
                Some(answer.status.as_u16()),
                format!(
                    "linked existing group {remote_id} for {}",
                    group.display_name
                ),
            );
            match target
                .link_group(&group.id, &remote_id, "", &pushed, Some(linked))
                .await
            {
                Ok(()) => {}
                Err(StoreError::LinkedElsewhere { holder, .. }) => {
                    return refuse(format!(
                        "group {remote_id} is already linked to directory group {holder}; it \
                         is not taken over for {}",
                        group.display_name
                    ))
                    .await;
                }
                Err(error) => return Err(error.into()),
            }
            return Ok(Found::Linked {
                remote_id,
                pushed,
                synced: GroupSynced::TakenOver,
            });
        }
    }
    let request = ScimRequest::with_body(reqwest::Method::POST, "/Groups", resource.clone());
    let answer = match target.send(&request).await {
        Ok(answer) => answer,
        Err(error) => {
            target
                .group_failed(&group.id, GROUP_CREATE, Some("created".into()), &error)
                .await;
            return Err(error.into());
        }
    };
    let Some(remote_id) = answer.id() else {
        let error = ScimClientError::Status {
            method: "POST".into(),
            path: "/Groups".into(),
            status: answer.status.as_u16(),
            detail: "the created group has no id".into(),
            attempts: answer.attempts,
        };
        target
            .group_failed(&group.id, GROUP_CREATE, Some("created".into()), &error)
            .await;
        return Err(error.into());
    };
    let pushed = PushedGroup {
        resource: resource.clone(),
        members: BTreeSet::new(),
    };
    let created = target.group_event(
        &group.id,
        GROUP_CREATE,
        "created".into(),
        Some(answer.status.as_u16()),
        format!("POST /Groups for {} → {remote_id}", group.display_name),
    );
    target
        .link_group(&group.id, remote_id, doc_hash, &pushed, Some(created))
        .await?;
    Ok(Found::Linked {
        remote_id: remote_id.to_string(),
        pushed,
        synced: GroupSynced::Created,
    })
}

fn rename_rule(previous: &Value, next: &Value) -> String {
    match (previous.get("displayName"), next.get("displayName")) {
        (Some(before), Some(after)) if before != after => "renamed".into(),
        _ => "updated".into(),
    }
}

/// Updates the group by PATCH: the attributes that changed, then members
/// added and removed in chunks. Whether anything was sent.
async fn patch_group(
    target: &Target<'_>,
    group: &GroupRecord,
    remote_id: &str,
    resource: &Value,
    pushed: &mut PushedGroup,
    desired: &BTreeSet<String>,
) -> Result<bool, SyncError> {
    let path = group_path(remote_id);
    let mut sent = false;
    if let Some((operations, names)) = changed_attributes(&pushed.resource, resource) {
        let rule = rename_rule(&pushed.resource, resource);
        let request = ScimRequest::with_body(
            reqwest::Method::PATCH,
            path.clone(),
            json!({ "schemas": [PATCH_OP], "Operations": operations }),
        );
        match target.send(&request).await {
            Ok(answer) => {
                pushed.resource = resource.clone();
                let updated = target.group_event(
                    &group.id,
                    GROUP_UPDATE,
                    rule,
                    Some(answer.status.as_u16()),
                    format!(
                        "PATCH {path} ({}) for {}",
                        names.join(", "),
                        group.display_name
                    ),
                );
                let doc_hash = hash(&resource.to_string());
                target
                    .link_group(&group.id, remote_id, &doc_hash, pushed, Some(updated))
                    .await?;
                sent = true;
            }
            Err(error) => {
                target
                    .group_failed(&group.id, GROUP_UPDATE, Some(rule), &error)
                    .await;
                return Err(error.into());
            }
        }
    }
    let doc_hash = hash(&pushed.resource.to_string());
    let to_add: Vec<String> = desired.difference(&pushed.members).cloned().collect();
    let to_remove: Vec<String> = pushed.members.difference(desired).cloned().collect();
    let (added, removed) = (to_add.len(), to_remove.len());
    let chunk = chunk_size(target);
    // Each chunk is linked as its answer comes; the last carries the event
    // that tells of them all.
    let chunks: Vec<(&[String], bool)> = to_add
        .chunks(chunk)
        .map(|ids| (ids, true))
        .chain(to_remove.chunks(chunk).map(|ids| (ids, false)))
        .collect();
    let last = chunks.len().checked_sub(1);
    for (index, (ids, adding)) in chunks.into_iter().enumerate() {
        let status = if adding {
            let operations =
                json!([{ "op": "add", "path": "members", "value": member_values(ids) }]);
            send_membership(target, group, &path, operations, "members added").await?
        } else {
            let operations: Vec<Value> = ids
                .iter()
                .map(|id| json!({ "op": "remove", "path": format!("members[value eq {}]", literal(id)) }))
                .collect();
            send_membership(
                target,
                group,
                &path,
                Value::Array(operations),
                "members removed",
            )
            .await?
        };
        if adding {
            pushed.members.extend(ids.iter().cloned());
        } else {
            for id in ids {
                pushed.members.remove(id);
            }
        }
        let event = (Some(index) == last).then(|| {
            target.group_event(
                &group.id,
                GROUP_UPDATE,
                "membership".into(),
                Some(status),
                format!(
                    "PATCH {path}: {added} member(s) added, {removed} removed for {} (chunks of \
                     {chunk})",
                    group.display_name
                ),
            )
        });
        target
            .link_group(&group.id, remote_id, &doc_hash, pushed, event)
            .await?;
    }
    if last.is_some() {
        sent = true;
    }
    Ok(sent)
}

async fn send_membership(
    target: &Target<'_>,
    group: &GroupRecord,
    path: &str,
    operations: Value,
    what: &str,
) -> Result<u16, ScimClientError> {
    let request = ScimRequest::with_body(
        reqwest::Method::PATCH,
        path.to_string(),
        json!({ "schemas": [PATCH_OP], "Operations": operations }),
    );
    match target.send(&request).await {
        Ok(answer) => Ok(answer.status.as_u16()),
        Err(error) => {
            target
                .group_failed(&group.id, GROUP_UPDATE, Some(what.to_string()), &error)
                .await;
            Err(error)
        }
    }
}

/// Updates the group by PUT, for applications without PATCH: the whole
/// document with every member, the ones the host does not manage kept as
/// the application lists them.
async fn put_group(
    target: &Target<'_>,
    group: &GroupRecord,
    remote_id: &str,
    resource: &Value,
    pushed: &mut PushedGroup,
    desired: &BTreeSet<String>,
) -> Result<bool, SyncError> {
    let path = group_path(remote_id);
    let current = match target.send(&ScimRequest::get(path.clone())).await {
        Ok(answer) => listed_members(answer.body()),
        Err(error) => {
            target
                .group_failed(&group.id, GROUP_UPDATE, None, &error)
                .await;
            return Err(error.into());
        }
    };
    let unmanaged = current.difference(&pushed.members);
    let members: Vec<&String> = unmanaged.chain(desired.iter()).collect();
    let mut body = resource.clone();
    body["members"] = member_values(&members);
    let rule = if hash(&pushed.resource.to_string()) != hash(&resource.to_string()) {
        rename_rule(&pushed.resource, resource)
    } else {
        "membership".into()
    };
    match target
        .send(&ScimRequest::with_body(
            reqwest::Method::PUT,
            path.clone(),
            body,
        ))
        .await
    {
        Ok(answer) => {
            let added = desired.difference(&pushed.members).count();
            let removed = pushed.members.difference(desired).count();
            pushed.resource = resource.clone();
            pushed.members = desired.clone();
            let replaced = target.group_event(
                &group.id,
                GROUP_UPDATE,
                rule,
                Some(answer.status.as_u16()),
                format!(
                    "PUT {path}: {added} member(s) added, {removed} removed for {}",
                    group.display_name
                ),
            );
            let doc_hash = hash(&resource.to_string());
            target
                .link_group(&group.id, remote_id, &doc_hash, pushed, Some(replaced))
                .await?;
            Ok(true)
        }
        Err(error) => {
            target
                .group_failed(&group.id, GROUP_UPDATE, Some(rule), &error)
                .await;
            Err(error.into())
        }
    }
}

/// Asks the connector's rule for a group event and follows it. `users` are
/// the directory users the event concerns (the removed user, or the users
/// of the unbound or deleted group).
pub async fn apply_group_event(
    target: &Target<'_>,
    event: GroupEvent,
    group: &DirectoryGroup,
    users: &[String],
) -> Result<(), SyncError> {
    let store = target.store;
    let app_id = &target.app.id;
    let assigned: BTreeSet<String> = store.assignments(app_id).await?.into_iter().collect();
    let mut members = Vec::new();
    for (user_id, _) in store.remote_ids(app_id, "user", users).await? {
        let other_managed_groups = store
            .bound_groups_containing(app_id, &user_id)
            .await?
            .into_iter()
            .filter(|other| *other != group.id)
            .collect();
        members.push(MemberFacts {
            directly_assigned: assigned.contains(&user_id),
            user_id,
            other_managed_groups,
        });
    }
    let group_entry = store.ledger_entry(app_id, "group", &group.id).await?;
    if members.is_empty() && group_entry.is_none() {
        return Ok(());
    }
    let facts = GroupEventFacts {
        event,
        group: group.clone(),
        members,
        group_management: groups_managed(target),
    };
    let decision = target
        .plugin
        .on_group_event(&facts, &target.settings())
        .map_err(|error| SyncError::Connector {
            connector: target.plugin.name().to_string(),
            reason: error.to_string(),
        })?
        .value;
    let rule = decision.rule.clone();
    if event != GroupEvent::UserRemovedFromGroup && group_entry.is_some() {
        // Under the group's lock, on its entry as it is now: a sync of the
        // group may have changed it since the facts were gathered.
        let _one_at_a_time = super::locks::lock_object(store, app_id, "group", &group.id).await?;
        let bound_again = event == GroupEvent::GroupUnbound
            && store
                .bound_groups_containing(app_id, &group.id)
                .await?
                .contains(&group.id);
        if let Some(entry) = store
            .ledger_entry(app_id, "group", &group.id)
            .await?
            .filter(|_| !bound_again)
        {
            release_group(target, group, &entry, decision.group, &facts, &rule).await?;
        }
    }
    for member in decision.members {
        // Scope and account as they are now, not as they were when the
        // facts were gathered: a user who came back meanwhile keeps it.
        let held = hold_user(store, app_id, &member.user_id).await?;
        if held.in_scope || held.entry.is_none() {
            continue;
        }
        match member.action {
            AccountAction::Keep => {
                release_user(target, &held, &rule).await?;
            }
            AccountAction::Deactivate => {
                offboard(target, &held, Offboarding::Deactivate, &rule).await?;
            }
            AccountAction::Delete => {
                offboard(target, &held, Offboarding::Delete, &rule).await?;
            }
        }
    }
    Ok(())
}

/// Stops managing an account the rule keeps as it is: the ledger forgets
/// it, so nothing later deactivates it; should the user come back into
/// scope, the account is looked up and taken over again.
async fn release_user(
    target: &Target<'_>,
    held: &HeldUser,
    rule: &str,
) -> Result<Synced, SyncError> {
    let (Some(entry), false) = (&held.entry, held.in_scope) else {
        return Ok(Synced::Unchanged);
    };
    let user_id = held.user_id.as_str();
    target
        .store
        .remove_ledger_entry(&target.app.id, "user", user_id)
        .await?;
    target
        .record(
            user_id,
            USER_RELEASE,
            Outcome::Success,
            Some(rule.to_string()),
            None,
            format!(
                "account {} left as it is in the application; no longer managed",
                entry.remote_id
            ),
        )
        .await;
    Ok(Synced::Unchanged)
}

/// Follows the rule's action for a group that stops being managed, then
/// forgets it.
async fn release_group(
    target: &Target<'_>,
    group: &DirectoryGroup,
    entry: &LedgerEntry,
    action: GroupAction,
    facts: &GroupEventFacts,
    rule: &str,
) -> Result<(), SyncError> {
    let path = group_path(&entry.remote_id);
    let pushed = pushed_of(entry);
    let (operation, request, summary) = match action {
        GroupAction::LeaveAsIs => (
            GROUP_UPDATE,
            None,
            format!("{path} left as it is; no longer managed"),
        ),
        GroupAction::RemoveMembers => {
            let concerned: Vec<String> = facts.members.iter().map(|m| m.user_id.clone()).collect();
            let remote: Vec<String> = target
                .store
                .remote_ids(&target.app.id, "user", &concerned)
                .await?
                .into_iter()
                .map(|(_, remote)| remote)
                .filter(|remote| pushed.members.contains(remote))
                .collect();
            let operations: Vec<Value> = remote
                .iter()
                .map(|id| json!({ "op": "remove", "path": format!("members[value eq {}]", literal(id)) }))
                .collect();
            let count = operations.len();
            (
                GROUP_UPDATE,
                (!operations.is_empty()).then(|| {
                    ScimRequest::with_body(
                        reqwest::Method::PATCH,
                        path.clone(),
                        json!({ "schemas": [PATCH_OP], "Operations": operations }),
                    )
                }),
                format!("PATCH {path}: {count} member(s) removed; no longer managed"),
            )
        }
        GroupAction::ClearMembers => (
            GROUP_UPDATE,
            Some(ScimRequest::with_body(
                reqwest::Method::PATCH,
                path.clone(),
                json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "remove", "path": "members" }] }),
            )),
            format!("PATCH {path}: every member removed; the group stays"),
        ),
        GroupAction::DeleteGroup => (
            GROUP_DELETE,
            Some(ScimRequest::delete(path.clone())),
            format!("DELETE {path}"),
        ),
    };
    let mut status = None;
    if let Some(request) = request {
        match target.send(&request).await {
            Ok(answer) => status = Some(answer.status.as_u16()),
            // Already gone: nothing left to change.
            Err(error) if error.status() == Some(404) => status = Some(404),
            Err(error) => {
                target
                    .group_failed(&group.id, operation, Some(rule.to_string()), &error)
                    .await;
                return Err(error.into());
            }
        }
    }
    target
        .store
        .remove_ledger_entry(&target.app.id, "group", &group.id)
        .await?;
    target
        .record_group(
            &group.id,
            operation,
            Outcome::Success,
            Some(rule.to_string()),
            status,
            format!("{summary} ({})", group.name),
        )
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::TokenCipher;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{
        DirectoryStore, GroupWrite, LedgerStore, Member, MemberKind, ScopeStore, fixtures,
    };

    /// A store with an application `crm` and three bound groups of two
    /// users each, every user linked to an account `account-<name>`
    /// except `bob`; the store, the application's id and the groups' ids.
    fn three_groups(folder: &std::path::Path) -> (SqliteStore, String, Vec<String>) {
        let store = SqliteStore::open_in(folder, TokenCipher::from_key(&[7; 32])).unwrap();
        let app = fixtures::app(&store, "crm");
        let user = |name: &str| {
            let id = fixtures::user(&store, name);
            if name != "bob" {
                let entry = fixtures::link(&app, &id, &format!("account-{name}"));
                store.put_ledger_entry(&entry).unwrap();
            }
            id
        };
        let ids: std::collections::HashMap<&str, String> = ["ada", "bob", "cy", "dee", "eve"]
            .into_iter()
            .map(|name| (name, user(name)))
            .collect();
        let members = [["ada", "bob"], ["bob", "cy"], ["dee", "eve"]]
            .map(|names| names.map(|name| ids[name].clone()));
        let groups = members
            .iter()
            .enumerate()
            .map(|(index, users)| {
                let group = store
                    .create_group(GroupWrite {
                        display_name: format!("group {index}"),
                        external_id: None,
                        attributes: serde_json::Map::new(),
                        members: Some(
                            users
                                .iter()
                                .map(|id| Member {
                                    id: id.clone(),
                                    kind: MemberKind::User,
                                })
                                .collect(),
                        ),
                    })
                    .unwrap()
                    .id;
                store.bind(&app, &group).unwrap();
                group
            })
            .collect();
        (store, app, groups)
    }

    fn desired(read: &Result<Option<GroupRead>, StoreError>) -> Vec<&str> {
        let read = read.as_ref().unwrap().as_ref().unwrap();
        read.desired.iter().map(String::as_str).collect()
    }

    #[test]
    fn groups_read_together_each_get_their_own_members_accounts() {
        let folder = tempfile::tempdir().unwrap();
        let (store, app, groups) = three_groups(folder.path());
        let mut asked = groups.clone();
        asked.push("no-such-group".into());
        let reads = read_groups_now(&store, &app, &asked, usize::MAX).unwrap();
        assert_eq!(reads.len(), 4);
        assert_eq!(desired(&reads[0]), ["account-ada"], "bob has no account");
        assert_eq!(desired(&reads[1]), ["account-cy"]);
        assert_eq!(desired(&reads[2]), ["account-dee", "account-eve"]);
        assert!(matches!(reads[3], Ok(None)), "a group that is gone");

        store.unbind(&app, &groups[1]).unwrap();
        let reads = read_groups_now(&store, &app, &groups, usize::MAX).unwrap();
        assert!(matches!(reads[1], Ok(None)), "a group no longer bound");
        assert_eq!(desired(&reads[2]), ["account-dee", "account-eve"]);
    }

    #[test]
    fn a_read_of_groups_stops_past_its_members_budget() {
        let folder = tempfile::tempdir().unwrap();
        let (store, app, groups) = three_groups(folder.path());
        // Two users each: the second group takes the read past three.
        let reads = read_groups_now(&store, &app, &groups, 3).unwrap();
        assert_eq!(reads.len(), 2);
        assert_eq!(desired(&reads[1]), ["account-cy"]);
        // The first group is read whatever the budget.
        let reads = read_groups_now(&store, &app, &groups, 0).unwrap();
        assert_eq!(reads.len(), 1);
        assert_eq!(desired(&reads[0]), ["account-ada"]);
    }
}
