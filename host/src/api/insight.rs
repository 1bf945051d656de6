//! Admin API: the answers an operator looks for first. How an application
//! is doing at a glance, why a user is or is not provisioned to each
//! application, whether a connection works before it is saved, and what
//! `plugin check` makes of a component.
//!
//! Everything here reads; the connection test sends discovery requests to
//! the application and nothing else, and a check compiles the uploaded
//! component on a runtime apart from the one that serves connectors.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::applications::{check_against_connector, check_token};
use super::views::EventView;
use super::{ApiError, ApiErrorBody, ApiState, Body, store_call};
use crate::engine::directory_user::directory_user;
use crate::engine::lifecycle;
use crate::engine::progress::{self, ReconcileProgress};
use crate::engine::provision::{Desired, desired_document, settings_of};
use crate::runtime::LoadedPlugin;
use crate::runtime::check::CheckError;
use crate::store::{
    AppRecord, AppState, EventQuery, GuardOverrides, HeldState, Outcome, Page, PasswordPolicy,
    Store, StoreResult, Timestamp, user_by_id_or_name,
};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(app_overview))
        .routes(routes!(user_access))
        .routes(routes!(test_connection))
        .routes(routes!(check_component))
        .routes(routes!(check_served))
}

/// The provisioning badge of an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Badge {
    /// Configured, but nothing is sent.
    Inactive,
    /// Provisioning, with nothing waiting for an operator.
    Active,
    /// Provisioning, but offboardings are held by the guard or objects
    /// were refused for good (dead letters).
    Attention,
    /// Held after sustained failures, or its connector is not served.
    Quarantined,
}

/// An application at a glance.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppOverview {
    pub name: String,
    pub label: String,
    pub badge: Badge,
    /// Why the badge is not `active`, in a few words.
    pub badge_reason: Option<String>,
    pub connector: String,
    /// The version this host serves; `null` when it serves none.
    pub connector_version: Option<String>,
    /// Directory users in the application's scope.
    pub users_in_scope: u64,
    /// Users in scope with a linked account: a first sync is done when it
    /// reaches `usersInScope`.
    pub users_linked: u64,
    /// Accounts linked to directory users, deactivated ones included.
    pub accounts_linked: u64,
    /// Linked accounts that are deactivated.
    pub accounts_deactivated: u64,
    /// Groups pushed to the application.
    pub groups_linked: u64,
    /// The time of the newest event about the application (RFC 3339).
    pub last_activity: Option<String>,
    /// Failed attempts in the last 24 hours.
    pub failures_24h: u64,
    pub dead_letters: u64,
    /// Offboardings held by the guard, waiting for an operator.
    pub held_offboardings: u64,
    /// The last reconcile this host ran, or the one running.
    pub reconcile: Option<ReconcileProgress>,
}

/// The application at a glance: its badge and why, its accounts, its
/// recent failures and how far a reconcile has come. Poll it to follow a
/// first sync (`usersLinked` against `usersInScope`).
#[utoipa::path(get, path = "/apps/{app}/overview", tag = "applications",
    params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = AppOverview), (status = 404, body = ApiErrorBody)))]
