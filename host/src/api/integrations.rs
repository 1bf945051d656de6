//! Admin API: applications, their bindings to groups, and the connectors
//! the host serves.
//!
//! An application is checked against its connector when it is written: the
//! connector must be served, its required settings present, and every
//! `{placeholder}` of the base URL filled from the settings. The bearer
//! token goes in and never comes out.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::directory::find_group;
use super::{ApiError, ApiErrorBody, ApiState, Body, PageOf, PageParams, store_call};
use crate::engine::lifecycle::{self, fill_placeholders};
use crate::runtime::PluginRegistry;
use crate::store::Timestamp;
use crate::store::{
    AppRecord, AppState, AppUpdate, AppWrite, Event, GuardOverrides, Outcome, Pacing, Secret,
};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(get_app, update_app, delete_app))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(rotate_token))
        .routes(routes!(list_bindings))
        .routes(routes!(bind, unbind))
        .routes(routes!(list_assignments))
        .routes(routes!(assign, unassign))
        .routes(routes!(scope))
        .routes(routes!(plan))
        .routes(routes!(provision_user))
        .routes(routes!(release_account))
        .routes(routes!(provision_group))
        .routes(routes!(reconcile))
        .routes(routes!(list_importable, import_from_app))
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
    /// Why the application is quarantined; absent in any other state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub settings: BTreeMap<String, String>,
    /// What the application said it supports when its connection was last
    /// tested (empty before the first activation).
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    pub pacing: Pacing,
    /// The application's own deprovisioning-guard thresholds; an absent
    /// field is the host's default.
    pub guard: GuardOverrides,
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
            state_reason: app.state_reason,
            settings,
            capabilities: app.capabilities,
            pacing: app.pacing,
            guard: app.guard,
            version: app.version,
            created: app.created.to_string(),
            modified: app.modified.to_string(),
        }
    }
}

/// A new application. (No `Debug`: it carries the token.)
#[derive(Clone, Deserialize, ToSchema)]
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
    /// How fast the host may send; polite SaaS defaults when absent.
    pub pacing: Option<Pacing>,
    /// The application's own deprovisioning-guard thresholds; the host's
    /// defaults when absent.
    pub guard: Option<GuardOverrides>,
}

/// A change of an application's settings; absent fields stay. (No
/// `Debug`: it may carry the token.)
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppChange {
    pub label: Option<String>,
    pub base_url: Option<String>,
    /// Replaces the settings.
    pub settings: Option<BTreeMap<String, String>>,
    pub manage_groups: Option<bool>,
    pub pacing: Option<Pacing>,
    /// Replaces the application's guard thresholds; `{}` returns to the
    /// host's defaults.
    pub guard: Option<GuardOverrides>,
    /// The application's bearer token, replaced without a connection test.
    /// Required when the change moves the resolved base URL to another
    /// origin (scheme, host or port): the stored token is never sent to a
    /// server it was not given for. Stored sealed; never returned.
    pub token: Option<String>,
}

