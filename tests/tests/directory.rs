//! The directory as its users meet it: an identity provider over inbound
//! SCIM, an operator over the admin API and the CLI — each through a real
//! `scimlink serve` on a loopback port.

use std::time::Duration;

use scimlink_e2e::{ADMIN_TOKEN, Host, SCIM_TOKEN, Scim2Server, peer_python, repository};
use serde_json::{Value, json};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A request that must fail: method, path, body, status, scimType.
type BadRequest = (
    &'static str,
    String,
    Option<Value>,
    u16,
    Option<&'static str>,
);

fn user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": { "givenName": "Given", "familyName": user_name },
        "emails": [{ "value": format!("{user_name}@example.com"), "type": "work", "primary": true }],
    })
}

fn create_user(host: &Host, user_name: &str) -> String {
    let answer = host.scim("POST", "/Users", Some(&user(user_name)));
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

fn total(host: &Host, path: &str) -> u64 {
    let answer = host.scim("GET", path, None);
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["totalResults"].as_u64().unwrap()
}

/// Why a scim2-tester failure is not a defect of the server, if it is not.
fn excluded_because(line: &str) -> Option<&'static str> {
    // scim2-tester adds a whole extension, then adds each of its attributes
    // and expects to read back only what it added. For a multi-valued
    // attribute that already holds a value, RFC 7644 §3.5.2.1 says `add`
    // appends, and scimlink does: the value read back holds the added value
    // and the earlier one. The check is excluded only when the added value
    // is indeed among those returned.
    const APPENDED: &str = "FAIL check_add_attribute[User]: PATCH modify() returned unexpected value for \
         'urn:scimlink:params:scim:schemas:extension:directory:1.0:User:customAttributes'";
    let (patched, returned) = line.split_once(" | Returned value: ")?;
    let patched = patched
        .split_once("Patched value: [")?
        .1
        .trim_end_matches(']');
    (line.starts_with(APPENDED) && returned.contains(patched)).then_some(
        "RFC 7644 §3.5.2.1: add appends to a multi-valued attribute; the tester expects a replace",
    )
}

#[test]
fn scim2_tester_finds_the_inbound_server_compliant() {
    let host = Host::start();
    let output = std::process::Command::new(peer_python())
        .arg(repository().join("tests/peers/run_scim2_tester.py"))
        .arg(format!("{}/scim/v2", host.base))
        .arg(SCIM_TOKEN)
        .output()
        .expect("the scim2-tester runner starts");
    let report = String::from_utf8_lossy(&output.stdout);
    let summary = String::from_utf8_lossy(&output.stderr);
    // The report is part of the test's output: which checks pass.
    println!("{report}{summary}");
    let mut excluded = Vec::new();
    let failed: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .filter(|line| match excluded_because(line) {
            Some(reason) => {
                excluded.push(format!("{line}\n  excluded: {reason}"));
                false
            }
            None => true,
        })
        .collect();
    println!(
        "excluded checks ({}):\n{}",
        excluded.len(),
        excluded.join("\n")
    );
    let passed = report
        .lines()
        .filter(|line| line.starts_with("PASS"))
        .count();
    assert!(
        failed.is_empty(),
        "scim2-tester checks failed:\n{}",
        failed.join("\n")
    );
    let skipped: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("SKIP"))
        .collect();
    assert!(
        skipped.is_empty(),
        "scim2-tester skipped checks:\n{}",
        skipped.join("\n")
    );
    assert!(
        passed >= 100,
        "only {passed} checks passed:\n{report}{summary}"
    );
    assert!(output.status.success() || !excluded.is_empty(), "{summary}");
}

