//! The network thread: where a request's exchange runs when its caller is
//! on a single-threaded runtime.
//!
//! The engine runs on one thread of its own, and between a user's requests
//! that thread maps documents, calls connectors and parses answers. An
//! exchange polled there is read only when the thread comes back to it, so
//! the application's request slot stays held for as long as the engine is
//! busy with something else: with the engine's users in flight sharing a
//! few slots, the slots then set the pace, not the application. An exchange
//! (its slot, its rate token, the request and the whole answer) started
//! from a single-threaded runtime therefore runs here, on one thread that
//! does nothing else, and lets its slot go as soon as its answer is in.
//!
//! Invariants:
//! - one exchange is one task, and dropping the caller's future aborts it,
//!   as dropping an exchange polled in place would: its slot is let go
//!   with it and nothing is read after;
//! - a caller on a multi-threaded runtime (the API's) polls its exchange in
//!   place, where any free worker reads the answer;
//! - should the thread fail to start, exchanges run in place: slower, never
//!   different. A panic in an exchange reaches its caller as it would in
//!   place.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// Runs `exchange` on the network thread if the caller is on a
/// single-threaded runtime, else in place; its output, or `None` if the
/// task ended without one (only when the process is going down).
pub(super) async fn exchange<F>(exchange: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let single_threaded = Handle::try_current()
        .is_ok_and(|caller| caller.runtime_flavor() == RuntimeFlavor::CurrentThread);
    let Some(network) = single_threaded.then(network_runtime).flatten() else {
        return Some(exchange.await);
    };
    let mut task = AbortOnDrop(network.spawn(exchange));
    match (&mut task.0).await {
        Ok(output) => Some(output),
        Err(ended) if ended.is_panic() => std::panic::resume_unwind(ended.into_panic()),
        Err(_) => None,
    }
}

/// The network thread's runtime, started on first use and kept for the
/// life of the process; `None` if it cannot be started.
fn network_runtime() -> Option<&'static Runtime> {
    static NETWORK: OnceLock<Option<Runtime>> = OnceLock::new();
    NETWORK
        .get_or_init(|| {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("scimlink-net")
                .enable_all()
                .build()
            {
                Ok(runtime) => Some(runtime),
                Err(error) => {
                    tracing::warn!(
                        "the network thread cannot start ({error}); requests are sent from \
                         the engine's thread"
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// A spawned task aborted when its handle is dropped unfinished.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn a_single_threaded_caller_has_its_exchange_run_on_the_network_thread() {
        let thread = exchange(async { std::thread::current().name().map(str::to_string) })
            .await
            .flatten();
        assert_eq!(thread.as_deref(), Some("scimlink-net"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_threaded_caller_runs_its_exchange_in_place() {
        let thread = exchange(async { std::thread::current().name().map(str::to_string) })
            .await
            .flatten();
        assert_ne!(thread.as_deref(), Some("scimlink-net"));
    }

    /// Set when dropped: whether a future was let go.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_exchange_whose_caller_gives_up_is_aborted() {
        let dropped = Arc::new(AtomicBool::new(false));
        let held = Dropped(Arc::clone(&dropped));
        let caller = exchange(async move {
            let _held = held;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let gave_up = tokio::time::timeout(Duration::from_millis(20), caller).await;
        assert!(gave_up.is_err(), "the exchange cannot have finished");
        // The abort lands on the network thread: wait for it, boundedly.
        for _ in 0..200 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the exchange was not aborted when its caller gave up");
    }

    #[tokio::test(flavor = "current_thread")]
    #[should_panic(expected = "broken exchange")]
    async fn a_panic_in_an_exchange_reaches_its_caller() {
        fn broken() {
            panic!("broken exchange");
        }
        exchange(async { broken() }).await;
    }
}
