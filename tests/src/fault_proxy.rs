//! A fault-injecting HTTP proxy on a loopback port, in front of a real SCIM
//! server: it forwards each request, or answers in its place with the fault
//! the test switched on (a status, 429 with Retry-After, a reset connection,
//! a delay). Every request is logged with when it arrived and how it was
//! answered, so a test can check what the engine did, not only where it
//! ended up.
//!
//! One request per connection: every answer closes it, which is what keeps
//! the proxy small (no keep-alive, no chunked bodies).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to the requests that come.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer every request with this status.
    pub status_for_all: Option<u16>,
    /// Answer the next N requests with 429 and `Retry-After: seconds`.
    pub too_many: Option<(u32, u32)>,
    /// Answer the next N requests with 500.
    pub server_errors: u32,
    /// Close the next N connections without answering.
    pub resets: u32,
    /// Hold the next N requests this long before forwarding them.
    pub delays: Option<(u32, Duration)>,
    /// Answer requests whose body contains the text with the status.
    pub refuse_containing: Option<(String, u16)>,
    /// Forward requests without their `filter` query parameter, as an
    /// application that ignores filters does: a lookup gets every account.
    pub ignore_filters: bool,
    /// Forward filtered requests asking for at most this many resources
    /// (`count`), as an application that caps its page size does: a lookup
    /// matching more gets the first page of them.
    pub page_size: Option<usize>,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The status answered; `None` when the connection was reset.
    pub status: Option<u16>,
    /// Whether the proxy answered in the server's place.
    pub injected: bool,
}

pub struct FaultProxy {
    pub port: u16,
    faults: Arc<Mutex<Faults>>,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = (Arc::clone(&faults), Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (faults, log, stop) = shared;
            // A fresh connection per request: a pooled one the server
            // closed meanwhile would fail a request for a fault nobody set.
            let upstream = crate::http_client_builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client");
            for connection in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(connection) = connection else { continue };
                let (faults, log, upstream) =
                    (Arc::clone(&faults), Arc::clone(&log), upstream.clone());
                std::thread::spawn(move || {
                    serve(connection, upstream_port, &faults, &log, &upstream);
                });
            }
        });
        FaultProxy {
            port,
            faults,
            log,
            stop,
        }
    }

    /// Switches faults on or off.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn log(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        crate::stop_accepting(&self.stop, self.port);
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        }
        headers.push((name, value));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Which fault, if any, answers this request; counts it down.
fn fault_for(faults: &Mutex<Faults>, request: &Request) -> Option<Fault> {
    let mut faults = faults.lock().unwrap();
    if faults.resets > 0 {
        faults.resets -= 1;
        return Some(Fault::Reset);
    }
    if let Some((count, seconds)) = faults.too_many
        && count > 0
    {
        faults.too_many = (count > 1).then_some((count - 1, seconds));
        return Some(Fault::Status(429, Some(seconds)));
    }
    if faults.server_errors > 0 {
        faults.server_errors -= 1;
        return Some(Fault::Status(500, None));
    }
    if let Some(status) = faults.status_for_all {
        return Some(Fault::Status(status, None));
    }
    if let Some((text, status)) = &faults.refuse_containing
        && String::from_utf8_lossy(&request.body).contains(text.as_str())
    {
        return Some(Fault::Status(*status, None));
    }
    if let Some((count, delay)) = faults.delays
        && count > 0
    {
        faults.delays = (count > 1).then_some((count - 1, delay));
        return Some(Fault::Delay(delay));
    }
    None
}

enum Fault {
    Reset,
    Status(u16, Option<u32>),
    Delay(Duration),
}

fn serve(
    mut stream: TcpStream,
    upstream_port: u16,
    faults: &Mutex<Faults>,
    log: &Mutex<Vec<Logged>>,
    upstream: &reqwest::blocking::Client,
) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let at = Instant::now();
    let logged = |status: Option<u16>, injected: bool| Logged {
        at,
        method: request.method.clone(),
        path: request.path.clone(),
        status,
        injected,
    };
    match fault_for(faults, &request) {
        Some(Fault::Reset) => {
            log.lock().unwrap().push(logged(None, true));
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Some(Fault::Status(status, retry_after)) => {
            log.lock().unwrap().push(logged(Some(status), true));
            let body = format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"{status}","detail":"injected by the test proxy"}}"#
            );
            let extra = retry_after
                .map(|seconds| format!("Retry-After: {seconds}\r\n"))
                .unwrap_or_default();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/scim+json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
        Some(Fault::Delay(delay)) => std::thread::sleep(delay),
        None => {}
    }
    let path = {
        let faults = faults.lock().unwrap();
        match faults.page_size {
            Some(page_size) if request.path.contains("filter=") => paged(&request.path, page_size),
            _ if faults.ignore_filters => without_filter(&request.path),
            _ => request.path.clone(),
        }
    };
    let url = format!("http://127.0.0.1:{upstream_port}{path}");
    let answer = send_on(
        upstream,
        &request.method,
        &url,
        &request.headers,
        request.body.clone(),
    );
    // Logged before it is written back: a test that has its answer finds
    // it in the log.
    log.lock()
        .unwrap()
        .push(logged(answer.as_ref().map(|answer| answer.status), false));
    if let Some(answer) = answer {
        answer.write_to(&mut stream);
    }
}

/// A server's answer, as a proxy passes it back.
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// Writes the answer with `connection: close`: one request per
    /// connection.
    pub(crate) fn write_to(&self, client: &mut TcpStream) {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("Status");
        let head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        let _ = client.write_all(head.as_bytes());
        let _ = client.write_all(&self.body);
    }
}

/// Sends a request on to `url` with the headers a SCIM exchange needs
/// (`authorization`, `content-type`, `accept`); its answer, or `None` if
/// the server did not answer.
pub(crate) fn send_on(
    upstream: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Option<Answer> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
    let mut forwarded = upstream.request(method, url);
    for (name, value) in headers {
        if ["authorization", "content-type", "accept"]
            .iter()
            .any(|kept| name.eq_ignore_ascii_case(kept))
        {
            forwarded = forwarded.header(name.as_str(), value.as_str());
        }
    }
    let answer = forwarded.body(body).send().ok()?;
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/scim+json")
        .to_string();
    let body = answer.bytes().unwrap_or_default().to_vec();
    Some(Answer {
        status,
        content_type,
        body,
    })
}

/// `path` asking for at most `page_size` resources, in place of any count
/// it asked for.
fn paged(path: &str, page_size: usize) -> String {
    let (resource, query) = path.split_once('?').unwrap_or((path, ""));
    let mut kept: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("count="))
        .map(str::to_string)
        .collect();
    kept.push(format!("count={page_size}"));
    format!("{resource}?{}", kept.join("&"))
}

/// `path` without its `filter` query parameter.
fn without_filter(path: &str) -> String {
    let Some((resource, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("filter="))
        .collect();
    if kept.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}?{}", kept.join("&"))
    }
}