/// A new bearer token. (No `Debug`: it is the token.)
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    pub token: String,
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
    plugins: Option<&PluginRegistry>,
    connector: &str,
    base_url: Option<&str>,
    settings: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let manifest = match plugins {
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

fn check_pacing(pacing: Pacing) -> Result<Pacing, ApiError> {
    if !(pacing.requests_per_second.is_finite()
        && (0.1..=10_000.0).contains(&pacing.requests_per_second))
    {
        return Err(ApiError::invalid(
            "pacing.requestsPerSecond",
            "requestsPerSecond must be between 0.1 and 10000",
        ));
    }
    if !(1..=256).contains(&pacing.concurrency) {
        return Err(ApiError::invalid(
            "pacing.concurrency",
            "concurrency must be between 1 and 256",
        ));
    }
    for (field, value, range) in [
        ("pacing.timeoutSeconds", pacing.timeout_seconds, 1..=600),
        ("pacing.maxAttempts", pacing.max_attempts, 1..=20),
        ("pacing.quarantineAfter", pacing.quarantine_after, 1..=1000),
    ] {
        if !range.contains(&value) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{} must be between {} and {}",
                    field.trim_start_matches("pacing."),
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    // From 64 KiB (a page of accounts) to 1 GiB.
    if !(64 << 10..=1 << 30).contains(&pacing.max_response_bytes) {
        return Err(ApiError::invalid(
            "pacing.maxResponseBytes",
            "maxResponseBytes must be between 65536 and 1073741824",
        ));
    }
    Ok(pacing)
}

fn check_guard(guard: GuardOverrides) -> Result<GuardOverrides, ApiError> {
    if let Some(percent) = guard.percent
        && !(percent.is_finite() && (0.0..=100.0).contains(&percent))
    {
        return Err(ApiError::invalid(
            "guard.percent",
            "percent must be between 0 and 100",
        ));
    }
    if let Some(window) = guard.window_seconds
        && !(1..=2_592_000).contains(&window)
    {
        return Err(ApiError::invalid(
            "guard.windowSeconds",
            "windowSeconds must be between 1 and 2592000 (30 days)",
        ));
    }
    Ok(guard)
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
    let write = app_write(state.plugins.as_deref(), input)?;
    let app = store_call(&state, move |store| store.create_app(write)).await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// Checks a new application against the served connectors (when known)
/// and makes what the store writes.
fn app_write(plugins: Option<&PluginRegistry>, input: AppInput) -> Result<AppWrite, ApiError> {
    check_name(&input.name)?;
    let token = check_token(&input.token)?;
    let base_url = check_against_connector(
        plugins,
        &input.connector,
        input.base_url.as_deref(),
        &input.settings,
    )?;
    Ok(AppWrite {
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
        pacing: check_pacing(input.pacing.unwrap_or_default())?,
        guard: check_guard(input.guard.unwrap_or_default())?,
    })
}

/// [`create_app`]'s checks, without a served connector to check against.
pub(super) fn check_app_create(input: AppInput) -> Result<(), ApiError> {
    app_write(None, input).map(drop)
}

/// [`update_app`]'s checks of a change to an application at
/// `https://scim.example.com/v2` without settings, without a served
/// connector to check against.
pub(super) fn check_app_change(change: AppChange) -> Result<(), ApiError> {
    const CURRENT_BASE_URL: &str = "https://scim.example.com/v2";
    let current_settings = BTreeMap::new();
    let token = change.token.as_deref().map(check_token).transpose()?;
    let settings = change.settings.unwrap_or_default();
    let base_url = change.base_url.as_deref().unwrap_or(CURRENT_BASE_URL);
    let base_url = check_against_connector(None, "sample", Some(base_url), &settings)?;
    let moved = resolved_origin(CURRENT_BASE_URL, &current_settings)
        != resolved_origin(&base_url, &settings);
    if moved && token.is_none() {
        return Err(ApiError::invalid(
            "token",
            "the change moves the application",
        ));
    }
    change.pacing.map(check_pacing).transpose()?;
    change.guard.map(check_guard).transpose()?;
    Ok(())
}

/// [`rotate_token`]'s check of the new token.
pub(super) fn check_token_input(input: &TokenInput) -> Result<(), ApiError> {
    check_token(&input.token).map(drop)
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

pub(super) async fn load_app(state: &ApiState, app: String) -> Result<AppRecord, ApiError> {
    let (found, name) = store_call(state, move |store| {
        store.get_app(&app).map(|found| (found, app))
    })
    .await?;
    found.ok_or_else(|| ApiError::not_found(format!("application {name:?} not found")))
}

/// The origin (scheme, host, port) a base URL template resolves to with
/// these settings, as `https://host[:port]`; `None` when it does not
/// resolve to an http(s) URL.
fn resolved_origin(base_url: &str, settings: &BTreeMap<String, String>) -> Option<String> {
    let resolved = fill_placeholders(base_url, settings).ok()?;
    let origin = reqwest::Url::parse(&resolved).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Update an application's settings. A change that moves the resolved base
/// URL to another origin needs `token` too (422 without it).
#[utoipa::path(patch, path = "/apps/{app}", tag = "applications", request_body = AppChange,
    params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
async fn update_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Body(change): Body<AppChange>,
) -> Result<Json<AppView>, ApiError> {
    let token = change.token.as_deref().map(check_token).transpose()?;
    let current = load_app(&state, app).await?;
    let current_settings: BTreeMap<String, String> = current.settings.iter().cloned().collect();
    let settings = change
        .settings
        .clone()
        .unwrap_or_else(|| current_settings.clone());
    let base_url = change
        .base_url
        .clone()
        .unwrap_or_else(|| current.base_url.clone());
    let base_url = check_against_connector(
        state.plugins.as_deref(),
        &current.connector,
        Some(&base_url),
        &settings,
    )?;
    // --- A new origin needs the token again: the stored one was given for
    // the old server, and the admin token alone must not be enough to send
    // it elsewhere.
    let old_origin = resolved_origin(&current.base_url, &current_settings);
    let new_origin = resolved_origin(&base_url, &settings);
    let moved = (old_origin != new_origin).then(|| {
        let shown = |origin: Option<String>| origin.unwrap_or_else(|| "(unresolved)".into());
        (shown(old_origin), shown(new_origin))
    });
    if let (Some((from, to)), None) = (&moved, &token) {
        return Err(ApiError::invalid(
            "token",
            format!(
                "this change moves {} from {from} to {to}: give the application's token \
                 for {to} in the same request (\"token\"), so that the stored one is never \
                 sent to another server",
                current.name
            ),
        ));
    }
    // --- end of the origin check.
    // Only what differs is written, so an empty change records nothing.
    let update = AppUpdate {
        label: change.label.filter(|label| *label != current.label),
        base_url: Some(base_url).filter(|url| *url != current.base_url),
        manage_groups: change
            .manage_groups
            .filter(|manage| *manage != current.manage_groups),
        settings: (settings != current_settings).then(|| settings.into_iter().collect()),
        pacing: change
            .pacing
            .map(check_pacing)
            .transpose()?
            .filter(|pacing| *pacing != current.pacing),
        guard: change
            .guard
            .map(check_guard)
            .transpose()?
            .filter(|guard| *guard != current.guard),
        token,
        ..AppUpdate::default()
    };
    let mut changed = Vec::new();
    for (name, is_set) in [
        ("label", update.label.is_some()),
        ("base URL", update.base_url.is_some()),
        ("group management", update.manage_groups.is_some()),
        ("settings", update.settings.is_some()),
        ("pacing", update.pacing.is_some()),
        ("guard thresholds", update.guard.is_some()),
        ("token", update.token.is_some()),
    ] {
        if is_set {
            changed.push(name);
        }
    }
    let origin_note = moved
        .map(|(from, to)| format!("; origin {from} → {to}"))
        .unwrap_or_default();
    let id = current.id.clone();
    let app = store_call(&state, move |store| store.update_app(&id, update)).await?;
    if !changed.is_empty() {
        record(
            &state,
            lifecycle::event(
                &app,
                lifecycle::UPDATE,
                Outcome::Success,
                None,
                format!("changed: {}{origin_note}", changed.join(", ")),
            ),
        )
        .await;
    }
    Ok(Json(app.into()))
}

/// Records an event; a failure to record is logged, not returned: the
/// change it describes has happened.
pub(super) async fn record(state: &ApiState, event: Event) {
    if let Err(error) = store_call(state, move |store| store.record_event(event)).await {
        tracing::error!("cannot record an event: {error:?}");
    }
}

/// Remove an application from scimlink (accounts in it are left as they are).
#[utoipa::path(delete, path = "/apps/{app}", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn delete_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    let current = load_app(&state, app).await?;
    let id = current.id.clone();
    store_call(&state, move |store| store.delete_app(&id)).await?;
    record(
        &state,
        lifecycle::event(
            &current,
            lifecycle::DELETE,
            Outcome::Success,
            None,
            "removed from scimlink",
        ),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

fn connection_failed(app: &AppRecord, summary: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "connection_failed",
        format!("the connection test of {} failed: {summary}", app.name),
    )
}

/// Activate an application: its connection is tested (what it supports is
/// kept) and provisioning starts. A failed test leaves it inactive.
#[utoipa::path(post, path = "/apps/{app}/activate", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody),
        (status = 502, description = "the application did not pass the connection test", body = ApiErrorBody)))]
async fn activate(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let current = load_app(&state, app).await?;
    let client = app_client(&state, &current).await?;
    match lifecycle::test_with(&client).await {
        Ok(tested) => {
            let id = current.id.clone();
            let update = AppUpdate {
                state: Some(AppState::Active),
                capabilities: Some(tested.capabilities),
                ..AppUpdate::default()
            };
            let app = store_call(&state, move |store| store.update_app(&id, update)).await?;
            record(
                &state,
                lifecycle::event(
                    &app,
                    lifecycle::ACTIVATE,
                    Outcome::Success,
                    Some(tested.http_status),
                    tested.summary,
                ),
            )
            .await;
            Ok(Json(app.into()))
        }
        Err(untested) => {
            record(
                &state,
                lifecycle::event(
                    &current,
                    lifecycle::ACTIVATE,
                    Outcome::Failure,
                    untested.http_status,
                    untested.summary.clone(),
                ),
            )
            .await;
            Err(connection_failed(&current, &untested.summary))
        }
    }
}

/// Deactivate an application: nothing more is sent.
#[utoipa::path(post, path = "/apps/{app}/deactivate", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody)))]
async fn deactivate(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    let app = store_call(&state, move |store| {
        store.update_app(
            &app,
            AppUpdate {
                state: Some(AppState::Inactive),
                ..AppUpdate::default()
            },
        )
    })
    .await?;
    record(
        &state,
        lifecycle::event(
            &app,
            lifecycle::DELETE,
            Outcome::Success,
            None,
            "deactivated: nothing more is sent",
        ),
    )
    .await;
    Ok(Json(app.into()))
}

/// Replace the application's bearer token, without deactivating it. The
/// new token is tested first; a token the application refuses is not kept.
#[utoipa::path(post, path = "/apps/{app}/rotate-token", tag = "applications", request_body = TokenInput,
    params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody),
        (status = 502, description = "the application refused the new token", body = ApiErrorBody)))]
