//! The SCIM client against what applications do: throttle with
//! `Retry-After`, fail with 5xx, hang, drop connections, refuse for good —
//! played by a scripted HTTP server on loopback — and against a real SCIM
//! server (scim2-server from PyPI) with a tenant path and a bearer token.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scimlink::scim_client::{ClientSettings, ScimClient, ScimClientError, ScimRequest};
use scimlink::store::Secret;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted server does with one request.
#[derive(Debug, Clone)]
enum Play {
    Status(u16, Option<&'static str>),
    /// Answers this status with the request's body repeated in `detail`, as
    /// an application that echoes what it refused does.
    Echo(u16),
    /// Answers 200 after this long.
    Hang(Duration),
    /// Closes the connection without answering.
    Reset,
    /// Answers 302 to this location.
    Redirect(&'static str),
    /// Answers 200 with a body of this many bytes, its length declared up
    /// front or sent chunked without one.
    Large {
        bytes: usize,
        chunked: bool,
    },
    /// Answers 200 with this body.
    Text(&'static str),
}

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    authorization: Option<String>,
}

struct Scripted {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    hanging: Arc<Hanging>,
}

/// Requests the server is holding in [`Play::Hang`], now and at most.
#[derive(Default)]
struct Hanging {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Scripted {
    /// Plays `script` in order, then answers 200 to everything.
    async fn start(script: Vec<Play>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_server = Arc::clone(&seen);
        let hanging = Arc::new(Hanging::default());
        let hanging_in_server = Arc::clone(&hanging);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(
                    stream,
                    Arc::clone(&script),
                    Arc::clone(&seen_by_server),
                    Arc::clone(&hanging_in_server),
                ));
            }
        });
        Scripted {
            address,
            seen,
            hanging,
        }
    }

    fn base(&self) -> String {
        format!("http://{}/scim/v2", self.address)
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    script: Arc<Mutex<VecDeque<Play>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    hanging: Arc<Hanging>,
) {
    let mut buffer = Vec::new();
    loop {
        // Read one request: head, then the body its content-length names.
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        }
        let sent = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
        buffer.drain(..head_end + length);
        seen.lock().unwrap().push(Seen {
            request_line: head.lines().next().unwrap_or_default().to_string(),
            authorization: head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.trim().to_string())
            }),
        });
        let play = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Play::Status(200, None));
        // Each play comes to a status, any headers beyond the content's,
        // and a body.
        let (status, headers, body) = match play {
            Play::Reset => return,
            Play::Redirect(location) => (302, format!("location: {location}\r\n"), String::new()),
            Play::Large { bytes, chunked } => {
                let _ = write_large(&mut stream, bytes, chunked).await;
                return;
            }
            Play::Hang(time) => {
                let now = hanging.now.fetch_add(1, Ordering::SeqCst) + 1;
                hanging.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(time).await;
                hanging.now.fetch_sub(1, Ordering::SeqCst);
                (200, String::new(), scripted_body(200))
            }
            Play::Status(status, retry_after) => (
                status,
                retry_after
                    .map(|value| format!("retry-after: {value}\r\n"))
                    .unwrap_or_default(),
                scripted_body(status),
            ),
            Play::Text(body) => (200, String::new(), body.to_string()),
            Play::Echo(status) => (
                status,
                String::new(),
                error_body(status, &format!("refused: {sent}")),
            ),
        };
        let answer = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// What a scripted answer of `status` says: a user below 300, an error
/// from 300.
fn scripted_body(status: u16) -> String {
    if status < 300 {
        json!({ "id": "42", "userName": "ada" }).to_string()
    } else {
        error_body(status, &format!("scripted {status}"))
    }
}

fn error_body(status: u16, detail: &str) -> String {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.to_string(),
        "detail": detail,
    })
    .to_string()
}

/// A 200 whose JSON body is `bytes` long, written a slice at a time.
async fn write_large(stream: &mut TcpStream, bytes: usize, chunked: bool) -> std::io::Result<()> {
    let head = if chunked {
        "HTTP/1.1 200 OK\r\ncontent-type: application/scim+json\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
    } else {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/scim+json\r\ncontent-length: {bytes}\r\n\r\n"
        )
    };
    stream.write_all(head.as_bytes()).await?;
    let slice = vec![b' '; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let now = left.min(slice.len());
        if chunked {
            stream.write_all(format!("{now:x}\r\n").as_bytes()).await?;
            stream.write_all(&slice[..now]).await?;
            stream.write_all(b"\r\n").await?;
        } else {
            stream.write_all(&slice[..now]).await?;
        }
        left -= now;
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        max_attempts: 4,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        requests_per_second: 1000.0,
        burst: 100,
        ..ClientSettings::default()
    }
}

