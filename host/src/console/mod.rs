//! The operator console, under `/console` on the host's own listener.
//!
//! The console is a small front end of plain JavaScript and CSS, embedded
//! in the binary ([`assets`]), over the admin API. The browser calls the
//! very routes of `/api/v1` under `/console/api/v1`, with a session cookie
//! in place of the bearer token: every check, every error and every
//! guarantee of the API holds in the console, and nothing in it can do
//! what the API cannot.
//!
//! Invariants:
//! - the admin token is typed once into the sign-in form, POSTed in the
//!   body, compared in constant time and never kept, logged, put in a
//!   URL or shown on a page;
//! - a session is a cookie that is `HttpOnly`, `SameSite=Strict`, scoped to
//!   `/console`, and `Secure` when the request came over HTTPS (a proxy in
//!   front says so with `X-Forwarded-Proto` or `Forwarded`);
//! - every request that changes state carries the session's CSRF token
//!   (the `X-CSRF-Token` header from script, the `csrf` field from a form)
//!   and comes from the console's own origin; any other gets 403 and
//!   changes nothing;
//! - sign-in needs no CSRF token, since it needs the admin token itself,
//!   but a sign-in from another origin is refused too;
//! - pages carry a Content-Security-Policy that allows scripts, styles and
//!   connections to this origin only: nothing is fetched from elsewhere.

mod assets;
pub mod sessions;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::{ApiError, ApiState};
use crate::auth::BearerToken;
use sessions::{Found, SessionPolicy, Sessions, Use};

/// The session cookie's name.
pub const COOKIE: &str = "scimlink_console";
/// The header script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The largest sign-in or sign-out form read.
const MAX_FORM_BYTES: usize = 8 << 10;

#[derive(Clone)]
struct ConsoleState {
    admin_token: BearerToken,
    sessions: Arc<Sessions>,
}

/// The console's routes: its pages, its assets, and `admin` (the admin
/// API's routes, under `/api/v1`) behind the session.
pub fn router(state: ApiState, admin: Router<ApiState>, policy: SessionPolicy) -> Router {
    let console = ConsoleState {
        admin_token: state.admin_token.clone(),
        sessions: Arc::new(Sessions::new(policy)),
    };
    let api = admin
        .layer(middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ))
        .with_state(state);
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(|| async { see_other("/console") }))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/assets/{file}", get(asset))
        .with_state(console)
        .nest("/console", api)
        .layer(middleware::from_fn(protective_headers))
}

/// Headers every console answer carries.
async fn protective_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it, browsers send `Origin: null` on a form's
    // POST, and the origin check could not tell the console's own forms.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The session cookie of a request, if it carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The header a page sends on the requests it makes by itself, to refresh
/// what it shows: they do not keep the session from going idle.
pub const POLL_HEADER: &str = "x-console-poll";

fn session(state: &ConsoleState, headers: &HeaderMap) -> Option<(String, Found)> {
    let id = session_cookie(headers)?;
    let use_ = if headers.contains_key(POLL_HEADER) {
        Use::Poll
    } else {
        Use::Operator
    };
    let found = state.sessions.find(id, Instant::now(), use_)?;
    Some((id.to_string(), found))
}

/// Whether a request that changes state comes from the console's own
/// origin. Browsers send `Origin` on every POST and `Sec-Fetch-Site` on
/// every request; a request without either (a script, curl) is judged by
/// its CSRF token alone.
///
/// The origin's host and port must be the host the request was sent to:
/// its `Host` (or, over HTTP/2, the URI's authority), or the
/// `X-Forwarded-Host` a proxy in front sets when it rewrites `Host`. A
/// page on another origin can set neither on a form or a simple request.
fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|site| site == "cross-site" || site == "same-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some((_, authority)) = origin.split_once("://") else {
        // `null`: a sandboxed page, a redirect from elsewhere, a file.
        return false;
    };
    let header_value = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(',').next().unwrap_or_default().trim())
    };
    [
        header_value(header::HOST.as_str()),
        header_value("x-forwarded-host"),
        uri.authority().map(|authority| authority.as_str()),
    ]
    .into_iter()
    .flatten()
    .any(|host| !host.is_empty() && authority.eq_ignore_ascii_case(host))
}

/// Whether the browser reached the host over HTTPS, as far as the host can
/// tell: it serves plain HTTP itself, so only a proxy in front can say.
fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split([';', ','])
                .any(|pair| pair.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

/// The admin API behind the session: a request without an open session
/// gets 401; one that changes state without the session's CSRF token, or
/// from another origin, gets 403.
async fn require_session(
    State(state): State<ConsoleState>,
    request: Request,
    next: Next,
) -> Response {
    let Some((_, found)) = session(&state, request.headers()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signed_out",
            "the console session has ended: sign in again",
        )
        .into_response();
    };
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe {
        let presented = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok());
        if !found.accepts_csrf(presented) || !same_origin(request.headers(), request.uri()) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "the request does not carry this session's CSRF token",
            )
            .into_response();
        }
    }
    next.run(request).await
}

