//! The transport: how one client's requests reach its application.
//!
//! A client talks to one base URL, so how its requests travel is decided
//! once, when the client is made, from the proxy variables as they are then
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, lowercase too; all
//! ignored in a CGI environment):
//! - **directly**: plain TCP for `http://`, TLS for `https://`;
//! - **through an HTTP proxy**, for an `http://` application: each request
//!   goes to the proxy in absolute form, with the proxy's credentials (from
//!   its URL) as `Proxy-Authorization`;
//! - **through a `CONNECT` tunnel**, for an `https://` application: the
//!   proxy sees the host and port only, and TLS runs end to end inside the
//!   tunnel, verified against the application's name.
//!
//! TLS is rustls with the platform's certificate verifier (on Linux the
//! system's store, or the files `SSL_CERT_FILE` and `SSL_CERT_DIR` name),
//! offering HTTP/2 and HTTP/1.1 by ALPN. Connections are pooled per client,
//! `TCP_NODELAY` set.
//!
//! Invariants:
//! - a [`Failure::NotSent`] is only ever a connection that could not be
//!   made (refused, timed out opening, a failed TLS handshake, a proxy that
//!   refused the tunnel): nothing of the request reached the application,
//!   so any request may be sent again after it;
//! - redirects are never followed, and nothing is retried here but what
//!   never left: a request whose pooled connection closed before any of it
//!   was written goes once more on another. What to do with an answer or
//!   a failure is the client's ([`super`]);
//! - a proxy's credentials are never part of an error or a log line.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long an unused pooled connection is kept.
const IDLE_CONNECTION_KEPT: Duration = Duration::from_secs(90);

/// One client's way to its application.
pub(super) struct Transport {
    client: Client<Connector, Full<Bytes>>,
    route_taken: RouteTaken,
    /// Sent with every request when they go to an HTTP proxy that has
    /// credentials.
    proxy_authorization: Option<HeaderValue>,
}

/// Which way a transport's requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteTaken {
    Direct,
    HttpProxy,
    Tunnel,
}

/// Why an exchange brought no whole answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// The connection could not be made: nothing was sent.
    NotSent(BoxError),
    /// The request may have reached the application; no answer came back.
    Lost(BoxError),
    /// The answer's head came, its body broke off.
    BrokeOff(BoxError),
    /// No whole answer within the attempt's time (the request may have
    /// reached the application).
    TimedOut(Duration),
}

impl Transport {
    /// The transport to `base` (an `http` or `https` URL), its connections
    /// opened within `connect_timeout` and at most `idle_per_host` kept
    /// unused.
    pub(super) fn new(
        base: &Uri,
        connect_timeout: Duration,
        idle_per_host: usize,
    ) -> Result<Self, String> {
        Self::with_proxies(base, &Matcher::from_env(), connect_timeout, idle_per_host)
    }

    fn with_proxies(
        base: &Uri,
        proxies: &Matcher,
        connect_timeout: Duration,
        idle_per_host: usize,
    ) -> Result<Self, String> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = base.scheme_str() == Some("https");
        let mut proxy_authorization = None;
        let route = match proxies.intercept(base) {
            // No TLS set up for a plain application: the system's
            // certificates are read only where they are used.
            None if !https => Route::Plain { tcp, proxy: None },
            None => Route::Direct(tls_over(tcp)?),
            Some(proxy) => {
                if proxy.uri().scheme_str() != Some("http") {
                    return Err(format!(
                        "the proxy {}://{} named by the environment for {} is not an http:// \
                         proxy, the only kind supported; name an http:// proxy or exempt the \
                         application in NO_PROXY",
                        proxy.uri().scheme_str().unwrap_or_default(),
                        proxy
                            .uri()
                            .authority()
                            .map(|authority| authority.as_str())
                            .unwrap_or_default(),
                        base.host().unwrap_or_default(),
                    ));
                }
                if https {
                    let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                    if let Some(credentials) = proxy.basic_auth() {
                        tunnel = tunnel.with_auth(credentials.clone());
                    }
                    Route::Tunnel(tls_over(tunnel)?)
                } else {
                    proxy_authorization = proxy.basic_auth().cloned();
                    Route::Plain {
                        tcp,
                        proxy: Some(proxy.uri().clone()),
                    }
                }
            }
        };
        let route_taken = match &route {
            Route::Plain { proxy: None, .. } | Route::Direct(_) => RouteTaken::Direct,
            Route::Plain { proxy: Some(_), .. } => RouteTaken::HttpProxy,
            Route::Tunnel(_) => RouteTaken::Tunnel,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_CONNECTION_KEPT)
            .pool_max_idle_per_host(idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(Connector {
                route,
                connect_timeout,
            });
        Ok(Transport {
            client,
            route_taken,
            proxy_authorization,
        })
    }

    /// Which way the requests go.
    pub(super) fn route(&self) -> RouteTaken {
        self.route_taken
    }

    /// Sends `request` (its URI absolute) and returns the answer's head,
    /// its body still to be read.
    pub(super) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Failure> {
        if let Some(credentials) = &self.proxy_authorization {
            request
                .headers_mut()
                .insert(header::PROXY_AUTHORIZATION, credentials.clone());
        }
        self.client.request(request).await.map_err(|error| {
            if error.is_connect() {
                Failure::NotSent(error.into())
            } else {
                Failure::Lost(error.into())
            }
        })
    }
}

