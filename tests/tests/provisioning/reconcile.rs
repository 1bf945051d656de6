//! The reconcile: drift in the application repaired, also against
//! applications that page badly and groups changed in the application. An
//! account changed, deleted or reactivated there is put back, in place; a
//! listing that cannot be trusted changes nothing and says why; an account
//! really deleted is confirmed by a read before it is provisioned again; a
//! group renamed or stripped of members there is restored, with the
//! application's own members left in it.
//!
//! The badly paging applications are `scimlink sandbox-sp` with its list
//! quirks; the drift and the groups run against scim2-server.

use std::time::{Duration, Instant};

use scimlink_e2e::application::{APP_TOKEN, Application, Remote, run_ok};
use scimlink_e2e::{Host, Running, Scim2Server, repository};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(20);

/// Imports `people` (CSV), adds the application `crm` (custom-scim) at
/// `http://127.0.0.1:PORT/acme/v2`, binds `groups` to it.
fn connect(host: &Host, port: u16, people: &str, groups: &[&str]) {
    let folder = tempfile::tempdir().unwrap();
    let csv = folder.path().join("people.csv");
    std::fs::write(&csv, people).unwrap();
    run_ok(host, &["directory", "import", csv.to_str().unwrap()]);
    let template = format!("http://127.0.0.1:{port}/{{tenantId}}/v2");
    run_ok(
        host,
        &[
            "app",
            "add",
            "crm",
            "--connector",
            "custom-scim",
            "--base-url",
            &template,
            "--token",
            APP_TOKEN,
            "--setting",
            "tenantId=acme",
            "--requests-per-second",
            "1000",
        ],
    );
    for group in groups {
        run_ok(host, &["app", "bind", "crm", group]);
    }
}