async fn rotate_token(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Body(input): Body<TokenInput>,
) -> Result<Json<AppView>, ApiError> {
    let token = check_token(&input.token)?;
    let current = load_app(&state, app).await?;
    // An inactive application is not contacted: its token is tested when
    // it is activated.
    let tested = if current.state == AppState::Inactive {
        None
    } else {
        match lifecycle::test_connection(&current, &token).await {
            Ok(tested) => Some(tested),
            Err(untested) => {
                record(
                    &state,
                    lifecycle::event(
                        &current,
                        lifecycle::REAUTH,
                        Outcome::Failure,
                        untested.http_status,
                        format!("new token refused, the old one stays: {}", untested.summary),
                    ),
                )
                .await;
                return Err(connection_failed(&current, &untested.summary));
            }
        }
    };
    let id = current.id.clone();
    let app = store_call(&state, move |store| {
        store.update_app(
            &id,
            AppUpdate {
                token: Some(token),
                ..AppUpdate::default()
            },
        )
    })
    .await?;
    let (status, summary) = match tested {
        Some(tested) => (
            Some(tested.http_status),
            format!("token replaced; {}", tested.summary),
        ),
        None => (
            None,
            "token replaced; it is tested when the application is activated".to_string(),
        ),
    };
    record(
        &state,
        lifecycle::event(&app, lifecycle::REAUTH, Outcome::Success, status, summary),
    )
    .await;
    Ok(Json(app.into()))
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

/// The connector serving `app` on this host.
fn served_plugin(
    state: &ApiState,
    app: &AppRecord,
) -> Result<Arc<crate::runtime::LoadedPlugin>, ApiError> {
    state
        .plugins
        .as_ref()
        .and_then(|plugins| plugins.get(&app.connector))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "connector_not_served",
                format!("connector {} is not served by this host", app.connector),
            )
        })
}