#[test]
fn every_endpoint_but_health_requires_its_token() {
    let host = Host::start();
    assert_eq!(host.request("GET", "/health", None, None, &[]).status, 200);
    for path in ["/api/v1/users", "/openapi.json", "/api/v1/apps"] {
        assert_eq!(
            host.request("GET", path, None, None, &[]).status,
            401,
            "{path}"
        );
        let wrong = host.request("GET", path, Some(SCIM_TOKEN), None, &[]);
        assert_eq!(
            wrong.status, 401,
            "{path}: the SCIM token is not the admin token"
        );
        assert_eq!(wrong.body["error"]["code"], "unauthorized");
    }
    let answer = host.request("GET", "/scim/v2/Users", Some(ADMIN_TOKEN), None, &[]);
    assert_eq!(answer.status, 401, "the admin token is not the SCIM token");
    assert_eq!(answer.body["schemas"][0], ERROR_SCHEMA);
    assert!(answer.headers.contains_key("www-authenticate"));
}

#[test]
fn the_openapi_document_describes_the_admin_api() {
    let host = Host::start();
    let answer = host.request("GET", "/openapi.json", Some(ADMIN_TOKEN), None, &[]);
    assert_eq!(answer.status, 200);
    let paths = answer.body["paths"].as_object().unwrap();
    for path in [
        "/api/v1/users",
        "/api/v1/users/{user}",
        "/api/v1/groups/{group}/members/{member}",
        "/api/v1/apps",
        "/api/v1/apps/{app}/rotate-token",
        "/api/v1/apps/{app}/bindings/{group}",
        "/api/v1/directory/import",
        "/api/v1/plugins",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert!(answer.body["components"]["securitySchemes"]["admin_token"].is_object());
}

#[test]
fn bad_scim_input_is_a_4xx_with_a_scim_error_and_changes_nothing() {
    let host = Host::start();
    let ada = create_user(&host, "ada");
    let group = host.scim(
        "POST",
        "/Groups",
        Some(&json!({ "schemas": [GROUP_SCHEMA], "displayName": "eng", "members": [{ "value": ada }] })),
    );
    assert_eq!(group.status, 201, "{:?}", group.body);
    let group_id = group.body["id"].as_str().unwrap().to_string();
    let inner = host.scim(
        "POST",
        "/Groups",
        Some(&json!({ "schemas": [GROUP_SCHEMA], "displayName": "inner", "members": [{ "value": group_id, "type": "Group" }] })),
    );
    assert_eq!(inner.status, 201, "{:?}", inner.body);
    let inner_id = inner.body["id"].as_str().unwrap().to_string();

    let huge =
        json!({ "schemas": [USER_SCHEMA], "userName": "big", "displayName": "x".repeat(2 << 20) });
    let cases: Vec<BadRequest> = vec![
        (
            "POST",
            "/Users".into(),
            Some(json!({ "schemas": [USER_SCHEMA], "userName": "b", "shoeSize": 9 })),
            400,
            Some("invalidValue"),
        ),
        (
            "POST",
            "/Users".into(),
            Some(json!({ "schemas": [USER_SCHEMA], "userName": 7 })),
            400,
            Some("invalidValue"),
        ),
        (
            "POST",
            "/Users".into(),
            Some(json!({ "schemas": [USER_SCHEMA], "userName": "c", "active": "sometimes" })),
            400,
            Some("invalidValue"),
        ),
        (
            "POST",
            "/Users".into(),
            Some(json!({ "schemas": [USER_SCHEMA], "name": { "givenName": "no userName" } })),
            400,
            Some("invalidValue"),
        ),
        (
            "POST",
            "/Users".into(),
            Some(user("ADA")),
            409,
            Some("uniqueness"),
        ),
        ("POST", "/Users".into(), Some(huge), 413, None),
        (
            "GET",
            "/Users?filter=userName%20xx%20%22ada%22".into(),
            None,
            400,
            Some("invalidFilter"),
        ),
        (
            "GET",
            "/Users?filter=userName%20eq".into(),
            None,
            400,
            Some("invalidFilter"),
        ),
        (
            "POST",
            "/Groups".into(),
            Some(
                json!({ "schemas": [GROUP_SCHEMA], "displayName": "ghosts", "members": [{ "value": "no-such-user" }] }),
            ),
            400,
            Some("invalidValue"),
        ),
        (
            "PATCH",
            format!("/Groups/{group_id}"),
            Some(json!({ "schemas": [PATCH_SCHEMA], "Operations": [
                { "op": "add", "path": "members", "value": [{ "value": inner_id, "type": "Group" }] }
            ] })),
            400,
            Some("invalidValue"),
        ),
        (
            "PATCH",
            format!("/Users/{ada}"),
            Some(json!({ "schemas": [PATCH_SCHEMA], "Operations": [
                { "op": "replace", "path": "displayName", "value": "Changed" },
                { "op": "replace", "path": "active", "value": 12 }
            ] })),
            400,
            Some("invalidValue"),
        ),
        (
            "PATCH",
            format!("/Users/{ada}"),
            Some(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "explode" }] })),
            400,
            Some("invalidSyntax"),
        ),
        ("GET", "/Users/not-an-id".into(), None, 404, None),
        ("DELETE", "/Groups/not-an-id".into(), None, 404, None),
        (
            "PUT",
            "/ServiceProviderConfig".into(),
            Some(json!({})),
            405,
            None,
        ),
    ];
    for (method, path, body, status, scim_type) in cases {
        let answer = host.scim(method, &path, body.as_ref());
        assert_eq!(answer.status, status, "{method} {path}: {:?}", answer.body);
        assert_eq!(answer.body["schemas"][0], ERROR_SCHEMA, "{method} {path}");
        assert_eq!(answer.body["status"], status.to_string());
        if let Some(scim_type) = scim_type {
            assert_eq!(
                answer.body["scimType"], scim_type,
                "{method} {path}: {:?}",
                answer.body
            );
        }
        assert!(
            answer.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/scim+json")
        );
    }
    // Malformed JSON is refused as such.
    let raw = scimlink_e2e::http_client_builder()
        .build()
        .unwrap()
        .post(format!("{}/scim/v2/Users", host.base))
        .bearer_auth(SCIM_TOKEN)
        .body("{\"userName\": ")
        .send()
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&raw.text().unwrap()).unwrap();
    assert_eq!(body["scimType"], "invalidSyntax");

    // Nothing was half-written.
    assert_eq!(total(&host, "/Users"), 1);
    assert_eq!(total(&host, "/Groups"), 2);
    let ada_now = host.scim("GET", &format!("/Users/{ada}"), None);
    assert_eq!(
        ada_now.body["displayName"],
        Value::Null,
        "the failed PATCH left nothing"
    );
    // Version 1 when created, 2 when she joined eng; the failed PATCH added none.
    assert_eq!(ada_now.body["meta"]["version"], "W/\"2\"");
    let eng = host.scim("GET", &format!("/Groups/{group_id}"), None);
    assert_eq!(eng.body["members"].as_array().unwrap().len(), 1);
}

