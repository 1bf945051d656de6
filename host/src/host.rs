//! The composition root: one place that assembles a running host from its
//! parts.
//!
//! A [`Host`] owns the store (as the engine holds it, `Arc<dyn Store>`, and
//! as async code holds it, [`StoreHandle`]), the served connectors, the
//! applications' SCIM clients, the provisioning engine's thread and the
//! HTTP router. `scimlink serve`, the connector sandbox's throwaway host,
//! the tests and the benchmarks all build theirs through [`HostBuilder`],
//! so the parts are wired the same way everywhere.
//!
//! Invariants the builder keeps:
//! - the engine and the admin API share one [`Clients`]: an application's
//!   token bucket, circuit breaker and `Retry-After` pause hold for work
//!   done on demand as for the engine's own;
//! - the engine runs only with served connectors: it applies changes
//!   through them;
//! - [`HostBuilder::build`] calls the store synchronously (the engine
//!   records the host's guard defaults before it starts): call it before an
//!   async runtime starts, or on the blocking pool, never on a runtime's
//!   worker thread.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use axum::Router;

use crate::api::ApiState;
use crate::auth::BearerToken;
use crate::engine::connections::Clients;
use crate::engine::operations::Operations;
use crate::engine::worker::{Engine, EngineSettings};
use crate::runtime::PluginRegistry;
use crate::runtime::history::History;
use crate::scim_server::ScanLimit;
use crate::store::{Store, StoreHandle};

/// Why a host could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// An engine was asked for without connectors to apply changes through.
    #[error("the provisioning engine needs the served connectors")]
    EngineWithoutConnectors,
    /// The engine's thread, or the record of its defaults, failed.
    #[error("cannot start the provisioning engine")]
    EngineStart(#[source] std::io::Error),
}

/// How the engine of a host runs: its settings, and the flag that ends it.
struct EnginePlan {
    settings: EngineSettings,
    /// Set, the engine ends after the batch in hand; never set, it runs as
    /// long as the process.
    stop: Arc<AtomicBool>,
}

/// The parts of a host, before it runs.
pub struct HostBuilder {
    store: Arc<dyn Store>,
    admin_token: BearerToken,
    scim_token: BearerToken,
    connectors: Option<Arc<PluginRegistry>>,
    connector_history: Option<History>,
    scans: ScanLimit,
    engine: Option<EnginePlan>,
}

impl HostBuilder {
    /// A host on `store` whose admin API accepts `admin_token` and whose
    /// inbound SCIM server accepts `scim_token`; without connectors, an
    /// engine or a connector history until they are given.
    pub fn new(store: Arc<dyn Store>, admin_token: BearerToken, scim_token: BearerToken) -> Self {
        HostBuilder {
            store,
            admin_token,
            scim_token,
            connectors: None,
            connector_history: None,
            scans: ScanLimit::default(),
            engine: None,
        }
    }

    /// The connectors the host serves: the engine applies changes through
    /// them, and the admin API checks applications against them.
    pub fn connectors(mut self, registry: Arc<PluginRegistry>) -> Self {
        self.connectors = Some(registry);
        self
    }

    /// The connectors' serving history, which the admin API rolls back
    /// through.
    pub fn connector_history(mut self, history: History) -> Self {
        self.connector_history = Some(history);
        self
    }

    /// How many inbound SCIM searches may read the whole directory at once.
    pub fn scan_limit(mut self, scans: ScanLimit) -> Self {
        self.scans = scans;
        self
    }

    /// Runs the provisioning engine for as long as the process.
    pub fn engine(self, settings: EngineSettings) -> Self {
        self.engine_until(settings, Arc::default())
    }

    /// Runs the provisioning engine until `stop` is set (it ends after the
    /// batch in hand).
    pub fn engine_until(mut self, settings: EngineSettings, stop: Arc<AtomicBool>) -> Self {
        self.engine = Some(EnginePlan { settings, stop });
        self
    }

    /// Starts the engine, if one was asked for, and builds the router.
    /// Synchronous store calls: see the module's documentation.
    pub fn build(self) -> Result<Host, HostError> {
        let clients = Clients::new();
        let engine = match self.engine {
            None => None,
            Some(plan) => {
                let connectors = self
                    .connectors
                    .as_ref()
                    .ok_or(HostError::EngineWithoutConnectors)?;
                let thread = Engine::start_until(
                    Arc::clone(&self.store),
                    Arc::clone(connectors),
                    Arc::clone(&clients),
                    plan.settings,
                    plan.stop,
                )
                .map_err(HostError::EngineStart)?;
                Some(thread)
            }
        };
        let store_handle = StoreHandle::new(Arc::clone(&self.store));
        let router = crate::api::app(
            ApiState {
                store: store_handle.clone(),
                admin_token: self.admin_token,
                plugin_history: self.connector_history,
                operations: Operations::new(
                    store_handle.clone(),
                    self.connectors.clone(),
                    Arc::clone(&clients),
                ),
            },
            self.scim_token,
            self.scans,
        );
        Ok(Host {
            store: self.store,
            store_handle,
            connectors: self.connectors,
            clients,
            engine,
            router,
        })
    }
}

/// A host assembled and running: its engine (if any) on its own thread,
/// its router ready to serve.
pub struct Host {
    store: Arc<dyn Store>,
    store_handle: StoreHandle,
    connectors: Option<Arc<PluginRegistry>>,
    clients: Arc<Clients>,
    engine: Option<JoinHandle<()>>,
    router: Router,
}

impl Host {
    /// The store, for synchronous code off the async runtime.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The store, for async code.
    pub fn store_handle(&self) -> StoreHandle {
        self.store_handle.clone()
    }

    /// The connectors the host serves, if it serves any.
    pub fn connectors(&self) -> Option<&Arc<PluginRegistry>> {
        self.connectors.as_ref()
    }

    /// The applications' SCIM clients, shared by the engine and the API.
    pub fn clients(&self) -> &Arc<Clients> {
        &self.clients
    }

    /// The HTTP application: admin API, inbound SCIM server, health.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The engine's thread, to join once its stop flag is set; `None` when
    /// the host runs no engine or the thread was taken already.
    pub fn take_engine_thread(&mut self) -> Option<JoinHandle<()>> {
        self.engine.take()
    }
}
