//! The sandbox: what connector authors and application vendors use before
//! anything reaches a real deployment.
//!
//! - [`sp`] is a simulated SCIM application with switchable quirks
//!   (`scimlink sandbox-sp`);
//! - [`harness`] drives a connector through the whole provisioning
//!   lifecycle inside a throwaway host and checks every step by reading
//!   the application back (`scimlink plugin test`);
//! - [`tape`] records the exchanges with an application as fixtures, and
//!   replays them offline;
//! - [`report`] renders a run as text, JSON or JUnit XML;
//! - [`scaffold`] writes a new connector crate (`scimlink plugin new`).

pub mod harness;
pub mod report;
pub mod scaffold;
pub mod sp;
pub mod tape;

/// A server the sandbox started on a task of the current runtime; it stops
/// (after the requests in flight) when this is dropped.
pub struct Served {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Served {
    /// Serves `app` on `listener` until the returned value is dropped.
    pub fn spawn(listener: tokio::net::TcpListener, app: axum::Router) -> Served {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Served { stop: Some(stop) }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
