//! The ways to an application a deployment meets beyond plain HTTP on
//! loopback, as peers on loopback ports: a TLS front for a real SCIM server,
//! with a certificate from a throwaway authority; an HTTP/2 front, the same
//! over HTTP/2; and an egress proxy that tunnels `CONNECT` and forwards
//! plain requests sent to it in absolute form.
//!
//! None understands anything of SCIM: what the host sends is what the
//! server behind them gets. Each connection of the TLS front and the proxy
//! is a thread of its own that ends when either side closes or the peer is
//! dropped; the HTTP/2 front's connections are tasks of its own runtime,
//! dropped with it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a relay waits for bytes before it looks at the other side.
const POLL: Duration = Duration::from_millis(1);

/// A certificate authority made for one test, and a server certificate it
/// signed for `127.0.0.1`.
pub struct Authority {
    /// The authority's certificate, PEM: what a client is told to trust.
    pub certificate_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl Authority {
    pub fn new() -> Authority {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let authority_key = rcgen::KeyPair::generate().expect("a key for the authority");
        let mut authority = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("the authority's parameters");
        authority.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // A name of its own: two authorities of one test are told apart by
        // it, as a verifier looks an issuer up by name.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let number = MADE.fetch_add(1, Ordering::Relaxed);
        authority.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("scimlink test authority {} {number}", std::process::id()),
        );
        let authority = authority
            .self_signed(&authority_key)
            .expect("the authority's certificate");
        let server_key = rcgen::KeyPair::generate().expect("a key for the server");
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("the server's parameters")
            .signed_by(&server_key, &authority, &authority_key)
            .expect("the server's certificate");
        let private_key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        );
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![server.der().clone()], private_key)
            .expect("a TLS server configuration");
        Authority {
            certificate_pem: authority.pem(),
            server: Arc::new(server),
        }
    }

    /// Writes the authority's certificate to `path`, for `SSL_CERT_FILE`.
    pub fn write_certificate(&self, path: &Path) {
        std::fs::write(path, &self.certificate_pem).expect("the certificate is written");
    }
}

impl Default for Authority {
    fn default() -> Self {
        Authority::new()
    }
}

/// TLS on a loopback port in front of plain HTTP on `127.0.0.1:upstream`.
pub struct TlsFront {
    pub port: u16,
    /// TLS handshakes that completed.
    handshakes: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
}

impl TlsFront {
    pub fn start(authority: &Authority, upstream: u16) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let (handshakes, stop) = (Arc::new(Mutex::new(0)), Arc::new(AtomicBool::new(false)));
        let shared = (
            Arc::clone(&authority.server),
            Arc::clone(&handshakes),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let (config, handshakes, stop) = shared;
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let (config, handshakes, stop) = (
                    Arc::clone(&config),
                    Arc::clone(&handshakes),
                    Arc::clone(&stop),
                );
                std::thread::spawn(move || {
                    relay_tls(client, upstream, config, &handshakes, &stop);
                });
            }
        });
        TlsFront {
            port,
            handshakes,
            stop,
        }
    }

    pub fn handshakes(&self) -> u32 {
        *self.handshakes.lock().unwrap()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        crate::stop_accepting(&self.stop, self.port);
    }
}

