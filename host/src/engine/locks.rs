//! One write to an object at a time, within this process, decided on what
//! holds now.
//!
//! The engine's worker, provisioning on demand, the connector's group rules
//! and an operator's reconcile may reach the same account at once; two
//! lookups that both find nothing would both create it, and a rule deciding
//! on scope read a moment ago would delete the account of a user who has
//! just come back. So every write to an application for a user goes
//! through [`hold_user`]: it takes the object's lock and only then reads
//! the directory user, its scope and its ledger entry. A [`HeldUser`] is the
//! only way to reach the offboarding paths
//! ([`super::provision::offboard`]), so a decision cannot be made on a
//! read taken before the lock. Groups are locked the same way by
//! [`lock_object`] with kind `group`, and a takeover also locks the remote
//! account itself, so that two objects cannot take one account at once.
//!
//! Hosts sharing one database hold an object the same way across
//! processes: once it holds the object in memory, a process takes the
//! object's lease in the store ([`crate::store::HostsStore::take_object_lease`]),
//! waits while another host holds it, renews it while the object is held
//! and gives it up when done. So an operator's provisioning on one host and
//! the engine on another take turns on a user as two tasks of one host do.
//! A lease that runs out unrenewed (its host died) is taken over after
//! [`OBJECT_LEASE`]. Locks are always taken in the same order (an object,
//! then the account it takes over; a group, then its members; several
//! users at once, in the order of their ids: [`hold_users`]), in memory
//! and in the store alike.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::store::{LedgerEntry, PendingPassword, Store, StoreError, StoreHandle, UserRecord};

type Key = (String, &'static str, String);

static LOCKS: LazyLock<Mutex<HashMap<Key, Weak<AsyncMutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Locks beyond which the table is swept of unused entries.
const SWEEP_ABOVE: usize = 4096;

/// How long an object's lease lasts unrenewed: after a host dies, how long
/// the objects it held wait.
pub const OBJECT_LEASE: Duration = Duration::from_secs(30);
/// How often a held object's lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The longest pause between two attempts at a lease another host holds.
const LONGEST_WAIT: Duration = Duration::from_millis(500);
/// How long a wait for a lease lasts before it is said in the log.
const SAY_AFTER: Duration = Duration::from_secs(5);

/// This process as the holder of object leases.
static HOLDER: LazyLock<String> = LazyLock::new(|| format!("process-{}", uuid::Uuid::new_v4()));

/// This process as the holder of object leases, for a write that must be
/// made only while the object is held
/// ([`crate::store::LedgerStore::record_with_ledger_holding`]).
pub fn holder() -> &'static str {
    &HOLDER
}

/// One object of one application, held until dropped: in this process, and
/// in the store when other processes share it.
pub struct ObjectLock {
    /// Taken when dropped: the lease is given up, and only then is the
    /// object let go in this process. The process is one holder for all its
    /// tasks, so a task taking the object next must not take the lease
    /// before the release of the last one has landed (the release would
    /// then delete the new lease).
    held: Option<(OwnedMutexGuard<()>, Option<Lease>)>,
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        let Some((local, lease)) = self.held.take() else {
            return;
        };
        let Some(lease) = lease else {
            return;
        };
        lease.renewal.abort();
        // Given up at once so that another host need not wait for it to run
        // out; without a runtime to do it on, it runs out by itself.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                lease.release().await;
                drop(local);
            });
        }
    }
}

/// Waits for, and holds until dropped, one object of one application.
pub async fn lock_object(
    store: &StoreHandle,
    app_id: &str,
    object_kind: &'static str,
    object_id: &str,
) -> Result<ObjectLock, StoreError> {
    let local = local_lock(app_id, object_kind, object_id).await;
    let lease = if store.shared_by_hosts() {
        Some(Lease::take(store, app_id, object_kind, object_id).await?)
    } else {
        None
    };
    Ok(ObjectLock {
        held: Some((local, lease)),
    })
}

