//! A simulated SCIM 2.0 application: an in-memory service provider with the
//! quirks real applications have, switchable one by one.
//!
//! It serves `scimlink sandbox-sp` and the sandbox test (`scimlink plugin
//! test`), and is what the engine's tests and benchmarks can provision into
//! when they need a misbehaving application on demand.
//!
//! Invariants:
//! - every path ending in `/Users`, `/Users/{id}`, `/Groups`,
//!   `/Groups/{id}`, `/ServiceProviderConfig`, `/ResourceTypes` or
//!   `/Schemas` is served; what comes before that segment is the tenant,
//!   and each tenant's data is its own (so any base URL template works);
//! - every request is logged (method, path, status, both bodies), up to
//!   [`Quirks::log_limit`] entries, the oldest dropped first; the log is
//!   read at `GET /_sandbox/requests` and cleared by `DELETE` there;
//! - the data lives in one mutex that is never held across an await: a
//!   request's work is a few map operations, so the simulator is not what
//!   limits a benchmark;
//! - injected faults (429, 5xx) are drawn from a seeded generator: the same
//!   seed and the same requests give the same faults;
//! - a rate limit ([`Quirks::rate_limit`]) is a token bucket over every SCIM
//!   request of every tenant, as a real application meters one customer: a
//!   request beyond it is answered 429 with the whole seconds until a token
//!   is back in `Retry-After`, and changes nothing;
//! - `GET /_sandbox/stats` counts the SCIM requests answered and those
//!   answered 429, whatever the log keeps, and the users and groups held;
//!   it is not itself a SCIM request, and no rate limit applies to it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Served;
use crate::scim::error::{ERROR_SCHEMA, SCIM_CONTENT_TYPE, ScimError};
use crate::scim::filter::{AttrPath, AttributeRules, Filter, matches, parse_filter_with};
use crate::scim::patch::{self, Op};
use crate::scim::schema::{ENTERPRISE_USER, GROUP, ResourceType, USER, check_resource, schemas_of};

/// The users an application holds: the standard schema and the enterprise
/// extension (no scimlink-specific extension: this is somebody else's app).
static APP_USER: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    core: &USER,
    extensions: &[&ENTERPRISE_USER],
};

static APP_GROUP: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    core: &GROUP,
    extensions: &[],
};

/// The slowest rate limit: a request every 1,000 seconds.
const MIN_RATE_LIMIT: f64 = 0.001;
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const MAX_PAGE: usize = 1000;

