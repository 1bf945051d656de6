//! The engine's safety nets, for operators: dead letters (objects an
//! application refused for good) with replay, and the offboardings the
//! deprovisioning guard holds per application, with approval and rejection
//! ([`crate::engine::guard`]).
//!
//! Each decision ends in an audit event naming who it concerned.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::applications::load_app;
use super::views::{DeadLetterView, HeldChangeView};
use super::{ApiError, ApiErrorBody, ApiState, Body, PageOf, PageParams, store_call};
use crate::engine::{guard, lifecycle};
use crate::store::Outcome;

pub const REPLAY: &str = "dead_letter_replay";

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_dead_letters))
        .routes(routes!(list_held_changes))
        .routes(routes!(approve_held_change))
        .routes(routes!(reject_held_change))
}

/// The objects an application refused for a reason another attempt will not
/// cure, oldest first.
#[utoipa::path(get, path = "/apps/{app}/dead-letters", tag = "safety",
    params(("app" = String, Path, description = "name or id"), PageParams),
    responses((status = 200, body = PageOf<DeadLetterView>), (status = 404, body = ApiErrorBody)))]
async fn list_dead_letters(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<DeadLetterView>>, ApiError> {
    let page = page.page()?;
    let app = load_app(&state, app).await?;
    let letters = store_call(&state, move |store| store.dead_letters(&app.id)).await?;
    Ok(Json(PageOf::slice(letters, page, DeadLetterView::from)))
}

/// Which dead letters to replay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayInput {
    /// Ids of the users and groups to replay; all when absent.
    pub objects: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    /// How many objects were queued for another sync.
    pub replayed: u64,
}

/// Replay dead letters: they leave the list and their objects are synced
/// again. One that fails again is listed again.
#[utoipa::path(post, path = "/apps/{app}/dead-letters/replay", tag = "safety",
    params(("app" = String, Path, description = "name or id")), request_body = ReplayInput,
    responses((status = 200, body = Replayed), (status = 404, body = ApiErrorBody)))]
async fn replay_dead_letters(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Body(input): Body<ReplayInput>,
) -> Result<Json<Replayed>, ApiError> {
    let app = load_app(&state, app).await?;
    let id = app.id.clone();
    let replayed = store_call(&state, move |store| {
        store.replay_dead_letters(&id, input.objects.as_deref())
    })
    .await?;
    if replayed > 0 {
        state
            .operations
            .record(lifecycle::event(
                &app,
                REPLAY,
                Outcome::Success,
                None,
                format!("{replayed} dead letter(s) queued for another sync"),
            ))
            .await;
    }
    Ok(Json(Replayed { replayed }))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeldFilter {
    /// An application's name or id.
    pub app: Option<String>,
}

/// The deprovisioning guard's holds, newest first, decided ones included.
/// A hold is one application's: the offboardings (deactivations,
/// deletions, suspensions) that came after those within its window crossed
/// its threshold, each with the account, what would have happened and why.
/// Nothing of them was sent.
#[utoipa::path(get, path = "/held-changes", tag = "safety", params(HeldFilter, PageParams),
    responses((status = 200, body = PageOf<HeldChangeView>), (status = 404, body = ApiErrorBody)))]
async fn list_held_changes(
    State(state): State<ApiState>,
    Query(filter): Query<HeldFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<HeldChangeView>>, ApiError> {
    let page = page.page()?;
    let app_id = match filter.app {
        Some(app) => Some(load_app(&state, app).await?.id),
        None => None,
    };
    let held = store_call(&state, move |store| store.held_changes(app_id.as_deref())).await?;
    Ok(Json(PageOf::slice(held, page, HeldChangeView::from)))
}

/// Approve a hold: every offboarding it lists is carried out, past the
/// guard (a user back in scope meanwhile is left alone). The application's
/// count starts again from the decision.
#[utoipa::path(post, path = "/held-changes/{id}/approve", tag = "safety",
    params(("id" = String, Path, description = "the hold's id")),
    responses((status = 200, body = HeldChangeView), (status = 404, body = ApiErrorBody),
        (status = 409, description = "already decided", body = ApiErrorBody)))]
async fn approve_held_change(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<HeldChangeView>, ApiError> {
    decide(state, id, true).await
}

/// Reject a hold: nothing of it is sent, and its accounts are released —
/// left as they are in the application and no longer managed (a
/// `user_release` event each, rule `guard: rejected`), so no later sync
/// offboards them; a user created again in the directory takes its account
/// over again. The application's count starts again from the decision.
#[utoipa::path(post, path = "/held-changes/{id}/reject", tag = "safety",
    params(("id" = String, Path, description = "the hold's id")),
    responses((status = 200, body = HeldChangeView), (status = 404, body = ApiErrorBody),
        (status = 409, description = "already decided", body = ApiErrorBody)))]
async fn reject_held_change(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<HeldChangeView>, ApiError> {
    decide(state, id, false).await
}

async fn decide(
    state: ApiState,
    id: String,
    approve: bool,
) -> Result<Json<HeldChangeView>, ApiError> {
    let held = store_call(&state, move |store| guard::decide(store, &id, approve)).await?;
    Ok(Json(held.into()))
}