fn events(host: &Host) -> Vec<Value> {
    let text = run_ok(host, &["events", "--app", "crm", "--format", "json"]);
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn rule_of(event: &Value) -> &str {
    event["rule"].as_str().unwrap_or_default()
}

/// `scimlink sandbox-sp` on a loopback port, with `quirks` (its flags).
struct Sandbox {
    _process: Running,
    port: u16,
    origin: String,
    remote: Remote,
}

impl Sandbox {
    fn start(quirks: &[&str]) -> Sandbox {
        let mut args = vec!["sandbox-sp", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(quirks);
        let mut process = Running::start(&args, &repository());
        let line = process.expect_line(
            &["sandbox SCIM application listening on"],
            Duration::from_secs(20),
        );
        let origin = line.rsplit(' ').next().unwrap().trim().to_string();
        let port = origin.rsplit(':').next().unwrap().parse().unwrap();
        Sandbox {
            _process: process,
            port,
            remote: Remote::new(format!("{origin}/acme/v2")),
            origin,
        }
    }

    /// The requests the application received since the last clearing, as
    /// (method, path and query, status).
    fn requests(&self) -> Vec<(String, String, u16)> {
        let (_, log) = Remote::new(&self.origin).call("GET", "/_sandbox/requests", None);
        log.as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["method"].as_str().unwrap().to_string(),
                    entry["path"].as_str().unwrap().to_string(),
                    entry["status"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }

    fn clear_requests(&self) {
        Remote::new(&self.origin).call("DELETE", "/_sandbox/requests", None);
    }
}

const PEOPLE: &str = "userName,email,givenName,familyName,groups\n\
     ada,ada@example.com,Ada,Lovelace,Staff\n\
     grace,grace@example.com,Grace,Hopper,Staff\n\
     carol,carol@example.com,Carol,Shaw,Staff\n\
     dan,dan@example.com,Dan,Dare,Staff\n\
     eve,eve@example.com,Eve,Moneypenny,Staff\n";
const NAMES: [&str; 5] = ["ada", "grace", "carol", "dan", "eve"];

/// A host provisioning `PEOPLE` to the sandbox, eve deactivated (she left
/// the bound group): five accounts in the ledger, one of them deactivated.
fn provisioned(sandbox: &Sandbox) -> Host {
    let host = Host::start();
    connect(&host, sandbox.port, PEOPLE, &["Staff"]);
    run_ok(&host, &["app", "activate", "crm"]);
    for name in NAMES {
        sandbox
            .remote
            .eventually(name, "creation", |account| account["active"] == true);
    }
    let removed = host.admin("DELETE", "/groups/Staff/members/eve", None);
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    sandbox
        .remote
        .eventually("eve", "deactivation", |account| account["active"] == false);
    host
}

/// The reconcile of an application whose listing cannot be trusted fails,
/// says why in its event, and sends nothing but the listing: no account is
/// forgotten, looked up or created again.
fn an_untrusted_listing_changes_nothing(quirks: &[&str], why: &str) {
    let sandbox = Sandbox::start(quirks);
    let host = provisioned(&sandbox);
    let ids: Vec<String> = NAMES
        .iter()
        .map(|name| sandbox.remote.id_of(name))
        .collect();
    // The worker may still be settling eve's deactivation.
    std::thread::sleep(Duration::from_millis(300));
    sandbox.clear_requests();

    let output = host.cli(&["reconcile", "crm"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the reconcile trusted the listing: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains(why), "{stderr}");

    let sent = sandbox.requests();
    assert!(
        sent.iter()
            .all(|(method, path, _)| method == "GET"
                && path.starts_with("/acme/v2/Users?startIndex=")),
        "only the listing was sent: {sent:?}"
    );
    let events = events(&host);
    let failed = events
        .iter()
        .find(|event| event["operation"] == "reconcile")
        .unwrap_or_else(|| panic!("no reconcile event: {events:?}"));
    assert_eq!(failed["outcome"], "failure", "{failed}");
    assert!(
        failed["summary"].as_str().unwrap_or_default().contains(why),
        "{failed}"
    );
    assert!(
        !events
            .iter()
            .any(|event| rule_of(event).starts_with("drift:")),
        "nothing was repaired or forgotten: {events:?}"
    );
    for (name, id) in NAMES.iter().zip(&ids) {
        let account = sandbox
            .remote
            .eventually(name, "staying", |account| account["id"] == id.as_str());
        assert_eq!(account["active"], *name != "eve", "{account}");
    }

    // The drift protection of eve's deactivated account is still there:
    // reactivated in the application, she is deactivated again once the
    // application pages properly.
    let (status, _) = sandbox.remote.call(
        "PATCH",
        &format!("/Users/{}", ids[4]),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "active", "value": true }],
        })),
    );
    assert!((200..300).contains(&status), "{status}");
    let again = host.cli(&["reconcile", "crm"]);
    assert!(!again.status.success(), "still untrusted");
    assert_eq!(sandbox.remote.users_named("eve")[0]["active"], true);
}

#[test]
fn a_listing_without_total_results_forgets_and_recreates_nothing() {
    // An Entra-style application that leaves totalResults out and pages by
    // two: a walk that took a missing count for zero stopped after page 1.
    an_untrusted_listing_changes_nothing(
        &[
            "--entra-style",
            "--omit-total-results",
            "--page-size-limit",
            "2",
        ],
        "totalResults",
    );
}

#[test]
fn a_listing_that_ignores_start_index_forgets_and_recreates_nothing() {
    // Every page is the first page again.
    an_untrusted_listing_changes_nothing(
        &["--ignore-start-index", "--page-size-limit", "2"],
        "startIndex",
    );
}