/// [`lock_object`] for each of `object_ids` (sorted, distinct), in their
/// order. Where hosts share the store, the leases are asked for all at
/// once; should another host hold one of them, those after it that were
/// granted are given up again and the rest taken one by one in order, so
/// that two hosts holding parts of overlapping sets never wait on each
/// other.
pub async fn lock_objects(
    store: &StoreHandle,
    app_id: &str,
    object_kind: &'static str,
    object_ids: &[&String],
) -> Result<Vec<ObjectLock>, StoreError> {
    let mut locals = Vec::with_capacity(object_ids.len());
    for object_id in object_ids {
        locals.push(local_lock(app_id, object_kind, object_id).await);
    }
    if !store.shared_by_hosts() {
        return Ok(locals
            .into_iter()
            .map(|local| ObjectLock {
                held: Some((local, None)),
            })
            .collect());
    }
    let granted = store
        .take_object_leases(
            &HOLDER,
            app_id,
            object_kind,
            object_ids.iter().map(|id| (*id).clone()).collect(),
            lease_seconds(),
        )
        .await?;
    let first_refused = granted
        .iter()
        .position(|granted| !granted)
        .unwrap_or(granted.len());
    for (object_id, _) in object_ids
        .iter()
        .zip(&granted)
        .skip(first_refused)
        .filter(|(_, granted)| **granted)
    {
        // Taken again below, in its turn.
        if let Err(error) = store
            .release_object_lease(&HOLDER, app_id, object_kind, object_id)
            .await
        {
            tracing::warn!(
                "{object_kind} {object_id} of application {app_id}: cannot give up its lease \
                 ({error}); it runs out by itself"
            );
        }
    }
    let mut locks = Vec::with_capacity(object_ids.len());
    for (at, (local, object_id)) in locals.into_iter().zip(object_ids).enumerate() {
        let lease = if at < first_refused {
            Lease::held(
                store,
                (app_id.to_string(), object_kind, (*object_id).clone()),
            )
        } else {
            // Should this fail, the locks taken so far are let go with
            // their leases.
            Lease::take(store, app_id, object_kind, object_id).await?
        };
        locks.push(ObjectLock {
            held: Some((local, Some(lease))),
        });
    }
    Ok(locks)
}

/// The object's lock among this process's tasks.
async fn local_lock(
    app_id: &str,
    object_kind: &'static str,
    object_id: &str,
) -> OwnedMutexGuard<()> {
    let lock = {
        let mut locks = LOCKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (app_id.to_string(), object_kind, object_id.to_string());
        match locks.get(&key).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                if locks.len() > SWEEP_ABOVE {
                    locks.retain(|_, lock| lock.strong_count() > 0);
                }
                let lock = Arc::new(AsyncMutex::new(()));
                locks.insert(key, Arc::downgrade(&lock));
                lock
            }
        }
    };
    lock.lock_owned().await
}

/// This process's lease on one object in a shared store, renewed while it
/// lives and given up when dropped.
struct Lease {
    store: StoreHandle,
    key: Key,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Waits until the store grants the lease: another host holding it
    /// gives it up when done, or loses it once it runs out.
    async fn take(
        store: &StoreHandle,
        app_id: &str,
        object_kind: &'static str,
        object_id: &str,
    ) -> Result<Lease, StoreError> {
        let seconds = lease_seconds();
        let mut pause = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        let mut said = false;
        while !store
            .take_object_lease(&HOLDER, app_id, object_kind, object_id, seconds)
            .await?
        {
            if !said && waited >= SAY_AFTER {
                tracing::info!(
                    "waiting for {object_kind} {object_id} of application {app_id}: \
                     another host is working on it"
                );
                said = true;
            }
            tokio::time::sleep(pause).await;
            waited += pause;
            pause = (pause * 2).min(LONGEST_WAIT);
        }
        let key = (app_id.to_string(), object_kind, object_id.to_string());
        Ok(Lease::held(store, key))
    }

    /// A lease the store has granted, renewed from now on.
    fn held(store: &StoreHandle, key: Key) -> Lease {
        let renewal = tokio::spawn(renew(store.clone(), key.clone()));
        Lease {
            store: store.clone(),
            key,
            renewal,
        }
    }
}

fn lease_seconds() -> u32 {
    u32::try_from(OBJECT_LEASE.as_secs()).unwrap_or(u32::MAX)
}

