//! One SCIM client per application, for the whole host.
//!
//! A [`ScimClient`] carries an application's token bucket, its circuit
//! breaker and the pause a `Retry-After` imposes. They protect the
//! application only if every request to it goes through the same client:
//! the engine's worker, provisioning on demand, reconcile, import and the
//! connection test alike. [`Clients`] is that single place. A client is
//! built on first use and kept until the application's record changes (its
//! version moves on any update: base URL, settings, token, pacing, state),
//! when the next use builds a new one from the new record.
//!
//! Building a connection can fail for reasons that lie with the
//! application's configuration, not with one object: the connector is not
//! served by this host, a setting the base URL needs is missing, the sealed
//! token no longer opens. Those are [`Unavailable`], which the engine
//! answers by quarantining the application with the reason (and resuming
//! it once the cause is gone), never by failing the change for everyone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::provision::SyncError;
use crate::runtime::{LoadedPlugin, PluginRegistry};
use crate::scim_client::{ClientSettings, ScimClient};
use crate::store::{AppRecord, StoreError, StoreHandle};

/// Why an application cannot be served at all right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("connector {0} is not served by this host")]
    ConnectorMissing(String),
    #[error("the base URL cannot be built: {0}")]
    BaseUrl(String),
    #[error("the application's token cannot be opened: {0}")]
    Token(String),
    #[error("no SCIM client can be built: {0}")]
    Client(String),
}

/// The clients of every application, shared by everything that sends.
#[derive(Default)]
pub struct Clients {
    by_app: Mutex<HashMap<String, (i64, Arc<ScimClient>)>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

impl Clients {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The application's client, built from `app` if there is none for its
    /// current version.
    pub async fn client(
        &self,
        store: &StoreHandle,
        app: &AppRecord,
    ) -> Result<Arc<ScimClient>, SyncError> {
        if let Some(client) = self.current(app) {
            return Ok(client);
        }
        let base = super::lifecycle::resolved_base_url(app).map_err(Unavailable::BaseUrl)?;
        let token = store
            .app_token(&app.id)
            .await
            .map_err(|error| match error {
                StoreError::Secret(reason) => SyncError::Unavailable(Unavailable::Token(reason)),
                error => SyncError::Store(error),
            })?;
        let client = ScimClient::new(&base, &token, ClientSettings::paced(&app.pacing))
            .map_err(|error| Unavailable::Client(error.to_string()))?;
        let mut by_app = self
            .by_app
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match by_app.get(&app.id) {
            // Another caller built one meanwhile: keep it, so that one
            // bucket and one breaker stand for the application.
            Some((version, kept)) if *version == app.version => Ok(Arc::clone(kept)),
            // A caller with an older record than the one kept: serve it
            // without replacing the newer client.
            Some((version, _)) if *version > app.version => Ok(client),
            _ => {
                by_app.insert(app.id.clone(), (app.version, Arc::clone(&client)));
                Ok(client)
            }
        }
    }

    /// The client built for the application's current version, if any.
    pub fn current(&self, app: &AppRecord) -> Option<Arc<ScimClient>> {
        let by_app = self
            .by_app
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_app
            .get(&app.id)
            .filter(|(version, _)| *version == app.version)
            .map(|(_, client)| Arc::clone(client))
    }

    /// The connector and the client the application is served by.
    pub async fn connection(
        &self,
        store: &StoreHandle,
        plugins: &PluginRegistry,
        app: &AppRecord,
    ) -> Result<(Arc<LoadedPlugin>, Arc<ScimClient>), SyncError> {
        let plugin = plugins
            .get(&app.connector)
            .ok_or_else(|| Unavailable::ConnectorMissing(app.connector.clone()))?;
        Ok((plugin, self.client(store, app).await?))
    }
}
