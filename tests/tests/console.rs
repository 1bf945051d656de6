//! The operator console: sign-in, sessions and CSRF at the HTTP level, and
//! the operator's whole job in a real browser (Debian's Chromium, driven
//! by playwright-core: `tests/console/console.mjs`), against a host and the
//! simulated application on loopback.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use scimlink_e2e::application::{Remote, import_people, run_ok};
use scimlink_e2e::{
    ADMIN_TOKEN, Host, Running, bundled_component, deploy, fixture_component, http_client_builder,
    plugins_with, repository,
};

const WITHIN: Duration = Duration::from_secs(60);

const PEOPLE: &str = "userName,email,givenName,familyName,groups\n\
                      ada,ada@example.com,Ada,Lovelace,engineering\n\
                      grace,grace@example.com,Grace,Hopper,engineering\n\
                      linus,linus@example.com,Linus,Torvalds,engineering\n\
                      ken,ken@example.com,Ken,Thompson,contractors\n";

/// `scimlink sandbox-sp` on a loopback port.
fn simulated_application(folder: &Path) -> (Running, String) {
    let mut process = Running::start(&["sandbox-sp", "--listen", "127.0.0.1:0"], folder);
    let line = process.expect_line(&["listening on"], Duration::from_secs(30));
    let origin = line.rsplit(' ').next().unwrap().trim().to_string();
    (process, origin)
}

#[test]
fn an_operator_provisions_from_the_console_in_a_real_browser() {
    let work = tempfile::tempdir().unwrap();
    let plugins_folder = plugins_with(&["custom-scim"]);
    let plugins = plugins_folder.path();
    let mut host = Host::start_serving(
        &work.path().join("data"),
        plugins,
        &[
            ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", scimlink_e2e::SCIM_TOKEN),
        ],
    );
    // Two versions of a connector served in turn: one to roll back to.
    deploy(&fixture_component("versioned-1.0.0"), plugins, "versioned");
    host.process
        .expect_line(&["plugin versioned 1.0.0 loaded"], WITHIN);
    deploy(&fixture_component("versioned-2.0.0"), plugins, "versioned");
    host.process
        .expect_line(&["plugin versioned 1.0.0 → 2.0.0"], WITHIN);
    import_people(&host, PEOPLE);
    let (_application, origin) = simulated_application(work.path());
    let base_url = format!("{origin}/acme/v2");

    let screenshots = std::env::var_os("SCIMLINK_CONSOLE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| work.path().join("screenshots"));
    let output = Command::new("node")
        .arg(repository().join("tests/console/console.mjs"))
        .env("CONSOLE_URL", &host.base)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SP_BASE_URL", &base_url)
        .env("COMPONENT", bundled_component("custom-scim"))
        .env("SCREENSHOTS", &screenshots)
        .output()
        .expect("node runs: scripts/test.sh installs Chromium and playwright-core");
    assert!(
        output.status.success(),
        "the console run failed:\n{}\n{}\nscreenshots: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        screenshots.display()
    );
    for name in [
        "01-sign-in",
        "02-add-application",
        "03-application-provisioned",
        "04-user-out-of-scope",
        "05-user-in-scope",
        "06-held-change",
        "07-events",
        "08-connectors",
        "09-narrow",
    ] {
        let shot = screenshots.join(format!("{name}.png"));
        let bytes = std::fs::read(&shot).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a screenshot",
            shot.display()
        );
    }

    // What the browser did reached the application: three accounts, and
    // the one whose offboarding was approved is deactivated.
    let application = Remote::new(base_url);
    let mut names = application.user_names();
    names.sort();
    assert_eq!(names, ["ada", "grace", "linus"]);
    application.eventually("linus", "deactivated", |account| account["active"] == false);
    assert_eq!(application.users_named("ada")[0]["active"], true);
    // …and the admin token is nowhere in the host's log.
    assert!(!host.process.output().contains(ADMIN_TOKEN));
    let status = run_ok(&host, &["status", "--format", "json"]);
    assert!(status.contains("\"heldChanges\": 0") || status.contains("\"heldChanges\":0"));
}