/// What a sync of every user of the application would send now, without
/// sending anything (the application is not contacted).
#[utoipa::path(get, path = "/apps/{app}/plan", tag = "applications",
    params(("app" = String, Path, description = "name or id"), PageParams),
    responses((status = 200, body = PageOf<crate::engine::plan::Planned>), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application's connector is not served", body = ApiErrorBody)))]
async fn plan(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<crate::engine::plan::Planned>>, ApiError> {
    let page = page.page()?;
    let app = load_app(&state, app).await?;
    let plugin = served_plugin(&state, &app)?;
    // The plan calls the connector and reads the store throughout: it runs
    // off the async runtime.
    let planned = state
        .store
        .run_fallible(move |store| crate::engine::plan::plan(store, &plugin, &app))
        .await
        .map_err(|error| match error {
            crate::engine::provision::SyncError::Store(store) => ApiError::from(store),
            other => ApiError::new(StatusCode::CONFLICT, "connector_failed", other.to_string()),
        })?;
    Ok(Json(PageOf::slice(planned, page, |operation| operation)))
}

/// The events recorded for `app` since `since`, newest first:
/// what an operation done on demand shows of itself. At most 1,000.
async fn events_since(
    state: &ApiState,
    app: &AppRecord,
    since: Timestamp,
) -> Result<Vec<Event>, ApiError> {
    let query = crate::store::EventQuery {
        app_id: Some(app.id.clone()),
        since: Some(since),
        ..crate::store::EventQuery::default()
    };
    let page = crate::store::Page {
        offset: 0,
        limit: 1000,
    };
    Ok(store_call(state, move |store| store.events(&query, page))
        .await?
        .items)
}

/// How an operation done on demand answers a failed sync: the store's own
/// error, 502 when the application failed, 409 when the connector did.
fn sync_failed(app: &AppRecord, error: crate::engine::provision::SyncError) -> ApiError {
    use crate::engine::provision::SyncError;
    match error {
        SyncError::Store(error) => ApiError::from(error),
        SyncError::Application(error) => connection_failed(app, &error.to_string()),
        SyncError::Connector { .. } => {
            ApiError::new(StatusCode::CONFLICT, "connector_failed", error.to_string())
        }
        SyncError::Unavailable(_) => {
            ApiError::new(StatusCode::CONFLICT, "unavailable", error.to_string())
        }
    }
}

/// An application that is active, or a conflict saying what it is.
async fn active_app(state: &ApiState, app: String) -> Result<AppRecord, ApiError> {
    let app = load_app(state, app).await?;
    if app.state != AppState::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_active",
            format!("{} is {}: activate it first", app.name, app.state.as_str()),
        ));
    }
    Ok(app)
}