/// The behaviour of the simulated application. The default is a
/// well-behaved SCIM 2.0 service provider that accepts any token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Quirks {
    /// PATCH is refused (405): updates must be PUTs.
    pub put_only: bool,
    /// PATCH is accepted only when every operation sets `active`.
    pub patch_active_only: bool,
    /// The most member values one group PATCH may carry.
    pub max_members_per_patch: Option<usize>,
    /// Filters compare strings case-sensitively, whatever the schema says.
    pub case_sensitive_filters: bool,
    /// Fraction of requests answered 429 with `Retry-After`.
    pub too_many_requests_rate: f64,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after_seconds: u64,
    /// Fraction of requests answered 503.
    pub server_error_rate: f64,
    /// Requests per second at most, over every tenant; beyond it, 429.
    pub rate_limit: Option<f64>,
    /// Requests the rate limit lets through at once (its bucket's size);
    /// one second's worth when unset.
    pub rate_burst: Option<u32>,
    /// The least time every answer takes, in milliseconds.
    #[serde(rename = "latencyMs", with = "millis")]
    pub latency: Duration,
    /// Answers the way Entra ID-era applications do: PATCH answers 204
    /// with no body, list answers carry neither `startIndex` nor
    /// `itemsPerPage`, resources carry no `meta`, and errors come as
    /// `{"error": {"code", "message"}}`.
    pub entra_style: bool,
    /// The most resources one list page holds, whatever `count` asks (real
    /// applications cap their pages, often at 100 or fewer).
    pub page_size_limit: Option<usize>,
    /// List answers carry no `totalResults` (which RFC 7644 requires), so
    /// a client cannot tell a partial list from a whole one.
    pub omit_total_results: bool,
    /// Lists always start at the first resource, whatever `startIndex`
    /// asks: every page is the first page again.
    pub ignore_start_index: bool,
    /// The tenants served (the path before the resource segment, e.g.
    /// `acme/scim/v2`); any tenant when empty.
    pub tenants: Vec<String>,
    /// Bearer tokens accepted; any request when empty.
    pub tokens: Vec<String>,
    /// Seed of the fault draws.
    pub seed: u64,
    /// Requests kept in the log.
    pub log_limit: usize,
    /// The fewest characters a password may have (0: any).
    pub password_min_length: usize,
    /// How many character classes (lowercase, uppercase, digits, others)
    /// a password must mix (0–4).
    pub password_classes: u8,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks {
            put_only: false,
            patch_active_only: false,
            max_members_per_patch: None,
            case_sensitive_filters: false,
            too_many_requests_rate: 0.0,
            retry_after_seconds: 1,
            server_error_rate: 0.0,
            rate_limit: None,
            rate_burst: None,
            latency: Duration::ZERO,
            entra_style: false,
            page_size_limit: None,
            omit_total_results: false,
            ignore_start_index: false,
            tenants: Vec::new(),
            tokens: Vec::new(),
            seed: 0,
            log_limit: 10_000,
            password_min_length: 0,
            password_classes: 0,
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Why a set of quirks cannot run.
#[derive(Debug, thiserror::Error)]
pub enum QuirksError {
    #[error("{0} must be a fraction between 0 and 1")]
    Rate(&'static str),
    #[error("a tenant path must not be empty or start with _sandbox")]
    Tenant,
    #[error("the most members per PATCH must be at least 1")]
    MembersPerPatch,
    #[error("the page size limit must be at least 1")]
    PageSize,
    #[error("a password mixes at most 4 character classes")]
    PasswordClasses,
    #[error("the rate limit must be at least 0.001 requests per second")]
    RateLimit,
    #[error("the rate limit's burst must be at least 1")]
    RateBurst,
}

impl Quirks {
    pub fn check(&self) -> Result<(), QuirksError> {
        for (name, rate) in [
            ("the 429 rate", self.too_many_requests_rate),
            ("the 5xx rate", self.server_error_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(QuirksError::Rate(name));
            }
        }
        if self.max_members_per_patch == Some(0) {
            return Err(QuirksError::MembersPerPatch);
        }
        if self.page_size_limit == Some(0) {
            return Err(QuirksError::PageSize);
        }
        if self.password_classes > 4 {
            return Err(QuirksError::PasswordClasses);
        }
        if self
            .rate_limit
            .is_some_and(|rate| !(rate.is_finite() && rate >= MIN_RATE_LIMIT))
        {
            return Err(QuirksError::RateLimit);
        }
        if self.rate_burst == Some(0) {
            return Err(QuirksError::RateBurst);
        }
        if self
            .tenants
            .iter()
            .any(|t| t.trim_matches('/').is_empty() || t.trim_matches('/').starts_with("_sandbox"))
        {
            return Err(QuirksError::Tenant);
        }
        Ok(())
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggedRequest {
    /// Position since the simulator started (not reset by clearing).
    pub seq: u64,
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub status: u16,
    /// The request body, when it was JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The response body, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// The fault injected instead of an answer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// A running simulator on a loopback (or any) address.
pub struct SandboxSp {
    address: SocketAddr,
    shared: Arc<Shared>,
    _served: Served,
}

impl SandboxSp {
    /// Listens on `listen` and serves until dropped.
    pub async fn start(listen: SocketAddr, quirks: Quirks) -> std::io::Result<SandboxSp> {
        quirks
            .check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::new(quirks));
        let served = Served::spawn(listener, router(Arc::clone(&shared)));
        Ok(SandboxSp {
            address,
            shared,
            _served: served,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL of `tenant` (a path such as `acme/scim/v2`).
    pub fn base_url(&self, tenant: &str) -> String {
        format!("http://{}/{}", self.address, tenant.trim_matches('/'))
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log_snapshot()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.clear_log();
    }

    /// The SCIM requests answered so far, and those answered 429.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The quirks now in force.
    pub fn quirks(&self) -> Quirks {
        Quirks::clone(&self.shared.quirks())
    }

    /// Changes the application's behaviour from the next request on (the
    /// fault seed is kept: faults go on from where they were).
    pub fn set_quirks(&self, quirks: Quirks) -> Result<(), QuirksError> {
        quirks.check()?;
        if let Ok(mut current) = self.shared.quirks.write() {
            *current = Arc::new(quirks);
        }
        Ok(())
    }
}

/// The simulator as a router, for embedding in another server.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// The simulator's state: its quirks, its tenants' data, its log.
pub struct Shared {
    /// Read once per request: a change applies from the next request on.
    quirks: std::sync::RwLock<Arc<Quirks>>,
    world: Mutex<World>,
    log: Mutex<Log>,
    answered: AtomicU64,
    too_many_requests: AtomicU64,
}

/// What the simulator has answered (`GET /_sandbox/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// SCIM requests answered, whatever the answer.
    pub requests: u64,
    /// Of those, answered 429 (the rate limit's and injected ones).
    pub too_many_requests: u64,
    /// Users and groups held now, over every tenant.
    pub users: u64,
    pub groups: u64,
}

#[derive(Default)]
struct Log {
    entries: VecDeque<LoggedRequest>,
    next_seq: u64,
}

struct World {
    tenants: HashMap<String, Tenant>,
    faults: StdRng,
    /// The rate limit's bucket, filled when the first request comes.
    budget: Option<Budget>,
}

/// A token bucket: `tokens` as of `refilled`.
struct Budget {
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    /// Takes a token at `now`, or says how long until one is there.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

#[derive(Default)]
struct Tenant {
    users: Resources,
    groups: Resources,
    next_id: u64,
}

/// One kind of resource of a tenant. Ids sort in creation order, so pages
/// are stable while nothing changes.
#[derive(Default)]
struct Resources {
    by_id: BTreeMap<String, Stored>,
    /// Lower-cased userName (users) or displayName (groups) → id.
    by_name: HashMap<String, String>,
    /// Where the last unfiltered page ended: the next page's `startIndex`
    /// and the id it starts at. A walk then reads each page from its first
    /// resource rather than counting from the first of the list. Creates
    /// append (ids sort in creation order) and leave it right; a delete
    /// forgets it.
    resume: Option<(usize, String)>,
}

struct Stored {
    attributes: Map<String, Value>,
    created: String,
    modified: String,
    version: u64,
    /// A user's password: never rendered, only checked at sign-in.
    password: Option<StoredPassword>,
}

/// What the simulator keeps of a user's password: its digest, and how many
/// times one was set (what tests count to see a password sent once).
#[derive(Clone)]
struct StoredPassword {
    digest: [u8; 32],
    sets: u32,
}

impl StoredPassword {
    fn digest(password: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(password.as_bytes()).into()
    }

    /// The password after `password` is set over `previous`.
    fn set(previous: Option<&StoredPassword>, password: &str) -> StoredPassword {
        StoredPassword {
            digest: Self::digest(password),
            sets: previous.map_or(0, |previous| previous.sets) + 1,
        }
    }
}

impl Shared {
    pub fn new(quirks: Quirks) -> Shared {
        let faults = StdRng::seed_from_u64(quirks.seed);
        Shared {
            quirks: std::sync::RwLock::new(Arc::new(quirks)),
            world: Mutex::new(World {
                tenants: HashMap::new(),
                faults,
                budget: None,
            }),
            log: Mutex::new(Log::default()),
            answered: AtomicU64::new(0),
            too_many_requests: AtomicU64::new(0),
        }
    }

    /// The quirks now in force: shared, so a request pays a reference
    /// count, not a copy.
    pub fn quirks(&self) -> Arc<Quirks> {
        self.quirks
            .read()
            .map(|quirks| Arc::clone(&quirks))
            .unwrap_or_default()
    }

    fn stats(&self) -> Stats {
        let (users, groups) = self
            .world
            .lock()
            .map(|world| {
                world
                    .tenants
                    .values()
                    .fold((0, 0), |(users, groups), tenant| {
                        (
                            users + tenant.users.by_id.len() as u64,
                            groups + tenant.groups.by_id.len() as u64,
                        )
                    })
            })
            .unwrap_or_default();
        Stats {
            requests: self.answered.load(Ordering::Relaxed),
            too_many_requests: self.too_many_requests.load(Ordering::Relaxed),
            users,
            groups,
        }
    }

    fn log_snapshot(&self) -> Vec<LoggedRequest> {
        self.log
            .lock()
            .map(|log| log.entries.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn clear_log(&self) {
        if let Ok(mut log) = self.log.lock() {
            log.entries.clear();
        }
    }

    fn record(&self, mut entry: LoggedRequest, log_limit: usize) {
        if log_limit == 0 {
            return;
        }
        if let Ok(mut log) = self.log.lock() {
            entry.seq = log.next_seq;
            log.next_seq += 1;
            if log.entries.len() >= log_limit {
                log.entries.pop_front();
            }
            log.entries.push_back(entry);
        }
    }
}

/// What one request asks for, from its path.
enum Target {
    Users(Option<String>),
    Groups(Option<String>),
    ServiceProviderConfig,
    ResourceTypes,
    Schemas,
}

/// The tenant and target of a path, or `None` when it names no SCIM
/// endpoint.
fn route(path: &str) -> Option<(String, Target)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let tenant = |end: usize| segments[..end].join("/");
    let last = segments.len().checked_sub(1)?;
    let target = match segments[last] {
        "Users" => Some((tenant(last), Target::Users(None))),
        "Groups" => Some((tenant(last), Target::Groups(None))),
        "ServiceProviderConfig" => Some((tenant(last), Target::ServiceProviderConfig)),
        "ResourceTypes" => Some((tenant(last), Target::ResourceTypes)),
        "Schemas" => Some((tenant(last), Target::Schemas)),
        _ => None,
    };
    if target.is_some() {
        return target;
    }
    let id = segments[last].to_string();
    match segments.get(last.checked_sub(1)?) {
        Some(&"Users") => Some((tenant(last - 1), Target::Users(Some(id)))),
        Some(&"Groups") => Some((tenant(last - 1), Target::Groups(Some(id)))),
        _ => None,
    }
}

/// An answer before it is rendered: status, body, extra headers.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    retry_after: Option<u64>,
    fault: Option<String>,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
            retry_after: None,
            fault: None,
        }
    }

    fn empty(status: StatusCode) -> Answer {
        Answer {
            status,
            body: None,
            retry_after: None,
            fault: None,
        }
    }

    fn error(error: ScimError, entra_style: bool) -> Answer {
        let body = if entra_style {
            json!({"error": {"code": error.scim_type.unwrap_or("error"), "message": error.detail}})
        } else {
            let mut body = json!({
                "schemas": [ERROR_SCHEMA],
                "status": error.status.as_u16().to_string(),
                "detail": error.detail,
            });
            if let (Some(scim_type), Some(map)) = (error.scim_type, body.as_object_mut()) {
                map.insert("scimType".into(), scim_type.into());
            }
            body
        };
        Answer::json(error.status, body)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let shown = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.to_string());
    if let Some(tenant) = path.strip_suffix(SIGN_IN) {
        // Never logged: the body is a password.
        let tokens = &shared.quirks().tokens;
        if !tokens.is_empty() && !authorized(&headers, tokens) {
            return render(Answer::error(ScimError::unauthorized(), false));
        }
        return render(sign_in(&shared, tenant.trim_matches('/'), &body));
    }
    if path.trim_start_matches('/') == "_sandbox/stats" {
        let body = serde_json::to_string(&shared.stats()).unwrap_or_default();
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    if path
        .trim_start_matches('/')
        .starts_with("_sandbox/requests")
    {
        // The log holds request bodies: the same token guards it.
        let tokens = &shared.quirks().tokens;
        if !tokens.is_empty() && !authorized(&headers, tokens) {
            return render(Answer::error(ScimError::unauthorized(), false));
        }
        return log_endpoint(&shared, &method);
    }
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    // What the log keeps: the request without its password.
    let logged = request.clone().map(|mut logged| {
        crate::scim::redact_passwords(&mut logged);
        logged
    });
    let started = Instant::now();
    let quirks = shared.quirks();
    let answer = answer(
        &shared,
        &quirks,
        &method,
        &uri,
        &headers,
        &body,
        request.as_ref(),
    );
    shared.answered.fetch_add(1, Ordering::Relaxed);
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        shared.too_many_requests.fetch_add(1, Ordering::Relaxed);
    }
    let latency = quirks.latency.saturating_sub(started.elapsed());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    shared.record(
        LoggedRequest {
            seq: 0,
            method: method.to_string(),
            path: shown,
            status: answer.status.as_u16(),
            request: logged,
            response: answer.body.clone(),
            fault: answer.fault.clone(),
        },
        quirks.log_limit,
    );
    render(answer)
}

/// The path, after the tenant, where a user signs in with their password:
/// `POST {"userName", "password"}` answers 200 with the account's id and
/// how many times a password was set for it, or 401.
pub const SIGN_IN: &str = "/_sandbox/sign-in";

fn sign_in(shared: &Shared, tenant: &str, body: &[u8]) -> Answer {
    let refused = || Answer::error(ScimError::unauthorized(), false);
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Answer::error(
            ScimError::invalid_syntax("the body is not valid JSON"),
            false,
        );
    };
    let (Some(user_name), Some(password)) = (
        request.get("userName").and_then(Value::as_str),
        request.get("password").and_then(Value::as_str),
    ) else {
        return Answer::error(
            ScimError::invalid_value("userName and password are required"),
            false,
        );
    };
    let Ok(world) = shared.world.lock() else {
        return refused();
    };
    let Some(users) = world.tenants.get(tenant).map(|tenant| &tenant.users) else {
        return refused();
    };
    let Some((id, stored)) = users
        .by_name
        .get(&user_name.to_lowercase())
        .and_then(|id| Some((id, users.by_id.get(id)?)))
    else {
        return refused();
    };
    match &stored.password {
        Some(stored_password) if stored_password.digest == StoredPassword::digest(password) => {
            Answer::json(
                StatusCode::OK,
                json!({ "id": id, "passwordSets": stored_password.sets }),
            )
        }
        _ => refused(),
    }
}

/// Refuses a password the quirks' policy calls weak, without repeating it.
fn check_password(quirks: &Quirks, password: &str) -> Result<(), ScimError> {
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .into_iter()
    .filter(|present| *present)
    .count();
    if password.chars().count() < quirks.password_min_length
        || classes < usize::from(quirks.password_classes)
    {
        return Err(ScimError::invalid_value(format!(
            "the password is too weak: this application wants at least {} characters \
             mixing {} of lowercase, uppercase, digits and other characters",
            quirks.password_min_length, quirks.password_classes
        )));
    }
    Ok(())
}

/// The password a request sets, checked against the policy.
fn password_of(quirks: &Quirks, resource: &Value) -> Result<Option<String>, ScimError> {
    let password = crate::scim::schema::written_password(resource)?;
    match password {
        Some(password) => {
            check_password(quirks, password.expose())?;
            Ok(Some(password.expose().to_owned()))
        }
        None => Ok(None),
    }
}

fn render(answer: Answer) -> Response {
    let mut response = match &answer.body {
        Some(body) => (answer.status, body.to_string()).into_response(),
        None => answer.status.into_response(),
    };
    let headers = response.headers_mut();
    if answer.body.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
    }
    if let Some(seconds) = answer.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if answer.status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"scimlink sandbox\""),
        );
    }
    response
}

