//! Admin API: applications — their records, activation and deactivation,
//! and their bearer tokens.
//!
//! An application is checked against its connector when it is written: the
//! connector must be served, its required settings present, and every
//! `{placeholder}` of the base URL filled from the settings. The bearer
//! token goes in and never comes out; a change that moves an application
//! to another origin must bring the token for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{AppStateView, GuardOverridesView, PacingView};
use super::{ApiError, ApiErrorBody, ApiState, Body, PageOf, PageParams, store_call};
use crate::engine::lifecycle::{self, fill_placeholders};
use crate::runtime::PluginRegistry;
use crate::store::{
    AppRecord, AppUpdate, AppWrite, GuardOverrides, Pacing, PasswordPolicy, Secret,
};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(get_app, update_app, delete_app))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(rotate_token))
        .routes(routes!(reveal_temporary_password))
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
    pub state: AppStateView,
    /// Why the application is quarantined; absent in any other state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub settings: BTreeMap<String, String>,
    /// What the application said it supports when its connection was last
    /// tested (empty before the first activation).
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    pub pacing: PacingView,
    /// The application's own deprovisioning-guard thresholds; an absent
    /// field is the host's default.
    pub guard: GuardOverridesView,
    /// How temporary passwords are made, when the connector takes
    /// passwords.
    pub password_policy: PasswordPolicy,
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
            state: app.state.into(),
            state_reason: app.state_reason,
            settings,
            capabilities: app.capabilities,
            pacing: app.pacing.into(),
            guard: app.guard.into(),
            password_policy: app.passwords,
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
    /// The SCIM base URL, `{placeholders}` allowed, no credentials in it
    /// (the token is the application's credential); the connector's own
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
    pub pacing: Option<PacingView>,
    /// The application's own deprovisioning-guard thresholds; the host's
    /// defaults when absent.
    pub guard: Option<GuardOverridesView>,
    /// How temporary passwords are made; 20 characters of every class,
    /// never revealed, when absent.
    pub password_policy: Option<PasswordPolicy>,
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
    pub pacing: Option<PacingView>,
    /// Replaces the application's guard thresholds; `{}` returns to the
    /// host's defaults.
    pub guard: Option<GuardOverridesView>,
    /// Replaces how temporary passwords are made.
    pub password_policy: Option<PasswordPolicy>,
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
    match url::Url::parse(url) {
        // Named without the URL, which holds them: the application's
        // credential is its token, sent as a bearer token and stored
        // encrypted, never a part of a URL that is shown wherever the
        // application is.
        Ok(parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            Err(ApiError::invalid(
                "baseUrl",
                "the base URL carries credentials (user:password@); give the application's \
                 credential as its token instead",
            ))
        }
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Ok(())
        }
        _ => Err(ApiError::invalid(
            "baseUrl",
            format!("{url:?} is not an http(s) URL"),
        )),
    }
}