async fn app_overview(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<AppOverview>, ApiError> {
    let app = super::applications::load_app(&state, app).await?;
    let served = served(&state, &app);
    let overview = store_call(&state, move |store| overview(store, app, served)).await?;
    Ok(Json(overview))
}

/// The version of `app`'s connector this host serves, if it serves one.
fn served(state: &ApiState, app: &AppRecord) -> Option<Arc<LoadedPlugin>> {
    state.operations.served(app).ok()
}

fn overview(
    store: &dyn Store,
    app: AppRecord,
    served: Option<Arc<LoadedPlugin>>,
) -> StoreResult<AppOverview> {
    let tally = store.scope_tally(&app.id)?;
    let dead_letters = store.dead_letters(&app.id)?.len() as u64;
    let held_offboardings: u64 = store
        .held_changes(Some(&app.id))?
        .iter()
        .filter(|held| held.state == HeldState::Held)
        .map(|held| held.offboarding)
        .sum();
    let newest = Page {
        offset: 0,
        limit: 1,
    };
    let last_activity = store
        .events(
            &EventQuery {
                app_id: Some(app.id.clone()),
                ..EventQuery::default()
            },
            newest,
        )?
        .items
        .first()
        .map(|event| event.at.to_string());
    let failures_24h = store
        .events(
            &EventQuery {
                app_id: Some(app.id.clone()),
                outcome: Some(Outcome::Failure),
                since: Some(Timestamp::now().minus(std::time::Duration::from_secs(86_400))),
                ..EventQuery::default()
            },
            newest,
        )?
        .total;
    let (badge, badge_reason) = match (&app.state, &served) {
        (AppState::Quarantined, _) => (
            Badge::Quarantined,
            Some(
                app.state_reason
                    .clone()
                    .unwrap_or_else(|| "quarantined".into()),
            ),
        ),
        (AppState::Active, None) => (
            Badge::Quarantined,
            Some(format!(
                "this host does not serve the connector {}",
                app.connector
            )),
        ),
        (AppState::Inactive, _) => (
            Badge::Inactive,
            Some("configured but not active: nothing is sent".into()),
        ),
        (AppState::Active, Some(_)) if held_offboardings > 0 => (
            Badge::Attention,
            Some(format!(
                "{held_offboardings} {} held by the guard",
                if held_offboardings == 1 {
                    "offboarding"
                } else {
                    "offboardings"
                }
            )),
        ),
        (AppState::Active, Some(_)) if dead_letters > 0 => (
            Badge::Attention,
            Some(format!(
                "{dead_letters} {} refused for good",
                if dead_letters == 1 {
                    "object"
                } else {
                    "objects"
                }
            )),
        ),
        (AppState::Active, Some(_)) => (Badge::Active, None),
    };
    Ok(AppOverview {
        users_in_scope: tally.users_in_scope,
        users_linked: tally.users_linked,
        accounts_linked: tally.accounts,
        accounts_deactivated: tally.accounts_deactivated,
        groups_linked: tally.groups,
        last_activity,
        failures_24h,
        dead_letters,
        held_offboardings,
        reconcile: progress::of(&app.id),
        badge,
        badge_reason,
        connector_version: served.map(|plugin| plugin.identity().version.clone()),
        connector: app.connector,
        label: app.label,
        name: app.name,
    })
}

/// A user, seen from every application.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAccess {
    pub user_id: String,
    pub user_name: String,
    pub applications: Vec<AppAccess>,
}

/// One application, seen from one user.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppAccess {
    pub app: String,
    pub label: String,
    /// `active`, `inactive` or `quarantined`.
    pub app_state: String,
    pub in_scope: bool,
    /// The bound groups that hold the user, by name.
    pub through_groups: Vec<String>,
    /// Whether the user is assigned to the application directly.
    pub assigned: bool,
    /// Why the user is or is not provisioned, in plain words.
    pub why: String,
    /// The account linked to the user, if any.
    pub account: Option<LinkedAccount>,
    /// The newest event about the user in the application.
    pub last_event: Option<EventView>,
    /// The newest failure about the user in the application.
    pub last_failure: Option<EventView>,
    /// The document the connector makes of the user now; `null` when the
    /// connector is not served here or refuses the user.
    #[schema(value_type = Option<Object>)]
    pub document: Option<Value>,
    /// Why there is no document, when there is none.
    pub document_note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkedAccount {
    /// The account's id in the application.
    pub remote_id: String,
    pub deactivated: bool,
    /// When the application last accepted a write of it (RFC 3339).
    pub updated: String,
}

/// For each application: whether the user is in scope and why (which bound
/// group, or a direct assignment), the linked account, the last attempt
/// and its outcome, the last failure, and the document the connector
/// makes of the user. The applications are not contacted.
#[utoipa::path(get, path = "/users/{user}/apps", tag = "directory",
    params(("user" = String, Path, description = "id or userName")),
    responses((status = 200, body = UserAccess), (status = 404, body = ApiErrorBody)))]
