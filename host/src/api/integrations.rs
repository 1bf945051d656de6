//! Admin API: applications, their bindings to groups, and the connectors
//! the host serves.
//!
//! An application is checked against its connector when it is written: the
//! connector must be served, its required settings present, and every
//! `{placeholder}` of the base URL filled from the settings. The bearer
//! token goes in and never comes out.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::directory::find_group;
use super::{ApiError, ApiErrorBody, ApiState, Body, PageOf, PageParams, store_call};
use crate::store::{AppRecord, AppState, AppUpdate, AppWrite, Secret};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(get_app, update_app, delete_app))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(rotate_token))
        .routes(routes!(list_bindings))
        .routes(routes!(bind, unbind))
        .routes(routes!(scope))
        .routes(routes!(list_plugins))
        .routes(routes!(rollback_plugin))
}

/// An application as the admin API shows it. The token is never shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub label: String,
    /// The connector's manifest name.
    pub connector: String,
    /// As configured, with `{placeholders}`.
    pub base_url: String,
    /// With placeholders filled from the settings.
    pub resolved_base_url: String,
    pub manage_groups: bool,
    pub state: AppState,
    pub settings: BTreeMap<String, String>,
    pub version: i64,
    pub created: String,
    pub modified: String,
}

impl From<AppRecord> for AppView {
    fn from(app: AppRecord) -> Self {
        let settings: BTreeMap<String, String> = app.settings.iter().cloned().collect();
        AppView {
            resolved_base_url: fill_placeholders(&app.base_url, &settings)
                .unwrap_or_else(|_| app.base_url.clone()),
            id: app.id,
            name: app.name,
            label: app.label,
            connector: app.connector,
            base_url: app.base_url,
            manage_groups: app.manage_groups,
            state: app.state,
            settings,
            version: app.version,
            created: app.created,
            modified: app.modified,
        }
    }
}

/// A new application.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppInput {
    /// Unique, `[a-z0-9-]`, what the CLI names the application by.
    pub name: String,
    /// Shown to people; the name when absent.
    pub label: Option<String>,
    pub connector: String,
    /// The SCIM base URL, `{placeholders}` allowed; the connector's own
    /// when absent.
    pub base_url: Option<String>,
    /// The application's bearer token. Stored sealed; never returned.
    pub token: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Push groups and group membership.
    #[serde(default)]
    pub manage_groups: bool,
}

/// A change of an application's settings; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppChange {
    pub label: Option<String>,
    pub base_url: Option<String>,
    /// Replaces the settings.
    pub settings: Option<BTreeMap<String, String>>,
    pub manage_groups: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    pub token: String,
}

/// `{key}` placeholders of a URL template, filled from settings.
pub fn fill_placeholders(
    template: &str,
    settings: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err("an unclosed { in the base URL".into());
        };
        let key = &after[..end];
        let value = settings
            .get(key)
            .ok_or_else(|| format!("the base URL needs the setting {key:?}"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn check_url(url: &str) -> Result<(), ApiError> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Ok(())
        }
        _ => Err(ApiError::invalid(
            "baseUrl",
            format!("{url:?} is not an http(s) URL"),
        )),
    }
}

fn check_token(token: &str) -> Result<Secret, ApiError> {
    let token = token.trim();
    if token.is_empty() || token.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "token",
            "the token must be non-empty printable text",
        ));
    }
    Ok(Secret::new(token))
}

