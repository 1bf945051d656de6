//! The deprovisioning guard against a real SCIM application (scim2-server):
//! one change that would offboard too many (an unbound or deleted group) is
//! held past the threshold until an operator decides; offboardings are
//! counted per application across changes, so an identity provider that
//! deprovisions one request at a time is held like one big change would
//! be; approval carries the held offboardings out, rejection releases the
//! accounts; creates and updates keep flowing while an application is held.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{
    APP_TOKEN, Application, connect, people, run_ok, wait_for_accounts,
};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(30);
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What the application holds, as the guard's tests look at it.
trait Accounts {
    /// Every account, by userName: whether it is active.
    fn accounts(&self) -> Vec<(String, bool)>;

    fn inactive(&self) -> usize {
        self.accounts().iter().filter(|(_, active)| !active).count()
    }

    fn is_active(&self, user_name: &str) -> bool {
        self.accounts()
            .iter()
            .any(|(name, active)| name == user_name && *active)
    }
}

impl Accounts for Application {
    fn accounts(&self) -> Vec<(String, bool)> {
        let body = self.read("/Users?count=1000&attributes=userName,active");
        let mut accounts: Vec<(String, bool)> = body["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|user| {
                (
                    user["userName"].as_str().unwrap().to_string(),
                    user["active"] != false,
                )
            })
            .collect();
        accounts.sort();
        accounts
    }
}

/// `count` users in `Everyone`, bound to the application `crm`
/// (custom-scim: offboarding deactivates), activated and provisioned.
fn provisioned(count: usize, extra: &[&str]) -> (Application, Host) {
    let application = Application::start();
    let host = Host::start();
    let folder = tempfile::tempdir().unwrap();
    let csv = folder.path().join("people.csv");
    std::fs::write(&csv, people(count, "Everyone")).unwrap();
    run_ok(&host, &["directory", "import", csv.to_str().unwrap()]);
    let base = format!("http://127.0.0.1:{}/acme/v2", application.server.port);
    let mut add = vec![
        "app",
        "add",
        "crm",
        "--connector",
        "custom-scim",
        "--base-url",
        &base,
        "--token",
        APP_TOKEN,
        "--requests-per-second",
        "1000",
    ];
    add.extend_from_slice(extra);
    run_ok(&host, &add);
    run_ok(&host, &["app", "bind", "crm", "Everyone"]);
    run_ok(&host, &["app", "activate", "crm"]);
    until("every account is created", || {
        let accounts = application.accounts();
        accounts.len() == count && accounts.iter().all(|(_, active)| *active)
    });
    (application, host)
}

fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !done() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The directory's users by userName: their ids.
fn user_ids(host: &Host) -> std::collections::BTreeMap<String, String> {
    let answer = host.scim("GET", "/Users?count=1000", None);
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| {
            (
                user["userName"].as_str().unwrap().to_string(),
                user["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn holds(host: &Host) -> Vec<Value> {
    let listed = run_ok(host, &["held", "list", "--app", "crm", "--format", "json"]);
    serde_json::from_str::<Value>(&listed)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Waits for the application's open hold to list `count` offboardings.
fn open_hold_of(host: &Host, count: usize) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let open = holds(host).into_iter().find(|hold| hold["state"] == "held");
        if let Some(hold) = &open
            && hold["objects"].as_array().unwrap().len() == count
        {
            return hold.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no open hold of {count} offboardings: {open:?}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn events(host: &Host, operation: &str) -> Vec<Value> {
    let listed = run_ok(
        host,
        &[
            "events",
            "--app",
            "crm",
            "--operation",
            operation,
            "--limit",
            "1000",
            "--format",
            "json",
        ],
    );
    serde_json::from_str::<Value>(&listed)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Adds a directory user to `Everyone`.
fn join_everyone(host: &Host, user_id: &str) {
    let answer = host.admin("PUT", &format!("/groups/Everyone/members/{user_id}"), None);
    assert!(answer.status < 300, "{:?}", answer.body);
}

/// Deletes users through inbound SCIM, one request each, as an identity
/// provider does.
fn delete_one_at_a_time(host: &Host, names: impl Iterator<Item = String>) {
    let ids = user_ids(host);
    for name in names {
        let answer = host.scim("DELETE", &format!("/Users/{}", ids[&name]), None);
        assert_eq!(answer.status, 204, "{name}: {:?}", answer.body);
    }
}

fn names(range: std::ops::Range<usize>) -> impl Iterator<Item = String> {
    range.map(|index| format!("user{index:02}"))
}

/// The engine has had the time to send what it would send.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn deletions_one_request_at_a_time_are_held_past_the_threshold_until_approved() {
    let (application, host) = provisioned(40, &[]);

    // 30 of 40 deleted one DELETE at a time: the threshold is
    // max(20, 10% of 40) = 20 across all those changes.
    delete_one_at_a_time(&host, names(0..30));
    let hold = open_hold_of(&host, 10);
    settle();
    assert_eq!(application.inactive(), 20, "{:?}", application.accounts());
    assert_eq!(hold["offboarding"], 10);
    assert_eq!(hold["threshold"], 20);
    for object in hold["objects"].as_array().unwrap() {
        assert_eq!(object["action"], "deactivate", "{object}");
        assert_eq!(object["reason"], "out of scope", "{object}");
        let name = object["user_name"].as_str().unwrap();
        assert!(application.is_active(name), "{name} was sent while held");
    }
    // Shown to an operator: the list, the status, the events.
    let listed = run_ok(&host, &["held", "list"]);
    assert!(listed.contains("10 offboarding(s) held"), "{listed}");
    assert!(listed.contains("deactivate"), "{listed}");
    let status: Value =
        serde_json::from_str(&run_ok(&host, &["status", "--format", "json"])).unwrap();
    assert_eq!(status["heldChanges"], 1, "{status}");
    assert_eq!(status["heldOffboardings"], 10, "{status}");
    assert_eq!(status["heldApps"], json!(["crm"]), "{status}");
    let text = run_ok(&host, &["status"]);
    assert!(text.contains("10 offboardings held in crm"), "{text}");
    let held_events = events(&host, "deprovision_held");
    assert!(
        held_events.iter().any(|event| event["object_kind"] == "app"
            && event["summary"].as_str().unwrap().contains("threshold 20")),
        "{held_events:?}"
    );
    assert_eq!(
        held_events
            .iter()
            .filter(|event| event["object_kind"] == "user")
            .count(),
        10
    );

    // Approved: every held offboarding is carried out, and the count
    // starts again (the approval does not trip again on itself).
    let id = hold["id"].as_str().unwrap();
    let approved = run_ok(&host, &["held", "approve", id]);
    assert!(approved.contains("approved"), "{approved}");
    until("the approved deactivations", || {
        application.inactive() == 30
    });
    let decided = holds(&host)
        .into_iter()
        .find(|hold| hold["id"] == id)
        .unwrap();
    assert_eq!(decided["state"], "approved");
    until("every approved offboarding is marked carried out", || {
        holds(&host)
            .into_iter()
            .find(|hold| hold["id"] == id)
            .unwrap()["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|object| object["carried_out"].is_string())
    });
    let approvals = events(&host, "deprovision_approved");
    assert_eq!(
        approvals
            .iter()
            .filter(|event| event["object_kind"] == "user")
            .count(),
        10,
        "{approvals:?}"
    );
    assert!(!host.cli(&["held", "approve", id]).status.success());
    assert!(holds(&host).iter().all(|hold| hold["state"] != "held"));
    // A later offboarding is counted from the decision: it goes through.
    delete_one_at_a_time(&host, names(30..31));
    until("the next deactivation", || application.inactive() == 31);
    assert!(holds(&host).iter().all(|hold| hold["state"] != "held"));
}

#[test]
fn a_rejected_hold_sends_nothing_and_releases_its_accounts() {
    let (application, host) = provisioned(40, &[]);
    delete_one_at_a_time(&host, names(0..30));
    let hold = open_hold_of(&host, 10);
    let held: Vec<String> = hold["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["user_name"].as_str().unwrap().to_string())
        .collect();

    let rejected = run_ok(&host, &["held", "reject", hold["id"].as_str().unwrap()]);
    assert!(rejected.contains("rejected"), "{rejected}");
    let releases = events(&host, "user_release");
    assert_eq!(releases.len(), 10, "{releases:?}");
    for release in &releases {
        assert_eq!(release["rule"], "guard: rejected", "{release}");
        assert!(
            release["summary"]
                .as_str()
                .unwrap()
                .contains("no longer managed"),
            "{release}"
        );
    }
    assert!(!events(&host, "deprovision_rejected").is_empty());

    // Later syncs do not offboard the released accounts: another deletion
    // (counted afresh) goes through alone, a reconcile leaves them be.
    delete_one_at_a_time(&host, names(30..31));
    until("the next deactivation", || application.inactive() == 21);
    run_ok(&host, &["reconcile", "crm"]);
    settle();
    assert_eq!(application.inactive(), 21);
    for name in &held {
        assert!(application.is_active(name), "{name} was offboarded");
    }
    assert!(holds(&host).iter().all(|hold| hold["state"] != "held"));

    // The identity provider creates one again: its account is taken over.
    let again = &held[0];
    let created = host.scim(
        "POST",
        "/Users",
        Some(&json!({
            "schemas": [USER_SCHEMA],
            "userName": again,
            "emails": [{ "value": format!("{again}@example.com"), "primary": true }],
        })),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let user_id = created.body["id"].as_str().unwrap();
    join_everyone(&host, user_id);
    until("the takeover", || {
        events(&host, "user_create_provision").iter().any(|event| {
            event["object_id"] == user_id
                && event["rule"]
                    .as_str()
                    .is_some_and(|rule| rule.starts_with("takeover"))
        })
    });
    assert_eq!(application.accounts().len(), 40, "no second account");
}

#[test]
fn active_false_one_patch_at_a_time_is_held_while_creates_and_updates_flow() {
    let (application, host) = provisioned(40, &[]);
    let ids = user_ids(&host);
    for name in names(0..30) {
        let answer = host.scim(
            "PATCH",
            &format!("/Users/{}", ids[&name]),
            Some(&json!({
                "schemas": [PATCH_SCHEMA],
                "Operations": [{ "op": "replace", "path": "active", "value": false }],
            })),
        );
        assert_eq!(answer.status, 200, "{name}: {:?}", answer.body);
    }
    let hold = open_hold_of(&host, 10);
    settle();
    assert_eq!(application.inactive(), 20, "{:?}", application.accounts());
    for object in hold["objects"].as_array().unwrap() {
        assert_eq!(object["action"], "suspend", "{object}");
        assert_eq!(object["reason"], "active=false in the directory");
    }

    // Held: a new hire is created and an attribute change is sent.
    let created = host.scim(
        "POST",
        "/Users",
        Some(&json!({
            "schemas": [USER_SCHEMA],
            "userName": "newhire",
            "emails": [{ "value": "newhire@example.com", "primary": true }],
        })),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    join_everyone(&host, created.body["id"].as_str().unwrap());
    let renamed = host.scim(
        "PATCH",
        &format!("/Users/{}", ids["user35"]),
        Some(&json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{ "op": "replace", "path": "title", "value": "Captain" }],
        })),
    );
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    until("the new hire's account", || {
        application.is_active("newhire")
    });
    until("the update", || {
        let found = application.read("/Users?filter=userName%20eq%20%22user35%22");
        found["Resources"][0]["title"] == "Captain"
    });
    // One more offboarding joins the open hold.
    let answer = host.scim(
        "PATCH",
        &format!("/Users/{}", ids["user36"]),
        Some(&json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{ "op": "replace", "path": "active", "value": false }],
        })),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let hold = open_hold_of(&host, 11);
    assert!(application.is_active("user36"));

    run_ok(&host, &["held", "approve", hold["id"].as_str().unwrap()]);
    until("the approved suspensions", || application.inactive() == 31);
}

#[test]
fn an_applications_own_threshold_replaces_the_hosts() {
    let (application, host) = provisioned(10, &["--guard-window-seconds", "600"]);
    let guarded = run_ok(
        &host,
        &["app", "guard", "crm", "--minimum", "3", "--percent", "0"],
    );
    assert!(guarded.contains("minimum 3"), "{guarded}");
    let shown: Value =
        serde_json::from_str(&run_ok(&host, &["app", "show", "crm", "--format", "json"])).unwrap();
    assert_eq!(
        shown["guard"],
        json!({ "percent": 0.0, "minimum": 3, "windowSeconds": 600 })
    );
    let text = run_ok(&host, &["app", "show", "crm"]);
    assert!(
        text.contains("guard       percent 0.0%, minimum 3, window 600 s"),
        "{text}"
    );

    // Under the host's 20, well over the application's 3.
    delete_one_at_a_time(&host, names(0..5));
    let hold = open_hold_of(&host, 2);
    assert_eq!(hold["threshold"], 3);
    settle();
    assert_eq!(application.inactive(), 3, "{:?}", application.accounts());

    // Back to the host's defaults, the hold still waits for a decision.
    let reset = run_ok(&host, &["app", "guard", "crm", "--host-defaults"]);
    assert!(reset.contains("minimum host default"), "{reset}");
    let invalid = host.cli(&["app", "guard", "crm", "--percent", "150"]);
    assert!(!invalid.status.success());
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("guard.percent"),
        "{}",
        String::from_utf8_lossy(&invalid.stderr)
    );
    settle();
    assert_eq!(application.inactive(), 3);
}

#[test]
fn a_change_that_would_offboard_too_many_is_held_until_an_operator_decides() {
    let application = Application::start();
    let host = Host::start();
    connect(&host, &application, &people(30, "Everyone"), "Everyone");
    run_ok(&host, &["app", "activate", "crm"]);
    wait_for_accounts(&application, 30, WITHIN);
    let active = || {
        (0..30)
            .filter(|index| {
                application.users_named(&format!("user{index:02}"))[0]["active"] == true
            })
            .count()
    };
    application.eventually("user29", "creation", |account| account["active"] == true);

    // Unbinding would deactivate all 30: the guard lets max(20, 10%) of
    // them through and holds the application's other offboardings.
    run_ok(&host, &["app", "unbind", "crm", "Everyone"]);
    let deadline = Instant::now() + WITHIN;
    let held = loop {
        let held: Value = serde_json::from_str(&run_ok(
            &host,
            &["held", "list", "--app", "crm", "--format", "json"],
        ))
        .unwrap();
        if let Some(first) = held.as_array().unwrap().first()
            && first["offboarding"] == 10
        {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "the offboardings were not held");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(held["state"], "held");
    assert_eq!(held["threshold"], 20);
    assert_eq!(held["objects"].as_array().unwrap().len(), 10);
    let status: Value =
        serde_json::from_str(&run_ok(&host, &["status", "--format", "json"])).unwrap();
    assert_eq!(status["heldChanges"], 1, "{status}");
    assert_eq!(status["heldOffboardings"], 10, "{status}");
    assert_eq!(status["activeApps"], 1, "{status}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        active(),
        10,
        "nothing past the threshold was sent while held"
    );

    // Approved, every held offboarding is carried out.
    let approved = run_ok(&host, &["held", "approve", held["id"].as_str().unwrap()]);
    assert!(approved.contains("approved"), "{approved}");
    let deadline = Instant::now() + WITHIN;
    while active() > 0 {
        assert!(
            Instant::now() < deadline,
            "the approved offboardings were not carried out"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Decided once.
    let again = host.cli(&["held", "approve", held["id"].as_str().unwrap()]);
    assert!(!again.status.success());

    // Rejected, nothing more is sent: the held accounts are released.
    // (The count restarted at the approval: 20 go through again.)
    run_ok(&host, &["app", "bind", "crm", "Everyone"]);
    let deadline = Instant::now() + WITHIN;
    while active() < 30 {
        assert!(Instant::now() < deadline, "rebinding did not reactivate");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deleted = host.admin("DELETE", "/groups/Everyone", None);
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    let deadline = Instant::now() + WITHIN;
    let second = loop {
        let held: Value = serde_json::from_str(&run_ok(
            &host,
            &["held", "list", "--app", "crm", "--format", "json"],
        ))
        .unwrap();
        if let Some(newest) = held
            .as_array()
            .unwrap()
            .iter()
            .find(|held| held["state"] == "held" && held["offboarding"] == 10)
        {
            break newest.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the deletion was not held: {held}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let deadline = Instant::now() + WITHIN;
    while active() > 10 {
        assert!(
            Instant::now() < deadline,
            "the threshold's 20 were not sent"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    run_ok(&host, &["held", "reject", second["id"].as_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(active(), 10, "a rejected hold sends nothing");
    let events = run_ok(&host, &["events", "--app", "crm", "--format", "json"]);
    for operation in [
        "deprovision_held",
        "deprovision_approved",
        "deprovision_rejected",
        "user_release",
    ] {
        assert!(events.contains(operation), "{operation}: {events}");
    }
}
