//! One sync of an object at a time, within this process.
//!
//! The engine's worker, provisioning on demand and an operator's reconcile
//! may reach the same account at once; two lookups that both find nothing
//! would then both create it. Every sync of an object of an application
//! holds that object's lock for its duration, so the second waits and then
//! sees the first one's ledger entry. (Hosts sharing one database do not
//! share these locks; they share the outbox leases instead, which keep a
//! change with one host at a time.)

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

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
