//! Admin API: who is in an application's scope — the groups bound to it,
//! the users assigned to it directly, and the scope they make together.
//!
//! Direct assignment is allowed only where the application's connector
//! says so in its manifest; every other application takes its users from
//! bound groups.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::applications::load_app;
use super::connectors::served_plugin;
use super::{ApiError, ApiErrorBody, ApiState, PageOf, PageParams, store_call};
use crate::store::{group_id_by_id_or_name, user_by_id_or_name};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_bindings))
        .routes(routes!(bind, unbind))
        .routes(routes!(list_assignments))
        .routes(routes!(assign, unassign))
        .routes(routes!(scope))
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
        let group_id = group_id_by_id_or_name(store, &group)?;
        store.bind(&app, &group_id)
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
        let group_id = group_id_by_id_or_name(store, &group)?;
        store.unbind(&app, &group_id)
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
        let user = user_by_id_or_name(store, &user)?;
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
        let user = user_by_id_or_name(store, &user)?;
        store.unassign(&app, &user.id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
