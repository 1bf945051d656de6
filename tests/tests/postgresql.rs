//! Hosts on PostgreSQL, as an operator runs them: `scimlink serve
//! --database` (here through `SCIMLINK_DATABASE_URL`), several hosts on one
//! database sharing one key, and a host with another key refused at start;
//! hosts serving different connectors.
//!
//! The cluster is the one `SCIMLINK_TEST_DATABASE_URL` names (a throwaway
//! one `scripts/test.sh` starts); each test makes a database of its own.

use std::time::{Duration, Instant};

use scimlink_e2e::application::{Application, connect, import_people, people, run_ok};
use scimlink_e2e::database::{Database, KEY};
use scimlink_e2e::{ADMIN_TOKEN, Host, Running, SCIM_TOKEN, repository};
use serde_json::json;

/// Two host keys, base64 as `SCIMLINK_SECRET_KEY` takes them.
const OTHER_KEY: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";

#[test]
fn hosts_on_one_database_share_the_directory_and_a_host_with_another_key_is_refused() {
    let database = Database::new();
    let folders = tempfile::tempdir().unwrap();
    let first = database.host(&folders.path().join("first"), KEY);
    let created = first.admin(
        "POST",
        "/users",
        Some(&json!({ "userName": "ada@example.com", "givenName": "Ada" })),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let app = first.admin(
        "POST",
        "/apps",
        Some(&json!({
            "name": "crm",
            "connector": "custom-scim",
            "baseUrl": "https://crm.example/scim/v2",
            "token": "token-of-crm"
        })),
    );
    assert_eq!(app.status, 201, "{:?}", app.body);

    // A second host, its own data folder, the same database and key.
    let second = database.host(&folders.path().join("second"), KEY);
    let seen = second.admin("GET", "/users/ada@example.com", None);
    assert_eq!(seen.status, 200, "{:?}", seen.body);
    assert_eq!(seen.body["givenName"], "Ada", "{:?}", seen.body);
    assert_eq!(second.admin("GET", "/apps/crm", None).status, 200);
    // What one host writes through inbound SCIM, the other reads.
    let pushed = second.scim(
        "POST",
        "/Users",
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "grace@example.com"
        })),
    );
    assert_eq!(pushed.status, 201, "{:?}", pushed.body);
    assert_eq!(
        first.admin("GET", "/users/grace@example.com", None).status,
        200
    );

    // A host with another key would fail every application one by one: it
    // does not start.
    let third_data = folders.path().join("third").display().to_string();
    let mut third = Running::start_with_env(
        &["serve", "--data", &third_data, "--listen", "127.0.0.1:0"],
        &repository(),
        &[
            ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
            ("SCIMLINK_DATABASE_URL", database.url()),
            ("SCIMLINK_SECRET_KEY", OTHER_KEY),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while third.is_running() {
        assert!(Instant::now() < deadline, "a host with another key started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last lines may still be on their way from the pipes.
    let refusal =
        "this host's key is not the one the database's application tokens are sealed with";
    let deadline = Instant::now() + Duration::from_secs(5);
    while {
        third.drain();
        !third.output().contains(refusal) && Instant::now() < deadline
    } {
        std::thread::sleep(Duration::from_millis(20));
    }
    let said = third.output();
    assert!(said.contains(refusal), "{said}");
    assert!(!said.contains("scimlink is listening"), "{said}");
}

/// Waits until `process` has printed a line with every one of `parts`
/// (before now or within a minute).
fn said(process: &mut Running, parts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        process.drain();
        let output = process.output();
        if output
            .lines()
            .any(|line| parts.iter().all(|part| line.contains(part)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?}; output so far:\n{output}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which of `hosts` runs the application `name`, as its log says.
fn runner_of(hosts: &mut [Host], name: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (index, host) in hosts.iter_mut().enumerate() {
            host.process.drain();
            let line = format!("this host runs {name}");
            if host
                .process
                .output()
                .lines()
                .any(|said| said.ends_with(&line))
            {
                return index;
            }
        }
        assert!(Instant::now() < deadline, "no host runs {name}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_host_killed_mid_sync_is_replaced_and_no_account_is_made_twice() {
    let database = Database::new();
    let application = Application::start();
    let folders = tempfile::tempdir().unwrap();
    let mut hosts = vec![
        database.host(&folders.path().join("first"), KEY),
        database.host(&folders.path().join("second"), KEY),
    ];
    database.wait_for_engines(2, Duration::from_secs(30));

    connect(&hosts[0], &application, &people(60, "staff"), "staff");
    run_ok(&hosts[0], &["app", "activate", "crm"]);
    let running = runner_of(&mut hosts, "crm");
    // The host running crm is killed (SIGKILL) once it has made some of
    // the accounts.
    let deadline = Instant::now() + Duration::from_secs(60);
    while application.total() < 5 {
        assert!(
            Instant::now() < deadline,
            "the first engine made no account"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(hosts.remove(running));
    let made_before = application.total();
    let mut survivor = hosts.remove(0);

    // A change made through the surviving host meanwhile.
    import_people(
        &survivor,
        "userName,email,givenName,familyName,groups\nlate,late@example.com,Late,Joiner,staff\n",
    );
    said(&mut survivor.process, &["this host runs crm"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while application.total() < 61 {
        assert!(
            Instant::now() < deadline,
            "the surviving host did not finish: {} of 61 accounts",
            application.total()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each person has exactly one account: what the killed engine had sent
    // was looked up and taken over, not made again.
    let mut names = application.user_names();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "an account was made twice: {names:?}");
    assert_eq!(names.len(), 61);
    assert!(
        made_before < 61,
        "the first engine was killed too late to test anything"
    );
}

/// Hosts serving different connectors: an application is run by a host
/// that serves its connector, and `status` says what differs.
#[test]
fn an_application_is_run_by_a_host_that_serves_its_connector() {
    let database = Database::new();
    let application = Application::start();
    let folders = tempfile::tempdir().unwrap();
    // The first host serves only Coda.
    let partial = folders.path().join("partial-plugins");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::copy(
        repository().join("dist/plugins/coda.wasm"),
        partial.join("coda.wasm"),
    )
    .unwrap();
    let first = Host::start_serving(
        &folders.path().join("first"),
        &partial,
        &[
            ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
            ("SCIMLINK_DATABASE_URL", database.url()),
            ("SCIMLINK_SECRET_KEY", KEY),
        ],
    );
    let second = database.host(&folders.path().join("second"), KEY);
    database.wait_for_engines(2, Duration::from_secs(30));

    // A custom SCIM application, which only the second host can serve.
    connect(&second, &application, &people(10, "staff"), "staff");
    run_ok(&second, &["app", "activate", "crm"]);
    let mut hosts = vec![first, second];
    assert_eq!(runner_of(&mut hosts, "crm"), 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while application.total() < 10 {
        assert!(
            Instant::now() < deadline,
            "{} of 10 accounts made",
            application.total()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = &hosts[0];
    // Never quarantined for a connector the other host lacks.
    let crm = first.admin("GET", "/apps/crm", None);
    assert_eq!(crm.body["state"], "active", "{:?}", crm.body);

    let status = first.admin("GET", "/status", None).body;
    let listed = status["hosts"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{status}");
    let running: Vec<&serde_json::Value> = listed
        .iter()
        .filter(|host| host["applications"] == json!(["crm"]))
        .collect();
    assert_eq!(running.len(), 1, "{status}");
    assert!(
        running[0]["connectors"]["custom-scim"].is_string(),
        "crm runs where custom-scim is served: {status}"
    );
    let mismatches = status["connectorMismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{status}");
    assert_eq!(mismatches[0]["connector"], "custom-scim");
    assert_eq!(mismatches[0]["applications"], json!(["crm"]));
    let versions: Vec<&serde_json::Value> = mismatches[0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|host| &host["version"])
        .collect();
    assert!(versions.iter().any(|version| version.is_null()), "{status}");
    let shown = run_ok(first, &["status"]);
    assert!(
        shown.contains("runs crm") && shown.contains("connector custom-scim differs"),
        "{shown}"
    );
}

#[test]
fn a_move_from_a_folder_without_a_database_is_refused_and_creates_nothing() {
    let folders = tempfile::tempdir().unwrap();
    let named_by_mistake = folders.path().join("dtaa");
    let output = std::process::Command::new(scimlink_e2e::scimlink_binary())
        .args([
            "migrate",
            "--from",
            &named_by_mistake.display().to_string(),
            "--to",
            "postgresql:///nowhere?host=/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("there is no scimlink database at"), "{said}");
    assert!(
        !named_by_mistake.exists(),
        "the mistaken folder was created"
    );
}