#[test]
fn an_account_deleted_in_the_application_is_confirmed_gone_then_provisioned_again() {
    // An honest application with small pages: the walk takes three.
    let sandbox = Sandbox::start(&["--page-size-limit", "2"]);
    let host = provisioned(&sandbox);
    let (grace, eve) = (sandbox.remote.id_of("grace"), sandbox.remote.id_of("eve"));
    std::thread::sleep(Duration::from_millis(300));
    for id in [&grace, &eve] {
        let (status, _) = sandbox.remote.call("DELETE", &format!("/Users/{id}"), None);
        assert_eq!(status, 204);
    }
    sandbox.clear_requests();

    let done: Value =
        serde_json::from_str(&run_ok(&host, &["reconcile", "crm", "--format", "json"])).unwrap();
    let recreated = sandbox
        .remote
        .eventually("grace", "recreation", |account| account["active"] == true);
    assert_ne!(recreated["id"], grace.as_str(), "a new account");
    assert!(
        sandbox.remote.users_named("eve").is_empty(),
        "a deactivated account deleted there is not recreated"
    );

    // Each absence was read before anything was done about it.
    let sent = sandbox.requests();
    let position = |wanted: &dyn Fn(&(String, String, u16)) -> bool| {
        sent.iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("not sent: {sent:?}"))
    };
    let read_grace = position(&|(method, path, status)| {
        method == "GET" && *path == format!("/acme/v2/Users/{grace}") && *status == 404
    });
    position(&|(method, path, status)| {
        method == "GET" && *path == format!("/acme/v2/Users/{eve}") && *status == 404
    });
    let created = position(&|(method, path, _)| method == "POST" && path == "/acme/v2/Users");
    assert!(read_grace < created, "{sent:?}");
    assert_eq!(
        done,
        json!({ "listed": 3, "repaired": 0, "recreated": 1, "provisioned": 0, "groups_repaired": 0 })
    );

    let events = events(&host);
    let forgotten = events
        .iter()
        .filter(|event| rule_of(event) == "drift: deleted in the application")
        .count();
    assert_eq!(forgotten, 2, "{events:?}");
    let reconciled = events
        .iter()
        .find(|event| event["operation"] == "reconcile")
        .unwrap();
    assert_eq!(reconciled["outcome"], "success", "{reconciled}");
}

#[test]
fn a_group_renamed_or_stripped_in_the_application_is_restored_and_its_own_members_stay() {
    let server = Scim2Server::start(&[APP_TOKEN], "acme");
    let remote = Remote::new(format!("http://127.0.0.1:{}/acme/v2", server.port));
    // An account the host does not manage.
    let (_, outsider) = remote.call(
        "POST",
        "/Users",
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "outsider",
        })),
    );
    let outsider = outsider["id"].as_str().unwrap().to_string();

    let host = Host::start();
    connect(
        &host,
        server.port,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Engineering\n\
         bob,bob@example.com,Bob,Builder,Sales\n",
        &["Engineering", "Sales"],
    );
    let managed = host.admin("PATCH", "/apps/crm", Some(&json!({ "manageGroups": true })));
    assert_eq!(managed.status, 200, "{:?}", managed.body);
    run_ok(&host, &["app", "activate", "crm"]);
    for name in ["ada", "grace", "bob"] {
        remote.eventually(name, "creation", |account| account["active"] == true);
    }
    let (ada, grace, bob) = (
        remote.id_of("ada"),
        remote.id_of("grace"),
        remote.id_of("bob"),
    );
    let group_named = |name: &str| -> Option<Value> {
        let (_, body) = remote.call(
            "GET",
            &format!("/Groups?filter=displayName%20eq%20%22{name}%22"),
            None,
        );
        body["Resources"].as_array()?.first().cloned()
    };
    let members = |group: &Value| -> Vec<String> {
        let mut ids: Vec<String> = group["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|member| member["value"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let deadline = Instant::now() + WITHIN;
    let engineering = loop {
        if let Some(group) = group_named("Engineering")
            && members(&group) == sorted(vec![ada.clone(), grace.clone()])
            && group_named("Sales").is_some_and(|sales| members(&sales) == vec![bob.clone()])
        {
            break group["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the groups were never pushed");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let the worker finish recording what it pushed.
    std::thread::sleep(Duration::from_millis(500));

    // In the application: renamed, grace taken out, and bob (managed, but
    // not in this group) and the outsider put in.
    let (status, body) = remote.call(
        "PUT",
        &format!("/Groups/{engineering}"),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Eng (old)",
            "members": [{ "value": ada }, { "value": bob }, { "value": outsider }],
        })),
    );
    assert_eq!(status, 200, "{body}");

    let done: Value =
        serde_json::from_str(&run_ok(&host, &["reconcile", "crm", "--format", "json"])).unwrap();
    assert_eq!(done["groups_repaired"], 1, "{done}");
    assert_eq!(done["repaired"], 0, "{done}");
    let (_, group) = remote.call("GET", &format!("/Groups/{engineering}"), None);
    assert_eq!(group["displayName"], "Engineering", "{group}");
    assert_eq!(
        members(&group),
        sorted(vec![ada.clone(), grace.clone(), outsider.clone()]),
        "grace back, bob out, the outsider left: {group}"
    );

    let events = events(&host);
    let repairs: Vec<&str> = events
        .iter()
        .filter(|event| {
            event["operation"] == "group_update_provision"
                && event["outcome"] == "success"
                && rule_of(event).starts_with("drift: ")
        })
        .map(rule_of)
        .collect();
    assert!(
        repairs.contains(&"drift: renamed in the application")
            && repairs.contains(&"drift: members changed in the application"),
        "{events:?}"
    );
    let text = run_ok(&host, &["reconcile", "crm"]);
    assert!(text.contains("0 groups repaired"), "restored once: {text}");
}

