//! The SCIM client: how the host talks to one application.
//!
//! One [`ScimClient`] per application owns everything between a SCIM
//! request the engine wants sent and the application's answer:
//! - the bearer token, injected here and nowhere else (connectors never see
//!   it, logs and errors never show it);
//! - connection reuse, HTTP/1.1 or HTTP/2 (ALPN) over rustls, the egress
//!   proxy the environment names, a connect and a total timeout per
//!   attempt ([`transport`]); a path sent exactly as built, refused if a
//!   segment of it is empty, `.` or `..`;
//! - retries with exponential backoff and full jitter on network errors,
//!   5xx and 429, obeying `Retry-After` ([`retry`]);
//! - a token bucket and a concurrency cap, and a rate that halves each time
//!   the application answers 429 and recovers slowly as requests succeed
//!   ([`rate`]);
//! - a circuit breaker that stops sending after sustained failures and lets
//!   one probe through after a cool-down ([`breaker`]);
//! - where a request's exchange runs: on the network thread when the
//!   caller is the engine's single thread, so that a slot is let go as soon
//!   as its answer is in (`network.rs`);
//! - an answer read as JSON or refused: a read's made a tree at once, a
//!   write's checked and made one only if asked ([`ScimResponse`]).
//!
//! Which failures are retried: a 429 or 503 (the application did not do
//! the work) and a connection that could not be opened, for every method; a
//! 5xx, a timeout or a connection lost mid-request only for methods whose
//! repetition cannot create a second account (everything but `POST`). The
//! engine makes a retried create safe by looking the account up first.
//! A 4xx other than 408/429 is permanent: [`ScimClientError::is_permanent`].

pub mod breaker;
mod network;
pub mod rate;
pub mod retry;
mod transport;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::store::Secret;
use breaker::{Admission, CircuitBreaker};
use rate::AdaptiveRate;
use retry::{Backoff, retry_after};
use transport::{Failure, Transport};