async fn user_access(
    State(state): State<ApiState>,
    Path(user): Path<String>,
) -> Result<Json<UserAccess>, ApiError> {
    let apps = store_call(&state, all_apps).await?;
    let served: BTreeMap<String, Arc<LoadedPlugin>> = apps
        .iter()
        .filter_map(|app| Some((app.id.clone(), served(&state, app)?)))
        .collect();
    // The mapping calls the connector: it runs with the store reads, off
    // the async workers. The reads are one snapshot: an account and the
    // event that tells of it are committed together, and a view read in
    // several transactions could show the event without the account.
    let access = store_call(&state, move |store| {
        let mut access = None;
        store.in_one_read(&mut || access = Some(user_access_now(store, &user, &apps, &served)));
        access.unwrap_or_else(|| user_access_now(store, &user, &apps, &served))
    })
    .await?;
    Ok(Json(access))
}

/// [`user_access`] on the blocking pool.
fn user_access_now(
    store: &dyn Store,
    user: &str,
    apps: &[AppRecord],
    served: &BTreeMap<String, Arc<LoadedPlugin>>,
) -> StoreResult<UserAccess> {
    let user = user_by_id_or_name(store, user)?;
    let applications = apps
        .iter()
        .map(|app| {
            let plugin = served.get(&app.id).cloned();
            access_of(store, &user, app.clone(), plugin)
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(UserAccess {
        user_id: user.id,
        user_name: user.user_name,
        applications,
    })
}

fn all_apps(store: &dyn Store) -> StoreResult<Vec<AppRecord>> {
    let mut apps = Vec::new();
    loop {
        let page = store.list_apps(Page {
            offset: apps.len() as u64,
            limit: 1000,
        })?;
        let done =
            page.items.is_empty() || apps.len() as u64 + page.items.len() as u64 >= page.total;
        apps.extend(page.items);
        if done {
            return Ok(apps);
        }
    }
}

fn access_of(
    store: &dyn Store,
    user: &crate::store::UserRecord,
    app: AppRecord,
    plugin: Option<Arc<LoadedPlugin>>,
) -> StoreResult<AppAccess> {
    let in_scope = store.user_in_scope(&app.id, &user.id)?;
    let mut through_groups = Vec::new();
    for group_id in store.bound_groups_containing(&app.id, &user.id)? {
        if let Some(group) = store.get_group(&group_id)? {
            through_groups.push(group.display_name);
        }
    }
    let assigned = store.assignments(&app.id)?.contains(&user.id);
    let account = store
        .ledger_entry(&app.id, "user", &user.id)?
        .map(|entry| LinkedAccount {
            deactivated: entry.doc_hash == crate::store::rules::DEACTIVATED,
            remote_id: entry.remote_id,
            updated: entry.updated.to_string(),
        });
    let newest = |outcome| -> StoreResult<Option<EventView>> {
        let query = EventQuery {
            app_id: Some(app.id.clone()),
            object_id: Some(user.id.clone()),
            outcome,
            ..EventQuery::default()
        };
        let page = Page {
            offset: 0,
            limit: 1,
        };
        Ok(store
            .events(&query, page)?
            .items
            .into_iter()
            .next()
            .map(EventView::from))
    };
    let last_event = newest(None)?;
    let last_failure = newest(Some(Outcome::Failure))?;
    let bound: Vec<String> = store
        .bindings(&app.id)?
        .into_iter()
        .map(|group| group.display_name)
        .collect();
    let why = explain(&app, user, in_scope, &through_groups, assigned, &bound);
    let (document, document_note) = match plugin {
        None => (
            None,
            Some(format!(
                "this host does not serve the connector {}",
                app.connector
            )),
        ),
        Some(plugin) => {
            match desired_document(&plugin, &directory_user(user), &settings_of(&app)) {
                Ok(document) => (Some(document), None),
                Err(Desired::Refused(error)) => (
                    None,
                    Some(format!("the connector refuses the user: {error}")),
                ),
                Err(Desired::Failed(error)) => (None, Some(error.to_string())),
            }
        }
    };
    Ok(AppAccess {
        app: app.name,
        label: app.label,
        app_state: app.state.as_str().to_string(),
        in_scope,
        through_groups,
        assigned,
        why,
        account,
        last_event,
        last_failure,
        document,
        document_note,
    })
}

/// Why `user` is or is not provisioned to `app`, in plain words.
fn explain(
    app: &AppRecord,
    user: &crate::store::UserRecord,
    in_scope: bool,
    through_groups: &[String],
    assigned: bool,
    bound: &[String],
) -> String {
    let name = &app.name;
    if !in_scope {
        if bound.is_empty() {
            return format!(
                "Not in scope: no group is bound to {name}, and {} is not assigned to it directly.",
                user.user_name
            );
        }
        let which = if bound.len() == 1 {
            "the group"
        } else {
            "any group"
        };
        return format!(
            "Not in scope: {} is not a member of {which} bound to {name} ({}), and is not \
             assigned to it directly.",
            user.user_name,
            bound.join(", ")
        );
    }
    let mut reasons = Vec::new();
    match through_groups {
        [] => {}
        [group] => reasons.push(format!("a member of the group {group}")),
        groups => reasons.push(format!("a member of the groups {}", groups.join(", "))),
    }
    if assigned {
        reasons.push("assigned directly".to_string());
    }
    let mut why = format!("In scope: {}.", reasons.join(", and "));
    if !user.active {
        why.push_str(" Suspended in the directory: the account is kept deactivated.");
    }
    match app.state {
        AppState::Inactive => why.push_str(" The application is not active: nothing is sent."),
        AppState::Quarantined => {
            why.push_str(" The application is quarantined: nothing is sent until it resumes.")
        }
        AppState::Active => {}
    }
    why
}

/// What to test: a connection not saved yet, or an application's with
/// some of its fields changed.
/// No `Debug`: it holds a token.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionTestInput {
    /// An application to start from (name or id): the fields not given are
    /// its own, its token among them.
    pub app: Option<String>,
    /// Required without `app`.
    pub connector: Option<String>,
    /// Default: the application's, or the connector's template.
    pub base_url: Option<String>,
    pub settings: Option<BTreeMap<String, String>>,
    /// Required without `app`; write-only.
    pub token: Option<String>,
}

/// How a connection test went.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTestView {
    pub ok: bool,
    /// The base URL tested, its placeholders filled.
    pub base_url: String,
    pub http_status: Option<u16>,
    pub summary: String,
}