fn log_endpoint(shared: &Shared, method: &Method) -> Response {
    match *method {
        Method::GET => {
            let entries = shared.log_snapshot();
            let body = serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_string());
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Method::DELETE => {
            shared.clear_log();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn answer(
    shared: &Shared,
    quirks: &Quirks,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request: Option<&Value>,
) -> Answer {
    let entra = quirks.entra_style;
    if !quirks.tokens.is_empty() && !authorized(headers, &quirks.tokens) {
        return Answer::error(ScimError::unauthorized(), entra);
    }
    let Some((tenant, target)) = route(uri.path()) else {
        return Answer::error(ScimError::not_found("no SCIM endpoint at this path"), entra);
    };
    if !quirks.tenants.is_empty() && !quirks.tenants.iter().any(|t| t.trim_matches('/') == tenant) {
        return Answer::error(ScimError::not_found(format!("no tenant {tenant:?}")), entra);
    }
    let Ok(mut world) = shared.world.lock() else {
        return Answer::error(
            ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, "state poisoned"),
            entra,
        );
    };
    let world = &mut *world;
    if let Some(refused) = over_rate_limit(world, quirks) {
        return refused;
    }
    if let Some(fault) = draw_fault(&mut world.faults, quirks) {
        return fault;
    }
    if !body.is_empty() && request.is_none() {
        return Answer::error(
            ScimError::invalid_syntax("the body is not valid JSON"),
            entra,
        );
    }
    let query = Query::parse(uri.query().unwrap_or(""));
    let data = world.tenants.entry(tenant.clone()).or_default();
    let origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("http://{host}"))
        .unwrap_or_default();
    let context = Context {
        quirks,
        base: if tenant.is_empty() {
            origin
        } else {
            format!("{origin}/{tenant}")
        },
    };
    let result = match (target, method.clone()) {
        (Target::ServiceProviderConfig, Method::GET) => Ok(service_provider_config(quirks)),
        (Target::ResourceTypes, Method::GET) => Ok(list(
            [&APP_USER, &APP_GROUP]
                .iter()
                .map(|rt| rt.to_json(&context.base))
                .collect(),
            2,
            1,
            quirks,
        )),
        (Target::Schemas, Method::GET) => Ok(list(
            [&USER, &ENTERPRISE_USER, &GROUP]
                .iter()
                .map(|s| s.to_json(&context.base))
                .collect(),
            3,
            1,
            quirks,
        )),
        (Target::Users(None), Method::GET) => context.search(data, Kind::User, &query),
        (Target::Groups(None), Method::GET) => context.search(data, Kind::Group, &query),
        (Target::Users(None), Method::POST) => context.create(data, Kind::User, request),
        (Target::Groups(None), Method::POST) => context.create(data, Kind::Group, request),
        (Target::Users(Some(id)), m) => context.one(data, Kind::User, &id, &m, request, &query),
        (Target::Groups(Some(id)), m) => context.one(data, Kind::Group, &id, &m, request, &query),
        _ => Err(ScimError::method_not_allowed()),
    };
    result.unwrap_or_else(|error| Answer::error(error, entra))
}

fn authorized(headers: &HeaderMap, tokens: &[String]) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && tokens.iter().any(|t| t == token.trim())
}

