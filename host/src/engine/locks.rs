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
//! (Hosts sharing one database do not share these locks; they share the
//! outbox leases instead, which keep a change with one host at a time, and
//! the store refuses a second link to one account.)

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::store::{LedgerEntry, StoreError, StoreHandle, UserRecord};

type Key = (String, &'static str, String);

static LOCKS: LazyLock<Mutex<HashMap<Key, Weak<AsyncMutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Locks beyond which the table is swept of unused entries.
const SWEEP_ABOVE: usize = 4096;

/// Waits for, and holds until dropped, the lock of one object of one
/// application.
pub async fn lock_object(
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
    _lock: OwnedMutexGuard<()>,
}

/// Waits for the user's lock in the application, then reads the user, its
/// scope and its ledger entry.
pub async fn hold_user(
    store: &StoreHandle,
    app_id: &str,
    user_id: &str,
) -> Result<HeldUser, StoreError> {
    let lock = lock_object(app_id, "user", user_id).await;
    let (app, user) = (app_id.to_owned(), user_id.to_owned());
    let (user, in_scope, entry) = store
        .run(move |store| {
            let found = store.get_user(&user)?;
            let in_scope = found.is_some() && store.user_in_scope(&app, &user)?;
            let entry = store.ledger_entry(&app, "user", &user)?;
            Ok((found, in_scope, entry))
        })
        .await?;
    Ok(HeldUser {
        user_id: user_id.to_string(),
        user,
        in_scope,
        entry,
        _lock: lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_sync_of_the_same_object_waits() {
        let held = lock_object("app", "user", "u1").await;
        let other = lock_object("app", "user", "u2").await;
        drop(other);
        let waiting = tokio::spawn(async { lock_object("app", "user", "u1").await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the same object waits");
        drop(held);
        waiting.await.unwrap();
    }
}
