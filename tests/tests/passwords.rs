//! Passwords, as the generic SCIM connector's page describes them: a
//! temporary password on creation, then every password the user sets,
//! pushed once to each application that takes passwords and to no other,
//! and no trace of one anywhere the host keeps or shows things.
//!
//! The application is `scimlink sandbox-sp` with a password policy: it
//! refuses weak passwords, keeps the others apart from the account and lets
//! a user sign in with one, which is how these tests see that the password
//! the user set is the one the application holds. `crm` (custom-scim)
//! takes passwords; `docs` (Coda) takes none.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scimlink_e2e::application::{Remote, WITHIN, add_app, events_of, import_people, run_ok};
use scimlink_e2e::fault_proxy::{FaultProxy, Faults};
use scimlink_e2e::{
    ADMIN_TOKEN, Host, Running, SCIM_TOKEN, bundled_component, http_client_builder, plugins_with,
    scimlink_binary,
};
use serde_json::{Value, json};

const PEOPLE: &str = "userName,email,givenName,familyName,groups\n\
                      ada,ada@example.com,Ada,Lovelace,Staff\n\
                      grace,grace@example.com,Grace,Hopper,Staff\n";

/// The simulated application, refusing passwords shorter than 12
/// characters or mixing fewer than 3 classes.
struct Simulated {
    _process: Running,
    origin: String,
    http: reqwest::blocking::Client,
}

impl Simulated {
    fn start(folder: &Path) -> Simulated {
        let mut process = Running::start(
            &[
                "sandbox-sp",
                "--listen",
                "127.0.0.1:0",
                "--password-min-length",
                "12",
                "--password-classes",
                "3",
            ],
            folder,
        );
        let line = process.expect_line(&["listening on"], Duration::from_secs(30));
        let origin = line.rsplit(' ').next().unwrap().trim().to_string();
        Simulated {
            _process: process,
            origin,
            http: http_client_builder().build().unwrap(),
        }
    }