fn client(base: &str, settings: ClientSettings) -> Arc<ScimClient> {
    ScimClient::new(base, &Secret::new("t0k-secret"), settings).unwrap()
}

fn post_user() -> ScimRequest {
    ScimRequest::with_body(
        reqwest::Method::POST,
        "/Users",
        json!({ "userName": "ada" }),
    )
}

/// However many callers send at once, the application never has more of
/// their requests in flight than its concurrency: the engine syncs more
/// users at once than that, and counts on the client to hold the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_never_pass_the_concurrency() {
    let (server, client) = twelve_hanging_at_concurrency_three().await;
    let sends: Vec<_> = (0..12)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.send(&post_user()).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert_twelve_sent_three_at_most(&server);
}

/// A server that holds each of 12 requests a while, and a client of it
/// that may have 3 in flight.
async fn twelve_hanging_at_concurrency_three() -> (Scripted, Arc<ScimClient>) {
    let server = Scripted::start(vec![Play::Hang(Duration::from_millis(50)); 12]).await;
    let client = client(
        &server.base(),
        ClientSettings {
            concurrency: 3,
            ..settings()
        },
    );
    (server, client)
}

fn assert_twelve_sent_three_at_most(server: &Scripted) {
    assert_eq!(server.requests().len(), 12);
    assert_eq!(server.hanging.most.load(Ordering::SeqCst), 3);
}

/// The same from one thread, as the engine sends: its callers are futures
/// of one single-threaded runtime, and their exchanges run on the network
/// thread, which holds the concurrency just the same.
#[tokio::test(flavor = "current_thread")]
async fn requests_in_flight_from_one_thread_never_pass_the_concurrency() {
    let (server, client) = twelve_hanging_at_concurrency_three().await;
    let request = post_user();
    let sends = (0..12).map(|_| client.send(&request));
    for sent in futures_util::future::join_all(sends).await {
        sent.unwrap();
    }
    assert_twelve_sent_three_at_most(&server);
}

/// A caller that gives up on a request (the engine drops a batch's sends
/// when its turn is lost) lets its slot go at once: the application's
/// next request does not wait for the abandoned answer.
#[tokio::test(flavor = "current_thread")]
async fn a_request_given_up_lets_its_slot_go() {
    let server = Scripted::start(vec![Play::Hang(Duration::from_secs(20))]).await;
    let client = client(
        &server.base(),
        ClientSettings {
            concurrency: 1,
            request_timeout: Duration::from_secs(30),
            ..settings()
        },
    );
    let given_up = tokio::time::timeout(
        Duration::from_millis(200),
        client.send(&ScimRequest::get("/Users/1")),
    )
    .await;
    assert!(
        given_up.is_err(),
        "the hanging request cannot have been answered"
    );
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        client.send(&ScimRequest::get("/Users/2")),
    )
    .await
    .expect("the slot of the request given up is free again");
    assert_eq!(next.unwrap().body()["userName"], "ada");
}