/// Renews a lease for as long as its object is held.
async fn renew(store: StoreHandle, (app_id, object_kind, object_id): Key) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store
            .renew_object_lease(&HOLDER, &app_id, object_kind, &object_id, lease_seconds())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    "{object_kind} {object_id} of application {app_id}: this host's lease ran \
                     out and another host took the object over"
                );
                return;
            }
            Err(error) => tracing::warn!(
                "{object_kind} {object_id} of application {app_id}: cannot renew its lease: \
                 {error}"
            ),
        }
    }
}

impl Lease {
    /// Gives the lease up. A renewal still on its way cannot bring it back:
    /// a renewal only extends a lease that is there.
    async fn release(self) {
        let (app_id, object_kind, object_id) = &self.key;
        if let Err(error) = self
            .store
            .release_object_lease(&HOLDER, app_id, object_kind, object_id)
            .await
        {
            tracing::warn!(
                "{object_kind} {object_id} of application {app_id}: cannot give up its lease \
                 ({error}); it runs out by itself"
            );
        }
    }
}

/// One user of one application, locked while this lives, with what the
/// directory and the ledger say of it, read under the lock.
pub struct HeldUser {
    pub user_id: String,
    /// The directory user, `None` once deleted.
    pub user: Option<UserRecord>,
    /// Whether the user is in the application's scope.
    pub in_scope: bool,
    /// What the application holds for the user, as the ledger says.
    pub entry: Option<LedgerEntry>,
    /// The user's password waiting for delivery, when it was asked for
    /// ([`hold_user_and_password`]).
    pub password: Option<PendingPassword>,
    _lock: ObjectLock,
}

/// Waits for the user's lock in the application, then reads the user, its
/// scope and its ledger entry.
pub async fn hold_user(
    store: &StoreHandle,
    app_id: &str,
    user_id: &str,
) -> Result<HeldUser, StoreError> {
    hold(store, app_id, user_id, false).await
}

/// [`hold_user`], reading the user's waiting password too, in the same
/// store call (a sync to an application that takes passwords needs both).
pub async fn hold_user_and_password(
    store: &StoreHandle,
    app_id: &str,
    user_id: &str,
) -> Result<HeldUser, StoreError> {
    hold(store, app_id, user_id, true).await
}

/// Holds each of `user_ids` (locks taken in order, so that two holders
/// of overlapping sets cannot wait on each other), then reads them all in
/// one store call: what [`hold_user`] does for each, at the cost of one
/// call for the lot. The users and their scopes are read for the lot at
/// once, and should that fail the call fails; the rest of each user's read
/// (its ledger entry, its password) stands on its own: one that fails
/// fails that user alone (its lock let go), beside its id. For a store
/// that hosts share, each lock is a lease in the store as well, asked for
/// all at once ([`lock_objects`]).
pub async fn hold_users(
    store: &StoreHandle,
    app_id: &str,
    user_ids: &[String],
    with_password: bool,
) -> Result<Vec<(String, Result<HeldUser, StoreError>)>, StoreError> {
    let mut ordered: Vec<&String> = user_ids.iter().collect();
    ordered.sort();
    ordered.dedup();
    let locks = lock_objects(store, app_id, "user", &ordered).await?;
    let (app, users): (String, Vec<String>) = (
        app_id.to_owned(),
        ordered.iter().map(|id| (*id).clone()).collect(),
    );
    let read = store
        .run(move |store| read_users(store, &app, &users, with_password))
        .await?;
    Ok(read
        .into_iter()
        .zip(locks)
        .map(|((user_id, read), lock)| {
            let held = read.map(|read| read.held(user_id.clone(), lock));
            (user_id, held)
        })
        .collect())
}

/// What a holder reads of one user.
struct UserRead {
    user: Option<UserRecord>,
    in_scope: bool,
    entry: Option<LedgerEntry>,
    password: Option<PendingPassword>,
}

impl UserRead {
    fn held(self, user_id: String, lock: ObjectLock) -> HeldUser {
        HeldUser {
            user_id,
            user: self.user,
            in_scope: self.in_scope,
            entry: self.entry,
            password: self.password,
            _lock: lock,
        }
    }
}

/// Each user's read, beside its id.
type UserReads = Vec<(String, Result<UserRead, StoreError>)>;