/// The application's SCIM client: the one the engine sends through, so
/// that its rate limit, circuit breaker and `Retry-After` pause hold for
/// work done on demand too.
async fn app_client(
    state: &ApiState,
    app: &AppRecord,
) -> Result<Arc<crate::scim_client::ScimClient>, ApiError> {
    let built = state.clients.client(&state.store, app).await;
    built.map_err(|error| match error {
        crate::engine::provision::SyncError::Store(error) => ApiError::from(error),
        crate::engine::provision::SyncError::Unavailable(
            crate::engine::connections::Unavailable::BaseUrl(reason),
        ) => ApiError::invalid("baseUrl", reason),
        other => connection_failed(app, &other.to_string()),
    })
}

/// Reconcile an application now: read it back, repair every drift, and
/// show what was found.
#[utoipa::path(post, path = "/apps/{app}/reconcile", tag = "applications",
    params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = crate::engine::reconcile::Reconciled), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed the listing", body = ApiErrorBody)))]
async fn reconcile(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<crate::engine::reconcile::Reconciled>, ApiError> {
    use crate::engine::provision::Target;
    let app = active_app(&state, app).await?;
    let plugin = served_plugin(&state, &app)?;
    let client = app_client(&state, &app).await?;
    let target = Target {
        store: &state.store,
        app: &app,
        plugin: &plugin,
        client: &client,
    };
    let result = crate::engine::reconcile::reconcile_app(&target).await;
    let failure = result.as_ref().err().map(ToString::to_string);
    let done = crate::engine::worker::record_reconcile(&target, result).await?;
    match failure {
        Some(reason) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "reconcile_failed",
            format!("the reconcile of {} stopped: {reason}", app.name),
        )),
        None => Ok(Json(done)),
    }
}