#[tokio::test]
async fn retry_after_is_obeyed_and_the_pace_slows() {
    let server = Scripted::start(vec![Play::Status(429, Some("1"))]).await;
    let client = client(&server.base(), settings());
    let started = Instant::now();
    let response = client.send(&post_user()).await.unwrap();
    assert_eq!(response.attempts, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert!(
        client.current_rate() < 1000.0,
        "a 429 slows the client down"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "a throttled create is sent again"
    );
}

/// A success is read only when it is JSON to the tree's parser, whether
/// it is made a tree at once (a read's) or only checked (a write's): one
/// that is not (text, a number past `f64`) fails, named so; one that is
/// gives its members, the `id` of an escaped string included.
#[tokio::test]
async fn a_success_is_read_only_when_it_is_json() {
    let server = Scripted::start(vec![
        Play::Text("an account was made"),
        Play::Text(r#"{"id":"7","score":1e400}"#),
        Play::Text(r#"{"id":"7","score":1e400}"#),
        Play::Text(r#"{"id":"a\"b","userName":"ada"}"#),
    ])
    .await;
    let client = client(&server.base(), settings());
    let create = || {
        ScimRequest::with_body(
            reqwest::Method::POST,
            "/Users",
            json!({ "userName": "ada" }),
        )
    };
    for request in [create(), create(), ScimRequest::get("/Users/7")] {
        let error = client.send(&request).await.unwrap_err();
        assert!(
            error.to_string().contains("the answer is not JSON"),
            "{error}"
        );
    }
    let answer = client.send(&create()).await.unwrap();
    assert_eq!(answer.id(), Some("a\"b"));
    assert_eq!(answer.body()["userName"], "ada");
    assert_eq!(server.requests().len(), 4, "nothing was sent twice");
}

#[tokio::test]
async fn server_errors_are_retried_only_where_repeating_is_safe() {
    let server = Scripted::start(vec![Play::Status(500, None), Play::Status(502, None)]).await;
    let client = client(&server.base(), settings());
    let response = client.send(&ScimRequest::get("/Users/42")).await.unwrap();
    assert_eq!(response.attempts, 3);
    assert_eq!(response.body()["userName"], "ada");

    let server = Scripted::start(vec![Play::Status(500, None)]).await;
    let client = self::client(&server.base(), settings());
    let error = client.send(&post_user()).await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert!(!error.is_permanent());
    assert_eq!(
        server.requests().len(),
        1,
        "a create that may have happened is not repeated"
    );
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_retried() {
    let server = Scripted::start(vec![Play::Hang(Duration::from_secs(3)), Play::Reset]).await;
    let client = client(
        &server.base(),
        ClientSettings {
            request_timeout: Duration::from_millis(300),
            ..settings()
        },
    );
    let response = client
        .send(&ScimRequest::with_body(
            reqwest::Method::PATCH,
            "/Users/42",
            json!({ "Operations": [] }),
        ))
        .await
        .unwrap();
    assert_eq!(response.attempts, 3);
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried_and_never_shows_the_token() {
    let server = Scripted::start(vec![Play::Status(400, None)]).await;
    let client = client(&server.base(), settings());
    let error = client.send(&post_user()).await.unwrap_err();
    assert!(error.is_permanent());
    let text = error.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("scripted 400"),
        "{text}"
    );
    assert!(!text.contains("t0k-secret") && !format!("{error:?}").contains("t0k-secret"));
    assert!(!format!("{client:?}").contains("t0k-secret"));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer t0k-secret")
    );
    assert_eq!(requests[0].request_line, "POST /scim/v2/Users HTTP/1.1");
}

#[tokio::test]
async fn an_answer_that_repeats_a_password_is_scrubbed_of_it() {
    let mut script = vec![Play::Echo(400)];
    script.extend(std::iter::repeat_n(Play::Echo(503), 4));
    let server = Scripted::start(script).await;
    let client = client(
        &server.base(),
        ClientSettings {
            breaker_threshold: 1,
            ..settings()
        },
    );
    let set_password = ScimRequest::with_body(
        reqwest::Method::PATCH,
        "/Users/42",
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "password", "value": "Sw0rd\"fish" }],
        }),
    );
    let refused = client.send(&set_password).await.unwrap_err();
    let text = format!("{refused} {refused:?} {set_password:?}");
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("fish"), "{text}");
    // A retryable answer, too, before the breaker keeps it as the reason
    // it opened, which the next request's error repeats.
    let created = ScimRequest::with_body(
        reqwest::Method::POST,
        "/Users",
        json!({ "userName": "ada", "password": "Sw0rd\"fish" }),
    );
    let failed = client.send(&created).await.unwrap_err();
    assert_eq!(failed.status(), Some(503), "{failed}");
    assert!(!failed.to_string().contains("fish"), "{failed}");
    let held = client.send(&created).await.unwrap_err();
    assert!(
        matches!(held, ScimClientError::CircuitOpen { .. }),
        "{held}"
    );
    assert!(held.to_string().contains("refused"), "{held}");
    assert!(!held.to_string().contains("fish"), "{held}");
}