    fn port(&self) -> u16 {
        self.origin.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn tenant(&self, tenant: &str) -> Remote {
        Remote::new(format!("{}/{tenant}/v2", self.origin))
    }

    /// Signs `user_name` in to `tenant`: how many times a password was set
    /// for the account, when `password` is the one it holds.
    fn sign_in(&self, tenant: &str, user_name: &str, password: &str) -> Option<u64> {
        let answer = self
            .http
            .post(format!("{}/{tenant}/v2/_sandbox/sign-in", self.origin))
            .header("content-type", "application/json")
            .body(json!({ "userName": user_name, "password": password }).to_string())
            .send()
            .unwrap();
        if answer.status().as_u16() != 200 {
            return None;
        }
        let body: Value = serde_json::from_str(&answer.text().unwrap()).unwrap();
        body["passwordSets"].as_u64()
    }

    /// Every request the application logged, as the log shows them.
    fn log(&self) -> Vec<Value> {
        let text = self
            .http
            .get(format!("{}/_sandbox/requests", self.origin))
            .send()
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap()
    }

    /// The logged requests to `tenant` that carried a password (shown
    /// redacted), as (method, path).
    fn password_requests(&self, tenant: &str) -> Vec<(String, String)> {
        let prefix = format!("/{tenant}/v2/");
        self.log()
            .into_iter()
            .filter(|entry| entry["path"].as_str().unwrap().starts_with(&prefix))
            .filter(|entry| entry["request"].to_string().contains("[redacted]"))
            .map(|entry| {
                (
                    entry["method"].as_str().unwrap().to_owned(),
                    entry["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

fn host(folder: &Path, env: &[(&str, &str)]) -> Host {
    let mut all = vec![
        ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
        ("SCIMLINK_RETRY_BACKOFF_SECONDS", "1"),
    ];
    all.extend_from_slice(env);
    Host::start_with(&folder.join("data"), &all)
}

/// `scimlink directory set-password USER`, the password on standard input.
fn set_password(host: &Host, user: &str, password: &str) {
    let mut child = Command::new(scimlink_binary())
        .args(["directory", "set-password", user, "--host", &host.base])
        .env("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{password}").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains(password));
}

fn eventually<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every file under `folder`, read whole: what a search of the disk sees.
fn files_under(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path.display().to_string(), bytes));
            }
        }
    }
    files
}

/// Fails if `password` is in clear in any file under `folder`.
fn assert_not_on_disk(folder: &Path, password: &str) {
    for (path, bytes) in files_under(folder) {
        assert!(
            !bytes
                .windows(password.len())
                .any(|window| window == password.as_bytes()),
            "the password is in {path}"
        );
    }
}

/// Fails if `password` is in any file under the host's data folder, in its
/// log, in its events or in what its APIs answer about the user.
fn assert_no_trace(host: &mut Host, password: &str, user: &str) {
    host.process.drain();
    assert_not_on_disk(&host.data, password);
    assert!(
        !host.process.output().contains(password),
        "in the host's log"
    );
    let events = run_ok(host, &["events", "--format", "json", "--limit", "1000"]);
    assert!(!events.contains(password), "in the events");
    let answers = [
        host.admin("GET", &format!("/users/{user}"), None).body,
        host.scim("GET", "/Users", None).body,
    ];
    for answer in answers {
        assert!(!answer.to_string().contains(password), "in {answer}");
    }
}

/// The directory's people, and `crm` (custom-scim) reaching the simulated
/// application through `port` (its own, or a proxy's), bound to Staff and
/// not yet active.
fn add_crm(host: &Host, port: u16) {
    import_people(host, PEOPLE);
    add_app(host, "crm", "custom-scim", port, "crm", "Staff");
}

/// Activates `crm` and waits for ada's account in it.
fn activate_crm(host: &Host, simulated: &Simulated) {
    run_ok(host, &["app", "activate", "crm"]);
    simulated
        .tenant("crm")
        .eventually("ada", "creation", |account| account["active"] == true);
}

fn password_events(host: &Host, app: &str) -> Vec<Value> {
    events_of(host, app)
        .into_iter()
        .filter(|event| event["operation"] == "user_password_provision")
        .collect()
}

#[test]
fn a_password_reaches_each_application_that_takes_passwords_once_and_leaves_no_trace() {
    let folder = tempfile::tempdir().unwrap();
    let simulated = Simulated::start(folder.path());
    let mut host = host(folder.path(), &[]);
    add_crm(&host, simulated.port());
    add_app(&host, "docs", "coda", simulated.port(), "docs", "Staff");
    for app in ["crm", "docs"] {
        run_ok(&host, &["app", "activate", app]);
    }
    let (crm, docs) = (simulated.tenant("crm"), simulated.tenant("docs"));
    for user in ["ada", "grace"] {
        crm.eventually(user, "creation", |account| account["active"] == true);
        docs.eventually(user, "creation", |account| account["active"] == true);
    }

    // Created in crm with a temporary password, which met the
    // application's policy (a weak one is refused); docs got none.
    let created = simulated.password_requests("crm");
    assert_eq!(
        created
            .iter()
            .filter(|(method, path)| method == "POST" && path.ends_with("/Users"))
            .count(),
        2,
        "{created:?}"
    );
    assert_eq!(simulated.password_requests("docs"), Vec::new());
    let creations: Vec<Value> = events_of(&host, "crm")
        .into_iter()
        .filter(|event| event["operation"] == "user_create_provision")
        .collect();
    assert_eq!(creations.len(), 2, "{creations:#?}");
    for event in &creations {
        assert!(
            event["summary"]
                .as_str()
                .unwrap()
                .contains("a temporary password (not kept)"),
            "{event}"
        );
    }

    // Ada sets her password: it reaches crm once, and docs not at all.
    let ada_password = "Analytical-Engine-1843";
    set_password(&host, "ada", ada_password);
    // Kept sealed while it waits: never in clear on disk.
    assert_not_on_disk(&host.data, ada_password);
    let sets = eventually("ada's password in crm", WITHIN, || {
        simulated.sign_in("crm", "ada", ada_password)
    });
    assert_eq!(sets, 2, "the temporary password, then hers");
    assert_eq!(simulated.sign_in("docs", "ada", ada_password), None);

    // Grace sets hers through the inbound SCIM API.
    let grace = host.scim("GET", "/Users?filter=userName%20eq%20%22grace%22", None);
    let grace_id = grace.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let grace_password = "Compiler-A0-1952!";
    let patched = host.scim(
        "PATCH",
        &format!("/Users/{grace_id}"),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "password", "value": grace_password }],
        })),
    );
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert!(patched.body.get("password").is_none());
    eventually("grace's password in crm", WITHIN, || {
        simulated.sign_in("crm", "grace", grace_password)
    });

    // Once each, however long the engine runs on: the sweep wipes what
    // was delivered, and a later change of the user sends no password.
    host.admin(
        "PATCH",
        "/users/ada",
        Some(&json!({ "title": "Countess of Lovelace" })),
    );
    crm.eventually("ada", "the new title", |account| {
        account["title"] == "Countess of Lovelace"
    });
    std::thread::sleep(Duration::from_secs(3));
    let pushes = simulated.password_requests("crm");
    let patches: Vec<_> = pushes
        .iter()
        .filter(|(method, _)| method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2, "one for each user: {pushes:?}");
    assert_eq!(simulated.password_requests("docs"), Vec::new());
    assert_eq!(simulated.sign_in("crm", "ada", ada_password), Some(2));

    let recorded = password_events(&host, "crm");
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    assert!(recorded.iter().all(|event| event["outcome"] == "success"));
    assert_eq!(password_events(&host, "docs"), Vec::<Value>::new());

    // Nothing of either password anywhere the host keeps or shows things.
    for (password, user) in [(ada_password, "ada"), (grace_password, "grace")] {
        assert_no_trace(&mut host, password, user);
    }
    let log = serde_json::to_string(&simulated.log()).unwrap();
    assert!(!log.contains(ada_password) && !log.contains(grace_password));
}

