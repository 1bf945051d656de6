//! How the host reaches an application beyond plain HTTP on loopback: over
//! TLS, trusting only certificates that chain to an authority it trusts
//! (the system's, or those of the file `SSL_CERT_FILE` or the folder
//! `SSL_CERT_DIR` names); over HTTP/2 where the application offers only
//! that; and through the egress proxy the environment names: `HTTPS_PROXY`
//! for `https://`, tunnelling with `CONNECT`, and `HTTP_PROXY` for
//! `http://`, in absolute form, either with the credentials of the proxy's
//! URL; `NO_PROXY` for the hosts reached directly; a proxy of a kind the
//! host cannot use refused by name, nothing sent.

use std::path::Path;
use std::time::Duration;

use scimlink_e2e::application::{
    Application, add_app_at, import_people, people, run_ok, wait_for_accounts,
};
use scimlink_e2e::transport::{Authority, EgressProxy, Http2Front, TlsFront};
use scimlink_e2e::{ADMIN_TOKEN, Host, SCIM_TOKEN};

/// Adds `crm` (custom-scim) at `base_url`, bound to `Engineering` and its
/// three people.
fn add_crm_at(host: &Host, base_url: &str) {
    import_people(host, &people(3, "Engineering"));
    add_app_at(host, "crm", "custom-scim", base_url, &[], "Engineering");
}

/// A host with the test tokens and `env` besides.
fn host_with(folder: &Path, env: &[(&str, &str)]) -> Host {
    let mut env = env.to_vec();
    env.extend([
        ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
    ]);
    Host::start_with(&folder.join("data"), &env)
}

/// A host that trusts `authority` and no other, named by `SSL_CERT_FILE`,
/// with `env` besides.
fn host_trusting(folder: &Path, authority: &Authority, env: &[(&str, &str)]) -> Host {
    let certificate = folder.join("authority.pem");
    authority.write_certificate(&certificate);
    let certificate = certificate.display().to_string();
    let mut env = env.to_vec();
    env.push(("SSL_CERT_FILE", &certificate));
    host_with(folder, &env)
}

/// Activates `crm` and waits for its three accounts.
fn activate_and_provision(host: &Host, application: &Application) {
    run_ok(host, &["app", "activate", "crm"]);
    wait_for_accounts(application, 3, Duration::from_secs(30));
}

#[test]
fn an_application_over_https_is_provisioned_when_its_certificate_is_trusted() {
    let application = Application::start();
    let authority = Authority::new();
    let front = TlsFront::start(&authority, application.server.port);
    let folder = tempfile::tempdir().expect("a folder");
    let host = host_trusting(folder.path(), &authority, &[]);
    add_crm_at(&host, &format!("https://127.0.0.1:{}/acme/v2", front.port));

    activate_and_provision(&host, &application);
    assert!(front.handshakes() > 0, "nothing came over TLS");
}

/// What `app activate crm` said, once it failed.
fn activation_refused(host: &Host) -> String {
    let activated = host.cli(&["app", "activate", "crm"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&activated.stdout),
        String::from_utf8_lossy(&activated.stderr)
    );
    assert!(!activated.status.success(), "activated: {said}");
    said
}

#[test]
fn an_authority_in_the_folder_ssl_cert_dir_names_is_trusted() {
    let application = Application::start();
    let authority = Authority::new();
    let front = TlsFront::start(&authority, application.server.port);
    let folder = tempfile::tempdir().expect("a folder");
    let trusted = folder.path().join("trusted");
    std::fs::create_dir(&trusted).expect("the trusted folder");
    authority.write_certificate(&trusted.join("authority.pem"));
    let host = host_with(
        folder.path(),
        &[("SSL_CERT_DIR", &trusted.display().to_string())],
    );
    add_crm_at(&host, &format!("https://127.0.0.1:{}/acme/v2", front.port));

    activate_and_provision(&host, &application);
    assert!(front.handshakes() > 0, "nothing came over TLS");
}

#[test]
fn an_application_served_over_http2_is_provisioned_over_http2() {
    let application = Application::start();
    let authority = Authority::new();
    let front = Http2Front::start(&authority, application.server.port);
    let folder = tempfile::tempdir().expect("a folder");
    let host = host_trusting(folder.path(), &authority, &[]);
    add_crm_at(&host, &format!("https://127.0.0.1:{}/acme/v2", front.port));

    activate_and_provision(&host, &application);
    let (over_http2, otherwise) = front.requests_by_version();
    assert!(over_http2 > 0, "nothing came over HTTP/2");
    assert_eq!(otherwise, 0, "requests came over another version");
}