/// Checks an application's connector, settings and base URL; returns the
/// base URL to store.
fn check_against_connector(
    state: &ApiState,
    connector: &str,
    base_url: Option<&str>,
    settings: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let manifest = match &state.plugins {
        Some(plugins) => match plugins.get(connector) {
            Some(plugin) => Some(plugin.manifest().clone()),
            None => {
                let served: Vec<String> = plugins
                    .list()
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect();
                return Err(ApiError::invalid(
                    "connector",
                    format!(
                        "no connector named {connector:?} is served; served: {}",
                        served.join(", ")
                    ),
                ));
            }
        },
        None => None,
    };
    if let Some(manifest) = &manifest {
        for spec in manifest.settings.iter().filter(|spec| spec.required) {
            if settings
                .get(&spec.key)
                .is_none_or(|value| value.trim().is_empty())
            {
                return Err(ApiError::invalid(
                    &format!("settings.{}", spec.key),
                    format!(
                        "connector {connector} requires the setting {} ({})",
                        spec.key, spec.description
                    ),
                ));
            }
        }
    }
    let base_url = match base_url {
        Some(url) => url.trim().to_string(),
        None => manifest
            .and_then(|manifest| manifest.base_url_template)
            .ok_or_else(|| {
                ApiError::invalid(
                    "baseUrl",
                    format!("connector {connector} has no base URL of its own; give one"),
                )
            })?,
    };
    let resolved = fill_placeholders(&base_url, settings)
        .map_err(|message| ApiError::invalid("baseUrl", message))?;
    check_url(&resolved)?;
    Ok(base_url)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            "name must be 1–63 characters of a-z, 0-9 and -",
        ))
    }
}

/// List applications.
#[utoipa::path(get, path = "/apps", tag = "applications", params(PageParams),
    responses((status = 200, body = PageOf<AppView>)))]
async fn list_apps(
    State(state): State<ApiState>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<AppView>>, ApiError> {
    let page = page.page()?;
    store_call(&state, move |store| {
        let listing = store.list_apps(page)?;
        Ok(PageOf {
            items: listing.items.into_iter().map(AppView::from).collect(),
            total: listing.total,
            offset: page.offset,
            limit: page.limit,
        })
    })
    .await
    .map(Json)
}

/// Add an application (inactive until activated).
#[utoipa::path(post, path = "/apps", tag = "applications", request_body = AppInput,
    responses((status = 201, body = AppView), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
async fn create_app(
    State(state): State<ApiState>,
    Body(input): Body<AppInput>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    check_name(&input.name)?;
    let token = check_token(&input.token)?;
    let base_url = check_against_connector(
        &state,
        &input.connector,
        input.base_url.as_deref(),
        &input.settings,
    )?;
    let write = AppWrite {
        label: input
            .label
            .filter(|label| !label.trim().is_empty())
            .unwrap_or_else(|| input.name.clone()),
        name: input.name,
        connector: input.connector,
        base_url,
        token,
        manage_groups: input.manage_groups,
        settings: input.settings.into_iter().collect(),
    };
    let app = store_call(&state, move |store| store.create_app(write)).await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// An application by name or id.
#[utoipa::path(get, path = "/apps/{app}", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody)))]
async fn get_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let found = store_call(&state, move |store| {
        store.get_app(&app).map(|found| (found, app))
    })
    .await?;
    match found {
        (Some(app), _) => Ok(Json(app.into())),
        (None, name) => Err(ApiError::not_found(format!(
            "application {name:?} not found"
        ))),
    }
}

async fn load_app(state: &ApiState, app: String) -> Result<AppRecord, ApiError> {
    let (found, name) = store_call(state, move |store| {
        store.get_app(&app).map(|found| (found, app))
    })
    .await?;
    found.ok_or_else(|| ApiError::not_found(format!("application {name:?} not found")))
}

/// Update an application's settings.
#[utoipa::path(patch, path = "/apps/{app}", tag = "applications", request_body = AppChange,
    params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
async fn update_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Body(change): Body<AppChange>,
) -> Result<Json<AppView>, ApiError> {
    let current = load_app(&state, app).await?;
    let settings = change
        .settings
        .clone()
        .unwrap_or_else(|| current.settings.iter().cloned().collect());
    let base_url = change
        .base_url
        .clone()
        .unwrap_or_else(|| current.base_url.clone());
    let base_url = check_against_connector(&state, &current.connector, Some(&base_url), &settings)?;
    let update = AppUpdate {
        label: change.label,
        base_url: Some(base_url),
        manage_groups: change.manage_groups,
        settings: Some(settings.into_iter().collect()),
        ..AppUpdate::default()
    };
    store_call(&state, move |store| store.update_app(&current.id, update))
        .await
        .map(|a| Json(a.into()))
}

/// Remove an application from scimlink (accounts in it are left as they are).
#[utoipa::path(delete, path = "/apps/{app}", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn delete_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    store_call(&state, move |store| store.delete_app(&app)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_state(state: &ApiState, app: String, to: AppState) -> Result<Json<AppView>, ApiError> {
    store_call(state, move |store| {
        store.update_app(
            &app,
            AppUpdate {
                state: Some(to),
                ..AppUpdate::default()
            },
        )
    })
    .await
    .map(|a| Json(a.into()))
}

