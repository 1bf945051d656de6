//! Admin API: the connectors the host serves, and the rollback of one to
//! the version that served before.
//!
//! A connector's name becomes file paths in a rollback: anything but a
//! connector name is refused before the serving history is touched.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiErrorBody, ApiState, PageOf, PageParams};
use crate::store::AppRecord;

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins))
        .routes(routes!(rollback_plugin))
}

/// The connector serving `app` on this host.
pub(super) fn served_plugin(
    state: &ApiState,
    app: &AppRecord,
) -> Result<Arc<crate::runtime::LoadedPlugin>, ApiError> {
    Ok(state.operations.served(app)?)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    pub contract: String,
    pub description: String,
    pub sha256: String,
    pub base_url_template: Option<String>,
    /// Settings the connector understands: key → (required, description).
    pub settings: Vec<SettingView>,
    /// What the connector does: groups, direct assignment, offboarding,
    /// the update method, members per PATCH, passwords (as `plugin check`
    /// shows them).
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    /// The versions that served, oldest first (the last is the current
    /// one); empty when the host keeps no serving history.
    pub history: Vec<ServedView>,
}

/// A version that served.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServedView {
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingView {
    pub key: String,
    pub required: bool,
    pub description: String,
}

/// The connectors this host serves, by name.
#[utoipa::path(get, path = "/plugins", tag = "connectors", params(PageParams),
    responses((status = 200, body = PageOf<PluginView>)))]
async fn list_plugins(
    State(state): State<ApiState>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<PluginView>>, ApiError> {
    let page = page.page()?;
    let mut plugins = state
        .operations
        .plugins()
        .map(|registry| registry.list())
        .unwrap_or_default();
    plugins.sort_by(|a, b| a.name().cmp(b.name()));
    let history = state.plugin_history.clone();
    Ok(Json(PageOf::slice(plugins, page, |plugin| {
        let identity = plugin.identity();
        let manifest = plugin.manifest();
        let served = history
            .as_ref()
            .and_then(|history| history.served(&identity.name).ok())
            .unwrap_or_default();
        PluginView {
            name: identity.name.clone(),
            version: identity.version.clone(),
            contract: identity.contract.clone(),
            description: manifest.description.clone(),
            sha256: identity.sha256.clone(),
            base_url_template: manifest.base_url_template.clone(),
            settings: manifest
                .settings
                .iter()
                .map(|spec| SettingView {
                    key: spec.key.clone(),
                    required: spec.required,
                    description: spec.description.clone(),
                })
                .collect(),
            capabilities: crate::runtime::contract::manifest_json(manifest)["capabilities"].clone(),
            history: served
                .into_iter()
                .map(|served| ServedView {
                    version: served.version,
                    sha256: served.sha256,
                })
                .collect(),
        }
    })))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RollbackView {
    pub name: String,
    pub from_version: String,
    pub to_version: String,
}

/// Serve the version of a connector that served before the current one.
/// The host swaps it in within moments; a second rollback undoes the first.
#[utoipa::path(post, path = "/plugins/{name}/rollback", tag = "connectors",
    params(("name" = String, Path, description = "the connector's manifest name")),
    responses((status = 200, body = RollbackView),
        (status = 400, description = "the name is not a connector name", body = ApiErrorBody),
        (status = 409, description = "nothing to roll back to", body = ApiErrorBody)))]
async fn rollback_plugin(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<RollbackView>, ApiError> {
    // The name becomes file paths: refuse anything but a connector name
    // (axum has already percent-decoded `..%2F`).
    if !crate::runtime::history::valid_name(&name) {
        let mut error = ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{name:?} is not a connector name: 1 to 64 characters of a-z, 0-9 and -"),
        );
        error.detail.field = Some("name".into());
        return Err(error);
    }
    let (Some(registry), Some(history)) = (
        state.operations.plugins().cloned(),
        state.plugin_history.clone(),
    ) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_history",
            "this host keeps no serving history",
        ));
    };
    let restored =
        tokio::task::spawn_blocking(move || history.restore_previous(&name, registry.folder()))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the rollback task failed",
                )
            })?
            .map_err(|error| match error {
                crate::runtime::history::RestoreError::History(history) => ApiError::new(
                    StatusCode::CONFLICT,
                    "nothing_to_roll_back",
                    history.to_string(),
                ),
                other => {
                    tracing::error!("rollback: {other}");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        other.to_string(),
                    )
                }
            })?;
    tracing::info!(
        "connector {} rolled back from {} to {} through the admin API",
        restored.name,
        restored.from_version,
        restored.to_version
    );
    Ok(Json(RollbackView {
        name: restored.name,
        from_version: restored.from_version,
        to_version: restored.to_version,
    }))
}