/// The 429 of a request beyond the rate limit, if it is.
fn over_rate_limit(world: &mut World, quirks: &Quirks) -> Option<Answer> {
    let rate = quirks.rate_limit?;
    let burst = quirks
        .rate_burst
        .map_or_else(|| rate.ceil().max(1.0), f64::from);
    let now = Instant::now();
    let budget = world.budget.get_or_insert(Budget {
        tokens: burst,
        refilled: now,
    });
    let wait = budget.take(now, rate, burst).err()?;
    let mut answer = Answer::error(
        ScimError::new(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            format!("rate limit exceeded: {rate} requests per second"),
        ),
        quirks.entra_style,
    );
    // Whole seconds, as the header has them: never less than the wait.
    answer.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    answer.fault = Some("rate limit".into());
    Some(answer)
}

fn draw_fault(faults: &mut StdRng, quirks: &Quirks) -> Option<Answer> {
    if quirks.too_many_requests_rate > 0.0 && faults.random::<f64>() < quirks.too_many_requests_rate
    {
        let mut answer = Answer::error(
            ScimError::new(StatusCode::TOO_MANY_REQUESTS, None, "slow down"),
            quirks.entra_style,
        );
        answer.retry_after = Some(quirks.retry_after_seconds);
        answer.fault = Some("429".into());
        return Some(answer);
    }
    if quirks.server_error_rate > 0.0 && faults.random::<f64>() < quirks.server_error_rate {
        let mut answer = Answer::error(
            ScimError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the application is unavailable",
            ),
            quirks.entra_style,
        );
        answer.fault = Some("503".into());
        return Some(answer);
    }
    None
}

fn service_provider_config(quirks: &Quirks) -> Answer {
    Answer::json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": { "supported": !quirks.put_only },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_PAGE },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": false },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "Authorization: Bearer TOKEN",
            }],
        }),
    )
}

fn list(resources: Vec<Value>, total: usize, start_index: usize, quirks: &Quirks) -> Answer {
    let mut body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "Resources": resources,
    });
    if quirks.omit_total_results
        && let Some(map) = body.as_object_mut()
    {
        map.remove("totalResults");
    }
    if !quirks.entra_style
        && let Some(map) = body.as_object_mut()
    {
        map.insert("startIndex".into(), start_index.into());
        map.insert(
            "itemsPerPage".into(),
            resources_len(&map["Resources"]).into(),
        );
    }
    Answer::json(StatusCode::OK, body)
}

fn resources_len(resources: &Value) -> usize {
    resources.as_array().map_or(0, Vec::len)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn resource_type(self) -> &'static ResourceType {
        match self {
            Kind::User => &APP_USER,
            Kind::Group => &APP_GROUP,
        }
    }

    /// The attribute that names a resource and must be unique.
    fn name_attribute(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }

    fn resources(self, tenant: &mut Tenant) -> &mut Resources {
        match self {
            Kind::User => &mut tenant.users,
            Kind::Group => &mut tenant.groups,
        }
    }
}

#[derive(Default)]
struct Query {
    filter: Option<String>,
    start_index: usize,
    count: Option<usize>,
    excluded: Vec<String>,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut parsed = Query {
            start_index: 1,
            ..Query::default()
        };
        for (key, value) in form_pairs(query) {
            match key.as_str() {
                "filter" => parsed.filter = Some(value),
                "startIndex" => parsed.start_index = value.parse().unwrap_or(1).max(1),
                "count" => parsed.count = value.parse().ok(),
                "excludedAttributes" => {
                    parsed.excluded = value.split(',').map(|s| s.trim().to_string()).collect();
                }
                _ => {}
            }
        }
        parsed
    }
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// Every comparison is case-exact: the "case-sensitive filters" quirk.
struct CaseExact;

impl AttributeRules for CaseExact {
    fn case_exact(&self, _path: &AttrPath) -> bool {
        true
    }
}

struct Context<'q> {
    quirks: &'q Quirks,
    /// The tenant's base URL, for `meta.location`.
    base: String,
}

