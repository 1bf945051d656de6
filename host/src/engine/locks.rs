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
//! [`OBJECT_LEASE`]; a hold given up half-way (its future dropped while
//! the store was granting) leaves no lease behind. Locks are always taken
//! in the same order (an object, then the account it takes over; a group,
//! then its members; several users at once, in the order of their ids:
//! [`hold_users`]), in memory and in the store alike.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, oneshot};

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
    if !store.shared_by_hosts() {
        return Ok(ObjectLock {
            held: Some((local, None)),
        });
    }
    Lease::take(store, app_id, object_kind, object_id.to_owned(), local).await
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
        locals.push(Asked {
            object_id: (*object_id).clone(),
            local: local_lock(app_id, object_kind, object_id).await,
        });
    }
    if !store.shared_by_hosts() {
        return Ok(locals
            .into_iter()
            .map(|asked| ObjectLock {
                held: Some((asked.local, None)),
            })
            .collect());
    }
    let (mut locks, rest) = ask_for_leases(store, app_id, object_kind, locals).await?;
    for Asked { object_id, local } in rest {
        // Should this fail, the locks taken so far are let go with their
        // leases.
        locks.push(Lease::take(store, app_id, object_kind, object_id, local).await?);
    }
    Ok(locks)
}

/// An object whose lease is asked for, with its lock in this process,
/// held throughout.
struct Asked {
    object_id: String,
    local: OwnedMutexGuard<()>,
}

/// Asks the store for the leases of `asked`, in their order: the objects
/// now held, from the first on, and the rest, from the first refused on,
/// still to take (a lease granted after a refused one is given up again, so
/// that the objects are taken in order).
///
/// A grant is never lost. A store call runs to its end even when its
/// caller stops waiting (a timeout, a `select!`, a shutdown), so the
/// request is made from a task of its own, which holds the objects' local
/// locks meanwhile and hands what was granted over as [`ObjectLock`]s: should
/// the caller have gone, they are dropped unread and give their leases up
/// as any lock let go does, before their local locks go (a task of this
/// process taking one of the objects next must not see its lease deleted
/// by a late release). Without this, a lease granted to a caller that had
/// gone would keep every other host off the object until it ran out.
async fn ask_for_leases(
    store: &StoreHandle,
    app_id: &str,
    object_kind: &'static str,
    asked: Vec<Asked>,
) -> Result<(Vec<ObjectLock>, Vec<Asked>), StoreError> {
    let (answer, answered) = oneshot::channel();
    let (store, app_id) = (store.clone(), app_id.to_owned());
    tokio::spawn(async move {
        let ids: Vec<String> = asked.iter().map(|one| one.object_id.clone()).collect();
        let granted = store
            .take_object_leases(&HOLDER, &app_id, object_kind, ids, lease_seconds())
            .await;
        let granted = match granted {
            Ok(granted) => granted,
            Err(error) => {
                let _ = answer.send(Err(error));
                return;
            }
        };
        let held = granted
            .iter()
            .position(|granted| !granted)
            .unwrap_or(granted.len());
        let mut rest = asked;
        let locks: Vec<ObjectLock> = rest
            .drain(..held)
            .map(|Asked { object_id, local }| {
                let key = (app_id.clone(), object_kind, object_id);
                ObjectLock {
                    held: Some((local, Some(Lease::held(&store, key)))),
                }
            })
            .collect();
        let beyond_a_refusal = rest
            .iter()
            .zip(&granted[held..])
            .filter(|(_, granted)| **granted)
            .map(|(one, _)| one.object_id.as_str());
        give_up(&store, &app_id, object_kind, beyond_a_refusal).await;
        // Unread, the locks are dropped here or with the channel, and give
        // their leases up.
        let _ = answer.send(Ok((locks, rest)));
    });
    answered.await.unwrap_or_else(|_| {
        Err(StoreError::Backend(
            "the request for leases ended without an answer".into(),
        ))
    })
}