#[test]
fn a_password_push_that_fails_is_retried_then_delivered_once() {
    let folder = tempfile::tempdir().unwrap();
    let simulated = Simulated::start(folder.path());
    let proxy = FaultProxy::start(simulated.port());
    let mut host = host(folder.path(), &[]);
    add_crm(&host, proxy.port);
    activate_crm(&host, &simulated);
    let crm = simulated.tenant("crm");

    // The application fails every request that sets a password, for now.
    proxy.set(Faults {
        refuse_containing: Some(("\"path\":\"password\"".into(), 503)),
        ..Faults::default()
    });
    let password = "Difference-Engine-1822";
    set_password(&host, "ada", password);
    let ada_path = format!("/crm/v2/Users/{}", crm.id_of("ada"));
    // The client tries again at once; when its attempts are spent, the
    // failure is recorded and the engine tries the change again later.
    let failed = eventually("a failed push recorded", Duration::from_secs(60), || {
        password_events(&host, "crm")
            .into_iter()
            .find(|event| event["outcome"] == "failure")
    });
    assert_eq!(failed["http_status"], 503, "{failed}");
    assert!(!failed.to_string().contains(password));
    let refused = proxy
        .log()
        .iter()
        .filter(|logged| logged.injected && logged.path == ada_path)
        .count();
    assert!(refused >= 2, "{refused} refused");
    assert_eq!(simulated.sign_in("crm", "ada", password), None);
    proxy.set(Faults::default());

    let sets = eventually("the retried push", Duration::from_secs(40), || {
        simulated.sign_in("crm", "ada", password)
    });
    assert_eq!(sets, 2, "the temporary password, then hers once");
    let delivered = proxy
        .log()
        .iter()
        .filter(|logged| {
            logged.path == ada_path
                && logged.method == "PATCH"
                && !logged.injected
                && logged.status == Some(200)
        })
        .count();
    assert_eq!(delivered, 1);
    let events = password_events(&host, "crm");
    assert!(
        events.iter().any(|event| event["outcome"] == "failure"),
        "{events:#?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|event| event["outcome"] == "success")
            .count(),
        1,
        "{events:#?}"
    );
    assert_no_trace(&mut host, password, "ada");
}

