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
//!   earlier, say): provisioned;
//! - a group the host pushed, renamed there or whose managed members were
//!   changed there: restored (see "Groups" below).
//!
//! An unchanged application costs the listing (and one read per pushed
//! group) and nothing else: no write request, no store write.
//!
//! # What is believed
//!
//! An account missing from the listing is about to be forgotten (or, if
//! active, created again), so the listing must be the whole list. It is
//! walked by [`crate::scim_client::Pages`] (the next page asked for while
//! this one is compared), which fails the listing — and
//! with it the reconcile, before anything is repaired or forgotten, with an
//! event saying why — when a page has no `totalResults`, when an id comes
//! twice (the application ignores `startIndex`), when the count moves more
//! than accounts created or deleted during a walk explain, or when the list
//! ends short of its count. A complete list missing more than
//! [`absent_limit`] of the accounts the host manages is not believed
//! either. Then every account still missing is read on its own: only a
//! `GET /Users/{id}` answering 404 makes it gone; a 200 means the listing
//! left it out (it is compared like a listed one), and any other answer
//! leaves the ledger as it is.
//!
//! # Acting on fresh reads
//!
//! The listing is long; the worker goes on meanwhile. Every repair holds the
//! user as every write does ([`super::locks::hold_user`]: the object's
//! lock, then the user, its scope and its ledger entry read under it) and
//! acts only if the entry is still the one the listing was compared with
//! (same remote id and document hash); otherwise the worker has moved the
//! account on and the reconcile leaves it. Scope counts too: an account is
//! not deactivated again for a user back in scope, nor restored for a user
//! who left it (the worker's change does either). Groups are read and
//! repaired under the group's lock ([`super::locks::lock_object`]).
//!
//! # Groups
//!
//! Each group in the ledger is read with `GET /Groups/{id}` under the
//! group's lock (groups side by side, as many as the application's
//! concurrency), rather than through a `/Groups` listing: many applications
//! leave members out of listings, a group read alone answers 404 for
//! certain when it is gone, and the host pushes far fewer groups than
//! users. The group is compared with what the ledger says was pushed:
//! - attributes of the pushed document that differ (a rename): sent again;
//! - a member the host manages for the group (and the directory still
//!   wants) missing: added again;
//! - an account the host manages in this application (its remote id is in
//!   the ledger) present in the group though the host never put it there
//!   and the directory does not want it: removed.
//!
//! Any other member is the application's own and is never removed. The
//! repair is a PATCH of the difference, or for connectors that update by
//! PUT the whole group: the application's document with the pushed
//! attributes over it and its members less the removed plus the added — and
//! no PUT at all when the application's answer does not show the members,
//! since the ones it holds for others would be lost. A group deleted in the
//! application is forgotten and synced again (found or created). The ledger
//! is not changed by a repair: it already says what the application holds
//! now.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::groups::{
    GROUP_UPDATE, GroupSynced, groups_managed, membership_patches, pushed_group, sync_group,
};
use super::locks::{HeldUser, hold_user, lock_object};
use super::provision::{
    CREATE, DEACTIVATED, DEPROVISION, SyncError, Synced, Target, UPDATE, sync_user,
};
use crate::runtime::contract::UpdateMethod;
use crate::scim_client::{ListingFault, ScimClientError, ScimRequest, group_path, user_path};
use crate::store::Timestamp;
use crate::store::{Event, LedgerChange, LedgerEntry, Outcome};

/// Accounts asked for per listing request.
const PAGE: usize = 500;

pub const RECONCILE: &str = "reconcile";

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

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
    /// Groups renamed, changed, stripped of managed members or deleted in
    /// the application, restored.
    pub groups_repaired: u64,
}

impl Reconciled {
    /// The reconcile's event summary.
    pub fn summary(&self) -> String {
        format!(
            "listed {} accounts: {} repaired, {} recreated, {} provisioned; {} groups repaired",
            self.listed, self.repaired, self.recreated, self.provisioned, self.groups_repaired
        )
    }
}

