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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::EventView;
use super::{ApiError, ApiErrorBody, ApiState, Body, PageOf, PageParams};
use crate::engine::groups::GroupSynced;
use crate::engine::import::{Imported, RemoteUser};
use crate::engine::plan::Planned;
use crate::engine::provision::Synced;
use crate::engine::reconcile::Reconciled;

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
    responses((status = 200, body = PageOf<Planned>), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application's connector is not served", body = ApiErrorBody)))]
async fn plan(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<Planned>>, ApiError> {
    let page = page.page()?;
    let planned = state.operations.plan(&app).await?;
    Ok(Json(PageOf::slice(planned, page, |operation| operation)))
}

/// Reconcile an application now: read it back, repair every drift, and
/// show what was found.
#[utoipa::path(post, path = "/apps/{app}/reconcile", tag = "applications",
    params(("app" = String, Path, description = "name or id")),
    responses((status = 200, body = Reconciled), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed the listing", body = ApiErrorBody)))]
async fn reconcile(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<Reconciled>, ApiError> {
    Ok(Json(state.operations.reconcile(&app).await?))
}

/// The application's accounts, each `new` (only there) or `imported`
/// (linked to a directory user). Nothing is written.
#[utoipa::path(get, path = "/apps/{app}/import", tag = "applications",
    params(("app" = String, Path, description = "name or id"), PageParams),
    responses((status = 200, body = PageOf<RemoteUser>), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed the listing", body = ApiErrorBody)))]
async fn list_importable(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<RemoteUser>>, ApiError> {
    let page = page.page()?;
    let users = state.operations.importable(&app).await?;
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
    responses((status = 200, body = Imported), (status = 404, body = ApiErrorBody),
        (status = 409, description = "the application is not active or its connector is not served", body = ApiErrorBody),
        (status = 502, description = "the application failed the listing", body = ApiErrorBody)))]
async fn import_from_app(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Body(input): Body<ImportInput>,
) -> Result<Json<Imported>, ApiError> {
    let done = state
        .operations
        .import(&app, input.users.as_deref(), input.group)
        .await?;
    Ok(Json(done))
}

/// The result of provisioning one user now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisionView {
    pub user_id: String,
    pub result: Synced,
    /// The events the attempt recorded, newest first.
    pub events: Vec<EventView>,
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
    let released = state.operations.release(&app, &user).await?;
    Ok(Json(ReleasedView {
        user_id: released.user_id,
        remote_id: released.remote_id,
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
    let done = state.operations.provision_user(&app, &user).await?;
    Ok(Json(ProvisionView {
        user_id: done.user_id,
        result: done.result,
        events: done.events.into_iter().map(EventView::from).collect(),
    }))
}

/// One user of a group provisioned on demand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisionedMember {
    pub user_id: String,
    pub result: Synced,
}

/// The result of provisioning one group and its members now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisionGroupView {
    pub group_id: String,
    /// Its users (nested groups' included), each with what was done.
    pub members: Vec<ProvisionedMember>,
    /// What was done to the group itself.
    pub group: GroupSynced,
    /// The events the attempt recorded, newest first.
    pub events: Vec<EventView>,
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
    let done = state.operations.provision_group(&app, &group).await?;
    Ok(Json(ProvisionGroupView {
        group_id: done.group_id,
        members: done
            .members
            .into_iter()
            .map(|(user_id, result)| ProvisionedMember { user_id, result })
            .collect(),
        group: done.group,
        events: done.events.into_iter().map(EventView::from).collect(),
    }))
}