#[test]
fn a_password_the_application_refuses_is_dead_lettered_then_wiped_when_it_expires() {
    let folder = tempfile::tempdir().unwrap();
    let simulated = Simulated::start(folder.path());
    let mut host = host(
        folder.path(),
        &[("SCIMLINK_PASSWORD_RETENTION_SECONDS", "6")],
    );
    add_crm(&host, simulated.port());
    activate_crm(&host, &simulated);

    // Too weak for the application: refused for good, dead-lettered.
    let weak = "lowercase only";
    set_password(&host, "ada", weak);
    let letters = eventually("a dead letter", WITHIN, || {
        let letters = host.admin("GET", "/apps/crm/dead-letters", None).body;
        let found = letters["items"].as_array().cloned().unwrap_or_default();
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(
        letters[0]["operation"], "user_password_provision",
        "{letters:#?}"
    );
    assert!(!letters[0].to_string().contains(weak));
    assert_eq!(simulated.sign_in("crm", "ada", weak), None);

    // While it waits, the plan says a password is owed and shows none, and
    // the disk holds it only sealed.
    let plan = run_ok(&host, &["plan", "crm", "--format", "json"]);
    assert!(
        plan.contains("the password the user set (not shown)"),
        "{plan}"
    );
    assert!(!plan.contains(weak));
    assert_not_on_disk(&host.data, weak);

    // Past its retention it is wiped, and an event says the application
    // never got it.
    let expired = eventually("the expiry event", WITHIN, || {
        password_events(&host, "crm")
            .into_iter()
            .find(|event| event["rule"] == "expired")
    });
    assert_eq!(expired["outcome"], "failure");
    assert!(
        expired["summary"]
            .as_str()
            .unwrap()
            .contains("the user must set it again"),
        "{expired}"
    );
    assert_no_trace(&mut host, weak, "ada");
}

#[test]
fn a_temporary_password_is_revealed_once_when_the_policy_says_so() {
    let folder = tempfile::tempdir().unwrap();
    let simulated = Simulated::start(folder.path());
    let mut host = host(folder.path(), &[]);
    add_crm(&host, simulated.port());
    // A policy that cannot make a password, or a password that is none,
    // is refused whole, naming the field.
    for policy in [
        json!({ "length": 4 }),
        json!({ "lowercase": false, "uppercase": false, "digits": false, "symbols": false }),
    ] {
        let refused = host.admin(
            "PATCH",
            "/apps/crm",
            Some(&json!({ "passwordPolicy": policy })),
        );
        assert_eq!(refused.status, 422, "{policy}: {:?}", refused.body);
        assert_eq!(refused.body["error"]["field"], "passwordPolicy");
    }
    let empty = host.admin(
        "PUT",
        "/users/ada/password",
        Some(&json!({ "password": "" })),
    );
    assert_eq!(empty.status, 422, "{:?}", empty.body);
    let unknown = host.admin(
        "PUT",
        "/users/nobody/password",
        Some(&json!({ "password": "Whatever-123" })),
    );
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);
    let shown = run_ok(
        &host,
        &[
            "app",
            "password-policy",
            "crm",
            "--length",
            "16",
            "--classes",
            "lowercase,uppercase,digits",
            "--reveal",
            "once",
        ],
    );
    assert!(
        shown.contains("of 16 characters (lowercase, uppercase, digits), revealed once"),
        "{shown}"
    );
    activate_crm(&host, &simulated);

    let revealed = run_ok(&host, &["app", "reveal-password", "crm", "ada"]);
    let password = revealed.trim();
    assert_eq!(password.chars().count(), 16, "{password}");
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(password.chars().any(|c| c.is_ascii_lowercase()));
    assert!(password.chars().any(|c| c.is_ascii_uppercase()));
    assert!(password.chars().any(|c| c.is_ascii_digit()));
    // It is the one the account holds: ada can sign in with it.
    assert_eq!(simulated.sign_in("crm", "ada", password), Some(1));
    // Once only.
    let again = host.cli(&["app", "reveal-password", "crm", "ada"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("read already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_no_trace(&mut host, password, "ada");
}

#[test]
fn a_password_set_while_the_application_is_quarantined_reaches_it_when_it_resumes() {
    let folder = tempfile::tempdir().unwrap();
    let simulated = Simulated::start(folder.path());
    let plugins = plugins_with(&["custom-scim"]);
    let mut host = Host::start_serving(
        &folder.path().join("data"),
        plugins.path(),
        &[
            ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
            ("SCIMLINK_QUARANTINE_PROBE_SECONDS", "1"),
        ],
    );
    add_crm(&host, simulated.port());
    activate_crm(&host, &simulated);

    // Its connector goes away; the password the user sets next finds the
    // application unservable, and it is quarantined.
    std::fs::remove_file(plugins.path().join("custom-scim.wasm")).unwrap();
    host.process
        .expect_line(&["plugin custom-scim", "removed"], WITHIN);
    let password = "Jacquard-Loom-1804";
    set_password(&host, "ada", password);
    eventually("quarantine", WITHIN, || {
        let app = host.admin("GET", "/apps/crm", None).body;
        (app["state"] == "quarantined").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(simulated.sign_in("crm", "ada", password), None);

    // The connector comes back: the application resumes and gets it, once.
    let staged = plugins.path().join(".custom-scim.wasm.tmp");
    std::fs::copy(bundled_component("custom-scim"), &staged).unwrap();
    std::fs::rename(&staged, plugins.path().join("custom-scim.wasm")).unwrap();
    let sets = eventually(
        "the password after resuming",
        Duration::from_secs(40),
        || simulated.sign_in("crm", "ada", password),
    );
    assert_eq!(sets, 2, "the temporary password, then hers once");
    assert_no_trace(&mut host, password, "ada");
}