/// How many of the accounts the host manages may be missing from a
/// complete listing before the listing is not believed: 10% of them, and
/// never fewer than 10. Each missing account costs a read to confirm, and
/// an application that suddenly lists a fraction of what it held (another
/// tenant, a filter applied by its admin) is more likely wrong than empty.
pub fn absent_limit(managed: usize) -> usize {
    (managed / 10).max(10)
}

/// Reads the target application's users and groups back and repairs every
/// drift.
pub async fn reconcile_app(target: &Target<'_>) -> Result<Reconciled, SyncError> {
    // Ends the run's progress however this future ends: dropped midway (an
    // operator's request that went away), the run shows as interrupted.
    let mut run = super::progress::Run::start(&target.app.id);
    let result = async {
        let mut done = reconcile_users(target).await?;
        done.groups_repaired = reconcile_groups(target).await?;
        Ok(done)
    }
    .await;
    run.finish(
        result
            .as_ref()
            .map_err(|error: &SyncError| error.to_string()),
    );
    result
}

async fn reconcile_users(target: &Target<'_>) -> Result<Reconciled, SyncError> {
    let store = target.store;
    let app_id = &target.app.id;
    // What the listing is compared with; every action re-reads its entry
    // under the object's lock and acts only if it is still this one.
    let snapshot: HashMap<String, LedgerEntry> = store
        .ledger_entries(app_id, "user")
        .await?
        .into_iter()
        .map(|entry| (entry.remote_id.clone(), entry))
        .collect();
    let mut done = Reconciled::default();
    let mut seen: HashSet<&str> = HashSet::with_capacity(snapshot.len());
    // Only the accounts that differ are kept, so memory follows the drift,
    // not the size of the application.
    let mut drifted: Vec<(&LedgerEntry, Value)> = Vec::new();
    target
        .client
        .pages("/Users", PAGE)
        .read_ahead(|resources| {
            super::progress::listed(app_id, done.listed + resources.len() as u64);
            for resource in resources {
                done.listed += 1;
                let Some(remote_id) = resource.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let Some((remote_id, entry)) = snapshot.get_key_value(remote_id) else {
                    continue;
                };
                seen.insert(remote_id);
                if drift(entry, &resource).is_some() {
                    drifted.push((entry, resource));
                }
            }
        })
        .await?;
    let absent: Vec<&LedgerEntry> = snapshot
        .values()
        .filter(|entry| !seen.contains(entry.remote_id.as_str()))
        .collect();
    let limit = absent_limit(snapshot.len());
    if absent.len() > limit {
        return Err(ScimClientError::Listing {
            path: "/Users".into(),
            fault: ListingFault::TooManyMissing {
                missing: absent.len() as u64,
                managed: snapshot.len() as u64,
                limit: limit as u64,
            },
        }
        .into());
    }
    for (seen, resource) in drifted {
        let held = hold_user(store, app_id, &seen.object_id).await?;
        if still_current(&held, seen).is_some() && repair(target, &held, &resource).await? {
            done.repaired += 1;
        }
    }
    for entry in absent {
        match confirm_absent(target, entry).await? {
            Absence::Repaired => done.repaired += 1,
            // The lock is released: the sync takes it.
            Absence::Gone => {
                if matches!(
                    sync_user(target, &entry.object_id).await,
                    Ok(Synced::Created | Synced::TakenOver)
                ) {
                    done.recreated += 1;
                }
            }
            Absence::Present | Absence::Forgotten | Absence::Kept => {}
        }
    }
    // Read again: the accounts created above and by the worker meanwhile
    // are linked now.
    let linked: HashSet<String> = store
        .ledger_links(app_id, "user")
        .await?
        .into_iter()
        .map(|(object_id, _)| object_id)
        .collect();
    for user_id in store.users_in_scope(app_id).await? {
        if linked.contains(&user_id) {
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

/// The ledger entry of the held user, read under its lock, if it is still
/// the one (`seen`) the listing was compared with.
fn still_current<'h>(held: &'h HeldUser, seen: &LedgerEntry) -> Option<&'h LedgerEntry> {
    let current = held
        .entry
        .as_ref()
        .filter(|current| current.remote_id == seen.remote_id && current.doc_hash == seen.doc_hash);
    if current.is_none() {
        tracing::debug!(
            "user {}: moved on since the listing; left to the worker",
            seen.object_id
        );
    }
    current
}

/// What an account's listed state needs to be what the ledger says the
/// application accepted.
#[derive(Debug, PartialEq)]
enum Drift {
    /// Deactivated by the host, active in the application.
    Reactivated,
    /// Attributes of the document the application does not hold as sent.
    Changed { ours: Value, differing: Vec<String> },
}

fn drift(entry: &LedgerEntry, remote: &Value) -> Option<Drift> {
    if entry.doc_hash == DEACTIVATED {
        return (remote.get("active") == Some(&Value::Bool(true))).then_some(Drift::Reactivated);
    }
    let ours = entry
        .document
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())?;
    let differing = differing_attributes(&ours, remote);
    (!differing.is_empty()).then_some(Drift::Changed { ours, differing })
}