/// For each of `user_ids` (each once), the user, its scope in `app_id`,
/// its ledger entry there and, when asked, its waiting password: each of
/// these read for all at once (only the passwords found waiting opened one
/// by one), everything in one snapshot (the users, scopes, ledger entries
/// and passwords as they stood together).
fn read_users(
    store: &dyn Store,
    app_id: &str,
    user_ids: &[String],
    with_password: bool,
) -> Result<UserReads, StoreError> {
    let mut read = Ok(Vec::new());
    store.in_one_read(&mut || {
        read = read_users_in_snapshot(store, app_id, user_ids, with_password);
    });
    read
}

fn read_users_in_snapshot(
    store: &dyn Store,
    app_id: &str,
    user_ids: &[String],
    with_password: bool,
) -> Result<UserReads, StoreError> {
    let mut users: HashMap<String, UserRecord> = store
        .get_users(user_ids)?
        .into_iter()
        .map(|user| (user.id.clone(), user))
        .collect();
    let present: Vec<String> = user_ids
        .iter()
        .filter(|id| users.contains_key(*id))
        .cloned()
        .collect();
    let in_scope: HashSet<String> = store
        .users_in_scope_among(app_id, &present)?
        .into_iter()
        .collect();
    // The ledger entries, and which users have a password waiting, are
    // read for all at once as well. Should either read fail, each user's is
    // read on its own instead, so that what fails fails its user alone (and
    // says why there).
    let mut entries: Option<HashMap<String, LedgerEntry>> = store
        .ledger_entries_among(app_id, "user", user_ids)
        .ok()
        .map(|entries| {
            entries
                .into_iter()
                .map(|entry| (entry.object_id.clone(), entry))
                .collect()
        });
    // Only a sync that sends the user's document wants the password: an
    // offboarding never does, and must not fail on it.
    let wants_password: Vec<String> = if with_password {
        present
            .iter()
            .filter(|id| in_scope.contains(*id))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let waiting: Option<HashSet<String>> = if wants_password.is_empty() {
        Some(HashSet::new())
    } else {
        store
            .users_with_password_among(&wants_password)
            .ok()
            .map(|users| users.into_iter().collect())
    };
    Ok(user_ids
        .iter()
        .map(|user_id| {
            let user = users.remove(user_id);
            let in_scope = user.is_some() && in_scope.contains(user_id);
            let read = (|| {
                let entry = match entries.as_mut() {
                    Some(entries) => entries.remove(user_id),
                    None => store.ledger_entry(app_id, "user", user_id)?,
                };
                let none_waiting = waiting
                    .as_ref()
                    .is_some_and(|waiting| !waiting.contains(user_id));
                let password = if with_password && in_scope && !none_waiting {
                    store.user_password(user_id)?
                } else {
                    None
                };
                Ok(UserRead {
                    user,
                    in_scope,
                    entry,
                    password,
                })
            })();
            (user_id.clone(), read)
        })
        .collect())
}

/// The user, its scope in `app_id`, its ledger entry there and, when
/// asked, its waiting password.
fn read_user(
    store: &dyn Store,
    app_id: &str,
    user_id: &str,
    with_password: bool,
) -> Result<UserRead, StoreError> {
    read_users(store, app_id, &[user_id.to_owned()], with_password)?
        .pop()
        .map_or_else(
            || Err(StoreError::Backend(format!("user {user_id} was not read"))),
            |(_, read)| read,
        )
}

async fn hold(
    store: &StoreHandle,
    app_id: &str,
    user_id: &str,
    with_password: bool,
) -> Result<HeldUser, StoreError> {
    let lock = lock_object(store, app_id, "user", user_id).await?;
    let (app, user) = (app_id.to_owned(), user_id.to_owned());
    let read = store
        .run(move |store| read_user(store, &app, &user, with_password))
        .await?;
    Ok(read.held(user_id.to_string(), lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_sync_of_the_same_object_waits() {
        let held = local_lock("app", "user", "u1").await;
        let other = local_lock("app", "user", "u2").await;
        drop(other);
        let waiting = tokio::spawn(async { local_lock("app", "user", "u1").await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the same object waits");
        drop(held);
        waiting.await.unwrap();
    }
}