/// The application's accounts, each `new` (only there) or `imported`
/// (linked to a directory user). Nothing is written.
#[utoipa::path(get, path = "/apps/{app}/import", tag = "applications",
    params(("app" = String, Path, description = "name or id"), PageParams),
    responses((status = 200, body = PageOf<crate::engine::import::RemoteUser>), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed the listing", body = ApiErrorBody)))]
async fn list_importable(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<crate::engine::import::RemoteUser>>, ApiError> {
    let page = page.page()?;
    let app = active_app(&state, app).await?;
    let plugin = served_plugin(&state, &app)?;
    let client = app_client(&state, &app).await?;
    let target = crate::engine::provision::Target {
        store: &state.store,
        app: &app,
        plugin: &plugin,
        client: &client,
    };
    let users = crate::engine::import::remote_users(&target)
        .await
        .map_err(|error| connection_failed(&app, &error.to_string()))?;
    Ok(Json(PageOf::slice(users, page, |user| user)))
}

/// Which accounts to import, and where.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportInput {
    /// Remote ids of the accounts to import; every new one when absent.
    pub users: Option<Vec<String>>,
    /// The group the imported users join, bound to the application
    /// (created and bound when missing). `APP-imported` when absent.
    pub group: Option<String>,
}

/// Import accounts that exist only in the application: each becomes a
/// directory user (or is linked to the one of the same userName) in a
/// group bound to the application.
#[utoipa::path(post, path = "/apps/{app}/import", tag = "applications",
    params(("app" = String, Path, description = "name or id")), request_body = ImportInput,
    responses((status = 200, body = crate::engine::import::Imported), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed the listing", body = ApiErrorBody)))]
async fn import_from_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Body(input): Body<ImportInput>,
) -> Result<Json<crate::engine::import::Imported>, ApiError> {
    let app = active_app(&state, app).await?;
    let plugin = served_plugin(&state, &app)?;
    let client = app_client(&state, &app).await?;
    let group = input
        .group
        .filter(|group| !group.trim().is_empty())
        .unwrap_or_else(|| format!("{}-imported", app.name));
    let target = crate::engine::provision::Target {
        store: &state.store,
        app: &app,
        plugin: &plugin,
        client: &client,
    };
    let done = crate::engine::import::import_users(&target, input.users.as_deref(), &group)
        .await
        .map_err(|error| sync_failed(&app, error))?;
    Ok(Json(done))
}

/// The result of provisioning one user now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisionView {
    pub user_id: String,
    pub result: crate::engine::provision::Synced,
    /// The events the attempt recorded, newest first.
    pub events: Vec<Event>,
}

/// An account the host no longer manages.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedView {
    /// The directory user (possibly deleted) the account was linked to.
    pub user_id: String,
    /// The account in the application, left as it is.
    pub remote_id: String,
}

/// Stop managing the account linked to a user who is out of the
/// application's scope, or deleted from the directory: the link is
/// forgotten and the account is left as it is. This is how an operator
/// hands an account over — to a re-hired person whose takeover was refused
/// because the account was still linked to the person who left — before
/// replaying the refused user.
#[utoipa::path(post, path = "/apps/{app}/release/{user}", tag = "applications",
    params(("app" = String, Path, description = "name or id"),
        ("user" = String, Path, description = "id or userName; the id of a user deleted from the directory")),
    responses((status = 200, body = ReleasedView),
        (status = 404, description = "no such application, or no account linked to the user", body = ApiErrorBody),
        (status = 409, description = "the user is in the application's scope: the next sync would take the account over again", body = ApiErrorBody)))]