fn see_other(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn html(status: StatusCode, page: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

/// `GET /console`: the console, or the way to sign in.
async fn index(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    match session(&state, &headers) {
        Some((_, found)) => html(StatusCode::OK, assets::index_page(found.csrf())),
        None => see_other("/console/sign-in"),
    }
}

async fn sign_in_page(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if session(&state, &headers).is_some() {
        return see_other("/console");
    }
    html(StatusCode::OK, assets::sign_in_page(None))
}

/// The fields of a small url-encoded form; `None` when the body is too
/// large or unreadable.
async fn form_fields(body: Body) -> Option<Vec<(String, String)>> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.ok()?;
    Some(form_urlencoded::parse(&bytes).into_owned().collect())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `POST /console/sign-in`: the form field `token` is the admin token.
async fn sign_in(State(state): State<ConsoleState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !same_origin(&parts.headers, &parts.uri) {
        return html(
            StatusCode::FORBIDDEN,
            assets::sign_in_page(Some("Sign in from the console's own page.")),
        );
    }
    let Some(fields) = form_fields(body).await else {
        return html(
            StatusCode::BAD_REQUEST,
            assets::sign_in_page(Some("The form could not be read.")),
        );
    };
    let token = field(&fields, "token").map(str::trim).unwrap_or_default();
    if token.is_empty() || !state.admin_token.is(token) {
        // Said the same way whatever was typed: nothing about the token
        // is echoed.
        return html(
            StatusCode::UNAUTHORIZED,
            assets::sign_in_page(Some(
                "That is not the admin token. Use the token the host printed at its first \
                 start, or the one in SCIMLINK_ADMIN_TOKEN.",
            )),
        );
    }
    let opened = match state.sessions.open(Instant::now()) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!("console: cannot open a session: {error}");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                assets::sign_in_page(Some(
                    "The host's random source failed; no session was opened.",
                )),
            );
        }
    };
    let secure = if over_https(&parts.headers) {
        "; Secure"
    } else {
        ""
    };
    let lifetime = state.sessions.policy().lifetime.as_secs();
    let cookie = format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={lifetime}{secure}",
        opened.id
    );
    let mut response = see_other("/console");
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            assets::sign_in_page(Some("The session could not be opened.")),
        ),
    }
}

/// `POST /console/sign-out`: ends the session (form field `csrf`).
async fn sign_out(State(state): State<ConsoleState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some((id, found)) = session(&state, &parts.headers) else {
        return see_other("/console/sign-in");
    };
    let fields = form_fields(body).await.unwrap_or_default();
    if !found.accepts_csrf(field(&fields, "csrf")) || !same_origin(&parts.headers, &parts.uri) {
        return html(
            StatusCode::FORBIDDEN,
            assets::message_page("Not signed out: the form did not carry this session's token."),
        );
    }
    state.sessions.close(&id);
    let mut response = see_other("/console/sign-in");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "scimlink_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// `GET /console/assets/{file}`: the embedded script and style sheet.
async fn asset(Path(file): Path<String>, RawQuery(query): RawQuery) -> Response {
    let Some(asset) = assets::asset(&file) else {
        return ApiError::not_found("no console asset of that name").into_response();
    };
    // Pages name the files by their digest, so a browser may keep the
    // one asked for by its current digest for good. Asked for by another
    // (a page of a newer or older host behind the same balancer), it is
    // not this content: it must not be kept under that name.
    let current = query
        .as_deref()
        .and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "v")
                .map(|(_, value)| value.into_owned())
        })
        .is_some_and(|version| version == asset.digest);
    let caching = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, caching),
        ],
        asset.content,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; scimlink_console=abc; b=2")]);
        assert_eq!(session_cookie(&map), Some("abc"));
        let map = headers(&[("cookie", "a=1"), ("cookie", "scimlink_console=xyz")]);
        assert_eq!(session_cookie(&map), Some("xyz"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "scimlink_console=")])),
            None
        );
        assert_eq!(
            session_cookie(&headers(&[("cookie", "xscimlink_console=1")])),
            None
        );
    }

    #[test]
    fn a_request_from_another_origin_is_not_the_consoles() {
        let path = Uri::from_static("/console/sign-in");
        let same = |pairs: &[(&'static str, &'static str)]| same_origin(&headers(pairs), &path);
        assert!(same(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ]));
        assert!(!same(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ]));
        assert!(!same(&[("host", "127.0.0.1:8080"), ("origin", "null")]));
        assert!(!same(&[("sec-fetch-site", "cross-site")]));
        assert!(same(&[("sec-fetch-site", "same-origin")]));
        assert!(same(&[]), "curl sends neither");
        // Behind a proxy that rewrites Host.
        assert!(same(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "scim.example.com"),
            ("origin", "https://scim.example.com")
        ]));
        // Over HTTP/2 the host is the URI's authority.
        let h2 = Uri::from_static("https://scim.example.com/console/sign-in");
        assert!(same_origin(
            &headers(&[("origin", "https://scim.example.com")]),
            &h2
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://scim.example.com")]),
            &path
        ));
    }

    #[test]
    fn https_is_known_from_the_proxy_in_front() {
        assert!(over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(over_https(&headers(&[(
            "forwarded",
            "for=1.2.3.4;proto=https"
        )])));
        assert!(!over_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!over_https(&headers(&[])));
    }
}