/// Gives up this process's leases on `object_ids`, each landed before this
/// returns; one that cannot be given up runs out by itself.
async fn give_up<'a>(
    store: &StoreHandle,
    app_id: &str,
    object_kind: &str,
    object_ids: impl Iterator<Item = &'a str>,
) {
    for object_id in object_ids {
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
    /// Waits until the store grants the lease (another host holding it
    /// gives it up when done, or loses it once it runs out), holding the
    /// object's `local` lock throughout; the object held.
    async fn take(
        store: &StoreHandle,
        app_id: &str,
        object_kind: &'static str,
        object_id: String,
        local: OwnedMutexGuard<()>,
    ) -> Result<ObjectLock, StoreError> {
        let mut pause = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        let mut said = false;
        let mut asked = vec![Asked { object_id, local }];
        loop {
            let (mut held, rest) = ask_for_leases(store, app_id, object_kind, asked).await?;
            if let Some(lock) = held.pop() {
                return Ok(lock);
            }
            asked = rest;
            if !said && waited >= SAY_AFTER {
                let object_id = asked.first().map_or("", |one| one.object_id.as_str());
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
        give_up(
            &self.store,
            app_id,
            object_kind,
            std::iter::once(object_id.as_str()),
        )
        .await;
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

/// The store's reads a holder makes, named apart so that what a failing
/// one does can be shown on its own.
trait HolderReads {
    fn users(&self, user_ids: &[String]) -> Result<Vec<UserRecord>, StoreError>;
    fn in_scope_among(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<String>, StoreError>;
    fn entries_among(
        &self,
        app_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<LedgerEntry>, StoreError>;
    fn entry(&self, app_id: &str, user_id: &str) -> Result<Option<LedgerEntry>, StoreError>;
    fn waiting_among(&self, user_ids: &[String]) -> Result<Vec<String>, StoreError>;
    fn password(&self, user_id: &str) -> Result<Option<PendingPassword>, StoreError>;
}

impl<S: Store + ?Sized> HolderReads for S {
    fn users(&self, user_ids: &[String]) -> Result<Vec<UserRecord>, StoreError> {
        self.get_users(user_ids)
    }
    fn in_scope_among(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<String>, StoreError> {
        self.users_in_scope_among(app_id, user_ids)
    }
    fn entries_among(
        &self,
        app_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.ledger_entries_among(app_id, "user", user_ids)
    }
    fn entry(&self, app_id: &str, user_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
        self.ledger_entry(app_id, "user", user_id)
    }
    fn waiting_among(&self, user_ids: &[String]) -> Result<Vec<String>, StoreError> {
        self.users_with_password_among(user_ids)
    }
    fn password(&self, user_id: &str) -> Result<Option<PendingPassword>, StoreError> {
        self.user_password(user_id)
    }
}

fn read_users_in_snapshot<S: HolderReads + ?Sized>(
    store: &S,
    app_id: &str,
    user_ids: &[String],
    with_password: bool,
) -> Result<UserReads, StoreError> {
    let mut users: HashMap<String, UserRecord> = store
        .users(user_ids)?
        .into_iter()
        .map(|user| (user.id.clone(), user))
        .collect();
    let present: Vec<String> = user_ids
        .iter()
        .filter(|id| users.contains_key(*id))
        .cloned()
        .collect();
    let in_scope: HashSet<String> = store
        .in_scope_among(app_id, &present)?
        .into_iter()
        .collect();
    // The ledger entries, and which users have a password waiting, are
    // read for all at once as well. Should either read fail, each user's is
    // read on its own instead, so that what fails fails its user alone (and
    // says why there).
    let mut entries: Option<HashMap<String, LedgerEntry>> =
        store.entries_among(app_id, user_ids).ok().map(|entries| {
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
            .waiting_among(&wants_password)
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
                    None => store.entry(app_id, user_id)?,
                };
                let none_waiting = waiting
                    .as_ref()
                    .is_some_and(|waiting| !waiting.contains(user_id));
                let password = if with_password && in_scope && !none_waiting {
                    store.password(user_id)?
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
    use crate::secrets::TokenCipher;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{
        DirectoryStore, GroupWrite, LedgerStore, Member, MemberKind, PasswordStore, ScopeStore,
        Secret, fixtures,
    };

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

    /// A store with an application bound to one group: `ada` (linked, a
    /// password waiting) and `bob` (unlinked, a password waiting) in it,
    /// `cy` (linked) outside it; the store, the application's id and the
    /// ids asked for (the three, and one no user has), sorted.
    fn directory(folder: &std::path::Path) -> (SqliteStore, String, Vec<String>) {
        let store = SqliteStore::open_in(folder, TokenCipher::from_key(&[9; 32])).unwrap();
        let app = fixtures::app(&store, "crm");
        let user = |name: &str| {
            let id = fixtures::user(&store, name);
            if name != "bob" {
                let entry = fixtures::link(&app, &id, &format!("account-{name}"));
                store.put_ledger_entry(&entry).unwrap();
            }
            if name != "cy" {
                store
                    .set_password(&id, &Secret::new(format!("{name}'s password")))
                    .unwrap();
            }
            id
        };
        let (ada, bob, cy) = (user("ada"), user("bob"), user("cy"));
        let group = store
            .create_group(GroupWrite {
                display_name: "staff".into(),
                external_id: None,
                attributes: serde_json::Map::new(),
                members: Some(
                    [&ada, &bob]
                        .map(|id| Member {
                            id: id.clone(),
                            kind: MemberKind::User,
                        })
                        .into(),
                ),
            })
            .unwrap()
            .id;
        store.bind(&app, &group).unwrap();
        let mut asked = vec![ada, bob, cy, "no-such-user".to_string()];
        asked.sort();
        (store, app, asked)
    }

    /// A user's read as comparable text: the user, its scope, its
    /// account and its password, or the read's failure.
    fn summary(read: &Result<UserRead, StoreError>) -> String {
        match read {
            Ok(read) => format!(
                "user {:?}, in scope {}, account {:?}, password {:?}",
                read.user.as_ref().map(|user| &user.user_name),
                read.in_scope,
                read.entry.as_ref().map(|entry| &entry.remote_id),
                read.password
                    .as_ref()
                    .map(|password| password.secret.expose().to_string()),
            ),
            Err(error) => format!("failed: {error}"),
        }
    }

    /// The store, with the holder's reads that fail named.
    struct Failing<'a> {
        store: &'a SqliteStore,
        entries_among: bool,
        waiting_among: bool,
        entry_of: Option<&'a str>,
    }

    fn refused(what: &str) -> StoreError {
        StoreError::Backend(format!("{what} refused"))
    }

    impl HolderReads for Failing<'_> {
        fn users(&self, user_ids: &[String]) -> Result<Vec<UserRecord>, StoreError> {
            self.store.users(user_ids)
        }
        fn in_scope_among(
            &self,
            app_id: &str,
            user_ids: &[String],
        ) -> Result<Vec<String>, StoreError> {
            self.store.in_scope_among(app_id, user_ids)
        }
        fn entries_among(
            &self,
            app_id: &str,
            user_ids: &[String],
        ) -> Result<Vec<LedgerEntry>, StoreError> {
            if self.entries_among {
                return Err(refused("the entries' read"));
            }
            self.store.entries_among(app_id, user_ids)
        }
        fn entry(&self, app_id: &str, user_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
            if self.entry_of == Some(user_id) {
                return Err(refused("the entry's read"));
            }
            self.store.entry(app_id, user_id)
        }
        fn waiting_among(&self, user_ids: &[String]) -> Result<Vec<String>, StoreError> {
            if self.waiting_among {
                return Err(refused("the passwords' read"));
            }
            self.store.waiting_among(user_ids)
        }
        fn password(&self, user_id: &str) -> Result<Option<PendingPassword>, StoreError> {
            self.store.password(user_id)
        }
    }

    /// Should a set-wise read of ledger entries or waiting passwords fail,
    /// each user's is read on its own: every user reads as it would have,
    /// and a read that then fails fails its user alone.
    #[test]
    fn a_failed_read_of_a_chunk_falls_back_to_each_user_alone() {
        let folder = tempfile::tempdir().unwrap();
        let (store, app, asked) = directory(folder.path());
        let summaries = |reads: &UserReads| -> Vec<(String, String)> {
            reads
                .iter()
                .map(|(id, read)| (id.clone(), summary(read)))
                .collect()
        };
        let expected = summaries(&read_users_in_snapshot(&store, &app, &asked, true).unwrap());
        let texts: Vec<&str> = expected.iter().map(|(_, text)| text.as_str()).collect();
        for wanted in [
            r#"user Some("ada"), in scope true, account Some("account-ada"), password Some("ada's password")"#,
            r#"user Some("bob"), in scope true, account None, password Some("bob's password")"#,
            r#"user Some("cy"), in scope false, account Some("account-cy"), password None"#,
            "user None, in scope false, account None, password None",
        ] {
            assert!(texts.contains(&wanted), "{wanted} in {texts:#?}");
        }

        for (entries_among, waiting_among) in [(true, false), (false, true), (true, true)] {
            let failing = Failing {
                store: &store,
                entries_among,
                waiting_among,
                entry_of: None,
            };
            let read = read_users_in_snapshot(&failing, &app, &asked, true).unwrap();
            assert_eq!(
                summaries(&read),
                expected,
                "entries' read failing: {entries_among}, passwords' read failing: {waiting_among}"
            );
        }

        let bob = expected
            .iter()
            .find(|(_, text)| text.contains(r#"Some("bob")"#))
            .map(|(id, _)| id.clone())
            .unwrap();
        let failing = Failing {
            store: &store,
            entries_among: true,
            waiting_among: false,
            entry_of: Some(&bob),
        };
        let read = summaries(&read_users_in_snapshot(&failing, &app, &asked, true).unwrap());
        for ((id, text), (_, was)) in read.iter().zip(&expected) {
            if *id == bob {
                assert!(
                    text.starts_with("failed:") && text.contains("the entry's read refused"),
                    "bob fails alone: {text}"
                );
            } else {
                assert_eq!(text, was, "every other user reads as before");
            }
        }
    }
}