async fn release_account(
    State(state): State<ApiState>,
    Path((app, user)): Path<(String, String)>,
) -> Result<Json<ReleasedView>, ApiError> {
    let app = load_app(&state, app).await?;
    let user_id = store_call(&state, move |store| {
        match super::directory::find_user(store, &user) {
            Ok(found) => Ok(found.id),
            // A user deleted from the directory is named by its old id.
            Err(crate::store::StoreError::NotFound { .. }) => Ok(user),
            Err(error) => Err(error),
        }
    })
    .await?;
    let held = crate::engine::locks::hold_user(&state.store, &app.id, &user_id).await?;
    let Some(entry) = held.entry.clone() else {
        return Err(ApiError::not_found(format!(
            "no account of {} is linked to {user_id}",
            app.name
        )));
    };
    if held.in_scope {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_scope",
            format!(
                "{user_id} is in the scope of {}: the next sync would take account {} over \
                 again; take the user out of scope first",
                app.name, entry.remote_id
            ),
        ));
    }
    let event = Event {
        id: String::new(),
        at: Timestamp::now(),
        app_id: Some(app.id.clone()),
        app_name: Some(app.name.clone()),
        object_kind: Some("user".into()),
        object_id: Some(user_id.clone()),
        operation: crate::engine::groups::USER_RELEASE.to_string(),
        outcome: Outcome::Success,
        rule: Some("operator: released".into()),
        http_status: None,
        summary: format!(
            "account {} left as it is in the application; no longer managed",
            entry.remote_id
        ),
    };
    state
        .store
        .record_with_ledger(
            crate::store::LedgerChange::Remove {
                app_id: &app.id,
                object_kind: "user",
                object_id: &user_id,
            },
            event,
        )
        .await?;
    drop(held);
    Ok(Json(ReleasedView {
        user_id,
        remote_id: entry.remote_id,
    }))
}

/// Provision one user in an active application now, and show what was done.
#[utoipa::path(post, path = "/apps/{app}/provision/{user}", tag = "applications",
    params(("app" = String, Path, description = "name or id"), ("user" = String, Path, description = "id or userName")),
    responses((status = 200, body = ProvisionView), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed the request", body = ApiErrorBody)))]
async fn provision_user(
    State(state): State<ApiState>,
    Path((app, user)): Path<(String, String)>,
) -> Result<Json<ProvisionView>, ApiError> {
    use crate::engine::provision::{Target, sync_user_now};
    let app = active_app(&state, app).await?;
    let plugin = served_plugin(&state, &app)?;
    let user_id = store_call(&state, move |store| {
        Ok(super::directory::find_user(store, &user)?.id)
    })
    .await?;
    let client = app_client(&state, &app).await?;
    let since = Timestamp::now();
    let target = Target {
        store: &state.store,
        app: &app,
        plugin: &plugin,
        client: &client,
    };
    let failed = |error| sync_failed(&app, error);
    let result = sync_user_now(&target, &user_id).await.map_err(failed)?;
    // A new account joins its groups in the application now, too.
    if matches!(
        result,
        crate::engine::provision::Synced::Created | crate::engine::provision::Synced::TakenOver
    ) {
        for group_id in state
            .store
            .bound_groups_containing(&app.id, &user_id)
            .await?
        {
            crate::engine::groups::sync_group_now(&target, &group_id)
                .await
                .map_err(failed)?;
        }
    }
    let events = events_since(&state, &app, since)
        .await?
        .into_iter()
        .filter(|event| event.object_id.as_deref() == Some(user_id.as_str()))
        .collect();
    Ok(Json(ProvisionView {
        user_id,
        result,
        events,
    }))
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

/// One user of a group provisioned on demand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisionedMember {
    pub user_id: String,
    pub result: crate::engine::provision::Synced,
}

/// The result of provisioning one group and its members now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisionGroupView {
    pub group_id: String,
    /// Its users (nested groups' included), each with what was done.
    pub members: Vec<ProvisionedMember>,
    /// What was done to the group itself.
    pub group: crate::engine::groups::GroupSynced,
    /// The events the attempt recorded, newest first.
    pub events: Vec<Event>,
}