/// Activate an application: provisioning starts.
#[utoipa::path(post, path = "/apps/{app}/activate", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody)))]
async fn activate(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    set_state(&state, app, AppState::Active).await
}

/// Deactivate an application: nothing more is sent.
#[utoipa::path(post, path = "/apps/{app}/deactivate", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody)))]
async fn deactivate(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    set_state(&state, app, AppState::Inactive).await
}

/// Replace the application's bearer token, without deactivating it.
#[utoipa::path(post, path = "/apps/{app}/rotate-token", tag = "applications", request_body = TokenInput,
    params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
async fn rotate_token(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Body(input): Body<TokenInput>,
) -> Result<Json<AppView>, ApiError> {
    let token = check_token(&input.token)?;
    store_call(&state, move |store| {
        store.update_app(
            &app,
            AppUpdate {
                token: Some(token),
                ..AppUpdate::default()
            },
        )
    })
    .await
    .map(|a| Json(a.into()))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BindingView {
    pub group_id: String,
    pub group: String,
}

/// The groups bound to an application, by name.
#[utoipa::path(get, path = "/apps/{app}/bindings", tag = "applications",
    params(("app" = String, Path, description = "name or id"), PageParams),
    responses((status = 200, body = PageOf<BindingView>), (status = 404, body = ApiErrorBody)))]
async fn list_bindings(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<BindingView>>, ApiError> {
    let page = page.page()?;
    let groups = store_call(&state, move |store| store.bindings(&app)).await?;
    Ok(Json(PageOf::slice(groups, page, |g| BindingView {
        group_id: g.id,
        group: g.display_name,
    })))
}

/// Bind a group to an application: its members come into scope.
#[utoipa::path(put, path = "/apps/{app}/bindings/{group}", tag = "applications",
    params(("app" = String, Path, description = "name or id"), ("group" = String, Path, description = "group id or name")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn bind(
    State(state): State<ApiState>,
    Path((app, group)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    store_call(&state, move |store| {
        let group = find_group(store, &group)?;
        store.bind(&app, &group.id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unbind a group from an application.
#[utoipa::path(delete, path = "/apps/{app}/bindings/{group}", tag = "applications",
    params(("app" = String, Path, description = "name or id"), ("group" = String, Path, description = "group id or name")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn unbind(
    State(state): State<ApiState>,
    Path((app, group)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    store_call(&state, move |store| {
        let group = find_group(store, &group)?;
        store.unbind(&app, &group.id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ids of the users in scope of an application (members, directly or
/// through nested groups, of a bound group).
#[utoipa::path(get, path = "/apps/{app}/scope", tag = "applications",
    params(("app" = String, Path, description = "name or id"), PageParams),
    responses((status = 200, body = PageOf<String>), (status = 404, body = ApiErrorBody)))]
async fn scope(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<String>>, ApiError> {
    let page = page.page()?;
    let users = store_call(&state, move |store| store.users_in_scope(&app)).await?;
    Ok(Json(PageOf::slice(users, page, |id| id)))
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
        .plugins
        .as_ref()
        .map(|registry| registry.list())
        .unwrap_or_default();
    plugins.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Json(PageOf::slice(plugins, page, |plugin| {
        let identity = plugin.identity();
        let manifest = plugin.manifest();
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
    responses((status = 200, body = RollbackView), (status = 409, description = "nothing to roll back to", body = ApiErrorBody)))]
async fn rollback_plugin(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<RollbackView>, ApiError> {
    let (Some(registry), Some(history)) = (state.plugins.clone(), state.plugin_history.clone())
    else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_settings() {
        let settings = BTreeMap::from([("tenantId".to_string(), "42".to_string())]);
        assert_eq!(
            fill_placeholders("https://x.example/org-{tenantId}/v2", &settings).unwrap(),
            "https://x.example/org-42/v2"
        );
        assert!(fill_placeholders("https://x.example/{missing}", &settings).is_err());
        assert!(fill_placeholders("https://x.example/{open", &settings).is_err());
    }
}
