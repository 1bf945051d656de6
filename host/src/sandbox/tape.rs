//! The sandbox test's window on the application: a loopback proxy that
//! logs every exchange, and either forwards it (to the simulator or to the
//! vendor's endpoint) or answers it from a recording.
//!
//! Invariants:
//! - the host under test and the test's own read-backs both go through the
//!   proxy, so a recording holds everything a replay needs;
//! - a read-back is marked by the [`CHECK_HEADER`] header, which is never
//!   forwarded;
//! - a replay answers each request with the first unused recorded exchange
//!   of the same sender, method and path; a `GET` asked more often than it
//!   was recorded gets the latest recorded answer again (how often the
//!   engine reads varies from run to run; a read changes nothing); any
//!   other request with none is answered 400 (a permanent refusal: the
//!   host must not retry what can never be answered) and logged as
//!   unmatched;
//! - the throwaway host makes up new directory ids on every run, and
//!   connectors send them (as `externalId`, in filters): a replay is told
//!   which recorded id each new one stands for ([`Tape::substitute`]), reads
//!   paths with the recorded ids and answers with the new ones. Request
//!   bodies are not compared.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Served;
use crate::scim::error::SCIM_CONTENT_TYPE;

/// The header that marks the test's own read-backs.
pub const CHECK_HEADER: &str = "x-scimlink-sandbox-check";

/// The file a recording's exchanges are kept in.
pub const EXCHANGES_FILE: &str = "exchanges.json";

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    /// The host, provisioning through the connector.
    Host,
    /// The sandbox test, reading back or preparing the application.
    Check,
}

/// One request and its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    pub by: Sender,
    pub method: String,
    /// Path and query, relative to the application's base URL.
    pub path: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The response body, when it was JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// The response body, when it was not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// A replayed request the recording had no answer for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmatched: bool,
}

impl Exchange {
    /// `METHOD PATH STATUS`, as a report shows it.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.method, self.path, self.status)
    }
}

/// Where the proxy gets its answers.
pub enum Upstream {
    /// The application at this base URL.
    Forward(String),
    /// A recording, read from a folder written by [`Tape::save`].
    Replay(Vec<Exchange>),
}