/// Provision one group now: each of its users, then the group with its
/// membership (when groups are managed); and show what was done.
#[utoipa::path(post, path = "/apps/{app}/provision-group/{group}", tag = "applications",
    params(("app" = String, Path, description = "name or id"), ("group" = String, Path, description = "id or name")),
    responses((status = 200, body = ProvisionGroupView), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed a request", body = ApiErrorBody)))]
async fn provision_group(
    State(state): State<ApiState>,
    Path((app, group)): Path<(String, String)>,
) -> Result<Json<ProvisionGroupView>, ApiError> {
    use crate::engine::provision::{Target, sync_user_now};
    let app = active_app(&state, app).await?;
    let plugin = served_plugin(&state, &app)?;
    let (group_id, users) = store_call(&state, move |store| {
        let group = find_group(store, &group)?;
        let users = store.users_of(std::slice::from_ref(&group.id))?;
        Ok((group.id, users))
    })
    .await?;
    let client = app_client(&state, &app).await?;
    let since = Timestamp::now();
    let target = Target {
        store: &state.store,
        app: &app,
        plugin: &plugin,
        client: &client,
    };
    let failed = |error| sync_failed(&app, error);
    let mut members = Vec::with_capacity(users.len());
    for user_id in users {
        let result = sync_user_now(&target, &user_id).await.map_err(failed)?;
        members.push(ProvisionedMember { user_id, result });
    }
    let group = crate::engine::groups::sync_group_now(&target, &group_id)
        .await
        .map_err(failed)?;
    let events = events_since(&state, &app, since).await?;
    Ok(Json(ProvisionGroupView {
        group_id,
        members,
        group,
        events,
    }))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignmentView {
    pub user_id: String,
    pub user_name: String,
}

/// The users assigned to an application directly.
#[utoipa::path(get, path = "/apps/{app}/assignments", tag = "applications",
    params(("app" = String, Path, description = "name or id"), PageParams),
    responses((status = 200, body = PageOf<AssignmentView>), (status = 404, body = ApiErrorBody)))]
async fn list_assignments(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<AssignmentView>>, ApiError> {
    let page = page.page()?;
    let assigned = store_call(&state, move |store| {
        let mut assigned = Vec::new();
        for user_id in store.assignments(&app)? {
            if let Some(user) = store.get_user(&user_id)? {
                assigned.push(AssignmentView {
                    user_id,
                    user_name: user.user_name,
                });
            }
        }
        Ok(assigned)
    })
    .await?;
    Ok(Json(PageOf::slice(assigned, page, |view| view)))
}

/// Assign a user to an application directly: in scope without a bound
/// group. Only for connectors whose manifest allows direct assignment.
#[utoipa::path(put, path = "/apps/{app}/assignments/{user}", tag = "applications",
    params(("app" = String, Path, description = "name or id"), ("user" = String, Path, description = "id or userName")),
    responses((status = 204), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the connector assigns users only through groups, or is not served", body = ApiErrorBody)))]
async fn assign(
    State(state): State<ApiState>,
    Path((app, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = load_app(&state, app).await?;
    let plugin = served_plugin(&state, &app)?;
    if !plugin.manifest().capabilities.direct_assignment {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "group_assignment_only",
            format!(
                "connector {} assigns users to {} only through bound groups",
                app.connector, app.name
            ),
        ));
    }
    store_call(&state, move |store| {
        let user = super::directory::find_user(store, &user)?;
        store.assign(&app.id, &user.id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unassign a user assigned directly; a user still in a bound group stays
/// in scope.
#[utoipa::path(delete, path = "/apps/{app}/assignments/{user}", tag = "applications",
    params(("app" = String, Path, description = "name or id"), ("user" = String, Path, description = "id or userName")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn unassign(
    State(state): State<ApiState>,
    Path((app, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    store_call(&state, move |store| {
        let user = super::directory::find_user(store, &user)?;
        store.unassign(&app, &user.id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
