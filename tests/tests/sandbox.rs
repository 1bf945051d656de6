//! The authoring kit as connector authors and vendors run it: `scimlink
//! plugin test` against the simulated application and against a real SCIM
//! server (scim2-server), a wrong connector caught, a recording replayed
//! offline, `scimlink sandbox-sp` and its quirks, and `scimlink plugin new`
//! whose output builds and passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use scimlink_e2e::{
    Running, Scim2Server, bundled_components, fixture_component, http_client_builder, repository,
    scimlink_binary,
};
use serde_json::Value;

const TOKEN: &str = "vendor-token-7c1d";

fn plugin_test(component: &Path, extra: &[&str]) -> (Output, Value) {
    let output = Command::new(scimlink_binary())
        .arg("plugin")
        .arg("test")
        .arg(component)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .expect("scimlink runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "plugin test printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// A GET of the application, with its token, as JSON.
fn get_json(http: &reqwest::blocking::Client, url: impl reqwest::IntoUrl) -> Value {
    let text = http
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

/// Every step passed or was skipped for a reason, and the run says so.
fn assert_passed(component: &Path, output: &Output, report: &Value) {
    let failed: Vec<String> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["outcome"] == "fail")
        .map(|s| format!("{}: {}", s["name"], s["reason"]))
        .collect();
    assert!(
        output.status.success() && report["passed"] == true && failed.is_empty(),
        "{} failed: {failed:#?}",
        component.display()
    );
}

fn name_of(component: &Path) -> String {
    component
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_bundled_connector_passes_against_the_simulated_application() {
    for component in bundled_components() {
        let (output, report) = plugin_test(&component, &[]);
        assert_passed(&component, &output, &report);
        let name = name_of(&component);
        // What the manifest claims decides what runs: Coda has no groups.
        let group_step = &step(&report, "group-membership")["outcome"];
        if name == "coda" {
            assert_eq!(group_step, "skip");
            // A skipped step sent nothing.
            let skipped = step(&report, "group-membership");
            assert_eq!(skipped["requests"], serde_json::json!([]), "{skipped:#}");
        } else {
            assert_eq!(group_step, "pass", "{name}");
        }
        // Only custom-scim's application takes passwords: its create
        // carried one and the password the user set reached it once.
        let password = step(&report, "password");
        if name == "custom-scim" {
            assert_eq!(password["outcome"], "pass", "{password:#}");
            let sent = password["requests"].as_array().unwrap();
            assert_eq!(
                sent.iter()
                    .filter(|r| r["method"] == "PATCH" && r["status"] == 200)
                    .count(),
                1,
                "{password:#}"
            );
        } else {
            assert_eq!(password["outcome"], "skip", "{name}: {password:#}");
        }
        for name in [
            "lookup-takeover",
            "create",
            "update",
            "deactivate",
            "delete",
            "import",
        ] {
            assert_eq!(step(&report, name)["outcome"], "pass", "{name}");
        }
        // Each step shows what the host sent and what the connector cost.
        let create = step(&report, "create");
        assert!(
            create["requests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["method"] == "POST" && r["path"] == "/Users" && r["status"] == 201),
            "{create:#}"
        );
        let calls = create["calls"].as_array().unwrap();
        assert!(calls.iter().any(|c| c["call"] == "map-user"), "{create:#}");
        assert!(calls.iter().all(|c| c["fuel"].as_u64().unwrap() > 0));
        assert!(
            calls
                .iter()
                .all(|c| c["peak_memory_bytes"].as_u64().unwrap() > 0)
        );
    }
}

#[test]
fn every_bundled_connector_passes_against_scim2_server_and_leaves_nothing_behind() {
    let server = Scim2Server::start(&[TOKEN], "vendor");
    let base = format!("http://127.0.0.1:{}/vendor/v2", server.port);
    for component in bundled_components() {
        let (output, report) = plugin_test(
            &component,
            &[
                "--against",
                &base,
                "--token",
                TOKEN,
                "--settings",
                "tenantId=vendor",
            ],
        );
        assert_passed(&component, &output, &report);
        assert!(
            report["application"].as_str().unwrap().contains(&base),
            "{report:#}"
        );
    }
    // Only synthetic objects were made, and every one was deleted.
    let http = http_client_builder().build().unwrap();
    for list in ["Users", "Groups"] {
        let body: Value = get_json(&http, format!("{base}/{list}"));
        assert_eq!(body["totalResults"], 0, "{list} left behind: {body:#}");
    }
}

#[test]
fn a_wrong_connector_fails_naming_the_step_and_the_reason() {
    let component = fixture_component("wrong");
    let (output, report) = plugin_test(&component, &[]);
    assert!(!output.status.success(), "a wrong connector passed");
    assert_eq!(report["passed"], false);

    let create = step(&report, "create");
    assert_eq!(create["outcome"], "fail");
    let reason = create["reason"].as_str().unwrap();
    assert!(
        reason.contains(r#"name.givenName is "Lovelace", the directory's name.givenName is "Ada""#),
        "{reason}"
    );

    let membership = step(&report, "group-membership");
    assert_eq!(membership["outcome"], "fail");
    let reason = membership["reason"].as_str().unwrap();
    assert!(reason.contains("still has an active account"), "{reason}");
    assert!(reason.contains("delete-group-keep-accounts"), "{reason}");

    // What the rule does not touch still passes.
    assert_eq!(step(&report, "group-rename")["outcome"], "pass");

    // The text report says the same to a person, and JUnit to a CI server.
    let text = Command::new(scimlink_binary())
        .args(["plugin", "test"])
        .arg(&component)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("FAIL  create"), "{text}");
    assert!(text.contains("3 failed"), "{text}");
    let junit = Command::new(scimlink_binary())
        .args(["plugin", "test", "--format", "junit"])
        .arg(&component)
        .output()
        .unwrap();
    assert!(!junit.status.success());
    let junit = String::from_utf8_lossy(&junit.stdout);
    assert!(junit.starts_with("<?xml"), "{junit}");
    assert!(junit.contains("<testcase classname=\"wrong@0.1.0\" name=\"create\""));
    assert!(junit.contains("<failure message=\"name.givenName is &quot;Lovelace&quot;"));
}

#[test]
fn a_recording_replays_offline() {
    let fixtures = tempfile::tempdir().unwrap();
    let recording = fixtures.path().join("swimlane");
    let component = bundled_components()
        .into_iter()
        .find(|c| name_of(c) == "swimlane-turbine")
        .unwrap();
    {
        let server = Scim2Server::start(&[TOKEN], "vendor");
        let base = format!("http://127.0.0.1:{}/vendor/v2", server.port);
        // Somebody the run did not make: listed, never recorded.
        let created = http_client_builder()
            .build()
            .unwrap()
            .post(format!("{base}/Users"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"someone.else@corp.example","title":"CFO"}"#)
            .send()
            .unwrap();
        assert_eq!(created.status(), 201);
        let record = recording.to_str().unwrap();
        let (output, report) = plugin_test(
            &component,
            &["--against", &base, "--token", TOKEN, "--record", record],
        );
        assert_passed(&component, &output, &report);
    }
    let recorded = std::fs::read_to_string(recording.join("exchanges.json")).unwrap();
    assert!(recorded.contains("redacted"), "the listing was recorded");
    assert!(
        !recorded.contains("someone.else"),
        "another account was recorded"
    );
    assert!(!recorded.contains("CFO"));

    // The server is gone: every answer comes from the recording.
    let replay = recording.to_str().unwrap();
    let (output, report) = plugin_test(&component, &["--replay", replay]);
    assert_passed(&component, &output, &report);

    // Another connector asks for what was never recorded, and is told so.
    let other = bundled_components()
        .into_iter()
        .find(|c| name_of(c) == "cinode")
        .unwrap();
    let (output, report) = plugin_test(&other, &["--replay", replay]);
    assert!(!output.status.success());
    let reasons: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("the recording has no answer for")),
        "{reasons:#?}"
    );
}

#[test]
fn the_simulated_application_shows_its_quirks() {
    let folder = tempfile::tempdir().unwrap();
    let mut sp = Running::start(
        &[
            "sandbox-sp",
            "--listen",
            "127.0.0.1:0",
            "--put-only",
            "--token",
            TOKEN,
            "--tenant",
            "acme/scim/v2",
        ],
        folder.path(),
    );
    let line = sp.expect_line(&["listening on"], Duration::from_secs(20));
    let origin = line.rsplit(' ').next().unwrap().trim().to_string();
    let base = format!("{origin}/acme/scim/v2");
    let http = http_client_builder().build().unwrap();

    let anonymous = http.get(format!("{base}/Users")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let other_tenant = http
        .get(format!("{origin}/globex/scim/v2/Users"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(other_tenant.status(), 404);

    let created: Value = http
        .post(format!("{base}/Users"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Ada"}"#)
        .send()
        .unwrap()
        .text()
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let patch = http
        .patch(format!("{base}/Users/{id}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}"#)
        .send()
        .unwrap();
    assert_eq!(patch.status(), 405);
    let found: Value = get_json(
        &http,
        format!("{base}/Users?filter=userName%20eq%20%22ada%22"),
    );
    assert_eq!(found["totalResults"], 1, "userName is caseExact false");

    // The log holds request bodies: the application's token guards it.
    let anonymous = http
        .get(format!("{origin}/_sandbox/requests"))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let log: Value = get_json(&http, format!("{origin}/_sandbox/requests"));
    let statuses: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [401, 404, 201, 405, 200]);
    assert_eq!(log[2]["request"]["userName"], "Ada");
}

#[test]
fn a_patch_connector_fails_against_a_put_only_application() {
    let component = bundled_components()
        .into_iter()
        .find(|c| name_of(c) == "custom-scim")
        .unwrap();
    let (output, report) = plugin_test(&component, &["--quirks", r#"{"putOnly": true}"#]);
    assert!(!output.status.success());
    let update = step(&report, "update");
    assert_eq!(update["outcome"], "fail");
    let reason = update["reason"].as_str().unwrap();
    assert!(reason.contains("does not support PATCH"), "{reason}");
}

#[test]
fn the_lifecycle_holds_against_an_application_that_refuses_and_fails_now_and_then() {
    // One request in twelve refused with 429 (retry at once), one in
    // twelve a 503: the engine retries through both (six attempts each),
    // and every step still holds.
    let component = bundled_components()
        .into_iter()
        .find(|c| name_of(c) == "scalekit")
        .unwrap();
    let quirks = r#"{"tooManyRequestsRate": 0.08, "retryAfterSeconds": 0,
                     "serverErrorRate": 0.08, "seed": 7, "entraStyle": true}"#;
    let (output, report) = plugin_test(&component, &["--quirks", quirks]);
    assert_passed(&component, &output, &report);
    let refused = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["requests"].as_array().unwrap().iter())
        .filter(|r| r["status"] == 429 || r["status"] == 503)
        .count();
    assert!(refused > 0, "no fault was injected");
}

/// The cargo target folder the scaffolded crate builds into: the
/// workspace's own, so the SDK's dependencies are compiled once.
fn target_folder() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("target"))
}

#[test]
fn a_scaffolded_connector_builds_and_passes_unchanged() {
    let folder = tempfile::tempdir().unwrap();
    let crate_folder = folder.path().join("acme-hr");
    let made = Command::new(scimlink_binary())
        .args(["plugin", "new", "acme-hr", "--path"])
        .arg(&crate_folder)
        .arg("--sdk")
        .arg(repository().join("guest-sdk"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let readme = std::fs::read_to_string(crate_folder.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"));
    assert!(readme.contains("## What to edit"));
    // The workspace's lock file: the same dependency versions, already
    // downloaded.
    std::fs::copy(
        repository().join("Cargo.lock"),
        crate_folder.join("Cargo.lock"),
    )
    .unwrap();

    // The one documented command.
    let target = target_folder().join("scaffold");
    let built = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_folder)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let component = target.join("wasm32-wasip2/release/acme_hr.wasm");
    let (output, report) = plugin_test(&component, &[]);
    assert_passed(&component, &output, &report);
    assert_eq!(report["connector"]["name"], "acme-hr");
}

#[test]
fn a_component_that_does_not_load_fails_the_first_step_and_skips_the_rest() {
    let component = fixture_component("missing-export");
    let (output, report) = plugin_test(&component, &[]);
    assert!(!output.status.success());
    let load = step(&report, "load");
    assert_eq!(load["outcome"], "fail");
    assert!(
        load["reason"].as_str().unwrap().contains("export"),
        "{load:#}"
    );
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 18, "every step is reported");
    assert!(steps[1..].iter().all(|s| s["outcome"] == "skip"));
}

#[test]
fn an_unreachable_endpoint_fails_connect_saying_why() {
    let component = bundled_components()
        .into_iter()
        .find(|c| name_of(c) == "custom-scim")
        .unwrap();
    // A loopback port nobody listens on.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/scim/v2");
    let (output, report) = plugin_test(&component, &["--against", &url, "--token", TOKEN]);
    assert!(!output.status.success());
    let connect = step(&report, "connect");
    assert_eq!(connect["outcome"], "fail");
    let reason = connect["reason"].as_str().unwrap();
    // The host's own words, not only a status.
    let (_, why) = reason.split_once("502 Bad Gateway: ").expect(reason);
    assert!(!why.trim().is_empty(), "{reason}");
    assert_eq!(step(&report, "create")["outcome"], "skip");
    assert_eq!(step(&report, "cleanup")["outcome"], "skip");
}
