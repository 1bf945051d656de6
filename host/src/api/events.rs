//! Admin API: the audit trail.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::EventView;
use super::{ApiError, ApiErrorBody, ApiState, PageOf, PageParams, store_call};
use crate::store::{EventQuery, Outcome, StoreError, Timestamp, user_by_id_or_name};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// An application's name or id.
    pub app: Option<String>,
    /// `idm_integration_activate`, `user_create_provision`, …
    pub operation: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// Events at or after: an RFC 3339 time, or a span back from now
    /// (`30m`, `12h`, `7d`).
    pub since: Option<String>,
    /// Events before: an RFC 3339 time, or a span back from now.
    pub until: Option<String>,
    /// Events about one user: an id or a userName.
    pub user: Option<String>,
}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/events", tag = "events", params(EventFilter, PageParams),
    responses((status = 200, body = PageOf<EventView>),
        (status = 400, description = "`since` or `until` is neither a time nor a span", body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
async fn list_events(
    State(state): State<ApiState>,
    Query(filter): Query<EventFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<EventView>>, ApiError> {
    let page = page.page()?;
    let outcome = match filter.outcome.as_deref() {
        None => None,
        Some(text) => Some(
            Outcome::parse(text)
                .ok_or_else(|| ApiError::invalid("outcome", "outcome is success or failure"))?,
        ),
    };
    let now = Timestamp::now();
    let since = time_bound("since", filter.since.as_deref(), now)?;
    let until = time_bound("until", filter.until.as_deref(), now)?;
    let app = filter.app.clone();
    let user = filter.user.clone();
    let listing = store_call(&state, move |store| {
        let app_id = match app {
            None => None,
            Some(app) => Some(
                store
                    .get_app(&app)?
                    .map(|found| found.id)
                    // Events outlive their application: a removed one is
                    // still found by the name its events carry.
                    .unwrap_or(app),
            ),
        };
        let object_id = match user {
            None => None,
            Some(user) => Some(match user_by_id_or_name(store, &user) {
                Ok(found) => found.id,
                // Events outlive their user: a removed one is still found
                // by its id.
                Err(StoreError::NotFound { .. }) => user,
                Err(error) => return Err(error),
            }),
        };
        let query = EventQuery {
            app_id,
            operation: filter.operation,
            outcome,
            since,
            until,
            object_id,
        };
        store.events(&query, page)
    })
    .await?;
    Ok(Json(PageOf {
        items: listing.items.into_iter().map(EventView::from).collect(),
        total: listing.total,
        offset: page.offset,
        limit: page.limit,
    }))
}

/// A `since` or `until` bound: an RFC 3339 time, or a span back from `now`.
fn time_bound(
    field: &str,
    text: Option<&str>,
    now: Timestamp,
) -> Result<Option<Timestamp>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    Timestamp::parse_since(text, now).map(Some).ok_or_else(|| {
        let mut error = ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "{field} {text:?} is neither an RFC 3339 time nor a number followed by \
                 s, m, h or d (like 12h)"
            ),
        );
        error.detail.field = Some(field.into());
        error
    })
}