impl Context<'_> {
    fn rules(&self, kind: Kind) -> &'static dyn AttributeRules {
        if self.quirks.case_sensitive_filters {
            &CaseExact
        } else {
            kind.resource_type()
        }
    }

    fn render(&self, kind: Kind, id: &str, stored: &Stored, excluded: &[String]) -> Value {
        let resource_type = kind.resource_type();
        let mut resource = stored.attributes.clone();
        for name in excluded {
            resource.retain(|key, _| !key.eq_ignore_ascii_case(name));
        }
        resource.insert("id".into(), id.into());
        resource.insert(
            "schemas".into(),
            Value::Array(schemas_of(resource_type, &stored.attributes)),
        );
        if !self.quirks.entra_style {
            resource.insert(
                "meta".into(),
                json!({
                    "resourceType": resource_type.name,
                    "created": stored.created,
                    "lastModified": stored.modified,
                    "location": format!("{}{}/{id}", self.base, resource_type.endpoint),
                    "version": format!("W/\"{}\"", stored.version),
                }),
            );
        }
        Value::Object(resource)
    }

    fn search(&self, tenant: &mut Tenant, kind: Kind, query: &Query) -> Result<Answer, ScimError> {
        let resources = kind.resources(tenant);
        let filter = match &query.filter {
            Some(text) => Some(
                parse_filter_with(text, &[ENTERPRISE_USER.id])
                    .map_err(|e| ScimError::invalid_filter(e.to_string()))?,
            ),
            None => None,
        };
        let count = query
            .count
            .unwrap_or(MAX_PAGE)
            .min(self.quirks.page_size_limit.unwrap_or(MAX_PAGE))
            .min(MAX_PAGE);
        let start_index = if self.quirks.ignore_start_index {
            1
        } else {
            query.start_index
        };
        let Some(filter) = filter else {
            // No filter: the page is read straight off the index, so a walk
            // through a large list costs each page its own size, not the
            // whole list's.
            let mut listed: Box<dyn Iterator<Item = (&String, &Stored)>> = match &resources.resume {
                Some((next, id)) if *next == start_index => Box::new(
                    resources
                        .by_id
                        .range::<str, _>((Bound::Included(id.as_str()), Bound::Unbounded)),
                ),
                _ => Box::new(resources.by_id.iter().skip(start_index - 1)),
            };
            let page: Vec<Value> = listed
                .by_ref()
                .take(count)
                .map(|(id, stored)| self.render(kind, id, stored, &query.excluded))
                .collect();
            let resume = listed
                .next()
                .map(|(id, _)| (start_index + page.len(), id.clone()));
            drop(listed);
            resources.resume = resume;
            return Ok(list(page, resources.by_id.len(), start_index, self.quirks));
        };
        let rules = self.rules(kind);
        let candidates: Vec<(&String, &Stored)> =
            match name_equality(&filter, kind.name_attribute()) {
                // The common lookup (`userName eq "…"`) reads the name index; the
                // filter is still evaluated, for the case-sensitivity quirk.
                Some(name) => resources
                    .by_name
                    .get(&name.to_lowercase())
                    .and_then(|id| resources.by_id.get_key_value(id))
                    .into_iter()
                    .collect(),
                None => resources.by_id.iter().collect(),
            };
        let matching: Vec<(&String, &Stored)> = candidates
            .into_iter()
            .filter(|(id, stored)| matches(&filter, &self.render(kind, id, stored, &[]), rules))
            .collect();
        let total = matching.len();
        let page: Vec<Value> = matching
            .into_iter()
            .skip(start_index - 1)
            .take(count)
            .map(|(id, stored)| self.render(kind, id, stored, &query.excluded))
            .collect();
        Ok(list(page, total, start_index, self.quirks))
    }

    fn create(
        &self,
        tenant: &mut Tenant,
        kind: Kind,
        request: Option<&Value>,
    ) -> Result<Answer, ScimError> {
        let request = request.ok_or_else(|| ScimError::invalid_syntax("a body is required"))?;
        let attributes = checked(kind, request)?;
        if kind == Kind::Group {
            check_members(tenant, &attributes)?;
        }
        let password = match kind {
            Kind::User => password_of(self.quirks, request)?,
            Kind::Group => None,
        };
        let name = name_of(kind, &attributes)?;
        if kind
            .resources(tenant)
            .by_name
            .contains_key(&name.to_lowercase())
        {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                format!("{} {name:?} exists", kind.name_attribute()),
            ));
        }
        tenant.next_id += 1;
        // Nine digits: ids sort in creation order up to a billion.
        let id = format!(
            "{}-{:09}",
            if kind == Kind::User { "u" } else { "g" },
            tenant.next_id
        );
        let resources = kind.resources(tenant);
        let now = now();
        resources.by_name.insert(name.to_lowercase(), id.clone());
        let stored = Stored {
            attributes,
            created: now.clone(),
            modified: now,
            version: 1,
            password: password.map(|password| StoredPassword::set(None, &password)),
        };
        let body = self.render(kind, &id, &stored, &[]);
        resources.by_id.insert(id, stored);
        Ok(Answer::json(StatusCode::CREATED, body))
    }

    fn one(
        &self,
        tenant: &mut Tenant,
        kind: Kind,
        id: &str,
        method: &Method,
        request: Option<&Value>,
        query: &Query,
    ) -> Result<Answer, ScimError> {
        if !kind.resources(tenant).by_id.contains_key(id) {
            return Err(ScimError::not_found(format!(
                "no {} {id:?}",
                kind.resource_type().name
            )));
        }
        match *method {
            Method::GET => {
                let resources = kind.resources(tenant);
                let stored = &resources.by_id[id];
                Ok(Answer::json(
                    StatusCode::OK,
                    self.render(kind, id, stored, &query.excluded),
                ))
            }
            Method::PUT => {
                let request =
                    request.ok_or_else(|| ScimError::invalid_syntax("a body is required"))?;
                let attributes = checked(kind, request)?;
                if kind == Kind::Group {
                    check_members(tenant, &attributes)?;
                }
                let password = match kind {
                    Kind::User => password_of(self.quirks, request)?,
                    Kind::Group => None,
                };
                self.replace(tenant, kind, id, attributes, password)
                    .map(|body| Answer::json(StatusCode::OK, body))
            }
            Method::PATCH => {
                if self.quirks.put_only {
                    return Err(ScimError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        None,
                        "this application does not support PATCH; send PUT",
                    ));
                }
                let request =
                    request.ok_or_else(|| ScimError::invalid_syntax("a body is required"))?;
                let operations = patch::parse_request(request)?;
                self.check_patch(&operations)?;
                let mut attributes = kind.resources(tenant).by_id[id].attributes.clone();
                patch::apply(kind.resource_type(), &mut attributes, &operations)?;
                let patched = Value::Object(attributes);
                // Stored attributes hold no password: one in the patched
                // resource is one this PATCH sets.
                let password = match kind {
                    Kind::User => password_of(self.quirks, &patched)?,
                    Kind::Group => None,
                };
                let attributes = checked(kind, &patched)?;
                if kind == Kind::Group {
                    check_members(tenant, &attributes)?;
                }
                let body = self.replace(tenant, kind, id, attributes, password)?;
                if self.quirks.entra_style {
                    Ok(Answer::empty(StatusCode::NO_CONTENT))
                } else {
                    Ok(Answer::json(StatusCode::OK, body))
                }
            }
            Method::DELETE => {
                let resources = kind.resources(tenant);
                resources.resume = None;
                if let Some(stored) = resources.by_id.remove(id)
                    && let Ok(name) = name_of(kind, &stored.attributes)
                {
                    resources.by_name.remove(&name.to_lowercase());
                }
                if kind == Kind::User {
                    // A deleted user leaves every group, as in real applications.
                    for stored in tenant.groups.by_id.values_mut() {
                        if let Some(Value::Array(members)) = stored.attributes.get_mut("members") {
                            members.retain(|m| m["value"].as_str() != Some(id));
                        }
                    }
                }
                Ok(Answer::empty(StatusCode::NO_CONTENT))
            }
            _ => Err(ScimError::method_not_allowed()),
        }
    }

    fn check_patch(&self, operations: &[patch::Operation]) -> Result<(), ScimError> {
        if self.quirks.patch_active_only {
            let only_active = operations.iter().all(|operation| match &operation.path {
                Some(path) => {
                    path.attr.attr.eq_ignore_ascii_case("active") && path.filter.is_none()
                }
                None => operation
                    .value
                    .as_ref()
                    .and_then(Value::as_object)
                    .is_some_and(|v| v.keys().all(|k| k.eq_ignore_ascii_case("active"))),
            });
            if !only_active {
                return Err(ScimError::invalid_value(
                    "this application accepts PATCH only for `active`; send PUT",
                ));
            }
        }
        if let Some(most) = self.quirks.max_members_per_patch {
            let count = |value: Option<&Value>| match value {
                Some(Value::Array(values)) => values.len(),
                Some(_) | None => 1,
            };
            let members: usize = operations
                .iter()
                .filter(|o| matches!(o.op, Op::Add | Op::Remove | Op::Replace))
                .map(|o| match &o.path {
                    Some(path) if path.attr.attr.eq_ignore_ascii_case("members") => {
                        count(o.value.as_ref())
                    }
                    Some(_) => 0,
                    // `{"op": "add", "value": {"members": [...]}}`
                    None => o
                        .value
                        .as_ref()
                        .and_then(Value::as_object)
                        .and_then(|v| v.iter().find(|(k, _)| k.eq_ignore_ascii_case("members")))
                        .map_or(0, |(_, members)| count(Some(members))),
                })
                .sum();
            if members > most {
                return Err(ScimError::invalid_value(format!(
                    "{members} members in one PATCH; this application takes at most {most}"
                ))
                .with_type("tooMany"));
            }
        }
        Ok(())
    }

    fn replace(
        &self,
        tenant: &mut Tenant,
        kind: Kind,
        id: &str,
        attributes: Map<String, Value>,
        password: Option<String>,
    ) -> Result<Value, ScimError> {
        let name = name_of(kind, &attributes)?;
        let resources = kind.resources(tenant);
        if let Some(holder) = resources.by_name.get(&name.to_lowercase())
            && holder != id
        {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                format!("{} {name:?} exists", kind.name_attribute()),
            ));
        }
        let Some(stored) = resources.by_id.get_mut(id) else {
            return Err(ScimError::not_found(format!("no resource {id:?}")));
        };
        let old_name = name_of(kind, &stored.attributes).ok();
        stored.attributes = attributes;
        stored.modified = now();
        stored.version += 1;
        if let Some(password) = password {
            stored.password = Some(StoredPassword::set(stored.password.as_ref(), &password));
        }
        if let Some(old) = old_name {
            resources.by_name.remove(&old.to_lowercase());
        }
        resources
            .by_name
            .insert(name.to_lowercase(), id.to_string());
        let stored = &resources.by_id[id];
        Ok(self.render(kind, id, stored, &[]))
    }
}

