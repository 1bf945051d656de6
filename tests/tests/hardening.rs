//! Hardening of the host as an operator runs it: secrets stay with the
//! server they were given for, files in the data folder are the owner's
//! only, a token is never revived, and bad input gets a clear 400.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use scimlink_e2e::application::{APP_TOKEN, events_of, run_ok};
use scimlink_e2e::{ADMIN_TOKEN, Host, Scim2Server, scimlink_binary};
use serde_json::json;

/// Runs an admin command against `host` with `stdin` on its standard input.
fn cli_with_stdin(host: &Host, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(scimlink_binary())
        .args(args)
        .args(["--host", &host.base])
        .env("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scimlink runs");
    child
        .stdin
        .take()
        .expect("its standard input")
        .write_all(stdin.as_bytes())
        .expect("the token is written");
    child.wait_with_output().expect("scimlink ends")
}

/// Asserts that the host logged a line with every one of `parts` (lines
/// logged while it started included).
fn assert_logged(host: &mut Host, parts: &[&str]) {
    host.process.drain();
    let output = host.process.output();
    assert!(
        output
            .lines()
            .any(|line| parts.iter().all(|part| line.contains(part))),
        "no line with {parts:?}:\n{output}"
    );
}

#[test]
fn moving_an_application_to_another_origin_needs_its_token_again() {
    let host = Host::start();
    let old = Scim2Server::start(&[APP_TOKEN], "acme");
    let new_token = "token-of-the-new-server-77";
    let new = Scim2Server::start(&[new_token], "acme");
    let (old_origin, new_origin) = (
        format!("http://127.0.0.1:{}", old.port),
        format!("http://127.0.0.1:{}", new.port),
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
            &format!("{old_origin}/{{tenantId}}/v2"),
            "--token",
            APP_TOKEN,
            "--setting",
            "tenantId=acme",
        ],
    );

    // A path or tenant change on the same server needs no token.
    run_ok(
        &host,
        &["app", "update", "crm", "--setting", "tenantId=beta"],
    );
    let same = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({"baseUrl": format!("{old_origin}/scim/{{tenantId}}/v2")})),
    );
    assert_eq!(same.status, 200, "{:?}", same.body);
    let same = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({"baseUrl": format!("{old_origin}/{{tenantId}}/v2"),
                     "settings": {"tenantId": "acme"}})),
    );
    assert_eq!(same.status, 200, "{:?}", same.body);

    // Another host, port or scheme, through the URL or through a setting
    // filling a placeholder of its host part: refused without the token.
    for change in [
        json!({"baseUrl": format!("{new_origin}/{{tenantId}}/v2")}),
        json!({"baseUrl": format!("https://127.0.0.1:{}/{{tenantId}}/v2", old.port)}),
        json!({"baseUrl": "http://{tenantId}.example.com/v2", "settings": {"tenantId": "evil"}}),
    ] {
        let refused = host.admin("PATCH", "/apps/crm", Some(&change));
        assert_eq!(refused.status, 422, "{change}: {:?}", refused.body);
        assert_eq!(
            refused.body["error"]["field"], "token",
            "{:?}",
            refused.body
        );
        let message = refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(&old_origin), "{message}");
    }
    // A setting alone that fills the host part moves the origin too.
    let hr = host.admin(
        "POST",
        "/apps",
        Some(&json!({"name": "hr", "connector": "custom-scim",
                     "baseUrl": "https://{tenant}.example.com/scim/v2",
                     "token": "hr-token", "settings": {"tenant": "acme"}})),
    );
    assert_eq!(hr.status, 201, "{:?}", hr.body);
    let refused = host.admin(
        "PATCH",
        "/apps/hr",
        Some(&json!({"settings": {"tenant": "evil"}})),
    );
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("https://acme.example.com")
            && message.contains("https://evil.example.com"),
        "{message}"
    );
    let refused = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({"baseUrl": format!("{new_origin}/{{tenantId}}/v2")})),
    );
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(&new_origin), "{message}");
    let app = host.admin("GET", "/apps/crm", None);
    assert_eq!(
        app.body["resolvedBaseUrl"],
        format!("{old_origin}/acme/v2"),
        "a refused change changes nothing"
    );

    // The CLI says what to do.
    let new_base = format!("{new_origin}/{{tenantId}}/v2");
    let output = host.cli(&["app", "update", "crm", "--base-url", &new_base]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains(&new_origin),
        "{stderr}"
    );

    // With the token (from standard input), the move is made, the new
    // token is the one stored, and the event names both origins.
    let output = cli_with_stdin(
        &host,
        &[
            "app",
            "update",
            "crm",
            "--base-url",
            &new_base,
            "--token",
            "-",
        ],
        &format!("{new_token}\n"),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let moved = events_of(&host, "crm")
        .into_iter()
        .filter_map(|event| event["summary"].as_str().map(str::to_owned))
        .find(|summary| summary.contains("origin"))
        .expect("an update event naming the origins");
    assert!(
        moved.contains(&format!("origin {old_origin} → {new_origin}")) && moved.contains("token"),
        "{moved}"
    );
    // The new server accepts only the new token: activation tests it.
    run_ok(&host, &["app", "activate", "crm"]);
}