/// Why a recording cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    #[error("cannot read the recording {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the recording {path} is not valid: {source}")]
    Invalid {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write the recording in {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Reads the exchanges of a recording folder.
pub fn load(folder: &Path) -> Result<Vec<Exchange>, TapeError> {
    let path = folder.join(EXCHANGES_FILE);
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| TapeError::Read {
        path: shown.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| TapeError::Invalid {
        path: shown,
        source,
    })
}

/// A running proxy.
pub struct Tape {
    address: SocketAddr,
    shared: Arc<Shared>,
    _served: Served,
}

struct Shared {
    upstream: Upstream,
    http: reqwest::Client,
    log: Mutex<Vec<Exchange>>,
    /// Which recorded exchanges a replay has used.
    used: Mutex<Vec<bool>>,
    /// (recorded id, id of this run) pairs a replay translates.
    substitutions: Mutex<Vec<(String, String)>>,
}

impl Tape {
    /// Listens on a loopback port and serves until dropped.
    pub async fn start(upstream: Upstream) -> std::io::Result<Tape> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(std::io::Error::other)?;
        let recorded = match &upstream {
            Upstream::Replay(exchanges) => exchanges.len(),
            Upstream::Forward(_) => 0,
        };
        let shared = Arc::new(Shared {
            upstream,
            http,
            log: Mutex::new(Vec::new()),
            used: Mutex::new(vec![false; recorded]),
            substitutions: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        Ok(Tape {
            address,
            shared,
            _served: Served::spawn(listener, app),
        })
    }

    /// The base URL the host and the checks use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// How many exchanges have been logged.
    pub fn len(&self) -> usize {
        self.shared.log.lock().map(|log| log.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The exchanges logged from position `from` on.
    pub fn since(&self, from: usize) -> Vec<Exchange> {
        self.shared
            .log
            .lock()
            .map(|log| {
                log.get(from..)
                    .map(<[Exchange]>::to_vec)
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Tells a replay that `now` stands for `recorded` in this run.
    pub fn substitute(&self, recorded: &str, now: &str) {
        if recorded != now
            && let Ok(mut pairs) = self.shared.substitutions.lock()
        {
            pairs.push((recorded.to_string(), now.to_string()));
        }
    }

    /// Writes every exchange logged so far into `folder`. A resource in a
    /// list answer that `keep` refuses is written as its id and schemas
    /// alone (its name `redacted`): a recording holds no data of accounts
    /// the run did not make, yet answers the same listings.
    pub fn save(&self, folder: &Path, keep: &dyn Fn(&Value) -> bool) -> Result<(), TapeError> {
        let failed = |source| TapeError::Write {
            path: folder.display().to_string(),
            source,
        };
        std::fs::create_dir_all(folder).map_err(failed)?;
        let mut exchanges = self.since(0);
        for exchange in &mut exchanges {
            if let Some(Value::Array(resources)) = exchange
                .response
                .as_mut()
                .and_then(|body| body.get_mut("Resources"))
            {
                for resource in resources.iter_mut().filter(|r| !keep(r)) {
                    *resource = redacted(resource);
                }
            }
        }
        let text = serde_json::to_string_pretty(&exchanges)
            .map_err(|e| failed(std::io::Error::other(e)))?;
        let path = folder.join(EXCHANGES_FILE);
        let partial = folder.join(format!(".{EXCHANGES_FILE}.tmp"));
        std::fs::write(&partial, text).map_err(failed)?;
        std::fs::rename(&partial, &path).map_err(failed)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let by = if headers.contains_key(CHECK_HEADER) {
        Sender::Check
    } else {
        Sender::Host
    };
    // A recording never holds a password, sent or (wrongly) echoed.
    let request: Option<Value> = serde_json::from_slice(&body).ok().map(|mut request| {
        crate::scim::redact_passwords(&mut request);
        request
    });
    let mut exchange = match &shared.upstream {
        Upstream::Forward(base) => forward(&shared, base, &method, &path, &headers, body).await,
        Upstream::Replay(recorded) => replay(&shared, recorded, by, &method, &path),
    };
    exchange.by = by;
    exchange.request = request;
    let response = render(&exchange);
    if let Ok(mut log) = shared.log.lock() {
        log.push(exchange);
    }
    response
}

async fn forward(
    shared: &Shared,
    base: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Exchange {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    // What the answer is scrubbed of, should the application repeat it.
    let sent_passwords = serde_json::from_slice::<Value>(&body)
        .map(|sent| crate::scim::passwords_in(&sent))
        .unwrap_or_default();
    let mut request = shared.http.request(method.clone(), &url).body(body);
    for name in [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::IF_MATCH,
    ] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let mut exchange = Exchange {
        by: Sender::Host,
        method: method.to_string(),
        path: path.to_string(),
        status: 502,
        request: None,
        response: None,
        response_text: None,
        retry_after: None,
        unmatched: false,
    };
    match request.send().await {
        Ok(answer) => {
            exchange.status = answer.status().as_u16();
            exchange.retry_after = answer
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = answer.bytes().await.unwrap_or_default();
            let text = crate::scim::scrub_passwords(
                String::from_utf8_lossy(&bytes).into_owned(),
                &sent_passwords,
            );
            match serde_json::from_str(&text) {
                Ok(mut body) => {
                    crate::scim::redact_passwords(&mut body);
                    exchange.response = Some(body);
                }
                Err(_) if !text.is_empty() => exchange.response_text = Some(text),
                Err(_) => {}
            }
        }
        Err(error) => {
            exchange.response = Some(json!({
                "detail": format!("the sandbox could not reach the application: {error}")
            }));
        }
    }
    exchange
}

fn replay(
    shared: &Shared,
    recorded: &[Exchange],
    by: Sender,
    method: &Method,
    path: &str,
) -> Exchange {
    let pairs = shared
        .substitutions
        .lock()
        .map(|pairs| pairs.clone())
        .unwrap_or_default();
    let recorded_path = pairs
        .iter()
        .fold(path.to_string(), |path, (old, new)| path.replace(new, old));
    let found = shared.used.lock().ok().and_then(|mut used| {
        let same = |e: &Exchange| {
            e.by == by && e.method.eq_ignore_ascii_case(method.as_str()) && e.path == recorded_path
        };
        match recorded
            .iter()
            .enumerate()
            .position(|(i, e)| !used[i] && same(e))
        {
            Some(index) => {
                used[index] = true;
                Some(recorded[index].clone())
            }
            // A read asked once more than the recording run asked it (the
            // engine's worker and the step's own calls interleave
            // differently from run to run) gets the latest recorded answer
            // again: a read changes nothing. A write is never repeated.
            None if *method == Method::GET => recorded
                .iter()
                .enumerate()
                .rev()
                .find(|(i, e)| used[*i] && same(e))
                .map(|(_, e)| e.clone()),
            None => None,
        }
    });
    match found {
        Some(mut exchange) => {
            exchange.path = path.to_string();
            if let Some(body) = exchange.response.as_mut() {
                translate(body, &pairs);
            }
            exchange
        }
        None => Exchange {
            by,
            method: method.to_string(),
            path: path.to_string(),
            status: 400,
            request: None,
            response: Some(json!({
                "detail": format!("the recording has no answer for {method} {path}")
            })),
            response_text: None,
            retry_after: None,
            unmatched: true,
        },
    }
}

/// What a recording keeps of a resource the run did not make.
fn redacted(resource: &Value) -> Value {
    let mut kept = serde_json::Map::new();
    for key in ["id", "schemas"] {
        if let Some(value) = resource.get(key) {
            kept.insert(key.into(), value.clone());
        }
    }
    let name = if resource.get("displayName").is_some() && resource.get("userName").is_none() {
        "displayName"
    } else {
        "userName"
    };
    kept.insert(name.into(), Value::String("redacted".into()));
    Value::Object(kept)
}

/// Puts this run's ids where the recording has its own.
fn translate(value: &mut Value, pairs: &[(String, String)]) {
    match value {
        Value::String(text) => {
            for (old, new) in pairs {
                if text.contains(old.as_str()) {
                    *text = text.replace(old.as_str(), new);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| translate(v, pairs)),
        Value::Object(map) => map.values_mut().for_each(|v| translate(v, pairs)),
        _ => {}
    }
}

fn render(exchange: &Exchange) -> Response {
    let status = StatusCode::from_u16(exchange.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let (mut response, content_type) = match (&exchange.response, &exchange.response_text) {
        (Some(body), _) => (
            (status, body.to_string()).into_response(),
            Some(SCIM_CONTENT_TYPE),
        ),
        (None, Some(text)) => (
            (status, text.clone()).into_response(),
            Some("text/plain; charset=utf-8"),
        ),
        (None, None) => (status.into_response(), None),
    };
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Some(value) = exchange
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