#[test]
fn an_application_whose_certificate_is_not_trusted_is_sent_nothing() {
    let application = Application::start();
    // The front's authority is not the one the host trusts.
    let front = TlsFront::start(&Authority::new(), application.server.port);
    let folder = tempfile::tempdir().expect("a folder");
    let host = host_trusting(folder.path(), &Authority::new(), &[]);
    add_crm_at(&host, &format!("https://127.0.0.1:{}/acme/v2", front.port));

    let said = activation_refused(&host);
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(front.handshakes(), 0, "a handshake completed");
    assert_eq!(application.total(), 0, "an account was made");
}

#[test]
fn an_application_is_reached_through_the_proxy_https_proxy_names() {
    let application = Application::start();
    let authority = Authority::new();
    let front = TlsFront::start(&authority, application.server.port);
    let proxy = EgressProxy::start();
    let proxy_url = format!("http://egress:s3cret@127.0.0.1:{}", proxy.port);
    let folder = tempfile::tempdir().expect("a folder");
    let host = host_trusting(folder.path(), &authority, &[("HTTPS_PROXY", &proxy_url)]);
    add_crm_at(&host, &format!("https://127.0.0.1:{}/acme/v2", front.port));

    activate_and_provision(&host, &application);
    let requests = proxy.requests();
    let tunnel = format!("CONNECT 127.0.0.1:{} HTTP/1.1", front.port);
    assert!(
        !requests.is_empty() && requests.iter().all(|request| *request == tunnel),
        "the proxy saw {requests:?}, not only {tunnel}"
    );
    assert_all_carry_the_proxy_credentials(&proxy);
}

/// Every request the proxy received carried the credentials of its URL
/// (`egress:s3cret`) as `Proxy-Authorization`.
fn assert_all_carry_the_proxy_credentials(proxy: &EgressProxy) {
    let credentials = proxy.credentials();
    // base64 of `egress:s3cret`
    let expected = Some("Basic ZWdyZXNzOnMzY3JldA==".to_string());
    assert!(
        !credentials.is_empty() && credentials.iter().all(|sent| *sent == expected),
        "the proxy's credentials: {credentials:?}"
    );
}

#[test]
fn a_plain_http_application_is_reached_through_the_proxy_http_proxy_names() {
    let application = Application::start();
    let proxy = EgressProxy::start();
    let proxy_url = format!("http://egress:s3cret@127.0.0.1:{}", proxy.port);
    let folder = tempfile::tempdir().expect("a folder");
    let host = host_with(folder.path(), &[("HTTP_PROXY", &proxy_url)]);
    let base = format!("http://127.0.0.1:{}/acme/v2", application.server.port);
    add_crm_at(&host, &base);

    activate_and_provision(&host, &application);
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|request| request.starts_with("POST ")),
        "the proxy saw no create: {requests:?}"
    );
    assert!(
        requests.iter().all(|request| request
            .split_whitespace()
            .nth(1)
            .is_some_and(|target| target.starts_with(&base))),
        "a request went elsewhere, or not in absolute form: {requests:?}"
    );
    assert_all_carry_the_proxy_credentials(&proxy);
}

#[test]
fn an_application_no_proxy_names_is_reached_directly() {
    let application = Application::start();
    let proxy = EgressProxy::start();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let folder = tempfile::tempdir().expect("a folder");
    let host = host_with(
        folder.path(),
        &[
            ("HTTP_PROXY", &proxy_url),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ],
    );
    let base = format!("http://127.0.0.1:{}/acme/v2", application.server.port);
    add_crm_at(&host, &base);

    activate_and_provision(&host, &application);
    assert_eq!(proxy.requests(), Vec::<String>::new(), "the proxy was used");
}

#[test]
fn a_proxy_the_host_cannot_use_is_named_and_nothing_is_sent() {
    let application = Application::start();
    let folder = tempfile::tempdir().expect("a folder");
    let host = host_with(
        folder.path(),
        &[("HTTP_PROXY", "socks5://egress:s3cret@127.0.0.1:1080")],
    );
    add_crm_at(
        &host,
        &format!("http://127.0.0.1:{}/acme/v2", application.server.port),
    );

    let said = activation_refused(&host);
    assert!(
        said.contains("socks5://127.0.0.1:1080") && said.contains("not an http:// proxy"),
        "{said}"
    );
    assert!(
        !said.contains("s3cret"),
        "the proxy's password shown: {said}"
    );
    assert_eq!(application.total(), 0, "an account was made");
}