/// How a client treats its application. Defaults suit a SaaS API.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// Opening a connection, per attempt.
    pub connect_timeout: Duration,
    /// One attempt, from sending to the whole answer.
    pub request_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` obeyed; a longer one fails the request
    /// (its work waits in the queue instead of holding a worker).
    pub max_retry_after: Duration,
    /// Requests per second at most, and the burst above it.
    pub requests_per_second: f64,
    pub burst: u32,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Consecutive failed requests that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit waits before it lets a probe through.
    pub breaker_cooldown: Duration,
    /// The largest answer read, in bytes; a larger one fails the request.
    pub max_response_bytes: u64,
}

/// The largest answer read from an application unless its pacing says
/// otherwise: 16 MiB.
pub use crate::store::DEFAULT_MAX_RESPONSE_BYTES;

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_attempts: 6,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            requests_per_second: 10.0,
            burst: 10,
            concurrency: 4,
            breaker_threshold: 10,
            breaker_cooldown: Duration::from_secs(60),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// The burst at an application's pace: half a second's worth. An
/// application that allows `rate` a second meters it with a bucket of its
/// own, commonly a second's worth; a client whose bucket is as large drains
/// the application's along with its own, and then every request that
/// arrives a little early (the network's jitter) is refused. Half as large
/// leaves the application's bucket half full for that jitter, at the cost
/// of half a second's worth of requests at the start.
fn paced_burst(rate: f64) -> u32 {
    (rate / 2.0).ceil().clamp(1.0, 1000.0) as u32
}

impl ClientSettings {
    /// The defaults, at an application's configured pace.
    pub fn paced(pacing: &crate::store::Pacing) -> Self {
        ClientSettings {
            requests_per_second: pacing.requests_per_second,
            burst: paced_burst(pacing.requests_per_second),
            concurrency: pacing.concurrency,
            request_timeout: Duration::from_secs(u64::from(pacing.timeout_seconds.max(1))),
            max_attempts: pacing.max_attempts.max(1),
            breaker_threshold: pacing.quarantine_after.max(1),
            max_response_bytes: pacing.max_response_bytes.max(1),
            ..ClientSettings::default()
        }
    }
}

/// Attempts of a connection test ([`ScimClient::probe`]).
pub const PROBE_ATTEMPTS: u32 = 2;
/// The longest wait between a connection test's attempts.
pub const PROBE_LONGEST_WAIT: Duration = Duration::from_secs(5);

/// A request to the application, relative to its SCIM base URL.
///
/// Its body is kept as the JSON text that goes on the wire, serialized once
/// however many attempts it takes, beside the passwords it carries: an
/// answer that repeats one of them is scrubbed of it before anything keeps
/// or shows the answer. Its `Debug` shows the body with any password
/// redacted.
#[derive(Clone, PartialEq)]
pub struct ScimRequest {
    pub method: Method,
    /// `/Users`, `/Users/ID`, `/Users?filter=…` (already encoded).
    pub path: String,
    body: Option<RequestBody>,
}

#[derive(Clone, PartialEq)]
struct RequestBody {
    text: String,
    passwords: Vec<String>,
}

impl std::fmt::Debug for ScimRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self
            .body
            .as_ref()
            .map(|body| match serde_json::from_str::<Value>(&body.text) {
                Ok(mut document) => {
                    crate::scim::redact_passwords(&mut document);
                    document.to_string()
                }
                Err(_) => crate::scim::scrub_passwords(body.text.clone(), &body.passwords),
            });
        f.debug_struct("ScimRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body", &body)
            .finish()
    }
}

impl ScimRequest {
    pub fn get(path: impl Into<String>) -> Self {
        ScimRequest {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn delete(path: impl Into<String>) -> Self {
        ScimRequest {
            method: Method::DELETE,
            path: path.into(),
            body: None,
        }
    }

    pub fn with_body(method: Method, path: impl Into<String>, body: Value) -> Self {
        let passwords = crate::scim::passwords_in(&body);
        Self::with_text(method, path, body.to_string(), passwords)
    }

    /// A body already serialized: `text` is the JSON document sent and
    /// `passwords` every password it carries (where
    /// [`crate::scim::passwords_in`] would find them in the document).
    pub fn with_text(
        method: Method,
        path: impl Into<String>,
        text: String,
        passwords: Vec<String>,
    ) -> Self {
        ScimRequest {
            method,
            path: path.into(),
            body: Some(RequestBody { text, passwords }),
        }
    }

    /// The body as sent, if it has one.
    pub fn body_text(&self) -> Option<&str> {
        self.body.as_ref().map(|body| body.text.as_str())
    }

    /// Whether sending it twice can do the work twice.
    fn repeatable(&self) -> bool {
        self.method != Method::POST
    }
}

/// A successful answer.
///
/// Its text was found to be JSON (or empty) when it was read. A read's
/// answer (`GET`) was made a tree then; a write's was only checked, by
/// [`JsonChecked`], which takes exactly what the tree's parser takes, and
/// its tree is built only when first asked for, since a write's answer is
/// read for one member or not at all (a create's for its `id`, an update's
/// for nothing).
#[derive(Debug, Clone)]
pub struct ScimResponse {
    pub status: StatusCode,
    text: String,
    tree: OnceLock<Value>,
    pub etag: Option<String>,
    /// Attempts it took, the successful one included.
    pub attempts: u32,
    pub elapsed: Duration,
}

impl PartialEq for ScimResponse {
    fn eq(&self, other: &Self) -> bool {
        // The tree is the text's, built or not.
        (
            self.status,
            &self.text,
            &self.etag,
            self.attempts,
            self.elapsed,
        ) == (
            other.status,
            &other.text,
            &other.etag,
            other.attempts,
            other.elapsed,
        )
    }
}

impl ScimResponse {
    /// The JSON body; `Null` when there is none (204).
    pub fn body(&self) -> &Value {
        self.tree.get_or_init(|| tree_of(&self.text))
    }

    /// The JSON body, taken.
    pub fn into_body(self) -> Value {
        match self.tree.into_inner() {
            Some(tree) => tree,
            None => tree_of(&self.text),
        }
    }

    /// The body's `id` when it is a string, as [`ScimResponse::body`]
    /// would give it, without building the tree when the text allows.
    pub fn id(&self) -> Option<&str> {
        #[derive(serde::Deserialize)]
        struct Identified<'a> {
            #[serde(borrow)]
            id: Option<&'a str>,
        }
        // Only an object has members: the derived reading would also take
        // a list, its first item as the id.
        let object = self.text.trim_start().starts_with('{');
        match object.then(|| serde_json::from_str::<Identified<'_>>(&self.text)) {
            Some(Ok(Identified { id: Some(id) })) => Some(id),
            // An id that is absent, escaped, repeated or not a string: the
            // tree says what it is.
            _ => self.body().get("id").and_then(Value::as_str),
        }
    }
}

/// The tree of an answer's text that [`JsonChecked`] took (or that is
/// empty): it cannot fail.
fn tree_of(text: &str) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or(Value::Null)
    }
}

/// A JSON document checked as the tree's parser would read it, numbers'
/// range and strings' escapes included, without keeping any of it.
struct JsonChecked;

impl<'de> serde::Deserialize<'de> for JsonChecked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any`, not `deserialize_ignored_any`: the parser then
        // reads each number and string as it does for a tree.
        deserializer.deserialize_any(JsonChecked)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonChecked {
    type Value = JsonChecked;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }

    fn visit_str<E>(self, _: &str) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }

    fn visit_unit<E>(self) -> Result<JsonChecked, E> {
        Ok(JsonChecked)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut items: A,
    ) -> Result<JsonChecked, A::Error> {
        while items.next_element::<JsonChecked>()?.is_some() {}
        Ok(JsonChecked)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut members: A,
    ) -> Result<JsonChecked, A::Error> {
        while members.next_entry::<JsonChecked, JsonChecked>()?.is_some() {}
        Ok(JsonChecked)
    }
}