#[test]
fn drift_in_the_application_is_repaired_by_the_reconcile() {
    let application = Application::start();
    let folder = tempfile::tempdir().unwrap();
    let host = Host::start_with(
        &folder.path().join("data"),
        &[
            ("SCIMLINK_ADMIN_TOKEN", scimlink_e2e::ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", scimlink_e2e::SCIM_TOKEN),
            ("SCIMLINK_RECONCILE_SECONDS", "1"),
        ],
    );
    connect(
        &host,
        application.server.port,
        "userName,email,givenName,familyName,title,groups\n\
         ada,ada@example.com,Ada,Lovelace,Countess,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Admiral,Engineering\n\
         bob,bob@example.com,Bob,Builder,Builder,Engineering\n",
        &["Engineering"],
    );
    run_ok(&host, &["app", "activate", "crm"]);
    for name in ["ada", "grace", "bob"] {
        application.eventually(name, "creation", |account| account["active"] == true);
    }
    host.admin("DELETE", "/groups/Engineering/members/bob", None);
    application.eventually("bob", "deactivation", |account| account["active"] == false);

    // Changed, deleted and reactivated directly in the application.
    let ada = application.id_of("ada");
    application.patch_user(
        &ada,
        json!([{ "op": "replace", "path": "title", "value": "Intern" }]),
    );
    application.delete_user(&application.id_of("grace"));
    application.patch_user(
        &application.id_of("bob"),
        json!([{ "op": "replace", "path": "active", "value": true }]),
    );

    // The periodic reconcile puts each back.
    application.eventually("ada", "the title restored", |account| {
        account["title"] == "Countess"
    });
    application.eventually("grace", "recreation", |account| account["active"] == true);
    application.eventually("bob", "deactivation again", |account| {
        account["active"] == false
    });
    assert_eq!(application.id_of("ada"), ada, "restored in place");

    // Unchanged, a reconcile sends nothing but the listing.
    let done: Value =
        serde_json::from_str(&run_ok(&host, &["reconcile", "crm", "--format", "json"])).unwrap();
    assert_eq!(
        done,
        json!({ "listed": 3, "repaired": 0, "recreated": 0, "provisioned": 0, "groups_repaired": 0 })
    );
    let events = run_ok(&host, &["events", "--app", "crm", "--format", "json"]);
    for repair in [
        "drift: changed in the application",
        "drift: deleted in the application",
    ] {
        assert!(events.contains(repair), "{repair}: {events}");
    }
}
