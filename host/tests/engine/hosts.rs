//! Hosts sharing one PostgreSQL database: an object one host holds is held
//! for every other host too.

use std::sync::Arc;
use std::time::Duration;

use scimlink::engine::locks::{lock_object, lock_objects};
use scimlink::store::{PostgresStore, Store, StoreHandle};

use crate::database::Database;
use crate::world::{World, eventually};

/// A store on a database of its own; both are made off the runtime, since
/// the PostgreSQL client blocks.
async fn shared_store() -> (Database, StoreHandle) {
    tokio::task::spawn_blocking(|| {
        let database = Database::new();
        let store: Arc<dyn Store> =
            Arc::new(PostgresStore::open(database.url(), World::cipher()).unwrap());
        (database, StoreHandle::new(store))
    })
    .await
    .unwrap()
}

/// Dropped off the runtime, as they were made.
async fn close(database: Database, handle: StoreHandle) {
    tokio::task::spawn_blocking(move || drop((handle, database)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_another_host_holds_waits_until_it_lets_go() {
    let (database, handle) = shared_store().await;
    assert!(handle.shared_by_hosts());
    let another_host = "process-elsewhere";
    assert!(
        handle
            .take_object_lease(another_host, "app-1", "user", "u1", 30)
            .await
            .unwrap()
    );

    let waiting = {
        let handle = handle.clone();
        tokio::spawn(async move { lock_object(&handle, "app-1", "user", "u1").await })
    };
    // Another object of the same application is not held up.
    let other = lock_object(&handle, "app-1", "user", "u2").await.unwrap();
    drop(other);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the object waits for the other host"
    );

    handle
        .release_object_lease(another_host, "app-1", "user", "u1")
        .await
        .unwrap();
    let held = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the object is held once the other host lets go")
        .unwrap()
        .unwrap();
    assert!(
        !handle
            .take_object_lease(another_host, "app-1", "user", "u1", 30)
            .await
            .unwrap(),
        "while this host holds it, the other host cannot take it"
    );

    drop(held);
    eventually(
        "the lease is given up when the object is let go",
        async || {
            handle
                .take_object_lease(another_host, "app-1", "user", "u1", 30)
                .await
                .unwrap()
        },
    )
    .await;
    close(database, handle).await;
}

/// An object let go and taken again at once by this process keeps its
/// lease: the release of the first hold lands before the second takes it,
/// not after (which would leave the object held by no one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_taken_again_at_once_keeps_its_lease() {
    let (database, handle) = shared_store().await;
    for _ in 0..20 {
        let first = lock_object(&handle, "app-1", "user", "u1").await.unwrap();
        drop(first);
        let again = lock_object(&handle, "app-1", "user", "u1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !handle
                .take_object_lease("process-elsewhere", "app-1", "user", "u1", 30)
                .await
                .unwrap(),
            "the second hold has its lease"
        );
        drop(again);
    }
    // The last release has landed (and its task let go of the store) before
    // the store is closed.
    eventually("the last hold gave its lease up", async || {
        handle
            .take_object_lease("process-elsewhere", "app-1", "user", "u1", 30)
            .await
            .unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    close(database, handle).await;
}

/// Objects held together wait, in their order, for one another host holds:
/// those before it stay held, and those after it are given up meanwhile,
/// so that the other host is never kept waiting on them while it holds
/// what this one waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_held_together_wait_in_order_for_one_another_host_holds() {
    let (database, handle) = shared_store().await;
    let another_host = "process-elsewhere";
    let takes = async |user: &str| {
        handle
            .take_object_lease(another_host, "app-1", "user", user, 30)
            .await
            .unwrap()
    };
    assert!(takes("u3").await);

    let waiting = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let users: Vec<String> = (1..=5).map(|n| format!("u{n}")).collect();
            let users: Vec<&String> = users.iter().collect();
            lock_objects(&handle, "app-1", "user", &users).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "u3 waits for the other host");
    assert!(
        !takes("u1").await && !takes("u2").await,
        "those before it stay held"
    );
    for after in ["u4", "u5"] {
        assert!(
            takes(after).await,
            "{after}, after it, was given up meanwhile"
        );
        handle
            .release_object_lease(another_host, "app-1", "user", after)
            .await
            .unwrap();
    }

    handle
        .release_object_lease(another_host, "app-1", "user", "u3")
        .await
        .unwrap();
    let held = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("held once the other host lets go")
        .unwrap()
        .unwrap();
    assert_eq!(held.len(), 5);
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        assert!(!takes(user).await, "{user} is held by this host");
    }

    drop(held);
    eventually("every lease is given up when let go", async || {
        let mut all = true;
        for user in ["u1", "u2", "u3", "u4", "u5"] {
            all &= takes(user).await;
        }
        all
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    close(database, handle).await;
}

/// A hold whose caller stops waiting at any moment (a timeout, a
/// `select!` that took another branch, a shutdown) leaves no lease behind:
/// a lease the store grants after its caller has gone is given up at once,
/// not left to keep every other host off the object until it runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_given_up_half_way_leaves_no_lease_behind() {
    /// Yields until `deadline`: a finer grain than the timer's millisecond.
    async fn until(deadline: std::time::Instant) {
        while std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }

    let (database, handle) = shared_store().await;
    let another_host = "process-elsewhere";
    // From giving up before the request is made to after the hold is
    // complete, in steps finer than one store call.
    for step in 0..100u64 {
        let given_up_after = Duration::from_micros(step * 40);
        let (alone, first, second) = (
            format!("alone-{step}"),
            format!("first-{step}"),
            format!("second-{step}"),
        );
        let deadline = std::time::Instant::now() + given_up_after;
        tokio::select! {
            biased;
            held = lock_object(&handle, "app-1", "user", &alone) => drop(held.unwrap()),
            () = until(deadline) => {}
        }
        let together = [&first, &second];
        let deadline = std::time::Instant::now() + given_up_after;
        tokio::select! {
            biased;
            held = lock_objects(&handle, "app-1", "user", &together) => {
                drop(held.unwrap());
            }
            () = until(deadline) => {}
        }
        for object in [&alone, &first, &second] {
            eventually(
                &format!("{object} (given up after {given_up_after:?}) is free for another host"),
                async || {
                    handle
                        .take_object_lease(another_host, "app-1", "user", object, 30)
                        .await
                        .unwrap()
                },
            )
            .await;
        }
    }
    close(database, handle).await;
}