/// Why a request failed. Never holds the token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScimClientError {
    #[error("{method} {path}: HTTP {status} after {attempts} attempt(s): {detail}")]
    Status {
        method: String,
        path: String,
        status: u16,
        /// The SCIM error's `detail` or the start of the body.
        detail: String,
        attempts: u32,
    },
    #[error("{method} {path}: {reason} after {attempts} attempt(s)")]
    Network {
        method: String,
        path: String,
        reason: String,
        attempts: u32,
    },
    #[error("{method} {path}: asked to wait {wait:?} (Retry-After), longer than {limit:?}")]
    WaitTooLong {
        method: String,
        path: String,
        wait: Duration,
        limit: Duration,
    },
    #[error("not sent: the circuit is open after {failures} consecutive failures ({last})")]
    CircuitOpen { failures: u32, last: String },
    /// A list whose pages cannot be trusted to be the whole list.
    #[error("GET {path}: the list cannot be trusted: {fault}")]
    Listing { path: String, fault: ListingFault },
    /// The application answered with a redirect. Redirects are never
    /// followed: a `302` to `POST /Users` would become a `GET` whose body's
    /// `id` got linked, and the token would follow the request elsewhere.
    #[error("{method} {path}: HTTP {status}, a redirect to {location:?}, which is not followed")]
    Redirected {
        method: String,
        path: String,
        status: u16,
        location: String,
    },
    /// The answer was larger than the application may send
    /// (`pacing.maxResponseBytes`); the rest was not read.
    #[error("{method} {path}: the answer is larger than {limit} bytes; the rest was not read")]
    TooLarge {
        method: String,
        path: String,
        limit: u64,
    },
    #[error("the base URL {0:?} is not an http(s) URL")]
    BadBaseUrl(String),
    /// A path that cannot go on the wire as it is, or that would address
    /// another resource than the one named once something on the way
    /// normalized it (paths are sent exactly as given: see [`user_path`]).
    #[error("{method} {path}: not sent, the path {reason}")]
    BadPath {
        method: String,
        path: String,
        reason: String,
    },
    /// The request was not sent: the caller may no longer send (an engine
    /// whose turn ran out).
    #[error("not sent: {0}")]
    NotSent(String),
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl ScimClientError {
    /// A failure that another attempt will not cure: a 4xx other than 408
    /// (timeout) and 429 (too many). 409 is the caller's to interpret.
    pub fn is_permanent(&self) -> bool {
        match self {
            ScimClientError::Status { status, .. } => {
                (400..500).contains(status) && !matches!(status, 408 | 429)
            }
            ScimClientError::BadBaseUrl(_)
            | ScimClientError::BadPath { .. }
            | ScimClientError::Redirected { .. }
            | ScimClientError::TooLarge { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status the application answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ScimClientError::Status { status, .. } | ScimClientError::Redirected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// The client of one application.
pub struct ScimClient {
    base_url: String,
    /// `base_url` as sent: its host in ASCII (IDNA), nothing else changed.
    wire_base: String,
    transport: Arc<Transport>,
    settings: ClientSettings,
    authorization: HeaderValue,
    in_flight: Arc<Semaphore>,
    rate: Arc<AdaptiveRate>,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClient")
            .field("base_url", &self.base_url)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The outcome of one attempt.
enum Attempt {
    Done(ScimResponse),
    /// Worth another attempt after at least this long (a `Retry-After`).
    Retry {
        error: ScimClientError,
        at_least: Option<Duration>,
    },
    Fail(ScimClientError),
}

impl ScimClient {
    /// A client of the application at `base_url` (placeholders already
    /// filled) with its bearer token.
    pub fn new(
        base_url: &str,
        token: &Secret,
        settings: ClientSettings,
    ) -> Result<Arc<Self>, ScimClientError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let wire_base = match url::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {
                url.as_str().trim_end_matches('/').to_string()
            }
            _ => return Err(ScimClientError::BadBaseUrl(base_url)),
        };
        let base: Uri = wire_base
            .parse()
            .map_err(|_| ScimClientError::BadBaseUrl(base_url.clone()))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let transport = Transport::new(
            &base,
            settings.connect_timeout,
            settings.concurrency.max(1) as usize,
        )
        .map_err(ScimClientError::Setup)?;
        tracing::debug!(base_url, route = ?transport.route(), "SCIM client made");
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| ScimClientError::Setup("the token is not valid in a header".into()))?;
        authorization.set_sensitive(true);
        Ok(Arc::new(ScimClient {
            base_url,
            wire_base,
            transport: Arc::new(transport),
            authorization,
            in_flight: Arc::new(Semaphore::new(settings.concurrency.max(1) as usize)),
            rate: Arc::new(AdaptiveRate::new(
                settings.requests_per_second,
                settings.burst,
            )),
            breaker: CircuitBreaker::new(settings.breaker_threshold, settings.breaker_cooldown),
            settings,
        }))
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The circuit breaker's view: open means nothing is being sent.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The rate the client sends at now, in requests per second.
    pub fn current_rate(&self) -> f64 {
        self.rate.current()
    }

    /// Sends a request, retrying as the module documentation says.
    pub async fn send(&self, request: &ScimRequest) -> Result<ScimResponse, ScimClientError> {
        let attempts = match self.breaker.admit() {
            Admission::Closed => self.settings.max_attempts,
            // A probe is one request: it tells whether the application is
            // back, it does not wait for it.
            Admission::Probe => 1,
            Admission::Open { failures, last } => {
                return Err(ScimClientError::CircuitOpen { failures, last });
            }
        };
        self.send_attempts(request, attempts, self.settings.max_retry_after)
            .await
    }

    /// Sends a request as a connection test: through the application's
    /// token bucket, concurrency cap and `Retry-After` pause like any
    /// request, but past an open circuit (a test is how one learns that the
    /// application is back), and with at most [`PROBE_ATTEMPTS`] attempts
    /// and a short wait between them (someone waits for the answer). Its
    /// outcome counts for the breaker as any request's.
    pub async fn probe(&self, request: &ScimRequest) -> Result<ScimResponse, ScimClientError> {
        self.send_attempts(request, PROBE_ATTEMPTS, PROBE_LONGEST_WAIT)
            .await
    }

    async fn send_attempts(
        &self,
        request: &ScimRequest,
        max_attempts: u32,
        longest_wait: Duration,
    ) -> Result<ScimResponse, ScimClientError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(self.settings.base_backoff, self.settings.max_backoff);
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            match self.attempt(request, attempts, started).await {
                Attempt::Done(response) => break Ok(response),
                Attempt::Fail(error) => break Err(error),
                Attempt::Retry { error, .. } if attempts >= max_attempts => break Err(error),
                Attempt::Retry { at_least, .. } => {
                    let wait = backoff.next_wait().max(at_least.unwrap_or_default());
                    if wait > longest_wait {
                        break Err(ScimClientError::WaitTooLong {
                            method: request.method.to_string(),
                            path: request.path.clone(),
                            wait,
                            limit: longest_wait,
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        };
        self.settle(&outcome);
        outcome
    }

    /// Tells the breaker how a request ended.
    fn settle(&self, outcome: &Result<ScimResponse, ScimClientError>) {
        match outcome {
            // A permanent failure is about the request, not the application.
            Ok(_) => self.breaker.record_success(),
            Err(error) if error.is_permanent() => self.breaker.record_success(),
            Err(error) => {
                if self.breaker.record_failure(&error.to_string()) {
                    tracing::warn!(
                        "{}: circuit opened after {} consecutive failures; last: {error}",
                        self.base_url,
                        self.settings.breaker_threshold
                    );
                }
            }
        }
    }

    async fn attempt(&self, request: &ScimRequest, attempts: u32, started: Instant) -> Attempt {
        // Named only in errors: not written out for every answer.
        let method = || request.method.to_string();
        let uri = match addressable(&request.path).and_then(|()| {
            Uri::try_from(format!("{}{}", self.wire_base, request.path))
                .map_err(|error| format!("not a valid URI: {error}"))
        }) {
            Ok(uri) => uri,
            Err(reason) => {
                return Attempt::Fail(ScimClientError::BadPath {
                    method: method(),
                    path: request.path.clone(),
                    reason,
                });
            }
        };
        let outgoing = Outgoing {
            method: request.method.clone(),
            uri,
            body: request.body.as_ref().map(|body| body.text.clone()),
        };
        // The exchange (the connection's request and answer futures, the
        // timeout) is kilobytes: boxed in a statement of its own, it is
        // neither part of every future that awaits a request nor copied
        // into the network thread's task, only its pointer is.
        let boxed = Box::pin(exchange(
            Arc::clone(&self.transport),
            self.authorization.clone(),
            Arc::clone(&self.in_flight),
            Arc::clone(&self.rate),
            outgoing,
            self.settings.request_timeout,
            self.settings.max_response_bytes,
        ));
        let exchanged = network::exchange(boxed).await;
        let network = |reason: String| ScimClientError::Network {
            method: method(),
            path: request.path.clone(),
            reason,
            attempts,
        };
        let (status, headers, text) = match exchanged {
            None | Some(Exchanged::Shut) => {
                return Attempt::Fail(ScimClientError::Setup("the client is shut down".into()));
            }
            Some(Exchanged::Unanswered(failure)) => {
                let not_sent = matches!(failure, Failure::NotSent(_));
                let reason = describe(&failure);
                return if not_sent || request.repeatable() {
                    Attempt::Retry {
                        error: network(reason),
                        at_least: None,
                    }
                } else {
                    Attempt::Fail(network(reason))
                };
            }
            Some(Exchanged::Answered {
                status,
                headers,
                text,
            }) => (status, headers, text),
        };
        if status.is_redirection() {
            return Attempt::Fail(ScimClientError::Redirected {
                method: method(),
                path: request.path.clone(),
                status: status.as_u16(),
                location: header_text(&headers, header::LOCATION).unwrap_or_default(),
            });
        }
        let text = match text {
            // An answer that repeats a password the request carried is
            // scrubbed of it before any error, log line or breaker keeps it.
            Ok(text) => match &request.body {
                Some(body) if !body.passwords.is_empty() => {
                    crate::scim::scrub_passwords(text, &body.passwords)
                }
                _ => text,
            },
            Err(Unread::TooLarge) => {
                return Attempt::Fail(ScimClientError::TooLarge {
                    method: method(),
                    path: request.path.clone(),
                    limit: self.settings.max_response_bytes,
                });
            }
            Err(Unread::Broken(failure)) => {
                let reason = describe(&failure);
                return if request.repeatable() {
                    Attempt::Retry {
                        error: network(reason),
                        at_least: None,
                    }
                } else {
                    Attempt::Fail(network(reason))
                };
            }
        };
        if status.is_success() {
            self.rate.on_success();
            // A read's answer is what its caller reads, so it is made a
            // tree at once; a write's is mostly not read (a create's `id`
            // at most), so it is only checked (see `ScimResponse`).
            let tree = OnceLock::new();
            if !text.trim().is_empty() {
                let read = if request.method == Method::GET {
                    serde_json::from_str::<Value>(&text).map(|read| {
                        let _ = tree.set(read);
                    })
                } else {
                    serde_json::from_str::<JsonChecked>(&text).map(|_| ())
                };
                if read.is_err() {
                    return Attempt::Fail(ScimClientError::Status {
                        method: method(),
                        path: request.path.clone(),
                        status: status.as_u16(),
                        detail: format!("the answer is not JSON: {}", excerpt(&text)),
                        attempts,
                    });
                }
            }
            return Attempt::Done(ScimResponse {
                status,
                text,
                tree,
                etag: header_text(&headers, header::ETAG),
                attempts,
                elapsed: started.elapsed(),
            });
        }
        let error = ScimClientError::Status {
            method: method(),
            path: request.path.clone(),
            status: status.as_u16(),
            detail: error_detail(&text),
            attempts,
        };
        let waited = retry_after(&headers, std::time::SystemTime::now());
        if let Some(wait) = waited.filter(|_| matches!(status.as_u16(), 429 | 503)) {
            self.rate.pause_for(wait.min(self.settings.max_retry_after));
        }
        match status.as_u16() {
            429 => {
                self.rate.on_throttled();
                Attempt::Retry {
                    error,
                    at_least: waited,
                }
            }
            503 => Attempt::Retry {
                error,
                at_least: waited,
            },
            500..=599 | 408 if request.repeatable() => Attempt::Retry {
                error,
                at_least: waited,
            },
            _ => Attempt::Fail(error),
        }
    }
}

impl ScimClient {
    /// The resources of a list (`/Users`, `/Groups`), page by page, checked
    /// as [`Pages`] says.
    pub fn pages<'a>(&'a self, path: &'a str, page_size: usize) -> Pages<'a> {
        Pages {
            client: self,
            path,
            page_size: page_size.max(1),
            listing: Listing::default(),
        }
    }
}

/// A walk through a SCIM list with `startIndex` and `count`, trusted only
/// when it is complete and consistent. A caller that acts on what a listing
/// does *not* hold (the reconcile forgets accounts missing from it) must be
/// able to tell a complete listing from a partial one, so every page is
/// checked by [`Listing`] and the walk fails with
/// [`ScimClientError::Listing`] as soon as one rule is broken:
/// - every page says how many resources there are (`totalResults`, which
///   RFC 7644 requires): without it the end of the list cannot be known;
/// - no resource id appears twice: a repeat means the application ignores
///   `startIndex` (it serves the same page again) or reorders the list
///   under the walk;
/// - every resource has an id;
/// - `totalResults` stays within [`Listing::slack`] of the first page's:
///   accounts created or deleted during the walk move it a little, a count
///   that jumps means the pages do not describe one list;
/// - the walk ends at an empty page or once the resources read reach the
///   count; it must then have read at least the last page's count less the
///   slack (a list that ends early is partial).
///
/// A page shorter than `count` is not the end (applications cap their page
/// size); the next page starts after the resources actually read. The walk
/// never loops: each page must bring ids not seen before, and it stops once
/// the count is reached.
pub struct Pages<'a> {
    client: &'a ScimClient,
    path: &'a str,
    page_size: usize,
    listing: Listing,
}

impl Pages<'_> {
    /// The next page's resources, or `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ScimClientError> {
        if self.listing.done {
            return Ok(None);
        }
        let request = ScimRequest::get(format!(
            "{}?startIndex={}&count={}",
            self.path,
            self.listing.read + 1,
            self.page_size
        ));
        let answer = self.client.send(&request).await?;
        self.listing
            .take(answer.into_body())
            .map_err(|fault| ScimClientError::Listing {
                path: self.path.to_string(),
                fault,
            })
    }

    /// Walks the whole list, handing each page to `take` in order, with the
    /// next page already asked for: the application reads and sends it
    /// while `take` works through this one. Where a page starts is known
    /// once the page before it is checked, so nothing is guessed and every
    /// rule of the walk holds as in [`Pages::next`]. At most two pages wait
    /// beside the one `take` holds. The first page that breaks a rule (or a
    /// request that fails) ends the walk with its error, after `take` has
    /// seen only the pages before it.
    pub async fn read_ahead(
        mut self,
        mut take: impl FnMut(Vec<Value>),
    ) -> Result<(), ScimClientError> {
        let (ready, mut waiting) = tokio::sync::mpsc::channel::<Vec<Value>>(1);
        let walk = async move {
            while let Some(page) = self.next().await? {
                if ready.send(page).await.is_err() {
                    break;
                }
            }
            Ok(())
        };
        let handle = async move {
            while let Some(page) = waiting.recv().await {
                take(page);
            }
        };
        // One task: the walk's request is in flight whenever `take` is done
        // with a page and waits for the next.
        let (walked, ()) = tokio::join!(walk, handle);
        walked
    }
}

/// Why a listing is not trusted, in the words of an operator reading the
/// reconcile's event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingFault {
    #[error(
        "page {page} does not say how many entries there are (no totalResults), \
         so a partial list cannot be told from a complete one"
    )]
    NoTotal { page: u64 },
    #[error(
        "page {page} lists {id} again, already listed on an earlier page: \
         the application ignores startIndex (paging) or reorders the list"
    )]
    Repeated { page: u64, id: String },
    #[error("an entry on page {page} has no id")]
    NoId { page: u64 },
    #[error(
        "the count changed from {first} on page 1 to {now} on page {page}, \
         more than changes during a listing explain"
    )]
    CountChanged { page: u64, first: u64, now: u64 },
    #[error("the application counts {total} entries but listed only {read}")]
    Short { read: u64, total: u64 },
    /// Found by the reconcile, which compares a list that kept every rule
    /// above with the ledger: so many absences are not believed.
    #[error(
        "{missing} of the {managed} accounts the host manages are missing from it, \
         more than the {limit} a reconcile confirms one by one"
    )]
    TooManyMissing {
        missing: u64,
        managed: u64,
        limit: u64,
    },
}