pub(super) fn check_token(token: &str) -> Result<Secret, ApiError> {
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
pub(super) fn check_against_connector(
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

/// The fastest pace an application may be given, in requests per second:
/// far past what any SaaS API allows, so that an application on the
/// operator's own network is paced by its concurrency and its answers
/// rather than by a ceiling of the host's.
pub const MAX_REQUESTS_PER_SECOND: f64 = 1_000_000.0;

fn check_pacing(pacing: Pacing) -> Result<Pacing, ApiError> {
    if !(pacing.requests_per_second.is_finite()
        && (0.1..=MAX_REQUESTS_PER_SECOND).contains(&pacing.requests_per_second))
    {
        return Err(ApiError::invalid(
            "pacing.requestsPerSecond",
            "requestsPerSecond must be between 0.1 and 1000000",
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

fn check_password_policy(policy: PasswordPolicy) -> Result<PasswordPolicy, ApiError> {
    policy
        .check()
        .map(|()| policy)
        .map_err(|reason| ApiError::invalid("passwordPolicy", reason))
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
    let write = app_write(state.operations.plugins().map(Arc::as_ref), input)?;
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
        pacing: check_pacing(input.pacing.map(Pacing::from).unwrap_or_default())?,
        guard: check_guard(input.guard.map(GuardOverrides::from).unwrap_or_default())?,
        passwords: check_password_policy(input.password_policy.unwrap_or_default())?,
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
    let moved = lifecycle::origin_move(CURRENT_BASE_URL, &current_settings, &base_url, &settings);
    if moved.is_some() && token.is_none() {
        return Err(ApiError::invalid(
            "token",
            "the change moves the application",
        ));
    }
    change
        .pacing
        .map(Pacing::from)
        .map(check_pacing)
        .transpose()?;
    change
        .guard
        .map(GuardOverrides::from)
        .map(check_guard)
        .transpose()?;
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

/// A temporary password, shown once. (No `Debug`: it is the password.)
#[derive(Serialize, ToSchema)]
pub struct TemporaryPasswordView {
    pub password: String,
}

/// Read, once, the temporary password the host made for a user's account
/// in the application, to hand it to the user. Kept only when the
/// application's password policy says `reveal: once`; reading it wipes it.
#[utoipa::path(post, path = "/apps/{app}/users/{user}/temporary-password", tag = "applications",
    params(("app" = String, Path, description = "name or id"), ("user" = String, Path, description = "id or userName")),
    responses((status = 200, body = TemporaryPasswordView),
        (status = 404, description = "none is kept: the policy never reveals it, it was read, or it expired", body = ApiErrorBody)))]
async fn reveal_temporary_password(
    State(state): State<ApiState>,
    Path((app, user)): Path<(String, String)>,
) -> Result<Json<TemporaryPasswordView>, ApiError> {
    let app = load_app(&state, app).await?;
    let revealed = store_call(&state, move |store| {
        let user = crate::store::user_by_id_or_name(store, &user)?;
        let password = store.reveal_temporary_password(&app.id, &user.id)?;
        Ok((password, user.user_name, app.name))
    })
    .await?;
    match revealed {
        (Some(password), user_name, app_name) => {
            tracing::info!("the temporary password of {user_name} in {app_name} was read");
            Ok(Json(TemporaryPasswordView {
                password: password.expose().to_owned(),
            }))
        }
        (None, user_name, app_name) => Err(ApiError::not_found(format!(
            "no temporary password is kept for {user_name} in {app_name}: its password \
             policy never reveals one, it was read already, or it expired"
        ))),
    }
}

pub(super) async fn load_app(state: &ApiState, app: String) -> Result<AppRecord, ApiError> {
    Ok(state.operations.app(&app).await?)
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
        state.operations.plugins().map(Arc::as_ref),
        &current.connector,
        Some(&base_url),
        &settings,
    )?;
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
            .map(Pacing::from)
            .map(check_pacing)
            .transpose()?
            .filter(|pacing| *pacing != current.pacing),
        guard: change
            .guard
            .map(GuardOverrides::from)
            .map(check_guard)
            .transpose()?
            .filter(|guard| *guard != current.guard),
        passwords: change
            .password_policy
            .map(check_password_policy)
            .transpose()?
            .filter(|policy| *policy != current.passwords),
        token,
        ..AppUpdate::default()
    };
    let app = state.operations.update(&current, update).await?;
    Ok(Json(app.into()))
}

/// Remove an application from scimlink (accounts in it are left as they are).
#[utoipa::path(delete, path = "/apps/{app}", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
async fn delete_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.operations.remove(&app).await?;
    Ok(StatusCode::NO_CONTENT)
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
    Ok(Json(state.operations.activate(&app).await?.into()))
}

/// Deactivate an application: nothing more is sent.
#[utoipa::path(post, path = "/apps/{app}/deactivate", tag = "applications", params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppView), (status = 404, body = ApiErrorBody)))]
async fn deactivate(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(state.operations.deactivate(&app).await?.into()))
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
    Ok(Json(
        state.operations.rotate_token(&app, token).await?.into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paced(requests_per_second: f64) -> Result<Pacing, ApiError> {
        check_pacing(Pacing {
            requests_per_second,
            ..Pacing::default()
        })
    }

    #[test]
    fn a_base_url_with_credentials_is_refused_without_showing_them() {
        assert!(check_url("https://app.example/scim/v2").is_ok());
        for url in [
            "https://someone:s3cret@app.example/scim/v2",
            "https://someone@app.example/scim/v2",
        ] {
            let refused = check_url(url).unwrap_err();
            assert_eq!(refused.detail.field.as_deref(), Some("baseUrl"));
            assert!(refused.detail.message.contains("credentials"), "{url}");
            assert!(!refused.detail.message.contains("s3cret"), "{url}");
            assert!(!refused.detail.message.contains("someone"), "{url}");
        }
    }

    #[test]
    fn a_pace_is_taken_from_a_tenth_of_a_request_a_second_to_the_ceiling() {
        for allowed in [0.1, 10.0, 10_000.0, MAX_REQUESTS_PER_SECOND] {
            assert!(paced(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            0.0,
            0.05,
            -1.0,
            MAX_REQUESTS_PER_SECOND * 2.0,
            f64::INFINITY,
            f64::NAN,
        ] {
            assert!(paced(refused).is_err(), "{refused}");
        }
    }
}