/// A client that shows redirects and cookies as they are.
fn raw_client() -> reqwest::blocking::Client {
    http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn sign_in(
    client: &reqwest::blocking::Client,
    host: &Host,
    token: &str,
) -> reqwest::blocking::Response {
    client
        .post(format!("{}/console/sign-in", host.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .unwrap()
}

fn session_of(response: &reqwest::blocking::Response) -> Option<String> {
    let cookie = response.headers().get("set-cookie")?.to_str().ok()?;
    let value = cookie
        .strip_prefix("scimlink_console=")?
        .split(';')
        .next()?;
    (!value.is_empty()).then(|| value.to_string())
}

fn csrf_of(client: &reqwest::blocking::Client, host: &Host, session: &str) -> String {
    let page = client
        .get(format!("{}/console", host.base))
        .header("cookie", format!("scimlink_console={session}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let start = page.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    page[start..].split('"').next().unwrap().to_string()
}

#[test]
fn the_console_signs_in_with_the_admin_token_and_refuses_forged_requests() {
    let host = Host::start();
    let client = raw_client();
    let url = |path: &str| format!("{}{path}", host.base);

    let first = client.get(url("/console")).send().unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "/console/sign-in");

    let wrong = sign_in(&client, &host, "not-the-token");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong.text().unwrap().contains("not the admin token"));

    let right = sign_in(&client, &host, ADMIN_TOKEN);
    assert_eq!(right.status(), 303);
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let session = session_of(&right).unwrap();
    let csrf = csrf_of(&client, &host, &session);
    let with_session = |request: reqwest::blocking::RequestBuilder| {
        request.header("cookie", format!("scimlink_console={session}"))
    };

    // Behind a TLS proxy the cookie is Secure.
    let proxied = client
        .post(url("/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .unwrap();
    assert!(
        proxied.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // Reads need the session only; writes need its CSRF token too.
    let listed = with_session(client.get(url("/console/api/v1/apps")))
        .send()
        .unwrap();
    assert_eq!(listed.status(), 200);
    let group = |headers: &[(&str, &str)]| {
        let mut request = with_session(client.post(url("/console/api/v1/groups")))
            .header("content-type", "application/json")
            .body(r#"{"name":"console-made"}"#);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().unwrap()
    };
    let forged = group(&[]);
    assert_eq!(forged.status(), 403);
    let forged: serde_json::Value = serde_json::from_str(&forged.text().unwrap()).unwrap();
    assert_eq!(forged["error"]["code"], "csrf");
    assert_eq!(group(&[("x-csrf-token", "guessed")]).status(), 403);
    assert_eq!(
        group(&[("x-csrf-token", &csrf), ("origin", "http://evil.example")]).status(),
        403
    );
    assert_eq!(
        host.admin("GET", "/groups", None).body["total"],
        0,
        "a refused request changed nothing"
    );
    assert_eq!(group(&[("x-csrf-token", &csrf)]).status(), 201);

    // The API without a session, or with a made-up one, is closed.
    let anonymous = client.get(url("/console/api/v1/apps")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let made_up = client
        .get(url("/console/api/v1/apps"))
        .header("cookie", "scimlink_console=made-up")
        .send()
        .unwrap();
    assert_eq!(made_up.status(), 401);

    // Pages forbid framing and fetching from elsewhere.
    let page = with_session(client.get(url("/console"))).send().unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"));
    let page = page.text().unwrap();
    assert!(!page.contains(ADMIN_TOKEN));

    // Sign-out needs the token too, and ends the session.
    let refused = with_session(client.post(url("/console/sign-out")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=guessed")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        with_session(client.get(url("/console/api/v1/apps")))
            .send()
            .unwrap()
            .status(),
        200
    );
    let out = with_session(client.post(url("/console/sign-out")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        with_session(client.get(url("/console/api/v1/apps")))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert!(!host.process.output().contains(ADMIN_TOKEN));
}

#[test]
fn the_api_says_why_a_user_is_provisioned_and_tests_a_connection_before_it_is_saved() {
    use serde_json::json;
    let host = Host::start();
    import_people(&host, PEOPLE);
    let work = tempfile::tempdir().unwrap();
    let (_application, origin) = simulated_application(work.path());
    let base_url = format!("{origin}/acme/v2");

    // A connection that works, and one that does not, neither saved.
    let tested = host.admin(
        "POST",
        "/connection-test",
        Some(&json!({"connector": "custom-scim", "baseUrl": base_url, "token": "t"})),
    );
    assert_eq!(tested.status, 200, "{:?}", tested.body);
    assert_eq!(tested.body["ok"], true, "{:?}", tested.body);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/v2", closed.local_addr().unwrap());
    drop(closed);
    let failed = host.admin(
        "POST",
        "/connection-test",
        Some(&json!({"connector": "custom-scim", "baseUrl": nowhere, "token": "t"})),
    );
    assert_eq!(failed.status, 200);
    assert_eq!(failed.body["ok"], false);
    assert!(!failed.body["summary"].as_str().unwrap().is_empty());
    let unnamed = host.admin("POST", "/connection-test", Some(&json!({"token": "t"})));
    assert_eq!(
        (unnamed.status, &unnamed.body["error"]["field"]),
        (422, &json!("connector"))
    );
    assert_eq!(
        host.admin("GET", "/apps", None).body["total"],
        0,
        "nothing saved"
    );

    run_ok(
        &host,
        &[
            "app",
            "add",
            "crm",
            "--connector",
            "custom-scim",
            "--base-url",
            &base_url,
            "--token",
            "t",
        ],
    );
    run_ok(&host, &["app", "bind", "crm", "engineering"]);
    // Testing a saved application uses its own token when none is given.
    let saved = host.admin("POST", "/connection-test", Some(&json!({"app": "crm"})));
    assert_eq!(saved.body["ok"], true, "{:?}", saved.body);
    // …but never sends it to another server, or through another connector.
    let moved = host.admin(
        "POST",
        "/connection-test",
        Some(&json!({"app": "crm", "baseUrl": "http://127.0.0.1:9/v2"})),
    );
    assert_eq!(
        (moved.status, &moved.body["error"]["field"]),
        (422, &json!("token"))
    );
    let other = host.admin(
        "POST",
        "/connection-test",
        Some(&json!({"app": "crm", "connector": "coda"})),
    );
    assert_eq!(other.status, 422, "{:?}", other.body);

    let access = |user: &str| host.admin("GET", &format!("/users/{user}/apps"), None).body;
    let ken = access("ken");
    let crm = &ken["applications"][0];
    assert_eq!(crm["app"], "crm");
    assert_eq!(crm["inScope"], false);
    assert_eq!(
        crm["why"],
        "Not in scope: ken is not a member of the group bound to crm (engineering), and is \
         not assigned to it directly."
    );
    assert_eq!(
        crm["document"]["userName"], "ken",
        "the connector's document"
    );
    run_ok(&host, &["app", "assign", "crm", "ken"]);
    let crm = access("ken")["applications"][0].clone();
    assert_eq!(crm["inScope"], true);
    assert_eq!(crm["assigned"], true);
    assert!(
        crm["why"]
            .as_str()
            .unwrap()
            .starts_with("In scope: assigned directly. The application is not active"),
        "{}",
        crm["why"]
    );
    let ada = access("ada")["applications"][0].clone();
    assert_eq!(ada["throughGroups"], json!(["engineering"]));
    assert_eq!(ada["account"], serde_json::Value::Null);
    assert_eq!(host.admin("GET", "/users/nobody/apps", None).status, 404);

    let overview = host.admin("GET", "/apps/crm/overview", None).body;
    assert_eq!(overview["badge"], "inactive");
    assert_eq!(overview["usersInScope"], 4);
    assert_eq!(overview["usersLinked"], 0);

    // Provisioned, the account and its last attempt show.
    run_ok(&host, &["app", "activate", "crm"]);
    let remote = Remote::new(base_url);
    remote.eventually("ada", "created", |_| true);
    let deadline = std::time::Instant::now() + WITHIN;
    let ada = loop {
        let ada = access("ada")["applications"][0].clone();
        if ada["lastEvent"]["operation"] == "user_create_provision"
            || std::time::Instant::now() > deadline
        {
            break ada;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ada["account"]["remoteId"], remote.id_of("ada"));
    assert_eq!(ada["lastEvent"]["operation"], "user_create_provision");
    assert_eq!(ada["lastFailure"], serde_json::Value::Null);

    // Events about one user, and within a time range.
    let ada_id = access("ada")["userId"].as_str().unwrap().to_string();
    let about_ada = host.admin("GET", "/events?user=ada&app=crm", None).body;
    assert!(about_ada["total"].as_u64().unwrap() >= 1);
    assert!(
        about_ada["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["object_id"] == ada_id.as_str())
    );
    let none_yet = host
        .admin("GET", "/events?until=2000-01-01T00:00:00Z", None)
        .body;
    assert_eq!(none_yet["total"], 0);
    assert_eq!(host.admin("GET", "/events?until=later", None).status, 400);

    // A component that is not one is refused with the check's reason.
    let refused = host.admin("POST", "/plugins/check", Some(&json!("not a component")));
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["field"], "component");
    let served = host.admin("GET", "/plugins/custom-scim/check", None);
    assert_eq!(served.status, 200, "{:?}", served.body);
    assert_eq!(served.body["manifest"]["name"], "custom-scim");
    assert!(served.body["receipts"].as_array().unwrap().len() >= 2);
}