#[test]
fn a_token_from_the_environment_deletes_the_generated_one_for_good() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let data = folder.path().join("data");
    let scim_only = [("SCIMLINK_SCIM_TOKEN", "scim")];
    let shown_token = |host: &mut Host| -> String {
        let line = host
            .process
            .expect_line(&["admin token", "shown once"], Duration::from_secs(10));
        line.rsplit(' ')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let status = |host: &Host, token: &str| {
        host.request("GET", "/api/v1/apps", Some(token), None, &[])
            .status
    };

    let mut first = Host::start_with(&data, &scim_only);
    let generated = shown_token(&mut first);
    assert_eq!(status(&first, &generated), 200);
    drop(first);

    let chosen = "chosen-by-the-operator";
    let mut second = Host::start_with(&data, &[scim_only[0], ("SCIMLINK_ADMIN_TOKEN", chosen)]);
    assert_logged(&mut second, &["SCIMLINK_ADMIN_TOKEN is set", "deleted"]);
    assert_eq!(status(&second, chosen), 200);
    assert_eq!(status(&second, &generated), 401);
    drop(second);

    let mut third = Host::start_with(&data, &scim_only);
    let line = third
        .process
        .expect_line(&["admin token", "shown once"], Duration::from_secs(10));
    assert!(
        line.contains("new") && line.contains("no longer set"),
        "{line}"
    );
    let regenerated = line
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert_ne!(regenerated, generated);
    assert_eq!(
        status(&third, &generated),
        401,
        "the printed token stays dead"
    );
    assert_eq!(status(&third, chosen), 401);
    assert_eq!(status(&third, &regenerated), 200);
    drop(third);

    // From then on, as after any first start: the new token is kept.
    let mut fourth = Host::start_with(&data, &scim_only);
    fourth
        .process
        .expect_line(&["admin token", "generated"], Duration::from_secs(10));
    assert_eq!(status(&fourth, &regenerated), 200);
}

/// Runs `scimlink serve` on `data` with `env`, which must refuse to start:
/// what it said on its standard error. A host that starts instead is
/// stopped and the test fails.
fn serve_refused(data: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(scimlink_binary())
        .args([
            "serve",
            "--data",
            &data.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ])
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scimlink runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait().expect("the host's state") {
            Some(status) => {
                assert!(!status.success(), "the host exited without an error");
                let mut said = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut stderr, &mut said).expect("its stderr");
                }
                return said;
            }
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the host started instead of refusing");
            }
        }
    }
}

#[test]
fn a_host_key_other_than_the_one_that_sealed_the_tokens_is_refused_at_start() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let data = folder.path().join("data");
    let tokens = [
        ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SCIMLINK_SCIM_TOKEN", "scim"),
    ];
    // The first start makes DATA/secret.key and seals with it.
    let first = Host::start_with(&data, &tokens);
    drop(first);
    let other_key = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
    let env = [tokens[0], tokens[1], ("SCIMLINK_SECRET_KEY", other_key)];
    let said = serve_refused(&data, &env);
    assert!(
        said.contains(
            "this host's key is not the one the database's application tokens are sealed with"
        ),
        "{said}"
    );
    // With its own key again, the host starts.
    let again = Host::start_with(&data, &tokens);
    assert_eq!(again.admin("GET", "/apps", None).status, 200);
}