/// TLS for `https://` destinations over `inner`; `http://` ones pass
/// through as they are.
fn tls_over<C>(inner: C) -> Result<HttpsConnector<C>, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|error| format!("the platform's certificate verifier: {error}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(inner))
}

/// Opens a client's connections along its route, each within its time:
/// the TCP connection, any tunnel and the TLS handshake together, so that
/// every way of failing to connect is a connect error (nothing sent).
#[derive(Clone)]
struct Connector {
    route: Route,
    connect_timeout: Duration,
}

#[derive(Clone)]
enum Route {
    /// An `http://` application: plain TCP to it or, when there is an HTTP
    /// proxy, to the proxy whatever the destination.
    Plain {
        tcp: HttpConnector,
        proxy: Option<Uri>,
    },
    /// An `https://` application, reached directly.
    Direct(HttpsConnector<HttpConnector>),
    /// An `https://` application, through a `CONNECT` tunnel.
    Tunnel(HttpsConnector<Tunnel<HttpConnector>>),
}

type Connecting = Pin<Box<dyn Future<Output = Result<ProxiedOrNot, BoxError>> + Send>>;

impl Service<Uri> for Connector {
    type Response = ProxiedOrNot;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.route {
            Route::Plain { tcp, .. } => tcp.poll_ready(context).map_err(Into::into),
            Route::Direct(https) => https.poll_ready(context),
            Route::Tunnel(https) => https.poll_ready(context),
        }
    }

    fn call(&mut self, destination: Uri) -> Connecting {
        let connecting: Connecting = match &mut self.route {
            Route::Plain { tcp, proxy } => {
                let to_http_proxy = proxy.is_some();
                let connecting = tcp.call(proxy.clone().unwrap_or(destination));
                Box::pin(async move {
                    Ok(ProxiedOrNot {
                        stream: MaybeHttpsStream::Http(connecting.await?),
                        to_http_proxy,
                    })
                })
            }
            Route::Direct(https) => {
                let connecting = https.call(destination);
                Box::pin(async move { Ok(ProxiedOrNot::direct(connecting.await?)) })
            }
            Route::Tunnel(https) => {
                let connecting = https.call(destination);
                Box::pin(async move { Ok(ProxiedOrNot::direct(connecting.await?)) })
            }
        };
        let limit = self.connect_timeout;
        Box::pin(async move {
            tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection within {limit:?}"),
                    )
                    .into())
                })
        })
    }
}

/// A connection, and whether it is to an HTTP proxy (then requests on it
/// are written in absolute form).
struct ProxiedOrNot {
    stream: MaybeHttpsStream<TokioIo<TcpStream>>,
    to_http_proxy: bool,
}

impl ProxiedOrNot {
    fn direct(stream: MaybeHttpsStream<TokioIo<TcpStream>>) -> Self {
        ProxiedOrNot {
            stream,
            to_http_proxy: false,
        }
    }
}

impl Connection for ProxiedOrNot {
    fn connected(&self) -> Connected {
        self.stream.connected().proxy(self.to_http_proxy)
    }
}

impl hyper::rt::Read for ProxiedOrNot {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl hyper::rt::Write for ProxiedOrNot {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The route a client of `base` takes, in words.
    fn route(base: &str, proxies: &Matcher) -> Result<&'static str, String> {
        let base: Uri = base.parse().map_err(|_| "not a URI".to_string())?;
        let transport = Transport::with_proxies(&base, proxies, Duration::from_secs(1), 1)?;
        Ok(
            match (&transport.route_taken, &transport.proxy_authorization) {
                (RouteTaken::Direct, None) => "direct",
                (RouteTaken::Tunnel, None) => "tunnel",
                (RouteTaken::HttpProxy, Some(_)) => "http proxy, credentials on each request",
                (RouteTaken::HttpProxy, None) => "http proxy",
                _ => "credentials where they do not belong",
            },
        )
    }

    #[test]
    fn a_proxy_that_is_not_http_is_refused_naming_it_without_credentials() {
        let proxies = Matcher::builder()
            .all("socks5://someone:secret@127.0.0.1:1080")
            .build();
        let refused = route("https://app.example/scim/v2", &proxies).unwrap_err();
        assert!(refused.contains("socks5://127.0.0.1:1080"), "{refused}");
        assert!(refused.contains("app.example"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
    }

    #[test]
    fn credentials_go_with_each_request_only_to_an_http_proxy() {
        let proxies = Matcher::builder()
            .all("http://someone:secret@127.0.0.1:3128")
            .no("exempt.example")
            .build();
        assert_eq!(
            route("http://app.example/scim/v2", &proxies),
            Ok("http proxy, credentials on each request")
        );
        // Through a tunnel the credentials go with the CONNECT alone.
        assert_eq!(route("https://app.example/scim/v2", &proxies), Ok("tunnel"));
        assert_eq!(
            route("http://exempt.example/scim/v2", &proxies),
            Ok("direct")
        );
        assert_eq!(
            route("https://exempt.example/scim/v2", &proxies),
            Ok("direct")
        );
        assert_eq!(
            route("http://app.example/scim/v2", &Matcher::builder().build()),
            Ok("direct")
        );
    }
}