/// Restores one held account to what its ledger entry (read under the
/// lock) says the application accepted; whether anything was sent.
async fn repair(target: &Target<'_>, held: &HeldUser, remote: &Value) -> Result<bool, SyncError> {
    let Some(entry) = &held.entry else {
        return Ok(false);
    };
    let Some(drift) = drift(entry, remote) else {
        return Ok(false);
    };
    let in_scope = held.in_scope;
    let path = user_path(&entry.remote_id);
    let rule = Some("drift: changed in the application".to_string());
    let (ours, differing) = match drift {
        // Back in scope: the worker's change reactivates it.
        Drift::Reactivated if in_scope => return Ok(false),
        Drift::Reactivated => {
            let body = json!({
                "schemas": [PATCH_OP],
                "Operations": [{ "op": "replace", "path": "active", "value": false }],
            });
            let request = ScimRequest::with_body(reqwest::Method::PATCH, path.clone(), body);
            return match target.send(&request).await {
                Ok(answer) => {
                    target
                        .record(
                            &entry.object_id,
                            DEPROVISION,
                            Outcome::Success,
                            rule,
                            Some(answer.status.as_u16()),
                            format!("PATCH {path} active=false: reactivated in the application"),
                        )
                        .await;
                    Ok(true)
                }
                Err(error) => {
                    target
                        .failed(&entry.object_id, DEPROVISION, rule, &error)
                        .await;
                    Err(error.into())
                }
            };
        }
        // Out of scope now: the worker's change offboards it.
        Drift::Changed { .. } if !in_scope => return Ok(false),
        Drift::Changed { ours, differing } => (ours, differing),
    };
    let request = match target.plugin.manifest().capabilities.update_method {
        UpdateMethod::Patch => {
            let operations: Vec<Value> = differing
                .iter()
                .map(|name| json!({ "op": "replace", "path": name, "value": ours[name.as_str()] }))
                .collect();
            ScimRequest::with_body(
                reqwest::Method::PATCH,
                path.clone(),
                json!({ "schemas": [PATCH_OP], "Operations": operations }),
            )
        }
        UpdateMethod::Put => ScimRequest::with_body(reqwest::Method::PUT, path.clone(), ours),
    };
    match target.send(&request).await {
        Ok(answer) => {
            target
                .record(
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
                )
                .await;
            Ok(true)
        }
        // Deleted between the read and now: the next reconcile sees it.
        Err(error) if error.status() == Some(404) => Ok(false),
        Err(error) => {
            target.failed(&entry.object_id, UPDATE, rule, &error).await;
            Err(error.into())
        }
    }
}