/// The rules of [`Pages`], applied to one answer at a time; no I/O, so they
/// are tested on their own.
#[derive(Debug, Default)]
pub struct Listing {
    /// Pages taken.
    page: u64,
    /// The first page's `totalResults`.
    first_total: Option<u64>,
    /// Resources read, which is also where the next page starts.
    read: u64,
    ids: std::collections::HashSet<String>,
    done: bool,
}

impl Listing {
    /// How far `totalResults` may move during a walk: accounts created or
    /// deleted meanwhile. 1% of the count, and never less than 5.
    pub fn slack(total: u64) -> u64 {
        (total / 100).max(5)
    }

    /// Checks one answer; its resources, or `None` once the list has ended.
    pub fn take(&mut self, body: Value) -> Result<Option<Vec<Value>>, ListingFault> {
        self.page += 1;
        let page = self.page;
        let Some(total) = body.get("totalResults").and_then(Value::as_u64) else {
            return Err(ListingFault::NoTotal { page });
        };
        let first = *self.first_total.get_or_insert(total);
        if total.abs_diff(first) > Self::slack(first) {
            return Err(ListingFault::CountChanged {
                page,
                first,
                now: total,
            });
        }
        let resources = match body {
            Value::Object(mut body) => match body.remove("Resources") {
                Some(Value::Array(resources)) => resources,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        for resource in &resources {
            let Some(id) = resource.get("id").and_then(Value::as_str) else {
                return Err(ListingFault::NoId { page });
            };
            if !self.ids.insert(id.to_string()) {
                return Err(ListingFault::Repeated {
                    page,
                    id: id.to_string(),
                });
            }
        }
        self.read += resources.len() as u64;
        self.done = resources.is_empty() || self.read >= total;
        if self.done && self.read + Self::slack(total) < total {
            return Err(ListingFault::Short {
                read: self.read,
                total,
            });
        }
        Ok((!resources.is_empty()).then_some(resources))
    }
}

/// One attempt's request, owned, so that it can be sent from the network
/// thread.
struct Outgoing {
    method: Method,
    uri: Uri,
    body: Option<String>,
}

/// What one attempt's exchange came back with.
enum Exchanged {
    /// The answer's status and headers, and its body unless the status is
    /// a redirection (which is refused whatever it carries).
    Answered {
        status: StatusCode,
        headers: HeaderMap,
        text: Result<String, Unread>,
    },
    Unanswered(Failure),
    /// The client's slots are closed.
    Shut,
}

/// One attempt on the wire: a request slot first, then a rate token (a
/// token taken while waiting for a slot would be spent late, and requests
/// held back that way would leave together, past the application's rate),
/// then the request and the whole answer within `timeout`, the slot held
/// throughout. It owns all it uses so that it can run on the network
/// thread ([`network`]).
async fn exchange(
    transport: Arc<Transport>,
    authorization: HeaderValue,
    in_flight: Arc<Semaphore>,
    rate: Arc<AdaptiveRate>,
    outgoing: Outgoing,
    timeout: Duration,
    max_response_bytes: u64,
) -> Exchanged {
    let Ok(_slot) = in_flight.acquire().await else {
        return Exchanged::Shut;
    };
    rate.acquire().await;
    let has_body = outgoing.body.is_some();
    let mut request = http::Request::new(Full::new(Bytes::from(outgoing.body.unwrap_or_default())));
    *request.method_mut() = outgoing.method;
    *request.uri_mut() = outgoing.uri;
    let headers = request.headers_mut();
    headers.insert(header::AUTHORIZATION, authorization);
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/scim+json, application/json"),
    );
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
    }
    let exchanged = async {
        let response = match transport.send(request).await {
            Ok(response) => response,
            Err(failure) => return Exchanged::Unanswered(failure),
        };
        let status = response.status();
        let headers = kept_headers(response.headers());
        let text = if status.is_redirection() {
            Ok(String::new())
        } else {
            read_capped(response.into_body(), max_response_bytes).await
        };
        Exchanged::Answered {
            status,
            headers,
            text,
        }
    };
    tokio::time::timeout(timeout, exchanged)
        .await
        .unwrap_or(Exchanged::Unanswered(Failure::TimedOut(timeout)))
}