#[tokio::test]
async fn sustained_failures_open_the_circuit_until_a_probe_succeeds() {
    let server = Scripted::start(vec![Play::Status(503, None), Play::Status(503, None)]).await;
    let client = client(
        &server.base(),
        ClientSettings {
            max_attempts: 1,
            breaker_threshold: 2,
            breaker_cooldown: Duration::from_millis(300),
            ..settings()
        },
    );
    for _ in 0..2 {
        assert_eq!(
            client
                .send(&ScimRequest::get("/Users"))
                .await
                .unwrap_err()
                .status(),
            Some(503)
        );
    }
    let held = client.send(&ScimRequest::get("/Users")).await.unwrap_err();
    assert!(
        matches!(held, ScimClientError::CircuitOpen { failures: 2, .. }),
        "{held}"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "nothing is sent while the circuit is open"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.send(&ScimRequest::get("/Users")).await.unwrap();
    assert!(!client.breaker().is_open());
}

#[tokio::test]
async fn an_unreachable_application_fails_with_a_network_error() {
    let vacant = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = vacant.local_addr().unwrap();
    drop(vacant);
    let client = client(
        &format!("http://{address}/scim/v2"),
        ClientSettings {
            max_attempts: 2,
            ..settings()
        },
    );
    let error = client.send(&ScimRequest::get("/Users")).await.unwrap_err();
    assert!(
        matches!(error, ScimClientError::Network { attempts: 2, .. }),
        "{error}"
    );
    assert!(ScimClient::new("ftp://x", &Secret::new("t"), settings()).is_err());
}

/// scim2-server from the test peers' environment, on a loopback port.
struct Scim2Server {
    child: Child,
    base: String,
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers() -> PathBuf {
    let folder = std::env::var_os("SCIMLINK_PYTHON_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/scimlink-py"));
    assert!(
        folder.join("bin/scim2-server").is_file(),
        "{} has no scim2-server: scripts/test.sh installs the test peers",
        folder.display()
    );
    folder
}

async fn scim2_server(token: &str, tenant: &str) -> Scim2Server {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = Command::new(peers().join("bin/scim2-server"))
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
        .args(["--bearer-token", token, "--tenant", tenant])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Scim2Server {
        child,
        base: format!("http://127.0.0.1:{port}/{tenant}/v2"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "scim2-server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}

#[tokio::test]
async fn a_real_scim_server_with_a_tenant_path_and_a_bearer_token() {
    let server = scim2_server("app-token", "acme").await;
    let client = ScimClient::new(&server.base, &Secret::new("app-token"), settings()).unwrap();
    let created = client
        .send(&ScimRequest::with_body(
            reqwest::Method::POST,
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada@example.com",
                "active": true,
            }),
        ))
        .await
        .unwrap();
    assert_eq!(created.status.as_u16(), 201);
    let id = created.body()["id"].as_str().unwrap().to_string();
    assert_eq!(created.id(), Some(id.as_str()));
    let found = client
        .send(&ScimRequest::get(
            "/Users?filter=userName%20eq%20%22ada%40example.com%22",
        ))
        .await
        .unwrap();
    assert_eq!(found.body()["totalResults"], 1);
    assert_eq!(found.body()["Resources"][0]["id"], id.as_str());

    let wrong = ScimClient::new(&server.base, &Secret::new("not-the-token"), settings()).unwrap();
    let error = wrong.send(&ScimRequest::get("/Users")).await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert!(error.is_permanent());
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_names_where_it_pointed() {
    let server = Scripted::start(vec![Play::Redirect("http://127.0.0.1:9/elsewhere/Users")]).await;
    let client = client(&server.base(), settings());
    let error = client.send(&post_user()).await.unwrap_err();
    assert!(
        matches!(&error, ScimClientError::Redirected { status: 302, location, .. } if location == "http://127.0.0.1:9/elsewhere/Users"),
        "{error}"
    );
    assert!(error.is_permanent());
    assert!(error.to_string().contains("not followed"), "{error}");
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        1,
        "nothing was sent to the redirect's target"
    );
    assert!(requests[0].request_line.starts_with("POST "));
}

#[tokio::test]
async fn an_answer_past_the_cap_is_refused_while_it_streams() {
    let server = Scripted::start(vec![
        Play::Large {
            bytes: 8 << 20,
            chunked: true,
        },
        Play::Large {
            bytes: 8 << 20,
            chunked: false,
        },
        Play::Large {
            bytes: 512 << 10,
            chunked: true,
        },
    ])
    .await;
    let capped = ClientSettings {
        max_response_bytes: 1 << 20,
        ..settings()
    };
    let client = client(&server.base(), capped);
    for _ in 0..2 {
        let error = client.send(&ScimRequest::get("/Users")).await.unwrap_err();
        assert!(
            matches!(error, ScimClientError::TooLarge { limit, .. } if limit == 1 << 20),
            "{error}"
        );
        assert!(error.is_permanent(), "another attempt would be as large");
    }
    // Under the cap it is read whole, as usual (a blank body reads as none).
    let answer = client.send(&ScimRequest::get("/Users")).await.unwrap();
    assert_eq!(*answer.body(), serde_json::Value::Null);
    assert_eq!(
        server.requests().len(),
        3,
        "a refused answer is not retried"
    );
}

#[tokio::test]
async fn a_path_that_would_address_another_resource_is_never_sent() {
    use scimlink::scim_client::user_path;
    let server = Scripted::start(vec![Play::Status(204, None)]).await;
    let client = client(&server.base(), settings());
    // An application that named an account `..` would otherwise have its
    // delete sent to `/scim/v2/Users/..`, which normalizes to the base.
    let error = client
        .send(&ScimRequest::delete(user_path("..")))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ScimClientError::BadPath { .. }) && error.is_permanent(),
        "{error}"
    );
    assert!(error.to_string().contains("another resource"), "{error}");
    assert!(server.requests().is_empty(), "a request was sent");
}

#[test]
fn remote_ids_stay_one_path_segment() {
    use scimlink::scim_client::{group_path, user_path};
    assert_eq!(user_path("2819c223-7f76"), "/Users/2819c223-7f76");
    assert_eq!(
        user_path("../../tenants/other/Users/x?y#z"),
        "/Users/..%2F..%2Ftenants%2Fother%2FUsers%2Fx%3Fy%23z"
    );
    assert_eq!(group_path("a/b"), "/Groups/a%2Fb");
}