/// Test a connection before saving it: the discovery requests activation
/// makes, with the token given. Nothing is stored and no event is
/// recorded; a failed test is a 200 with `ok: false` and why.
#[utoipa::path(post, path = "/connection-test", tag = "applications",
    request_body = ConnectionTestInput,
    responses((status = 200, body = ConnectionTestView),
        (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
async fn test_connection(
    State(state): State<ApiState>,
    Body(input): Body<ConnectionTestInput>,
) -> Result<Json<ConnectionTestView>, ApiError> {
    let current = match &input.app {
        Some(app) => Some(super::applications::load_app(&state, app.clone()).await?),
        None => None,
    };
    let connector = match (&input.connector, &current) {
        (Some(connector), _) => connector.clone(),
        (None, Some(app)) => app.connector.clone(),
        (None, None) => {
            return Err(ApiError::invalid(
                "connector",
                "name a connector, or an application to start from",
            ));
        }
    };
    let settings = match (input.settings, &current) {
        (Some(settings), _) => settings,
        (None, Some(app)) => app.settings.iter().cloned().collect(),
        (None, None) => BTreeMap::new(),
    };
    let base_url = input
        .base_url
        .filter(|url| !url.trim().is_empty())
        .or_else(|| current.as_ref().map(|app| app.base_url.clone()));
    let base_url = check_against_connector(
        state.operations.plugins().map(Arc::as_ref),
        &connector,
        base_url.as_deref(),
        &settings,
    )?;
    let token = match (input.token.filter(|token| !token.is_empty()), &current) {
        (Some(token), _) => check_token(&token)?,
        (None, Some(app)) => {
            // The saved token goes only where it was given for: the same
            // connector, at the same origin.
            if connector != app.connector {
                return Err(ApiError::invalid(
                    "token",
                    "a test with another connector needs a token of its own",
                ));
            }
            let settings_now: BTreeMap<String, String> = app.settings.iter().cloned().collect();
            if let Some(moved) =
                lifecycle::origin_move(&app.base_url, &settings_now, &base_url, &settings)
            {
                return Err(ApiError::invalid(
                    "token",
                    format!(
                        "the test would send {}'s token from {} to {}: give the token for {}",
                        app.name, moved.from, moved.to, moved.to
                    ),
                ));
            }
            let id = app.id.clone();
            store_call(&state, move |store| store.app_token(&id)).await?
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "token",
                "a token is needed to test a connection",
            ));
        }
    };
    let now = Timestamp::now();
    let candidate = AppRecord {
        id: String::new(),
        name: "connection-test".into(),
        label: "connection test".into(),
        connector,
        base_url,
        manage_groups: false,
        state: AppState::Inactive,
        settings: settings.into_iter().collect(),
        capabilities: Value::Null,
        pacing: Default::default(),
        state_reason: None,
        guard: GuardOverrides::default(),
        passwords: PasswordPolicy::default(),
        version: 0,
        created: now,
        modified: now,
    };
    let resolved = lifecycle::resolved_base_url(&candidate)
        .map_err(|reason| ApiError::invalid("baseUrl", reason))?;
    let view = match lifecycle::test_connection(&candidate, &token).await {
        Ok(tested) => ConnectionTestView {
            ok: true,
            base_url: resolved,
            http_status: Some(tested.http_status),
            summary: tested.summary,
        },
        Err(untested) => ConnectionTestView {
            ok: false,
            base_url: resolved,
            http_status: untested.http_status,
            summary: untested.summary,
        },
    };
    Ok(Json(view))
}