const USER_AGENT: &str = concat!("scimlink/", env!("CARGO_PKG_VERSION"));

/// The headers of an answer the client reads: `Retry-After` (how long
/// to wait), `Location` (where a refused redirection pointed) and `ETag`.
/// Only these are kept, not a copy of every header of every answer.
const KEPT_HEADERS: [header::HeaderName; 3] = [header::RETRY_AFTER, header::LOCATION, header::ETAG];

fn kept_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in KEPT_HEADERS {
        if let Some(value) = headers.get(&name) {
            kept.insert(name, value.clone());
        }
    }
    kept
}

/// Why an answer's body was not read whole.
enum Unread {
    TooLarge,
    Broken(Failure),
}

/// The body as text, read frame by frame and refused as soon as it passes
/// `limit` bytes (a declared `Content-Length` over the limit is refused
/// before anything is read), so that an application cannot make the host
/// buffer more than that.
async fn read_capped<B>(mut body: B, limit: u64) -> Result<String, Unread>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().lower() > limit {
        return Err(Unread::TooLarge);
    }
    let mut read: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Unread::Broken(Failure::BrokeOff(error.into())))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if (read.len() + chunk.len()) as u64 > limit {
            return Err(Unread::TooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    // Kept as read when it is UTF-8, as answers are: copied only to mend it.
    Ok(String::from_utf8(read)
        .unwrap_or_else(|broken| String::from_utf8_lossy(broken.as_bytes()).into_owned()))
}

/// The path of a user of the application: its id as one path segment, so
/// that an id holding `/`, `?` or `#` cannot send the request anywhere else
/// on the application's host. An id that is `.`, `..` or empty would still
/// be a segment that addresses something else (the collection, or its
/// parent, once a proxy or the application normalizes the path); the
/// client refuses to send such a path ([`ScimClientError::BadPath`]).
pub fn user_path(remote_id: &str) -> String {
    format!("/Users/{}", percent_encode(remote_id))
}

/// The path of a group of the application; see [`user_path`].
pub fn group_path(remote_id: &str) -> String {
    format!("/Groups/{}", percent_encode(remote_id))
}

/// Whether `path` (`/Users/ID?query`) addresses what it names: past its
/// leading `/`, no segment of it is empty, `.` or `..`, which a proxy or
/// the application would resolve to another resource.
fn addressable(path: &str) -> Result<(), String> {
    let before_query = path.split(['?', '#']).next().unwrap_or_default();
    let Some(segments) = before_query.strip_prefix('/') else {
        return Err("does not start with /".into());
    };
    match segments
        .split('/')
        .find(|segment| matches!(*segment, "" | "." | ".."))
    {
        Some(segment) => Err(format!(
            "has a segment {segment:?}, which would address another resource"
        )),
        None => Ok(()),
    }
}

/// `text` as one URL path segment or query value: everything but the
/// unreserved characters of RFC 3986 percent-encoded.
pub fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char);
            }
            _ => {
                encoded.push('%');
                encoded.push(HEX[usize::from(byte >> 4)] as char);
                encoded.push(HEX[usize::from(byte & 0x0F)] as char);
            }
        }
    }
    encoded
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// A network failure in a sentence: what went wrong and its innermost
/// cause (never the request's headers, which is all that holds the token).
fn describe(failure: &Failure) -> String {
    let (kind, error): (&str, &(dyn std::error::Error + 'static)) = match failure {
        Failure::NotSent(error) => ("cannot connect", error.as_ref()),
        Failure::Lost(error) => ("the request failed", error.as_ref()),
        Failure::BrokeOff(error) => ("the answer broke off", error.as_ref()),
        Failure::TimedOut(limit) => return format!("timed out: no whole answer within {limit:?}"),
    };
    let mut innermost = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    format!("{kind}: {innermost}")
}

/// The SCIM error's `detail`, else the start of the body.
fn error_detail(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|body| {
            body.get("detail")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| excerpt(text))
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let trimmed = text.trim();
    match trimmed.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(body: &[u8]) -> Full<Bytes> {
        Full::new(Bytes::copy_from_slice(body))
    }

    /// The check an answer passes when read takes what the tree's parser
    /// takes, and refuses what it refuses: an answer is never read as
    /// JSON and then found not to be.
    #[test]
    fn the_check_of_an_answer_takes_what_the_tree_takes() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let texts = [
            r#"{"id":"7","name":{"givenName":"Ada"},"emails":[{"value":"a@x"}],"n":1.5e3}"#
                .to_string(),
            r#"{"id":"7","id":"8"}"#.to_string(),
            r#"{"big":18446744073709551616,"neg":-9223372036854775809}"#.to_string(),
            r#"{"huge":1e400}"#.to_string(),
            r#"{"lone":"\ud800"}"#.to_string(),
            r#"{"pair":"\ud83d\ude00"}"#.to_string(),
            r#"{"bad":"\x"}"#.to_string(),
            "{\"control\":\"a\u{1}b\"}".to_string(),
            r#"{"open":"#.to_string(),
            r#"{"a":1} trailing"#.to_string(),
            "[1,]".to_string(),
            "null".to_string(),
            nested(100),
            nested(200),
        ];
        for text in &texts {
            assert_eq!(
                serde_json::from_str::<JsonChecked>(text).is_ok(),
                serde_json::from_str::<Value>(text).is_ok(),
                "{text}"
            );
        }
    }

    fn answered(text: &str) -> ScimResponse {
        ScimResponse {
            status: StatusCode::CREATED,
            text: text.to_string(),
            tree: OnceLock::new(),
            etag: None,
            attempts: 1,
            elapsed: Duration::ZERO,
        }
    }

    /// A create's answer is read for its `id` without its tree, and reads
    /// as the tree would whatever the text's shape.
    #[test]
    fn an_answers_id_is_what_its_tree_says() {
        for text in [
            r#"{"id":"2819c223","userName":"ada","meta":{"location":"x"}}"#,
            r#"{"userName":"ada","id":"a\"b\\c"}"#,
            r#"{"id":"first","id":"last"}"#,
            r#"{"id":42}"#,
            r#"{"id":null}"#,
            r#"{"userName":"ada"}"#,
            r#"[{"id":"in a list"}]"#,
            r#"["first of a list"]"#,
            r#""a string""#,
            "",
        ] {
            let expected = tree_of(text)
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string);
            assert_eq!(answered(text).id().map(str::to_string), expected, "{text}");
            assert_eq!(*answered(text).body(), tree_of(text), "{text}");
            assert_eq!(answered(text).into_body(), tree_of(text), "{text}");
        }
        assert_eq!(answered(r#"{"id":"first","id":"last"}"#).id(), Some("last"));
        assert_eq!(answered(r#"{"id":"a\"b"}"#).id(), Some("a\"b"));
    }

    /// A request's future is part of every future that awaits one (each
    /// user's sync, each group's), and is moved as they are: its exchange
    /// stays behind a pointer (it was 3,688 bytes inline).
    #[test]
    fn a_request_future_is_small() {
        let client = ScimClient::new(
            "http://127.0.0.1:9/scim/v2",
            &Secret::new("t0k"),
            ClientSettings::default(),
        )
        .expect("a client");
        let request = ScimRequest::get("/Users");
        let sending = client.send(&request);
        assert!(
            std::mem::size_of_val(&sending) <= 1024,
            "a request's future is {} bytes",
            std::mem::size_of_val(&sending)
        );
    }

    #[tokio::test]
    async fn an_answer_is_read_as_text_and_mended_where_it_is_not_utf8() {
        let read = read_capped(answer("{\"userName\":\"zoë\"}".as_bytes()), 1024).await;
        assert!(matches!(read.as_deref(), Ok("{\"userName\":\"zoë\"}")));
        let read = read_capped(answer(b"{\"userName\":\"zo\xff\"}"), 1024).await;
        assert!(matches!(
            read.as_deref(),
            Ok("{\"userName\":\"zo\u{fffd}\"}")
        ));
        let read = read_capped(answer(&[b'x'; 2048]), 1024).await;
        assert!(matches!(read, Err(Unread::TooLarge)));
    }

    fn page(total: Option<u64>, ids: &[&str]) -> Value {
        let mut body = json!({
            "Resources": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
        });
        if let Some(total) = total {
            body["totalResults"] = total.into();
        }
        body
    }

    fn ids(resources: Option<Vec<Value>>) -> Vec<String> {
        resources
            .unwrap_or_default()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_path_addresses_what_it_names_or_is_refused() {
        for path in [
            "/Users",
            "/Users/2819c223",
            "/Users/.search",
            "/Users/..%2F",
            "/Users?filter=userName%20eq%20%22..%22",
            "/ServiceProviderConfig",
        ] {
            assert_eq!(addressable(path), Ok(()), "{path}");
        }
        for id in ["..", ".", ""] {
            let path = user_path(id);
            assert!(addressable(&path).is_err(), "{path}");
            let path = group_path(id);
            assert!(addressable(&path).is_err(), "{path}");
        }
        for path in ["Users", "/Users//x", "/a/../Users", "/Users/./x?filter=a"] {
            assert!(addressable(path).is_err(), "{path}");
        }
    }

    #[test]
    fn a_paced_client_bursts_half_a_second_of_its_pace() {
        let burst = |requests_per_second| {
            ClientSettings::paced(&crate::store::Pacing {
                requests_per_second,
                ..Default::default()
            })
            .burst
        };
        // Half of an application's own bucket (commonly a second's worth)
        // is left for the network's jitter.
        assert_eq!(burst(100.0), 50);
        assert_eq!(burst(25.0), 13);
        // Never less than one request, never more than a thousand.
        assert_eq!(burst(1.0), 1);
        assert_eq!(burst(0.1), 1);
        assert_eq!(burst(10_000.0), 1000);
    }

    #[test]
    fn a_complete_list_ends_at_its_count_even_with_short_pages() {
        let mut listing = Listing::default();
        // The application caps its pages at 2 whatever `count` asked.
        assert_eq!(
            ids(listing.take(page(Some(5), &["a", "b"])).unwrap()),
            ["a", "b"]
        );
        assert!(!listing.done);
        assert_eq!(
            listing.read + 1,
            3,
            "the next page starts after what was read"
        );
        listing.take(page(Some(5), &["c", "d"])).unwrap();
        assert_eq!(ids(listing.take(page(Some(5), &["e"])).unwrap()), ["e"]);
        assert!(listing.done);

        let mut empty = Listing::default();
        assert_eq!(empty.take(json!({ "totalResults": 0 })).unwrap(), None);
        assert!(empty.done);
    }

    #[test]
    fn a_page_without_a_count_fails_the_listing() {
        let mut listing = Listing::default();
        let fault = listing.take(page(None, &["a", "b"])).unwrap_err();
        assert_eq!(fault, ListingFault::NoTotal { page: 1 });
        assert!(fault.to_string().contains("totalResults"), "{fault}");
    }

    #[test]
    fn a_page_that_repeats_an_id_fails_the_listing() {
        // An application that ignores startIndex serves page 1 again.
        let mut listing = Listing::default();
        listing.take(page(Some(4), &["a", "b"])).unwrap();
        let fault = listing.take(page(Some(4), &["a", "b"])).unwrap_err();
        assert_eq!(
            fault,
            ListingFault::Repeated {
                page: 2,
                id: "a".into()
            }
        );
        assert!(fault.to_string().contains("startIndex"), "{fault}");
        // A zero-based startIndex repeats the last id of the page before.
        let mut listing = Listing::default();
        listing.take(page(Some(4), &["a", "b"])).unwrap();
        assert!(listing.take(page(Some(4), &["b", "c"])).is_err());
        assert!(matches!(
            Listing::default().take(json!({ "totalResults": 1, "Resources": [{}] })),
            Err(ListingFault::NoId { page: 1 })
        ));
    }

    #[test]
    fn a_path_segment_keeps_only_unreserved_characters() {
        assert_eq!(
            percent_encode("aZ09-_.~ /?#%\"é"),
            "aZ09-_.~%20%2F%3F%23%25%22%C3%A9"
        );
        assert_eq!(user_path("../admin"), "/Users/..%2Fadmin");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn a_request_body_is_its_text_and_shows_no_password() {
        let document = json!({ "userName": "ada", "password": "Sw0rd\"fish" });
        let request = ScimRequest::with_body(Method::POST, "/Users", document.clone());
        assert_eq!(request.body_text(), Some(document.to_string().as_str()));
        let shown = format!("{request:?}");
        assert!(
            shown.contains("ada") && shown.contains("[redacted]"),
            "{shown}"
        );
        assert!(!shown.contains("fish"), "{shown}");
        // Serialized elsewhere, with its passwords named by the caller.
        let request = ScimRequest::with_text(
            Method::POST,
            "/Users",
            document.to_string(),
            vec!["Sw0rd\"fish".into()],
        );
        assert_eq!(request.body_text(), Some(document.to_string().as_str()));
        assert!(!format!("{request:?}").contains("fish"));
        assert_eq!(ScimRequest::delete("/Users/1").body_text(), None);
    }

    #[test]
    fn only_the_headers_the_client_reads_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        headers.insert(header::ETAG, HeaderValue::from_static("W/\"1\""));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
        let kept = kept_headers(&headers);
        assert_eq!(kept.len(), 2);
        assert_eq!(header_text(&kept, header::ETAG).as_deref(), Some("W/\"1\""));
        assert_eq!(
            retry_after(&kept, std::time::SystemTime::now()),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn a_list_that_ends_early_or_miscounts_fails() {
        let mut listing = Listing::default();
        listing.take(page(Some(20), &["a", "b"])).unwrap();
        assert_eq!(
            listing.take(page(Some(20), &[])).unwrap_err(),
            ListingFault::Short { read: 2, total: 20 }
        );
        // Within the slack: accounts deleted during the walk.
        let mut listing = Listing::default();
        listing.take(page(Some(6), &["a", "b"])).unwrap();
        assert_eq!(listing.take(page(Some(6), &[])).unwrap(), None);
        // A count that jumps between pages.
        let mut listing = Listing::default();
        listing.take(page(Some(1000), &["a", "b"])).unwrap();
        listing.take(page(Some(1010), &["c"])).unwrap();
        assert_eq!(
            listing.take(page(Some(2), &["d"])).unwrap_err(),
            ListingFault::CountChanged {
                page: 3,
                first: 1000,
                now: 2
            }
        );
    }
}