#[test]
fn filters_paging_sorting_and_the_entra_dialect() {
    let host = Host::start();
    for name in ["carol", "alice", "bob", "dave"] {
        create_user(&host, name);
    }
    let filtered = |filter: &str| -> Vec<String> {
        let answer = host.scim(
            "GET",
            &format!("/Users?filter={}&sortBy=userName", encode(filter)),
            None,
        );
        assert_eq!(answer.status, 200, "{filter}: {:?}", answer.body);
        answer.body["Resources"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|u| u["userName"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(filtered("userName eq \"ALICE\""), ["alice"]);
    assert_eq!(filtered("userName ne \"alice\""), ["bob", "carol", "dave"]);
    assert_eq!(filtered("userName co \"a\""), ["alice", "carol", "dave"]);
    assert_eq!(
        filtered("userName sw \"b\" or userName ew \"ve\""),
        ["bob", "dave"]
    );
    assert_eq!(filtered("not (userName pr)"), Vec::<String>::new());
    assert_eq!(
        filtered("userName gt \"bob\" and userName le \"dave\""),
        ["carol", "dave"]
    );
    assert_eq!(
        filtered("emails[type eq \"work\" and value sw \"carol\"]"),
        ["carol"]
    );
    assert_eq!(filtered("emails.value eq \"dave@example.com\""), ["dave"]);
    assert_eq!(
        filtered("meta.lastModified gt \"2000-01-01T00:00:00Z\"").len(),
        4
    );
    assert_eq!(
        filtered("name.familyName eq \"bob\" or (userName eq \"alice\")"),
        ["alice", "bob"]
    );

    let page = host.scim(
        "GET",
        "/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=2",
        None,
    );
    assert_eq!(page.body["totalResults"], 4);
    assert_eq!(page.body["startIndex"], 2);
    let names: Vec<&str> = page.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol", "bob"]);

    // Entra ID: capitalised op, "False" as a boolean.
    let bob = filtered("userName eq \"bob\"");
    assert_eq!(bob.len(), 1);
    let id = host
        .scim("GET", "/Users?filter=userName%20eq%20%22bob%22", None)
        .body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = host.scim(
        "PATCH",
        &format!("/Users/{id}"),
        Some(&json!({ "schemas": [PATCH_SCHEMA], "Operations": [
            { "op": "Replace", "path": "active", "value": "False" },
            { "op": "Add", "path": "emails[type eq \"work\"].value", "value": "robert@example.com" }
        ] })),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["active"], false);
    assert_eq!(answer.body["emails"][0]["value"], "robert@example.com");
}

#[test]
fn etags_guard_against_lost_updates() {
    let host = Host::start();
    let id = create_user(&host, "erin");
    let current = host.scim("GET", &format!("/Users/{id}"), None);
    let etag = current.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, "W/\"1\"");
    let unchanged = host.request(
        "GET",
        &format!("/scim/v2/Users/{id}"),
        Some(SCIM_TOKEN),
        None,
        &[("if-none-match", &etag)],
    );
    assert_eq!(unchanged.status, 304);
    let mut body = user("erin");
    body["displayName"] = json!("Erin");
    let stale = host.request(
        "PUT",
        &format!("/scim/v2/Users/{id}"),
        Some(SCIM_TOKEN),
        Some(&body),
        &[("if-match", "W/\"7\"")],
    );
    assert_eq!(stale.status, 412, "{:?}", stale.body);
    let fresh = host.request(
        "PUT",
        &format!("/scim/v2/Users/{id}"),
        Some(SCIM_TOKEN),
        Some(&body),
        &[("if-match", &etag)],
    );
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    assert_eq!(fresh.headers["etag"].to_str().unwrap(), "W/\"2\"");
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn run_ok(host: &Host, args: &[&str]) -> String {
    let output = host.cli(args);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "scimlink {args:?}: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn an_operator_adds_binds_activates_and_rotates_an_application() {
    let mut host = Host::start();
    let token = "app-bearer-0123456789-secret";
    let rotated = "app-bearer-rotated-9876543210";
    let wrong = "not-the-application-token";
    let application = Scim2Server::start(&[token, rotated], "acme");
    let folder = tempfile::tempdir().unwrap();
    let csv = folder.path().join("people.csv");
    std::fs::write(
        &csv,
        "userName,email,givenName,familyName,groups\nada,ada@example.com,Ada,Lovelace,Engineering\ngrace,grace@example.com,Grace,Hopper,Engineering;Navy\n",
    )
    .unwrap();
    let out = run_ok(&host, &["directory", "import", csv.to_str().unwrap()]);
    assert!(out.contains("2 created"), "{out}");

    let template = format!("http://127.0.0.1:{}/{{tenantId}}/v2", application.port);
    let out = run_ok(
        &host,
        &[
            "app",
            "add",
            "crm",
            "--connector",
            "custom-scim",
            "--base-url",
            &template,
            "--token",
            wrong,
            "--setting",
            "tenantId=acme",
            "--manage-groups",
        ],
    );
    assert!(
        out.contains(&format!("http://127.0.0.1:{}/acme/v2", application.port)),
        "{out}"
    );
    run_ok(&host, &["app", "bind", "crm", "Engineering"]);

    // A token the application refuses: activation fails, clearly.
    let refused = host.cli(&["app", "activate", "crm"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("refused the token"),
        "{stderr}"
    );
    assert_eq!(
        host.admin("GET", "/apps/crm", None).body["state"],
        "inactive"
    );

    // The right token, then activation passes and keeps what the app supports.
    run_ok(&host, &["app", "rotate-token", "crm", "--token", token]);
    run_ok(&host, &["app", "activate", "crm"]);
    let app = host.admin("GET", "/apps/crm", None);
    assert_eq!(app.body["state"], "active");
    assert_eq!(app.body["capabilities"]["source"], "ServiceProviderConfig");
    assert_eq!(app.body["capabilities"]["patch"], true);
    let list = run_ok(&host, &["app", "list"]);
    assert!(
        list.contains("crm") && list.contains("active") && list.contains("custom-scim"),
        "{list}"
    );
    let scope = host.admin("GET", "/apps/crm/scope", None);
    assert_eq!(scope.body["total"], 2, "{:?}", scope.body);

    // Rotation while active: a refused token is not kept; a good one is,
    // and the application stays active throughout.
    let refused = host.cli(&["app", "rotate-token", "crm", "--token", wrong]);
    assert!(!refused.status.success());
    run_ok(&host, &["app", "rotate-token", "crm", "--token", rotated]);
    assert_eq!(host.admin("GET", "/apps/crm", None).body["state"], "active");
    run_ok(&host, &["app", "unbind", "crm", "Engineering"]);
    run_ok(&host, &["app", "deactivate", "crm"]);

    // Every step is in the audit trail.
    let events: Value = serde_json::from_str(&run_ok(
        &host,
        &["events", "--app", "crm", "--format", "json"],
    ))
    .unwrap();
    let trail: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        // The integration's own steps; the users it provisions meanwhile
        // are the provisioning tests' concern.
        .filter(|e| e["object_kind"] == "app")
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("idm_integration_activate", "failure"),
        ("idm_integration_reauth", "success"),
        ("idm_integration_activate", "success"),
        ("idm_integration_reauth", "failure"),
        ("idm_integration_reauth", "success"),
        ("idm_integration_delete", "success"),
    ];
    assert_eq!(
        trail,
        expected.map(|(o, r)| (o.to_string(), r.to_string())),
        "{events}"
    );
    let failures = run_ok(&host, &["events", "--app", "crm", "--outcome", "failure"]);
    assert_eq!(failures.lines().count(), 2, "{failures}");
    assert!(failures.contains("HTTP 401"), "{failures}");
    let recent = run_ok(
        &host,
        &[
            "events",
            "--operation",
            "idm_integration_activate",
            "--since",
            "1h",
        ],
    );
    assert_eq!(recent.lines().count(), 2, "{recent}");

    // Clear errors for what cannot be done.
    let output = host.cli(&[
        "app",
        "add",
        "x",
        "--connector",
        "no-such-connector",
        "--token",
        "t",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no connector named \"no-such-connector\""),
        "{stderr}"
    );
    let output = host.cli(&["app", "bind", "crm", "No Such Group"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not found"));
    let output = host.cli(&["events", "--since", "yesterday"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("since"));

    // The tokens are never returned, logged, recorded or stored in the clear.
    let listing = host.admin("GET", "/apps", None).body.to_string();
    let trail = events.to_string();
    std::thread::sleep(Duration::from_millis(100));
    host.process.drain();
    let log = host.process.output();
    for secret in [token, rotated, wrong] {
        assert!(!listing.contains(secret));
        assert!(!trail.contains(secret));
        assert!(!log.contains(secret));
        for file in ["scimlink.db", "scimlink.db-wal"] {
            if let Ok(bytes) = std::fs::read(host.data.join(file)) {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{file} holds a token"
                );
            }
        }
    }
}

#[test]
fn a_generated_admin_token_is_shown_once_and_kept_hashed() {
    let folder = tempfile::tempdir().unwrap();
    let data = folder.path().join("data");
    let mut first = Host::start_with(&data, &[("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN)]);
    let line = first
        .process
        .expect_line(&["admin token (shown once"], Duration::from_secs(10));
    let token = line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(
        first
            .request("GET", "/api/v1/users", Some(&token), None, &[])
            .status,
        200
    );
    drop(first);
    let mut second = Host::start_with(&data, &[("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN)]);
    second.process.expect_line(
        &["admin token: the one generated on first start"],
        Duration::from_secs(10),
    );
    assert!(!second.process.output().contains(&token), "shown once only");
    assert_eq!(
        second
            .request("GET", "/api/v1/users", Some(&token), None, &[])
            .status,
        200
    );
    let bytes = std::fs::read(data.join("scimlink.db")).unwrap_or_default();
    let wal = std::fs::read(data.join("scimlink.db-wal")).unwrap_or_default();
    for stored in [bytes, wal] {
        assert!(!stored.windows(token.len()).any(|w| w == token.as_bytes()));
    }
}

#[test]
fn the_admin_api_names_the_field_at_fault() {
    let host = Host::start();
    let answer = host.admin(
        "POST",
        "/users",
        Some(&json!({ "userName": "x", "email": "not-an-email" })),
    );
    assert_eq!(answer.status, 422);
    assert_eq!(answer.body["error"]["code"], "invalid");
    assert_eq!(answer.body["error"]["field"], "email");
    let answer = host.admin(
        "POST",
        "/users",
        Some(&json!({ "userName": "x", "shoe": 1 })),
    );
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    let answer = host.admin(
        "POST",
        "/apps",
        Some(&json!({ "name": "Bad Name", "connector": "custom-scim", "token": "t" })),
    );
    assert_eq!(answer.body["error"]["field"], "name");
    let answer = host.admin(
        "POST",
        "/apps",
        Some(&json!({ "name": "ok", "connector": "custom-scim", "token": "t", "baseUrl": "https://x/{tenant}" })),
    );
    assert_eq!(
        answer.body["error"]["field"], "baseUrl",
        "{:?}",
        answer.body
    );
    let answer = host.admin("GET", "/users?limit=0", None);
    assert_eq!(answer.body["error"]["field"], "limit");
    let created = host.admin(
        "POST",
        "/users",
        Some(&json!({ "userName": "x", "givenName": "X" })),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let duplicate = host.admin("POST", "/users", Some(&json!({ "userName": "X" })));
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.body["error"]["code"], "conflict");
    let updated = host.admin(
        "PATCH",
        "/users/x",
        Some(&json!({
            "givenName": null,
            "department": "R&D",
            "customAttributes": { "costCode": "CC-7" }
        })),
    );
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert!(updated.body.get("givenName").is_none());
    assert_eq!(updated.body["department"], "R&D");
    assert_eq!(updated.body["customAttributes"]["costCode"], "CC-7");
    // The SCIM view sees the same user.
    let scim = host.scim("GET", "/Users?filter=userName%20eq%20%22x%22", None);
    assert_eq!(
        scim.body["Resources"][0]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "R&D"
    );
}

/// A group an import created is a whole SCIM group: read with its
/// `displayName`, and changed through PATCH like any other.
#[test]
fn a_group_made_by_an_import_is_read_and_patched_through_scim() {
    let host = Host::start();
    let folder = tempfile::tempdir().unwrap();
    let csv = folder.path().join("people.csv");
    std::fs::write(
        &csv,
        "userName,email,givenName,familyName,groups\nada,ada@example.com,Ada,L,eng\n",
    )
    .unwrap();
    run_ok(&host, &["directory", "import", csv.to_str().unwrap()]);
    let grace = create_user(&host, "grace");
    let found = host.scim("GET", "/Groups?filter=displayName%20eq%20%22eng%22", None);
    let group = &found.body["Resources"][0];
    assert_eq!(group["displayName"], "eng", "{:?}", found.body);
    let id = group["id"].as_str().unwrap().to_string();

    let patched = host.scim(
        "PATCH",
        &format!("/Groups/{id}"),
        Some(&json!({ "schemas": [PATCH_SCHEMA], "Operations": [
            { "op": "add", "path": "members", "value": [{ "value": grace }] }
        ] })),
    );
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["displayName"], "eng");
    assert_eq!(patched.body["members"].as_array().unwrap().len(), 2);
}

/// Every admin route that takes a group takes its id or its name, and
/// those that only need to know which group (membership, binding,
/// deletion) find it so whatever its size.
#[test]
fn a_group_is_named_by_its_id_or_its_name_in_the_admin_api() {
    let host = Host::start();
    let ada = create_user(&host, "ada");
    for name in ["Outer", "Inner"] {
        let created = host.admin("POST", "/groups", Some(&json!({ "name": name })));
        assert_eq!(created.status, 201, "{:?}", created.body);
    }
    let inner_id = host.admin("GET", "/groups/inner", None).body["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A member by userName, a nested group by name, names in any case.
    let added = host.admin("PUT", "/groups/OUTER/members/ada", None);
    assert_eq!(added.status, 200, "{:?}", added.body);
    let added = host.admin("PUT", "/groups/outer/members/Inner", None);
    assert_eq!(added.status, 200, "{:?}", added.body);
    let members = added.body["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members
            .iter()
            .any(|m| m["id"] == json!(inner_id) && m["kind"] == "Group"),
        "{members:?}"
    );
    assert!(members.iter().any(|m| m["id"] == json!(ada)), "{members:?}");
    let unknown = host.admin("PUT", "/groups/Outer/members/nobody", None);
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);
    let unknown = host.admin("PUT", "/groups/Nowhere/members/ada", None);
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);

    // Bound by name, unbound by id.
    let app = host.admin(
        "POST",
        "/apps",
        Some(&json!({
            "name": "crm",
            "connector": "custom-scim",
            "baseUrl": "http://127.0.0.1:9/scim/v2",
            "token": "t",
        })),
    );
    assert_eq!(app.status, 201, "{:?}", app.body);
    assert_eq!(
        host.admin("PUT", "/apps/crm/bindings/Outer", None).status,
        204
    );
    let outer_id = host.admin("GET", "/groups/Outer", None).body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bound = host.admin("GET", "/apps/crm/bindings", None);
    assert!(
        bound.body.to_string().contains(&outer_id),
        "{:?}",
        bound.body
    );
    let unbound = host.admin("DELETE", &format!("/apps/crm/bindings/{outer_id}"), None);
    assert_eq!(unbound.status, 204, "{:?}", unbound.body);
    let bound = host.admin("GET", "/apps/crm/bindings", None);
    assert!(
        !bound.body.to_string().contains(&outer_id),
        "{:?}",
        bound.body
    );
    assert_eq!(
        host.admin("PUT", "/apps/crm/bindings/Nowhere", None).status,
        404
    );

    // Deleted by name.
    assert_eq!(host.admin("DELETE", "/groups/INNER", None).status, 204);
    assert_eq!(
        host.admin("GET", &format!("/groups/{inner_id}"), None)
            .status,
        404
    );
}