/// What became of an account missing from a complete listing.
enum Absence {
    /// The application holds it after all, as the ledger says.
    Present,
    /// The application holds it after all, changed: restored.
    Repaired,
    /// Gone, and deactivated already: forgotten.
    Forgotten,
    /// Gone while active: forgotten, to be provisioned again.
    Gone,
    /// Moved on since the listing, or the application could not say:
    /// the ledger is left as it is.
    Kept,
}

/// Reads an account the listing did not hold, under its lock; only a 404
/// makes the ledger forget it.
async fn confirm_absent(target: &Target<'_>, seen: &LedgerEntry) -> Result<Absence, SyncError> {
    let app_id = &target.app.id;
    let held = hold_user(target.store, app_id, &seen.object_id).await?;
    let Some(entry) = still_current(&held, seen) else {
        return Ok(Absence::Kept);
    };
    let path = user_path(&entry.remote_id);
    let rule = "drift: deleted in the application";
    match target.send(&ScimRequest::get(path.clone())).await {
        // The listing left it out: compared as a listed account is.
        Ok(answer) => {
            return Ok(if repair(target, &held, answer.body()).await? {
                Absence::Repaired
            } else {
                Absence::Present
            });
        }
        Err(error) if error.status() == Some(404) => {}
        Err(error) => {
            target
                .record(
                    &entry.object_id,
                    RECONCILE,
                    Outcome::Failure,
                    Some("drift: missing from the listing".into()),
                    error.status(),
                    format!(
                        "account {} is missing from the listing but could not be read \
                     ({error}); kept until a reconcile can confirm it is gone",
                        entry.remote_id
                    ),
                )
                .await;
            return Ok(Absence::Kept);
        }
    }
    let (operation, summary, absence) = if entry.doc_hash == DEACTIVATED {
        // Out of scope already: gone is as good as deactivated.
        (
            DEPROVISION,
            format!(
                "deactivated account {} was deleted in the application (GET {path}: 404); forgotten",
                entry.remote_id
            ),
            Absence::Forgotten,
        )
    } else {
        (
            CREATE,
            format!(
                "account {} no longer exists in the application (GET {path}: 404): \
                 provisioning it again",
                entry.remote_id
            ),
            Absence::Gone,
        )
    };
    target
        .store
        .record_with_ledger(
            LedgerChange::Remove {
                app_id,
                object_kind: "user",
                object_id: &entry.object_id,
            },
            event(target, "user", &entry.object_id, operation, rule, summary),
        )
        .await?;
    Ok(absence)
}

/// A successful event about one object, for a write made with it.
fn event(
    target: &Target<'_>,
    object_kind: &str,
    object_id: &str,
    operation: &str,
    rule: &str,
    summary: String,
) -> Event {
    Event {
        id: String::new(),
        at: Timestamp::now(),
        app_id: Some(target.app.id.clone()),
        app_name: Some(target.app.name.clone()),
        object_kind: Some(object_kind.to_string()),
        object_id: Some(object_id.to_string()),
        operation: operation.to_string(),
        outcome: Outcome::Success,
        rule: Some(rule.to_string()),
        http_status: Some(404),
        summary,
    }
}

