//! The connector lifecycle as an operator meets it: `scimlink plugin check`
//! and a serving host that follows its plugins folder.

use std::process::Command;
use std::time::Duration;

use std::path::Path;

use scimlink_e2e::{
    Running, bundled_component, bundled_components, fixture_component, scimlink_binary,
};

const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn plugin_check_accepts_every_bundled_connector() {
    let components = bundled_components();
    assert!(!components.is_empty());
    for component in components {
        let output = Command::new(scimlink_binary())
            .args(["plugin", "check", "--format", "json"])
            .arg(&component)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            component.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let name = report["manifest"]["name"].as_str().unwrap();
        assert_eq!(Some(name), component.file_stem().and_then(|s| s.to_str()));
        // Swimlane keys users by email, and sends it as the userName.
        let user_name = report["sample_user"]["scim"]["userName"].as_str().unwrap();
        assert!(
            matches!(user_name, "smoke.test" | "smoke.test@example.com"),
            "{name}: {user_name}"
        );
        assert!(report["receipts"][0]["fuel"].as_u64().unwrap() > 0);
    }
}

#[test]
fn plugin_check_prints_a_readable_report() {
    let output = Command::new(scimlink_binary())
        .args(["plugin", "check"])
        .arg(bundled_component("custom-scim"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("is a valid connector"), "{text}");
    assert!(text.contains("name          custom-scim"), "{text}");
    assert!(text.contains(r#"userName eq "smoke.test""#), "{text}");
}

#[test]
fn plugin_check_refuses_a_bad_file_with_one_clear_line() {
    let folder = tempfile::tempdir().unwrap();
    let junk = folder.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let output = Command::new(scimlink_binary())
        .args(["plugin", "check"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("junk.wasm: not a WebAssembly file"),
        "{stderr}"
    );

    let output = Command::new(scimlink_binary())
        .args(["plugin", "check", "--memory-mib", "0"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a bad flag is a usage error");
}

#[test]
fn serve_follows_its_plugins_folder() {
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut host = Running::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "data",
            "--plugins",
            "plugins",
        ],
        work.path(),
    );
    host.expect_line(&["serving connectors from plugins"], WITHIN);

    std::fs::copy(bundled_component("custom-scim"), plugins.join(".incoming")).unwrap();
    std::fs::rename(plugins.join(".incoming"), plugins.join("custom-scim.wasm")).unwrap();
    host.expect_line(
        &["plugin custom-scim 0.1.0 loaded from plugins/custom-scim.wasm"],
        WITHIN,
    );

    // A broken replacement is refused; the good version keeps serving.
    std::fs::write(plugins.join(".incoming"), b"\0asm broken").unwrap();
    std::fs::rename(plugins.join(".incoming"), plugins.join("custom-scim.wasm")).unwrap();
    host.expect_line(
        &["custom-scim.wasm", "still serving custom-scim@0.1.0"],
        WITHIN,
    );

    std::fs::remove_file(plugins.join("custom-scim.wasm")).unwrap();
    host.expect_line(&["plugin custom-scim 0.1.0 removed"], WITHIN);
    assert!(host.is_running());
    assert!(work.path().join("data/plugin-cache").is_dir());
}

#[test]
fn serve_waits_for_a_missing_plugins_folder() {
    let work = tempfile::tempdir().unwrap();
    let mut host = Running::start(
        &["serve", "--listen", "127.0.0.1:0", "--plugins", "later"],
        work.path(),
    );
    host.expect_line(&["later", "cannot open the plugins folder"], WITHIN);
    assert!(host.is_running());

    let later = work.path().join("later");
    std::fs::create_dir(&later).unwrap();
    std::fs::copy(
        bundled_component("custom-scim"),
        later.join("custom-scim.wasm"),
    )
    .unwrap();
    host.expect_line(&["plugin custom-scim 0.1.0 loaded"], WITHIN);
}

fn deploy(component: &Path, plugins: &Path) {
    scimlink_e2e::deploy(component, plugins, "versioned");
}

fn rollback(work: &Path) -> std::process::Output {
    Command::new(scimlink_binary())
        .args([
            "plugin",
            "rollback",
            "versioned",
            "--data",
            "data",
            "--plugins",
            "plugins",
        ])
        .current_dir(work)
        .output()
        .unwrap()
}

#[test]
fn plugin_rollback_puts_the_previous_version_back_into_a_running_host() {
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();

    let refused = rollback(work.path());
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no serving history for connector `versioned`"),
        "{stderr}"
    );

    let mut host = Running::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "data",
            "--plugins",
            "plugins",
        ],
        work.path(),
    );
    deploy(&fixture_component("versioned-1.0.0"), &plugins);
    host.expect_line(&["plugin versioned 1.0.0 loaded"], WITHIN);
    deploy(&fixture_component("versioned-2.0.0"), &plugins);
    host.expect_line(&["plugin versioned 1.0.0 → 2.0.0"], WITHIN);

    let output = rollback(work.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("rolled back from 2.0.0 to 1.0.0"),
        "{stdout}"
    );
    host.expect_line(&["plugin versioned 2.0.0 → 1.0.0", "cached"], WITHIN);

    // A second rollback undoes the first.
    let output = rollback(work.path());
    assert!(output.status.success());
    host.expect_line(&["plugin versioned 1.0.0 → 2.0.0"], WITHIN);
}

#[test]
fn serve_refuses_a_limits_file_it_cannot_use() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("limits.json"),
        br#"{"coda": {"memory": 5}}"#,
    )
    .unwrap();
    let output = Command::new(scimlink_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--plugins",
            "plugins",
            "--limits",
            "limits.json",
        ])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the limits file limits.json is not valid"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `memory`"), "{stderr}");

    std::fs::write(
        work.path().join("limits.json"),
        br#"{"coda": {"memory_bytes": 0}}"#,
    )
    .unwrap();
    let output = Command::new(scimlink_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--plugins",
            "plugins",
            "--limits",
            "limits.json",
        ])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("coda.memory_bytes must be between 1 and"),
        "{stderr}"
    );

    std::fs::write(
        work.path().join("limits.json"),
        br#"{"custom-scim": {"memory_bytes": 33554432, "call_deadline": 250}}"#,
    )
    .unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        bundled_component("custom-scim"),
        plugins.join("custom-scim.wasm"),
    )
    .unwrap();
    let mut host = Running::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--plugins",
            "plugins",
            "--limits",
            "limits.json",
        ],
        work.path(),
    );
    host.expect_line(&["plugin custom-scim 0.1.0 loaded"], WITHIN);
}

