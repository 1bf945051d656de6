//! Admin API: work done in an application on demand — the plan of a sync,
//! provisioning a user or a group now, reconcile, import of the
//! application's own accounts, and release of an account.
//!
//! Each operation goes through the application's SCIM client that the
//! engine uses, so the application's rate limit, circuit breaker and
//! `Retry-After` pause hold for it too; each answers with what it did,
//! including the events it recorded.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::applications::{app_client, connection_failed, load_app};
use super::connectors::served_plugin;
use super::directory::find_group;
use super::{ApiError, ApiErrorBody, ApiState, Body, PageOf, PageParams, store_call};
use crate::store::{AppRecord, AppState, Event, Outcome, Timestamp};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(plan))
        .routes(routes!(provision_user))
        .routes(routes!(release_account))
        .routes(routes!(provision_group))
        .routes(routes!(reconcile))
        .routes(routes!(list_importable, import_from_app))
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