/// Reads each pushed group back and repairs it; the groups repaired.
async fn reconcile_groups(target: &Target<'_>) -> Result<u64, SyncError> {
    if !groups_managed(target) {
        return Ok(0);
    }
    let store = target.store;
    let entries = store.ledger_entries(&target.app.id, "group").await?;
    if entries.is_empty() {
        return Ok(0);
    }
    // The accounts the host manages here, read once after the users'
    // reconcile: only these are ever taken out of a group.
    let linked: HashSet<String> = store
        .ledger_links(&target.app.id, "user")
        .await?
        .into_iter()
        .map(|(_, remote_id)| remote_id)
        .collect();
    // Each group is read and repaired under its own lock, so groups are
    // checked side by side, as many at once as the application takes
    // requests. After a failure no other check starts, and the reconcile
    // fails once those under way have finished: none is cut off between
    // its request and its record.
    let in_flight = usize::try_from(target.app.pacing.concurrency)
        .unwrap_or(1)
        .max(1);
    let linked = &linked;
    let stopped = AtomicBool::new(false);
    let stopped = &stopped;
    let mut checks = futures_util::stream::iter(entries)
        .map(|entry| async move {
            if stopped.load(Ordering::Relaxed) {
                return Ok(false);
            }
            Ok::<bool, SyncError>(
                match reconcile_group(target, &entry.object_id, linked).await? {
                    GroupChecked::Repaired => true,
                    // The lock is released: the sync takes it.
                    GroupChecked::Deleted => matches!(
                        sync_group(target, &entry.object_id).await,
                        Ok(GroupSynced::Created | GroupSynced::TakenOver)
                    ),
                    GroupChecked::Unchanged | GroupChecked::Skipped => false,
                },
            )
        })
        .buffer_unordered(in_flight);
    let mut repaired = 0;
    let mut failed = None;
    while let Some(checked) = checks.next().await {
        match checked {
            Ok(true) => repaired += 1,
            Ok(false) => {}
            Err(error) => {
                stopped.store(true, Ordering::Relaxed);
                failed.get_or_insert(error);
            }
        }
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(repaired),
    }
}

enum GroupChecked {
    Unchanged,
    Repaired,
    /// Gone from the application: forgotten, to be synced again.
    Deleted,
    /// No longer pushed, or not readable (an event says why).
    Skipped,
}

/// How a group the application holds differs from what the host pushed.
#[derive(Debug, Default, PartialEq)]
struct GroupDrift {
    /// Pushed attributes it does not hold as sent (members aside).
    attributes: Vec<String>,
    /// Managed members it lost, which the directory still wants.
    add: Vec<String>,
    /// Accounts the host manages that it holds without the host or the
    /// directory wanting them there.
    remove: Vec<String>,
    /// Whether the answer showed the members (absent means none, or not
    /// shown: only a PATCH, which names the members it changes, is safe).
    members_shown: bool,
    /// The members it holds.
    current: BTreeSet<String>,
}