/// The attributes of a resource a client sent, checked against the schema.
/// Extension objects the application does not know are kept as sent (an
/// application keeps what it was given under a schema it lists).
fn checked(kind: Kind, request: &Value) -> Result<Map<String, Value>, ScimError> {
    let Some(object) = request.as_object() else {
        return Err(ScimError::invalid_syntax(
            "the resource must be a JSON object",
        ));
    };
    let resource_type = kind.resource_type();
    let (known, unknown_extensions) = split_foreign_extensions(resource_type, object);
    let mut attributes = check_resource(resource_type, &Value::Object(known))?;
    attributes.extend(unknown_extensions);
    if kind == Kind::Group
        && let Some(Value::Array(members)) = attributes.get_mut("members")
    {
        // The reference form; only the id identifies a member.
        for member in members.iter_mut() {
            if let Some(member) = member.as_object_mut() {
                member.retain(|k, _| k == "value" || k == "display");
            }
        }
    }
    Ok(attributes)
}

/// A resource's attributes the schema knows, and the extension objects
/// under URNs it does not (an application's own, which it alone judges).
pub(crate) fn split_foreign_extensions(
    resource_type: &ResourceType,
    object: &Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    object.clone().into_iter().partition(|(key, _)| {
        !(key.to_ascii_lowercase().starts_with("urn:") && resource_type.extension(key).is_none())
    })
}

fn name_of(kind: Kind, attributes: &Map<String, Value>) -> Result<String, ScimError> {
    attributes
        .get(kind.name_attribute())
        .and_then(Value::as_str)
        .filter(|name| !name.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| ScimError::invalid_value(format!("{} is required", kind.name_attribute())))
}

fn check_members(tenant: &Tenant, attributes: &Map<String, Value>) -> Result<(), ScimError> {
    let Some(Value::Array(members)) = attributes.get("members") else {
        return Ok(());
    };
    for member in members {
        let Some(id) = member["value"].as_str() else {
            return Err(ScimError::invalid_value("a member needs a value"));
        };
        if !tenant.users.by_id.contains_key(id) && !tenant.groups.by_id.contains_key(id) {
            return Err(ScimError::invalid_value(format!(
                "member {id:?} is no user or group of this application"
            )));
        }
    }
    Ok(())
}

