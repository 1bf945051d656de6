//! The engine at a glance: how much work waits, and what needs an operator.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiState, store_call};
use crate::store::{AppState, HeldState, Page};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(status))
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Directory changes not yet applied to every application.
    pub pending_changes: u64,
    pub active_apps: u64,
    pub inactive_apps: u64,
    /// Applications held after sustained failures, or because they cannot
    /// be served (their connector, settings or token).
    pub quarantined_apps: u64,
    /// Each quarantined application and why: it resumes by itself once the
    /// cause is gone.
    pub quarantined: Vec<Quarantined>,
    /// Open holds of the deprovisioning guard: applications whose
    /// offboardings wait for an operator.
    pub held_changes: u64,
    /// Offboardings those holds list, all applications together.
    pub held_offboardings: u64,
    /// The names of the applications with an open hold.
    pub held_apps: Vec<String>,
    /// Objects applications refused for good, all applications together.
    pub dead_letters: u64,
    /// The hosts whose engines share this store (one, on SQLite), and the
    /// applications each runs; hosts started with `--no-engine` are not
    /// listed.
    pub hosts: Vec<HostStatus>,
    /// Connectors used by an active or quarantined application that the
    /// hosts do not all serve at the same version. An application is run
    /// only by a host that serves its connector at the newest version.
    pub connector_mismatches: Vec<ConnectorMismatch>,
}

/// A host whose engine shares the store.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    /// The machine's name and the process id.
    pub name: String,
    /// The engine's id.
    pub engine: String,
    /// The applications this host's engine runs, by name.
    pub applications: Vec<String>,
    /// The connectors it serves: name → version.
    pub connectors: std::collections::BTreeMap<String, String>,
    /// When it last announced itself (RFC 3339).
    pub last_seen: String,
}

/// A connector the hosts do not all serve alike.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorMismatch {
    pub connector: String,
    /// The newest version a host serves, if any does.
    pub newest: Option<String>,
    /// Each host's version; `null` where it is not loaded.
    pub hosts: Vec<HostVersion>,
    /// The applications that use it.
    pub applications: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostVersion {
    pub host: String,
    pub version: Option<String>,
}

/// A quarantined application and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quarantined {
    pub name: String,
    pub reason: Option<String>,
}

/// Work waiting in the engine, and what needs an operator.
#[utoipa::path(get, path = "/status", tag = "safety", responses((status = 200, body = Status)))]
async fn status(State(state): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let status = store_call(&state, |store| {
        let mut status = Status {
            pending_changes: store.pending_changes()?,
            ..Status::default()
        };
        let mut app_names = std::collections::HashMap::new();
        let mut apps = Vec::new();
        let mut offset = 0;
        loop {
            let page = store.list_apps(Page {
                offset,
                limit: 1000,
            })?;
            for app in &page.items {
                app_names.insert(app.id.clone(), app.name.clone());
                match app.state {
                    AppState::Active => status.active_apps += 1,
                    AppState::Inactive => status.inactive_apps += 1,
                    AppState::Quarantined => {
                        status.quarantined_apps += 1;
                        status.quarantined.push(Quarantined {
                            name: app.name.clone(),
                            reason: app.state_reason.clone(),
                        });
                    }
                }
                status.dead_letters += store.dead_letters(&app.id)?.len() as u64;
            }
            offset += page.items.len() as u64;
            let done = page.items.is_empty() || offset >= page.total;
            apps.extend(page.items);
            if done {
                break;
            }
        }
        for held in store
            .held_changes(None)?
            .iter()
            .filter(|held| held.state == HeldState::Held)
        {
            status.held_changes += 1;
            status.held_offboardings += held.offboarding;
            if let Some(name) = app_names.get(&held.app_id)
                && !status.held_apps.contains(name)
            {
                status.held_apps.push(name.clone());
            }
        }
        let hosts = store.hosts()?;
        let runners = store.object_leases(crate::engine::worker::RUNNER)?;
        status.hosts = hosts
            .iter()
            .map(|host| HostStatus {
                name: host.name.clone(),
                engine: host.engine.clone(),
                applications: runners
                    .iter()
                    .filter(|lease| lease.holder == host.engine)
                    .filter_map(|lease| app_names.get(&lease.app_id).cloned())
                    .collect(),
                connectors: host.connectors.clone(),
                last_seen: host.seen.to_string(),
            })
            .collect();
        status.connector_mismatches = crate::engine::hosts::mismatches(&hosts, &apps)
            .into_iter()
            .map(|mismatch| ConnectorMismatch {
                connector: mismatch.connector,
                newest: mismatch.newest,
                hosts: mismatch
                    .hosts
                    .into_iter()
                    .map(|(host, version)| HostVersion { host, version })
                    .collect(),
                applications: mismatch.applications,
            })
            .collect();
        Ok(status)
    })
    .await?;
    Ok(Json(status))
}