impl GroupDrift {
    fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Compares a group the application holds (`remote`) with the document the
/// host pushed (`ours`), the members it manages there (`managed`), the
/// members the directory wants (`desired`) and every account the host
/// manages in the application (`linked`).
fn group_drift(
    ours: &Value,
    managed: &BTreeSet<String>,
    desired: &BTreeSet<String>,
    linked: &HashSet<String>,
    remote: &Value,
) -> GroupDrift {
    let mut ours = ours.clone();
    if let Some(object) = ours.as_object_mut() {
        object.retain(|name, _| !name.eq_ignore_ascii_case("members"));
    }
    let members_shown = field(remote, "members").is_some();
    let current = listed_members(remote);
    GroupDrift {
        attributes: differing_attributes(&ours, remote),
        add: managed
            .intersection(desired)
            .filter(|id| !current.contains(*id))
            .cloned()
            .collect(),
        remove: current
            .iter()
            .filter(|id| linked.contains(*id) && !managed.contains(*id) && !desired.contains(*id))
            .cloned()
            .collect(),
        members_shown,
        current,
    }
}

/// The members a SCIM Group document lists, by remote id.
fn listed_members(group: &Value) -> BTreeSet<String> {
    field(group, "members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|member| member.get("value").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Reads one pushed group under its lock and restores it.
async fn reconcile_group(
    target: &Target<'_>,
    group_id: &str,
    linked: &HashSet<String>,
) -> Result<GroupChecked, SyncError> {
    let store = target.store;
    let app_id = &target.app.id;
    let _one_at_a_time = lock_object(store, app_id, "group", group_id).await?;
    let Some(entry) = store.ledger_entry(app_id, "group", group_id).await? else {
        return Ok(GroupChecked::Skipped);
    };
    // Unbound meanwhile: the connector's rule for that decides.
    if !store
        .bound_groups_containing(app_id, group_id)
        .await?
        .iter()
        .any(|bound| bound == group_id)
    {
        return Ok(GroupChecked::Skipped);
    }
    let path = group_path(&entry.remote_id);
    let remote = match target.send(&ScimRequest::get(path.clone())).await {
        Ok(answer) => answer.into_body(),
        Err(error) if error.status() == Some(404) => {
            store
                .record_with_ledger(
                    LedgerChange::Remove {
                        app_id,
                        object_kind: "group",
                        object_id: group_id,
                    },
                    event(
                        target,
                        "group",
                        group_id,
                        GROUP_UPDATE,
                        "drift: deleted in the application",
                        format!(
                            "group {} no longer exists in the application (GET {path}: 404): \
                         pushing it again",
                            entry.remote_id
                        ),
                    ),
                )
                .await?;
            return Ok(GroupChecked::Deleted);
        }
        Err(error) => {
            group_failed(target, group_id, "drift: unreadable", &error).await;
            return Ok(GroupChecked::Skipped);
        }
    };
    let (ours, managed) = pushed_group(&entry);
    let users = store.users_of(&[group_id.to_string()]).await?;
    let desired: BTreeSet<String> = store
        .remote_ids(app_id, "user", &users)
        .await?
        .into_iter()
        .map(|(_, remote_id)| remote_id)
        .collect();
    let drift = group_drift(&ours, &managed, &desired, linked, &remote);
    if drift.is_empty() {
        return Ok(GroupChecked::Unchanged);
    }
    let sent = match target.plugin.manifest().capabilities.update_method {
        UpdateMethod::Patch => patch_group(target, group_id, &path, &ours, &drift).await,
        UpdateMethod::Put => put_group(target, group_id, &path, &ours, &remote, &drift).await,
    };
    match sent {
        Ok(sent) => Ok(if sent {
            GroupChecked::Repaired
        } else {
            GroupChecked::Skipped
        }),
        // Deleted meanwhile: the next reconcile pushes it again.
        Err(error) if error.status() == Some(404) => Ok(GroupChecked::Skipped),
        Err(error) => {
            group_failed(target, group_id, "drift: not repaired", &error).await;
            Ok(GroupChecked::Skipped)
        }
    }
}

/// The event rule of an attribute repair.
fn attribute_rule(attributes: &[String]) -> &'static str {
    if attributes
        .iter()
        .any(|name| name.eq_ignore_ascii_case("displayName"))
    {
        "drift: renamed in the application"
    } else {
        "drift: changed in the application"
    }
}

const MEMBERS_RULE: &str = "drift: members changed in the application";

async fn group_failed(target: &Target<'_>, group_id: &str, rule: &str, error: &ScimClientError) {
    target
        .record_object(
            "group",
            group_id,
            GROUP_UPDATE,
            Outcome::Failure,
            Some(rule.to_string()),
            error.status(),
            error.to_string(),
        )
        .await;
}

/// Repairs by PATCH: the differing attributes, then the members, in the
/// connector's chunks. Whether anything was sent.
async fn patch_group(
    target: &Target<'_>,
    group_id: &str,
    path: &str,
    ours: &Value,
    drift: &GroupDrift,
) -> Result<bool, ScimClientError> {
    let mut sent = false;
    if !drift.attributes.is_empty() {
        let operations: Vec<Value> = drift
            .attributes
            .iter()
            .map(|name| json!({ "op": "replace", "path": name, "value": ours[name.as_str()] }))
            .collect();
        let request = ScimRequest::with_body(
            reqwest::Method::PATCH,
            path.to_string(),
            json!({ "schemas": [PATCH_OP], "Operations": operations }),
        );
        let answer = target.send(&request).await?;
        target
            .record_object(
                "group",
                group_id,
                GROUP_UPDATE,
                Outcome::Success,
                Some(attribute_rule(&drift.attributes).into()),
                Some(answer.status.as_u16()),
                format!(
                    "PATCH {path} ({}): changed in the application, restored",
                    drift.attributes.join(", ")
                ),
            )
            .await;
        sent = true;
    }
    let mut status = None;
    for body in membership_patches(target, &drift.add, &drift.remove) {
        let request = ScimRequest::with_body(reqwest::Method::PATCH, path.to_string(), body);
        status = Some(target.send(&request).await?.status.as_u16());
    }
    if status.is_some() {
        target
            .record_object(
                "group",
                group_id,
                GROUP_UPDATE,
                Outcome::Success,
                Some(MEMBERS_RULE.into()),
                status,
                format!(
                    "PATCH {path}: {} managed member(s) added back, {} removed",
                    drift.add.len(),
                    drift.remove.len()
                ),
            )
            .await;
        sent = true;
    }
    Ok(sent)
}

/// Repairs by PUT: the application's document with the pushed attributes
/// over it, and its members less the removed plus the added. Whether it
/// was sent: not when the answer hid the members.
async fn put_group(
    target: &Target<'_>,
    group_id: &str,
    path: &str,
    ours: &Value,
    remote: &Value,
    drift: &GroupDrift,
) -> Result<bool, ScimClientError> {
    if !drift.members_shown {
        target
            .record_object(
                "group",
                group_id,
                GROUP_UPDATE,
                Outcome::Failure,
                Some("drift: not repaired".into()),
                None,
                format!(
                    "{path} differs from what was pushed, but the application does not show its \
                 members: a PUT would drop the ones it holds for others, so nothing was sent"
                ),
            )
            .await;
        return Ok(false);
    }
    let request = ScimRequest::with_body(
        reqwest::Method::PUT,
        path.to_string(),
        put_body(ours, remote, drift),
    );
    let answer = target.send(&request).await?;
    let rule = if drift.attributes.is_empty() {
        MEMBERS_RULE
    } else {
        attribute_rule(&drift.attributes)
    };
    target
        .record_object(
            "group",
            group_id,
            GROUP_UPDATE,
            Outcome::Success,
            Some(rule.into()),
            Some(answer.status.as_u16()),
            format!(
                "PUT {path}: {} restored, {} managed member(s) added back, {} removed",
                if drift.attributes.is_empty() {
                    "no attribute".to_string()
                } else {
                    drift.attributes.join(", ")
                },
                drift.add.len(),
                drift.remove.len()
            ),
        )
        .await;
    Ok(true)
}

/// The whole group a repairing PUT sends: the application's document (its
/// own attributes kept) with the pushed attributes over it, and every
/// member it holds but the removed ones, plus the added ones.
fn put_body(ours: &Value, remote: &Value, drift: &GroupDrift) -> Value {
    let mut body = serde_json::Map::new();
    for source in [remote, ours] {
        for (name, value) in source.as_object().into_iter().flatten() {
            if !matches!(name.as_str(), "id" | "meta") && !name.eq_ignore_ascii_case("members") {
                body.insert(name.clone(), value.clone());
            }
        }
    }
    let members: Vec<Value> = drift
        .current
        .iter()
        .filter(|id| !drift.remove.contains(*id))
        .chain(drift.add.iter())
        .map(|id| json!({ "value": id }))
        .collect();
    body.insert("members".into(), Value::Array(members));
    Value::Object(body)
}

/// The top-level attributes of `ours` that `remote` does not hold as sent.
/// Attribute names are compared without regard to case, as SCIM's are;
/// `remote` may hold more than `ours` (defaults, attributes of its own).
pub fn differing_attributes(ours: &Value, remote: &Value) -> Vec<String> {
    let (Value::Object(ours), Value::Object(_)) = (ours, remote) else {
        return Vec::new();
    };
    ours.iter()
        // `password` is write-only (RFC 7643): never read back.
        .filter(|(name, _)| !matches!(name.as_str(), "schemas" | "id" | "meta" | "password"))
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

    fn entry(doc_hash: &str, document: Option<Value>) -> LedgerEntry {
        LedgerEntry {
            app_id: "app".into(),
            object_kind: "user".into(),
            object_id: "u1".into(),
            remote_id: "r1".into(),
            doc_hash: doc_hash.into(),
            document: document.map(|d| d.to_string()),
            updated: Timestamp::now(),
        }
    }

    #[test]
    fn a_deactivated_account_drifts_only_when_active_again() {
        let deactivated = entry(DEACTIVATED, None);
        assert_eq!(
            drift(&deactivated, &json!({ "active": true })),
            Some(Drift::Reactivated)
        );
        assert_eq!(drift(&deactivated, &json!({ "active": false })), None);
        assert_eq!(drift(&deactivated, &json!({})), None);
        let active = entry("h", Some(json!({ "userName": "ada", "title": "Countess" })));
        assert_eq!(
            drift(&active, &json!({ "userName": "ada", "title": "Intern" })),
            Some(Drift::Changed {
                ours: json!({ "userName": "ada", "title": "Countess" }),
                differing: vec!["title".into()],
            })
        );
        assert_eq!(drift(&entry("h", None), &json!({ "title": "x" })), None);
    }

    #[test]
    fn absences_beyond_a_tenth_of_the_ledger_are_not_believed() {
        assert_eq!(absent_limit(0), 10);
        assert_eq!(absent_limit(5), 10);
        assert_eq!(absent_limit(1_000), 100);
    }

    fn ids(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn a_group_is_restored_to_what_was_pushed_and_others_members_are_left() {
        let ours = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering" });
        // ada and grace were pushed; bob is managed in the application but
        // not in this group; carol is wanted but not pushed yet (the worker
        // is on it); "outsider" is the application's own.
        let managed = ids(&["ada", "grace"]);
        let desired = ids(&["ada", "grace", "carol"]);
        let linked: HashSet<String> = ["ada", "grace", "bob", "carol"]
            .iter()
            .map(|id| id.to_string())
            .collect();
        let remote = json!({
            "id": "g1", "displayName": "Research",
            "members": [{ "value": "ada" }, { "value": "bob" }, { "value": "outsider" }, { "value": "carol" }],
        });
        let drift = group_drift(&ours, &managed, &desired, &linked, &remote);
        assert_eq!(drift.attributes, ["displayName"]);
        assert_eq!(drift.add, ["grace"]);
        assert_eq!(drift.remove, ["bob"], "never the outsider, nor carol");
        assert!(drift.members_shown);
        assert_eq!(
            attribute_rule(&drift.attributes),
            "drift: renamed in the application"
        );

        // As pushed: nothing to do, whatever the application adds of its own.
        let same = json!({
            "id": "g1", "displayName": "Engineering", "meta": {},
            "members": [{ "value": "ada" }, { "value": "grace" }, { "value": "outsider" }],
        });
        assert!(group_drift(&ours, &managed, &desired, &linked, &same).is_empty());
        // A managed member the directory no longer wants is the worker's to
        // remove, not the reconcile's to add back.
        let left = group_drift(&ours, &managed, &ids(&["ada"]), &linked, &same);
        assert!(left.is_empty(), "{left:?}");
        let gone = group_drift(
            &ours,
            &managed,
            &desired,
            &linked,
            &json!({ "displayName": "Engineering" }),
        );
        assert_eq!(gone.add, ["ada", "grace"]);
        assert!(!gone.members_shown);
        // A group taken over and not updated yet: no attribute to compare.
        let taken = group_drift(&json!({}), &managed, &desired, &linked, &same);
        assert!(taken.attributes.is_empty());

        // By PUT: the application's own attributes and members stay.
        let mut remote = remote;
        remote["externalId"] = json!("theirs");
        let drift = group_drift(&ours, &managed, &desired, &linked, &remote);
        let body = put_body(&ours, &remote, &drift);
        assert_eq!(body["displayName"], "Engineering");
        assert_eq!(body["externalId"], "theirs");
        assert!(body.get("id").is_none());
        let members: BTreeSet<String> = listed_members(&body);
        assert_eq!(members, ids(&["ada", "carol", "grace", "outsider"]));
    }
}