/// A component's bytes, as the body of `POST /plugins/check`.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ComponentFile(#[allow(dead_code)] Vec<u8>);

/// The largest component `POST /plugins/check` takes.
const MAX_COMPONENT_BYTES: usize = 16 << 20;

/// Check a component exactly as `scimlink plugin check FILE --format json`
/// does: the host's validation, the manifest, what it makes of a sample
/// user and group, and what each call cost. The body is the component's
/// bytes. It is not loaded into the host.
#[utoipa::path(post, path = "/plugins/check", tag = "connectors",
    request_body(content = ComponentFile, content_type = "application/octet-stream"),
    responses((status = 200, description = "the report of `plugin check --format json`", body = Object),
        (status = 422, description = "not a valid connector, and why", body = ApiErrorBody),
        (status = 503, description = "the host cannot run a check now", body = ApiErrorBody)))]
async fn check_component(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a component is at most {MAX_COMPONENT_BYTES} bytes"),
        )
    };
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the component could not be read: {rejection}"),
            )
        }
    })?;
    if body.len() > MAX_COMPONENT_BYTES {
        return Err(too_large());
    }
    let checked = tokio::task::spawn_blocking(move || {
        crate::runtime::check::check_bytes(&body, "uploaded.wasm")
    })
    .await
    .map_err(|error| {
        tracing::error!("a component check stopped: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the check stopped",
        )
    })?;
    checked.map(Json).map_err(|error| match error {
        CheckError::Invalid(reason) => ApiError::invalid("component", reason),
        CheckError::Host(reason) => {
            tracing::error!("a component check could not run: {reason}");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "check_unavailable", reason)
        }
    })
}

/// The `plugin check` report of the version of a connector this host
/// serves. Fuel is counted only by a host started with metering, so it
/// may be `null`.
#[utoipa::path(get, path = "/plugins/{name}/check", tag = "connectors",
    params(("name" = String, Path, description = "the connector's manifest name")),
    responses((status = 200, description = "the report of `plugin check --format json`", body = Object),
        (status = 404, body = ApiErrorBody), (status = 409, description = "the connector fails its check", body = ApiErrorBody)))]
async fn check_served(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let plugin = state
        .operations
        .plugins()
        .and_then(|registry| registry.get(&name))
        .ok_or_else(|| ApiError::not_found(format!("no connector named {name:?} is served")))?;
    let report = tokio::task::spawn_blocking(move || {
        let load = crate::runtime::LoadReport {
            from_cache: true,
            elapsed: std::time::Duration::ZERO,
        };
        let file = format!("{}.wasm", plugin.name());
        crate::runtime::check::report(&plugin, &load, &file)
    })
    .await
    .map_err(|error| {
        tracing::error!("a connector check stopped: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the check stopped",
        )
    })?;
    report
        .map(Json)
        .map_err(|reason| ApiError::new(StatusCode::CONFLICT, "check_failed", reason))
}