/// Whether an error of a read with a timeout only says nothing came.
fn nothing_yet(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// One connection: the TLS side decrypted to the upstream, the upstream's
/// bytes encrypted back, until either closes.
fn relay_tls(
    mut client: TcpStream,
    upstream: u16,
    config: Arc<rustls::ServerConfig>,
    handshakes: &Mutex<u32>,
    stop: &AtomicBool,
) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let Ok(mut tls) = rustls::ServerConnection::new(config) else {
        return;
    };
    if client.set_read_timeout(Some(POLL)).is_err() || server.set_read_timeout(Some(POLL)).is_err()
    {
        return;
    }
    let mut counted = false;
    let mut buffer = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match tls.read_tls(&mut client) {
            Ok(0) => break,
            Ok(_) => {
                if tls.process_new_packets().is_err() {
                    // The alert that says why (an unknown authority, say).
                    let _ = tls.write_tls(&mut client);
                    break;
                }
            }
            Err(error) if nothing_yet(&error) => {}
            Err(_) => break,
        }
        if !counted && !tls.is_handshaking() {
            counted = true;
            *handshakes.lock().unwrap() += 1;
        }
        match tls.reader().read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                if server.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            Err(error) if nothing_yet(&error) => {}
            Err(_) => break,
        }
        match server.read(&mut buffer) {
            Ok(0) => {
                tls.send_close_notify();
                let _ = tls.write_tls(&mut client);
                break;
            }
            Ok(read) => {
                if tls.writer().write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            Err(error) if nothing_yet(&error) => {}
            Err(_) => break,
        }
        while tls.wants_write() {
            if tls.write_tls(&mut client).is_err() {
                return;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// An HTTP proxy on a loopback port: it tunnels `CONNECT host:port` to the
/// host and port asked for, forwards a request in absolute form
/// (`GET http://host:port/path`) to its server, one request per
/// connection, and refuses anything else with 405.
pub struct EgressProxy {
    pub port: u16,
    /// Every request it received, in order.
    requests: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl EgressProxy {
    pub fn start() -> EgressProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let (requests, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let shared = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (requests, stop) = shared;
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let requests = Arc::clone(&requests);
                std::thread::spawn(move || tunnel(client, &requests));
            }
        });
        EgressProxy {
            port,
            requests,
            stop,
        }
    }

    /// The request line of every request it received, in order.
    pub fn requests(&self) -> Vec<String> {
        let received = self.requests.lock().unwrap();
        received
            .iter()
            .map(|request| request.line.clone())
            .collect()
    }

    /// The `Proxy-Authorization` of every request it received, in order.
    pub fn credentials(&self) -> Vec<Option<String>> {
        let received = self.requests.lock().unwrap();
        received
            .iter()
            .map(|request| request.proxy_authorization.clone())
            .collect()
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        crate::stop_accepting(&self.stop, self.port);
    }
}

/// A request as the proxy received it.
struct Received {
    line: String,
    proxy_authorization: Option<String>,
}

/// Whether a proxied request's target (`127.0.0.1:port`, or a URL) is on
/// loopback: the proxy reaches nothing else, whatever it is asked.
fn on_loopback(target: &str) -> bool {
    let authority = target.strip_prefix("http://").unwrap_or(target);
    authority.starts_with("127.0.0.1:")
}

/// One connection to the proxy: its first request is tunnelled, forwarded
/// or refused.
fn tunnel(mut client: TcpStream, requests: &Mutex<Vec<Received>>) {
    let Ok(reading) = client.try_clone() else {
        return;
    };
    // The client sends nothing past the head until the tunnel is answered,
    // so the reader holds no bytes of what follows.
    let mut head = BufReader::new(reading);
    let mut line = String::new();
    if head.read_line(&mut line).is_err() {
        return;
    }
    let request_line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        match head.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header.trim_end().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = header.trim_end().split_once(':') {
                    headers.push((name.trim().to_string(), value.trim().to_string()));
                }
            }
        }
    }
    let proxy_authorization = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.clone());
    requests.lock().unwrap().push(Received {
        line: request_line.clone(),
        proxy_authorization,
    });
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !on_loopback(target) {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    }
    if method != "CONNECT" {
        if target.starts_with("http://127.0.0.1:") {
            forward(client, head, method, target, &headers);
        } else {
            let _ = client.write_all(
                b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
        return;
    }
    let Ok(server) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (Ok(mut to_server), Ok(mut from_server)) = (server.try_clone(), server.try_clone()) else {
        return;
    };
    let mut from_client = head.into_inner();
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut from_server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

/// A plain request the proxy was sent in absolute form: sent on to its
/// server, and its answer written back with `connection: close`.
fn forward(
    mut client: TcpStream,
    mut head: BufReader<TcpStream>,
    method: &str,
    target: &str,
    headers: &[(String, String)],
) {
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0; length];
    if head.read_exact(&mut body).is_err() {
        return;
    }
    let Ok(upstream) = crate::http_client_builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
    else {
        return;
    };
    // Unanswered, the connection is closed, as the server's would be.
    if let Some(answer) = crate::fault_proxy::send_on(&upstream, method, target, headers, body) {
        answer.write_to(&mut client);
    }
}

/// A TLS front that speaks HTTP/2 only (ALPN `h2`) to its clients and
/// passes each request on over HTTP/1.1 to the server on `upstream`, a
/// connection per request: what the host meets at an application served
/// over HTTP/2.
pub struct Http2Front {
    pub port: u16,
    /// Requests that arrived over HTTP/2, and any that did not.
    over_http2: Arc<Mutex<(u32, u32)>>,
    // Dropped with the front: its connections end with it.
    _runtime: tokio::runtime::Runtime,
}

impl Http2Front {
    pub fn start(authority: &Authority, upstream: u16) -> Http2Front {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the front");
        let mut config = (*authority.server).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let over_http2 = Arc::new(Mutex::new((0, 0)));
        let counted = Arc::clone(&over_http2);
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        pass_on(request, upstream, Arc::clone(&counted))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        Http2Front {
            port,
            over_http2,
            _runtime: runtime,
        }
    }

    /// Requests that arrived over HTTP/2, and those that did not.
    pub fn requests_by_version(&self) -> (u32, u32) {
        *self.over_http2.lock().unwrap()
    }
}

type Body = http_body_util::Full<bytes::Bytes>;

/// One request passed on to the server behind the front as the egress
/// proxy passes one on ([`crate::fault_proxy::send_on`]), its answer
/// brought back; a 502 if the server cannot be reached.
async fn pass_on(
    request: hyper::Request<hyper::body::Incoming>,
    upstream: u16,
    counted: Arc<Mutex<(u32, u32)>>,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    {
        let mut counted = counted.lock().unwrap();
        if request.version() == hyper::Version::HTTP_2 {
            counted.0 += 1;
        } else {
            counted.1 += 1;
        }
    }
    let (head, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|body| body.to_bytes().to_vec())
        .unwrap_or_default();
    let target = format!(
        "http://127.0.0.1:{upstream}{}",
        head.uri
            .path_and_query()
            .map_or("/", |target| target.as_str())
    );
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let answered = tokio::task::spawn_blocking(move || {
        let upstream = crate::http_client_builder()
            .pool_max_idle_per_host(0)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .ok()?;
        crate::fault_proxy::send_on(&upstream, head.method.as_str(), &target, &headers, body)
    })
    .await
    .ok()
    .flatten();
    let mut back = hyper::Response::new(Body::default());
    match answered {
        Some(answer) => {
            *back.status_mut() = hyper::StatusCode::from_u16(answer.status)
                .unwrap_or(hyper::StatusCode::BAD_GATEWAY);
            if let Ok(content_type) = hyper::header::HeaderValue::from_str(&answer.content_type) {
                back.headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, content_type);
            }
            *back.body_mut() = Body::from(answer.body);
        }
        None => *back.status_mut() = hyper::StatusCode::BAD_GATEWAY,
    }
    Ok(back)
}