#[test]
fn the_admin_api_lists_and_rolls_back_connectors() {
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut host = scimlink_e2e::Host::start_serving(
        &work.path().join("data"),
        &plugins,
        &[
            ("SCIMLINK_ADMIN_TOKEN", scimlink_e2e::ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", scimlink_e2e::SCIM_TOKEN),
        ],
    );
    deploy(&fixture_component("versioned-1.0.0"), &plugins);
    host.process
        .expect_line(&["plugin versioned 1.0.0 loaded"], WITHIN);
    let refused = host.admin("POST", "/plugins/versioned/rollback", None);
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "nothing_to_roll_back");

    deploy(&fixture_component("versioned-2.0.0"), &plugins);
    host.process
        .expect_line(&["plugin versioned 1.0.0 → 2.0.0"], WITHIN);
    let listed = host.admin("GET", "/plugins", None);
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["items"][0]["name"], "versioned");
    assert_eq!(listed.body["items"][0]["version"], "2.0.0");

    let rolled = host.admin("POST", "/plugins/versioned/rollback", None);
    assert_eq!(rolled.status, 200, "{:?}", rolled.body);
    assert_eq!(rolled.body["to_version"], "1.0.0");
    host.process
        .expect_line(&["plugin versioned 2.0.0 → 1.0.0"], WITHIN);
}