/// `NAME eq "value"` at the top of a filter (alone or in an `and`).
fn name_equality<'f>(filter: &'f Filter, name: &'static str) -> Option<&'f str> {
    crate::scim::filter::equality_key(filter, &[name]).map(|(_, value)| value)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_any_tenant_path() {
        let (tenant, target) = route("/org-1/scim/v2/Users/u-000000001").unwrap();
        assert_eq!(tenant, "org-1/scim/v2");
        assert!(matches!(target, Target::Users(Some(id)) if id == "u-000000001"));
        let (tenant, target) = route("/Groups").unwrap();
        assert_eq!(tenant, "");
        assert!(matches!(target, Target::Groups(None)));
        assert!(route("/org-1/scim/v2/Things").is_none());
    }

    #[test]
    fn decodes_form_values() {
        let pairs = form_pairs("filter=userName%20eq%20%22a%2Bb%22&count=2");
        assert_eq!(pairs[0].1, "userName eq \"a+b\"");
        assert_eq!(pairs[1], ("count".into(), "2".into()));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }

    /// The simulator on a loopback port, and a client of its tenant.
    async fn started(quirks: Quirks) -> (SandboxSp, reqwest::Client, String) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sp = SandboxSp::start(([127, 0, 0, 1], 0).into(), quirks)
            .await
            .unwrap();
        let base = sp.base_url("t/scim/v2");
        (sp, reqwest::Client::new(), base)
    }

    /// Creates a user for each name, in order; their ids.
    async fn created_users(http: &reqwest::Client, base: &str, names: &[&str]) -> Vec<String> {
        let mut ids = Vec::new();
        for name in names {
            let (status, created, _) = send(
                http,
                Method::POST,
                &format!("{base}/Users"),
                Some(user(name)),
            )
            .await;
            assert_eq!(status, 201, "{name}");
            ids.push(created.unwrap()["id"].as_str().unwrap().to_string());
        }
        ids
    }

    async fn send(
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> (u16, Option<Value>, Option<String>) {
        let mut request = http.request(method, url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, answer.json().await.ok(), retry_after)
    }

    fn user(name: &str) -> Value {
        json!({"schemas": [USER.id], "userName": name, "active": true})
    }

    fn patch(operations: Value) -> Value {
        json!({"schemas": [patch::PATCH_SCHEMA], "Operations": operations})
    }

    #[tokio::test]
    async fn case_sensitive_filters_miss_what_the_schema_would_match() {
        for (case_sensitive, found) in [(false, 1), (true, 0)] {
            let (_sp, http, base) = started(Quirks {
                case_sensitive_filters: case_sensitive,
                ..Quirks::default()
            })
            .await;
            send(
                &http,
                Method::POST,
                &format!("{base}/Users"),
                Some(user("Ada")),
            )
            .await;
            let (_, list, _) = send(
                &http,
                Method::GET,
                &format!("{base}/Users?filter=userName%20eq%20%22ada%22"),
                None,
            )
            .await;
            assert_eq!(list.unwrap()["totalResults"], found);
        }
    }

    #[tokio::test]
    async fn passwords_are_checked_kept_apart_and_never_shown() {
        let (sp, http, base) = started(Quirks {
            password_min_length: 12,
            password_classes: 3,
            ..Quirks::default()
        })
        .await;
        let sign_in_url = format!("{base}{SIGN_IN}");
        let sign_in = |password: &str| {
            send(
                &http,
                Method::POST,
                &sign_in_url,
                Some(json!({ "userName": "ada", "password": password })),
            )
        };
        let mut weak = user("ada");
        weak["password"] = json!("short1");
        let (status, body, _) =
            send(&http, Method::POST, &format!("{base}/Users"), Some(weak)).await;
        assert_eq!(status, 400);
        assert!(!body.unwrap().to_string().contains("short1"));

        let mut strong = user("ada");
        strong["password"] = json!("Correct-Horse-9");
        let (status, created, _) =
            send(&http, Method::POST, &format!("{base}/Users"), Some(strong)).await;
        assert_eq!(status, 201);
        let created = created.unwrap();
        assert!(created.get("password").is_none(), "{created}");
        let (status, signed_in, _) = sign_in("Correct-Horse-9").await;
        assert_eq!(
            (status, signed_in.unwrap()["passwordSets"].clone()),
            (200, json!(1))
        );
        assert_eq!(sign_in("wrong").await.0, 401);

        let url = format!("{base}/Users/{}", created["id"].as_str().unwrap());
        let weak = patch(json!([{"op": "replace", "path": "password", "value": "alllowercase"}]));
        assert_eq!(send(&http, Method::PATCH, &url, Some(weak)).await.0, 400);
        let new =
            patch(json!([{"op": "replace", "path": "password", "value": "Battery-Staple-7"}]));
        let (status, patched, _) = send(&http, Method::PATCH, &url, Some(new)).await;
        assert_eq!(status, 200);
        assert!(patched.unwrap().get("password").is_none());
        assert_eq!(sign_in("Correct-Horse-9").await.0, 401);
        let (_, signed_in, _) = sign_in("Battery-Staple-7").await;
        assert_eq!(signed_in.unwrap()["passwordSets"], 2);

        // A PUT without a password leaves the one set.
        send(&http, Method::PUT, &url, Some(user("ada"))).await;
        assert_eq!(sign_in("Battery-Staple-7").await.0, 200);

        let log = serde_json::to_string(&sp.requests()).unwrap();
        for password in [
            "short1",
            "Correct-Horse-9",
            "alllowercase",
            "Battery-Staple-7",
        ] {
            assert!(!log.contains(password), "{password} in the log");
        }
        assert!(log.contains(crate::scim::REDACTED));
    }

    #[tokio::test]
    async fn patch_only_for_active_refuses_other_attributes() {
        let (_sp, http, base) = started(Quirks {
            patch_active_only: true,
            ..Quirks::default()
        })
        .await;
        let (_, created, _) = send(
            &http,
            Method::POST,
            &format!("{base}/Users"),
            Some(user("ada")),
        )
        .await;
        let url = format!("{base}/Users/{}", created.unwrap()["id"].as_str().unwrap());
        let active = patch(json!([{"op": "replace", "path": "active", "value": false}]));
        assert_eq!(send(&http, Method::PATCH, &url, Some(active)).await.0, 200);
        let title = patch(json!([{"op": "replace", "path": "title", "value": "CEO"}]));
        assert_eq!(send(&http, Method::PATCH, &url, Some(title)).await.0, 400);
        // A PUT still changes anything.
        let mut whole = user("ada");
        whole["title"] = json!("CEO");
        let (status, body, _) = send(&http, Method::PUT, &url, Some(whole)).await;
        assert_eq!((status, &body.unwrap()["title"]), (200, &json!("CEO")));
    }

    #[tokio::test]
    async fn group_patches_carry_at_most_the_members_allowed() {
        let (_sp, http, base) = started(Quirks {
            max_members_per_patch: Some(1),
            ..Quirks::default()
        })
        .await;
        let ids = created_users(&http, &base, &["a", "b"]).await;
        let group = json!({"schemas": [GROUP.id], "displayName": "staff"});
        let (status, created, _) =
            send(&http, Method::POST, &format!("{base}/Groups"), Some(group)).await;
        assert_eq!(status, 201);
        let url = format!("{base}/Groups/{}", created.unwrap()["id"].as_str().unwrap());
        let both = patch(json!([{"op": "add", "path": "members",
            "value": [{"value": ids[0]}, {"value": ids[1]}]}]));
        assert_eq!(send(&http, Method::PATCH, &url, Some(both)).await.0, 400);
        let one = patch(json!([{"op": "add", "path": "members", "value": [{"value": ids[0]}]}]));
        assert_eq!(send(&http, Method::PATCH, &url, Some(one)).await.0, 200);
        // A path-less add counts its members all the same.
        let pathless = patch(json!([{"op": "add",
            "value": {"members": [{"value": ids[0]}, {"value": ids[1]}]}}]));
        assert_eq!(
            send(&http, Method::PATCH, &url, Some(pathless)).await.0,
            400
        );
        let unknown =
            patch(json!([{"op": "add", "path": "members", "value": [{"value": "nobody"}]}]));
        assert_eq!(send(&http, Method::PATCH, &url, Some(unknown)).await.0, 400);
        // Deleting a user takes it out of its groups.
        send(
            &http,
            Method::DELETE,
            &format!("{base}/Users/{}", ids[0]),
            None,
        )
        .await;
        let (_, group, _) = send(&http, Method::GET, &url, None).await;
        assert_eq!(group.unwrap()["members"], json!([]));
    }

    #[tokio::test]
    async fn requests_beyond_the_rate_limit_are_answered_429_and_counted() {
        let (sp, http, base) = started(Quirks {
            rate_limit: Some(0.5),
            rate_burst: Some(3),
            ..Quirks::default()
        })
        .await;
        let url = format!("{base}/Users");
        for name in ["ada", "alan", "edsger"] {
            let (status, _, _) = send(&http, Method::POST, &url, Some(user(name))).await;
            assert_eq!(status, 201);
        }
        let (status, body, retry_after) =
            send(&http, Method::POST, &url, Some(user("grace"))).await;
        // Two seconds a token: the header says so in whole seconds.
        assert_eq!((status, retry_after.as_deref()), (429, Some("2")));
        assert!(
            body.unwrap()["detail"]
                .as_str()
                .unwrap()
                .contains("rate limit")
        );
        let (status, _, _) = send(&http, Method::GET, &url, None).await;
        assert_eq!(
            status, 429,
            "a read counts against the limit as a write does"
        );
        assert_eq!(
            sp.stats(),
            Stats {
                requests: 5,
                too_many_requests: 2,
                users: 3,
                groups: 0,
            }
        );
        let stats: Stats = http
            .get(format!("http://{}/_sandbox/stats", sp.address()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            stats.requests, 5,
            "the stats endpoint is not a SCIM request"
        );
        assert!(
            Quirks {
                rate_limit: Some(0.0),
                ..Quirks::default()
            }
            .check()
            .is_err()
        );
    }

    #[tokio::test]
    async fn faults_come_at_their_rates_with_retry_after() {
        let (sp, http, base) = started(Quirks {
            too_many_requests_rate: 1.0,
            retry_after_seconds: 7,
            ..Quirks::default()
        })
        .await;
        let (status, _, retry_after) =
            send(&http, Method::GET, &format!("{base}/Users"), None).await;
        assert_eq!((status, retry_after.as_deref()), (429, Some("7")));
        assert_eq!(sp.requests()[0].fault.as_deref(), Some("429"));

        let (_sp, http, base) = started(Quirks {
            server_error_rate: 0.5,
            seed: 3,
            ..Quirks::default()
        })
        .await;
        let mut failures = 0;
        for _ in 0..200 {
            if send(&http, Method::GET, &format!("{base}/Users"), None)
                .await
                .0
                == 503
            {
                failures += 1;
            }
        }
        assert!((60..140).contains(&failures), "{failures} of 200");
    }

    #[tokio::test]
    async fn entra_style_answers_patch_with_no_content() {
        let (_sp, http, base) = started(Quirks {
            entra_style: true,
            ..Quirks::default()
        })
        .await;
        let (_, created, _) = send(
            &http,
            Method::POST,
            &format!("{base}/Users"),
            Some(user("ada")),
        )
        .await;
        let created = created.unwrap();
        assert!(created.get("meta").is_none());
        let url = format!("{base}/Users/{}", created["id"].as_str().unwrap());
        let active = patch(json!([{"op": "replace", "path": "active", "value": false}]));
        let (status, body, _) = send(&http, Method::PATCH, &url, Some(active)).await;
        assert_eq!((status, body), (204, None));
        let (status, body, _) =
            send(&http, Method::GET, &format!("{base}/Users/nobody"), None).await;
        assert_eq!(status, 404);
        assert!(body.unwrap()["error"]["message"].is_string());
        let (_, list, _) = send(&http, Method::GET, &format!("{base}/Users"), None).await;
        assert!(list.unwrap().get("startIndex").is_none());
    }

    #[tokio::test]
    async fn tenants_are_apart_and_names_unique() {
        let (sp, http, base) = started(Quirks::default()).await;
        let other = sp.base_url("other/scim/v2");
        assert_eq!(
            send(
                &http,
                Method::POST,
                &format!("{base}/Users"),
                Some(user("ada"))
            )
            .await
            .0,
            201
        );
        assert_eq!(
            send(
                &http,
                Method::POST,
                &format!("{base}/Users"),
                Some(user("ADA"))
            )
            .await
            .0,
            409
        );
        assert_eq!(
            send(
                &http,
                Method::POST,
                &format!("{other}/Users"),
                Some(user("ada"))
            )
            .await
            .0,
            201
        );
        let (_, list, _) = send(&http, Method::GET, &format!("{other}/Users"), None).await;
        assert_eq!(list.unwrap()["totalResults"], 1);
        // A body that breaks the schema is refused, as a strict app would.
        let wrong = json!({"schemas": [USER.id], "userName": "x", "active": "yes"});
        assert_eq!(
            send(&http, Method::POST, &format!("{base}/Users"), Some(wrong))
                .await
                .0,
            400
        );
    }

    #[tokio::test]
    async fn pages_read_in_turn_or_out_of_turn_list_the_same_users() {
        let (_sp, http, base) = started(Quirks::default()).await;
        let ids = created_users(&http, &base, &["a", "b", "c", "d", "e", "f", "g"]).await;
        let names = |start: usize| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let url = format!("{base}/Users?startIndex={start}&count=3");
                let (_, body, _) = send(&http, Method::GET, &url, None).await;
                body.unwrap()["Resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["userName"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
        };
        // In turn: each page starts where the last one ended.
        assert_eq!(names(1).await, ["a", "b", "c"]);
        assert_eq!(names(4).await, ["d", "e", "f"]);
        assert_eq!(names(7).await, ["g"]);
        // Out of turn, after a page that ended elsewhere.
        assert_eq!(names(1).await, ["a", "b", "c"]);
        assert_eq!(names(2).await, ["b", "c", "d"]);
        // A create between pages is listed last; a delete between pages
        // moves every later user up one place.
        assert_eq!(names(4).await, ["d", "e", "f"]);
        send(
            &http,
            Method::POST,
            &format!("{base}/Users"),
            Some(user("h")),
        )
        .await;
        assert_eq!(names(7).await, ["g", "h"]);
        assert_eq!(names(1).await, ["a", "b", "c"]);
        let (status, _, _) = send(
            &http,
            Method::DELETE,
            &format!("{base}/Users/{}", ids[1]),
            None,
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(names(4).await, ["e", "f", "g"]);
    }

    #[tokio::test]
    async fn lists_can_be_capped_uncounted_and_deaf_to_start_index() {
        let (sp, http, base) = started(Quirks {
            page_size_limit: Some(2),
            ..Quirks::default()
        })
        .await;
        created_users(&http, &base, &["a", "b", "c"]).await;
        let page = |body: Option<Value>| {
            let body = body.unwrap();
            let names: Vec<String> = body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["userName"].as_str().unwrap().to_string())
                .collect();
            (body.get("totalResults").cloned(), names)
        };
        let url = format!("{base}/Users?startIndex=3&count=10");
        let (_, body, _) = send(&http, Method::GET, &format!("{base}/Users?count=10"), None).await;
        assert_eq!(page(body), (Some(json!(3)), vec!["a".into(), "b".into()]));
        let (_, body, _) = send(&http, Method::GET, &url, None).await;
        assert_eq!(page(body), (Some(json!(3)), vec!["c".into()]));

        sp.set_quirks(Quirks {
            page_size_limit: Some(2),
            omit_total_results: true,
            ignore_start_index: true,
            ..Quirks::default()
        })
        .unwrap();
        let (_, body, _) = send(&http, Method::GET, &url, None).await;
        assert_eq!(page(body), (None, vec!["a".into(), "b".into()]));
        assert!(
            Quirks {
                page_size_limit: Some(0),
                ..Quirks::default()
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn rejects_rates_outside_zero_to_one() {
        let quirks = Quirks {
            server_error_rate: 1.5,
            ..Quirks::default()
        };
        assert!(quirks.check().is_err());
    }
}