#[test]
fn a_database_from_before_key_fingerprints_is_checked_by_opening_a_token() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let data = folder.path().join("data");
    let tokens = [
        ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SCIMLINK_SCIM_TOKEN", "scim"),
    ];
    let first = Host::start_with(&data, &tokens);
    let created = first.admin(
        "POST",
        "/apps",
        Some(&json!({
            "name": "crm",
            "connector": "custom-scim",
            "baseUrl": "https://crm.example/scim/v2",
            "token": "token-of-crm"
        })),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    drop(first);
    // As a database written before fingerprints were kept.
    let forgot = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute(\"DELETE FROM meta WHERE key = 'host_key_check'\"); c.commit()",
            &data.join("scimlink.db").display().to_string(),
        ])
        .status()
        .expect("python3 runs");
    assert!(forgot.success());

    let other_key = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
    let env = [tokens[0], tokens[1], ("SCIMLINK_SECRET_KEY", other_key)];
    // A key that opens no token is not trusted.
    let said = serve_refused(&data, &env);
    assert!(said.contains("this host's key is not the one"), "{said}");
    // Its own key opens the token: the host starts and keeps the fingerprint.
    let again = Host::start_with(&data, &tokens);
    assert_eq!(again.admin("GET", "/apps/crm", None).status, 200);
}

#[cfg(unix)]
#[test]
fn the_data_folder_and_the_database_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let folder = tempfile::tempdir().expect("a temporary folder");
    let data = folder.path().join("data");
    let host = Host::start_in(&data);
    // A write, so that the WAL files exist.
    let created = host.scim(
        "POST",
        "/Users",
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada"}),
        ),
    );
    assert_eq!(created.status, 201);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("plugin-cache")), 0o700);
    for file in [
        "scimlink.db",
        "scimlink.db-wal",
        "scimlink.db-shm",
        "secret.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    drop(host);

    // What an older version (or a copy) left open is tightened at start.
    let open = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    open(&data, 0o755);
    open(&data.join("plugin-cache"), 0o755);
    open(&data.join("scimlink.db"), 0o644);
    let mut host = Host::start_in(&data);
    assert_logged(&mut host, &["data folder", "now only its owner"]);
    assert_logged(&mut host, &["plugin-cache", "now only its owner"]);
    assert_logged(
        &mut host,
        &["scimlink.db was readable", "now only its owner"],
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("plugin-cache")), 0o700);
    assert_eq!(mode(&data.join("scimlink.db")), 0o600);
}

#[test]
fn bad_input_gets_a_400_and_the_host_keeps_serving() {
    let mut host = Host::start();
    for since in ["5%C3%A9", "%C3%A9", "5%F0%9F%98%80", "yesterday"] {
        let answer = host.admin("GET", &format!("/events?since={since}"), None);
        assert_eq!(answer.status, 400, "since={since}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["field"], "since");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("RFC 3339")),
            "{:?}",
            answer.body
        );
    }
    for name in [
        "..%2F..%2Fx",
        "Custom-Scim",
        "a%2Fb",
        "%C3%A9",
        &"a".repeat(65),
    ] {
        let answer = host.admin("POST", &format!("/plugins/{name}/rollback"), None);
        assert_eq!(answer.status, 400, "{name}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["field"], "name");
    }
    // A valid name without a history is still the usual 409.
    let answer = host.admin("POST", "/plugins/custom-scim/rollback", None);
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert!(host.process.is_running());
    assert_eq!(host.admin("GET", "/events?since=5m", None).status, 200);
}

#[test]
fn a_host_that_cannot_listen_neither_announces_itself_nor_takes_work() {
    let first = Host::start();
    let address = first.base.trim_start_matches("http://").to_string();
    let data = first.data.display().to_string();
    // A second host on the same data folder and the same, taken, address.
    let output = Command::new(scimlink_binary())
        .args([
            "serve",
            "--data",
            &data,
            "--plugins",
            "dist/plugins",
            "--listen",
            &address,
        ])
        .current_dir(scimlink_e2e::repository())
        .env("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SCIMLINK_SCIM_TOKEN", scimlink_e2e::SCIM_TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    // Only the first host ever counted as present.
    let status = first.admin("GET", "/status", None).body;
    let hosts = status["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{status:#}");
}
