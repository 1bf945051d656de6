//! Admin API: the audit trail.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiErrorBody, ApiState, PageOf, PageParams, store_call};
use crate::store::{Event, EventQuery, Outcome};

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
}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/events", tag = "events", params(EventFilter, PageParams),
    responses((status = 200, body = PageOf<Event>),
        (status = 400, description = "`since` is neither a time nor a span", body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
async fn list_events(
    State(state): State<ApiState>,
    Query(filter): Query<EventFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<PageOf<Event>>, ApiError> {
    let page = page.page()?;
    let outcome = match filter.outcome.as_deref() {
        None => None,
        Some(text) => Some(
            Outcome::parse(text)
                .ok_or_else(|| ApiError::invalid("outcome", "outcome is success or failure"))?,
        ),
    };
    let since = match filter.since.as_deref() {
        None => None,
        Some(text) => Some(
            parse_since(text, time::OffsetDateTime::now_utc()).ok_or_else(|| {
                let mut error = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "since {text:?} is neither an RFC 3339 time nor a number followed by \
                         s, m, h or d (like 12h)"
                    ),
                );
                error.detail.field = Some("since".into());
                error
            })?,
        ),
    };
    let app = filter.app.clone();
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
        let query = EventQuery {
            app_id,
            operation: filter.operation,
            outcome,
            since,
        };
        store.events(&query, page)
    })
    .await?;
    Ok(Json(PageOf {
        items: listing.items,
        total: listing.total,
        offset: page.offset,
        limit: page.limit,
    }))
}

/// The store's time text for `since`: RFC 3339, or `N` followed by `s`,
/// `m`, `h` or `d` back from `now`.
pub fn parse_since(text: &str, now: time::OffsetDateTime) -> Option<String> {
    let text = text.trim();
    let at = match time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        Ok(at) => at,
        Err(_) => {
            // The unit is the last character, which need not be one byte:
            // splitting at `len - 1` would cut `é` in half and panic.
            let (split, _) = text.char_indices().last()?;
            let (number, unit) = text.split_at(split);
            let number: i64 = number.parse().ok().filter(|n| *n >= 0)?;
            let seconds = match unit {
                "s" => number,
                "m" => number.checked_mul(60)?,
                "h" => number.checked_mul(3600)?,
                "d" => number.checked_mul(86_400)?,
                _ => return None,
            };
            now.checked_sub(time::Duration::seconds(seconds))?
        }
    };
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.to_offset(time::UtcOffset::UTC).format(&format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_times_and_spans() {
        let now = time::macros::datetime!(2026-11-23 12:00:00 UTC);
        assert_eq!(
            parse_since("2h", now).as_deref(),
            Some("2026-11-23T10:00:00.000Z")
        );
        assert_eq!(
            parse_since("7d", now).as_deref(),
            Some("2026-11-16T12:00:00.000Z")
        );
        assert_eq!(
            parse_since("2026-11-23T13:30:00+02:00", now).as_deref(),
            Some("2026-11-23T11:30:00.000Z")
        );
        for bad in [
            "",
            "h",
            "-2h",
            "2w",
            "yesterday",
            "99999999999999999d",
            "5é",
            "é",
            "5\u{1F600}",
            "1\u{0301}",
        ] {
            assert_eq!(parse_since(bad, now), None, "{bad}");
        }
    }
}
