//! The engine's promises under ordinary real-world conditions, each against
//! a real SCIM server (scim2-server from PyPI), sometimes behind the
//! fault-injecting proxy:
//! - one remote account per identity: a shared email, a re-hired userName,
//!   an application that ignores filters, one that answers a lookup a page
//!   at a time and an import never hand one person's account to another,
//!   nor make a second account beside it;
//! - one application that cannot be served (its connector gone) or one
//!   object an application keeps failing never holds up the others.

use std::path::Path;
use std::time::{Duration, Instant};

use scimlink_e2e::application::{
    Application, WITHIN, add_app, events_of, import_people, run_ok, wait_until_idle,
};
use scimlink_e2e::fault_proxy::{FaultProxy, Faults};
use scimlink_e2e::{ADMIN_TOKEN, Host, SCIM_TOKEN, bundled_component, plugins_with, repository};
use serde_json::{Value, json};

/// A host on a data folder of its own, with the test tokens and `env`,
/// serving the connectors of `plugins` (the bundled ones when `None`).
fn host_with(env: &[(&str, &str)], plugins: Option<&Path>) -> (Host, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    let mut all = vec![
        ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
    ];
    all.extend_from_slice(env);
    let bundled = repository().join("dist/plugins");
    let host = Host::start_serving(
        &folder.path().join("data"),
        plugins.unwrap_or(&bundled),
        &all,
    );
    (host, folder)
}

/// The application's dead letters, as JSON.
fn dead_letters(host: &Host, app: &str) -> Vec<Value> {
    let text = run_ok(host, &["dead-letters", app, "--format", "json"]);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|letters| letters.as_array().cloned())
        .unwrap_or_default()
}

/// Waits for a dead letter of `object_id` in `app`; its reason.
fn eventually_dead_letter(host: &Host, app: &str, object_id: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let letters = dead_letters(host, app);
        if let Some(letter) = letters
            .iter()
            .find(|letter| letter["object_id"] == object_id)
        {
            return letter["reason"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter for {object_id} in {app}; letters: {letters:?}; events: {:?}",
            events_of(host, app)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn user_id(host: &Host, user_name: &str) -> String {
    let answer = host.admin("GET", &format!("/users/{user_name}"), None);
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

const SALES: &str = "userName,email,givenName,familyName,groups\n\
                     ann,ann@example.com,Ann,Archer,Sales\n\
                     ben,ben@example.com,Ben,Baker,Sales\n\
                     carl,carl@example.com,Carl,Cook,Sales\n";

/// A host whose Sales team (ann, ben, carl) is provisioned through the
/// application `crm` (custom-scim) to `application`.
fn sales_on(application: &Application) -> (Host, tempfile::TempDir) {
    let (host, folder) = host_with(&[], None);
    import_people(&host, SALES);
    add_app(
        &host,
        "crm",
        "custom-scim",
        application.server.port,
        "acme",
        "Sales",
    );
    run_ok(&host, &["app", "activate", "crm"]);
    (host, folder)
}

/// ann refused by the application `crm`, which sends to the application
/// through the fault proxy.
struct AnnRefused {
    /// The proxy and the host, kept running while the test reads them.
    _proxy: FaultProxy,
    host: Host,
    _folder: tempfile::TempDir,
    ann: String,
    /// Her dead letter's reason.
    reason: String,
}

/// ann, alone in the directory, provisioned through `crm` (custom-scim) to
/// `application` behind the proxy with `faults`, until she is refused.
fn ann_refused_behind(application: &Application, faults: Faults) -> AnnRefused {
    let proxy = FaultProxy::start(application.server.port);
    proxy.set(faults);
    let (host, folder) = host_with(&[], None);
    import_people(
        &host,
        "userName,email,givenName,familyName,groups\n\
         ann,ann@example.com,Ann,Archer,Sales\n",
    );
    add_app(&host, "crm", "custom-scim", proxy.port, "acme", "Sales");
    run_ok(&host, &["app", "activate", "crm"]);
    let ann = user_id(&host, "ann");
    let reason = eventually_dead_letter(&host, "crm", &ann, WITHIN);
    AnnRefused {
        _proxy: proxy,
        host,
        _folder: folder,
        ann,
        reason,
    }
}

#[test]
fn a_new_user_with_anothers_email_is_refused_and_never_given_that_account() {
    let application = Application::start();
    let (host, _folder) = sales_on(&application);
    let anns = application.eventually("ann", "creation", |account| account["active"] == true);
    application.eventually("carl", "creation", |account| account["active"] == true);

    // dave's userName misses; the connector's second lookup, by email,
    // finds ann's account.
    import_people(
        &host,
        "userName,email,givenName,familyName,groups\n\
         dave,ann@example.com,Dave,Doe,Sales\n",
    );
    let dave = user_id(&host, "dave");
    let ann = user_id(&host, "ann");
    let reason = eventually_dead_letter(&host, "crm", &dave, WITHIN);
    assert!(
        reason.contains(&format!("already linked to user {ann} (ann)")),
        "{reason}"
    );
    assert!(reason.contains(anns["id"].as_str().unwrap()), "{reason}");

    // ann keeps her account, untouched; dave has none.
    let still = application.users_named("ann");
    assert_eq!(still.len(), 1, "{still:?}");
    assert_eq!(still[0]["id"], anns["id"]);
    assert_eq!(still[0]["name"]["givenName"], "Ann");
    assert!(application.users_named("dave").is_empty());
    let refused = events_of(&host, "crm").into_iter().any(|event| {
        event["operation"] == "user_lookup_provision"
            && event["outcome"] == "failure"
            && event["object_id"] == dave.as_str()
            && event["summary"].as_str().unwrap_or_default().contains(&ann)
    });
    assert!(refused, "{:?}", events_of(&host, "crm"));
}

#[test]
fn a_rehired_user_name_does_not_take_over_the_deactivated_account_until_released() {
    let application = Application::start();
    let (host, _folder) = sales_on(&application);
    let old = application.eventually("ann", "creation", |account| account["active"] == true);
    let first_ann = user_id(&host, "ann");
    let deleted = host.admin("DELETE", "/users/ann", None);
    assert!(deleted.status < 300, "{:?}", deleted.body);
    application.eventually("ann", "deactivation", |account| account["active"] == false);

    // Another ann is hired: the old account is someone else's.
    import_people(
        &host,
        "userName,email,givenName,familyName,groups\n\
         ann,ann.new@example.com,Ann,Newman,Sales\n",
    );
    let second_ann = user_id(&host, "ann");
    assert_ne!(first_ann, second_ann);
    let reason = eventually_dead_letter(&host, "crm", &second_ann, WITHIN);
    assert!(
        reason.contains(&format!(
            "already linked to user {first_ann} (deleted from the directory)"
        )),
        "{reason}"
    );
    let accounts = application.users_named("ann");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(accounts[0]["id"], old["id"]);
    assert_eq!(accounts[0]["active"], false, "the old account stays off");
    assert_eq!(accounts[0]["name"]["familyName"], "Archer");

    // The operator decides the old account is the new ann's: it is
    // released from the person who left, and the refused user replayed.
    let refused = host.cli(&["app", "release", "crm", "ben"]);
    assert!(!refused.status.success(), "a user in scope is not released");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in the scope"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let released = run_ok(&host, &["app", "release", "crm", &first_ann]);
    assert!(released.contains(old["id"].as_str().unwrap()), "{released}");
    run_ok(&host, &["dead-letters", "crm", "--replay"]);
    let taken = application.eventually("ann", "the handover", |account| {
        account["active"] == true && account["name"]["familyName"] == "Newman"
    });
    assert_eq!(taken["id"], old["id"], "the same account, not a second one");
    let releases = events_of(&host, "crm")
        .into_iter()
        .filter(|event| {
            event["operation"] == "user_release" && event["rule"] == "operator: released"
        })
        .count();
    assert_eq!(releases, 1);
}

#[test]
fn an_application_that_ignores_filters_hands_over_no_account() {
    let application = Application::start();
    let zed = application.create(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "zed",
        "name": { "givenName": "Zed" },
        "active": true,
    }));
    let AnnRefused { reason, .. } = ann_refused_behind(
        &application,
        Faults {
            ignore_filters: true,
            ..Faults::default()
        },
    );
    assert!(reason.contains(&format!("account {zed}")), "{reason}");
    assert!(reason.contains("ignore filters"), "{reason}");
    let (_, zeds) = application.call("GET", &format!("/Users/{zed}"), None);
    assert_eq!(zeds["userName"], "zed", "zed's account was not overwritten");
    assert_eq!(zeds["name"]["givenName"], "Zed");
}

#[test]
fn a_lookup_answered_one_page_at_a_time_hands_over_no_account_and_creates_none() {
    // Two accounts share ann's email; the application lists one match a
    // page. The one listed is not "the only one", and "found one" is not
    // "nothing else".
    let application = Application::start();
    let account = |user_name: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "name": { "givenName": user_name },
            "emails": [{ "value": "ann@example.com", "primary": true }],
            "active": true,
        })
    };
    let zed = application.create(account("zed"));
    let zoe = application.create(account("zoe"));
    let refused = ann_refused_behind(
        &application,
        Faults {
            page_size: Some(1),
            ..Faults::default()
        },
    );
    let AnnRefused {
        host, ann, reason, ..
    } = &refused;
    assert!(reason.contains("a count of 2 but 1 listed"), "{reason}");
    assert!(reason.contains("none is created"), "{reason}");
    for (id, user_name) in [(&zed, "zed"), (&zoe, "zoe")] {
        let (_, kept) = application.call("GET", &format!("/Users/{id}"), None);
        assert_eq!(kept["userName"], user_name, "{kept}");
        assert_eq!(kept["name"]["givenName"], user_name, "not overwritten");
    }
    assert!(
        application.users_named("ann").is_empty(),
        "no second account"
    );
    let recorded = events_of(host, "crm").into_iter().any(|event| {
        event["operation"] == "user_lookup_provision"
            && event["outcome"] == "failure"
            && event["object_id"] == ann.as_str()
    });
    assert!(recorded, "{:?}", events_of(host, "crm"));
}

#[test]
fn import_refuses_an_account_whose_user_already_holds_another() {
    let application = Application::start();
    let (host, _folder) = sales_on(&application);
    let managed = application.eventually("ann", "creation", |account| account["active"] == true);
    let managed_id = managed["id"].as_str().unwrap().to_string();

    // In the application, ann's account is renamed and another "ann" made.
    let (status, body) = application.call(
        "PATCH",
        &format!("/Users/{managed_id}"),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "userName", "value": "ann-old" }],
        })),
    );
    assert!(status < 300, "{status} {body}");
    let other = application.create(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ann",
        "active": true,
    }));

    let output = run_ok(&host, &["app", "import", "crm", "--apply"]);
    assert!(output.contains("1 refused"), "{output}");
    let ann = user_id(&host, "ann");
    let reason = eventually_dead_letter(&host, "crm", &ann, WITHIN);
    assert!(
        reason.contains(&other) && reason.contains(&managed_id),
        "{reason}"
    );

    // ann still owns the account she had: leaving scope deactivates it,
    // and the other account is left alone.
    let removed = host.admin("DELETE", "/groups/Sales/members/ann", None);
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    application.eventually("ann-old", "deactivation", |account| {
        account["active"] == false
    });
    let (_, others) = application.call("GET", &format!("/Users/{other}"), None);
    assert_eq!(others["active"], true, "{others}");
}

/// A plugins folder of its own with copies of the bundled `connectors`.
fn state_of(host: &Host, app: &str) -> Value {
    host.admin("GET", &format!("/apps/{app}"), None).body
}

#[test]
fn an_application_without_its_connector_holds_up_no_other_and_resumes_by_itself() {
    let first = Application::serving("first");
    let second = Application::serving("second");
    let third = Application::serving("third");
    let plugins = plugins_with(&["custom-scim", "coda"]);
    let (mut host, _folder) = host_with(
        &[("SCIMLINK_QUARANTINE_PROBE_SECONDS", "1")],
        Some(plugins.path()),
    );
    import_people(&host, SALES);
    add_app(
        &host,
        "first",
        "custom-scim",
        first.server.port,
        "first",
        "Sales",
    );
    add_app(
        &host,
        "second",
        "coda",
        second.server.port,
        "second",
        "Sales",
    );
    add_app(
        &host,
        "third",
        "custom-scim",
        third.server.port,
        "third",
        "Sales",
    );
    for app in ["first", "second", "third"] {
        run_ok(&host, &["app", "activate", app]);
    }
    for application in [&first, &second, &third] {
        application.eventually("ben", "creation", |account| account["active"] == true);
    }

    // The second application's connector goes away.
    std::fs::remove_file(plugins.path().join("coda.wasm")).unwrap();
    host.process
        .expect_line(&["plugin coda", "removed"], WITHIN);

    // A new member reaches the first and the third; the second is
    // quarantined, saying why.
    import_people(
        &host,
        "userName,email,givenName,familyName,groups\n\
         dora,dora@example.com,Dora,Diaz,Sales\n",
    );
    first.eventually("dora", "creation", |account| account["active"] == true);
    third.eventually("dora", "creation", |account| account["active"] == true);
    let deadline = Instant::now() + WITHIN;
    while state_of(&host, "second")["state"] != "quarantined" {
        assert!(Instant::now() < deadline, "{}", state_of(&host, "second"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let app = state_of(&host, "second");
    assert!(
        app["stateReason"]
            .as_str()
            .unwrap_or_default()
            .contains("connector coda is not served by this host"),
        "{app}"
    );
    let status = run_ok(&host, &["status"]);
    assert!(
        status.contains("second is quarantined: connector coda is not served"),
        "{status}"
    );
    wait_until_idle(&host, WITHIN);

    // The connector comes back: the application resumes by itself and
    // catches up with what it missed.
    std::fs::copy(
        bundled_component("coda"),
        plugins.path().join(".coda.wasm.tmp"),
    )
    .unwrap();
    std::fs::rename(
        plugins.path().join(".coda.wasm.tmp"),
        plugins.path().join("coda.wasm"),
    )
    .unwrap();
    second.eventually("dora", "creation after resuming", |account| {
        account["active"] == true
    });
    assert_eq!(state_of(&host, "second")["state"], "active");
    assert!(state_of(&host, "second").get("stateReason").is_none());
}

#[test]
fn a_user_an_application_keeps_failing_is_dead_lettered_and_holds_up_no_one() {
    let application = Application::start();
    let proxy = FaultProxy::start(application.server.port);
    // Every write carrying carl's name fails with a server error.
    proxy.set(Faults {
        refuse_containing: Some(("carl@example.com".into(), 500)),
        ..Faults::default()
    });
    let (host, _folder) = host_with(
        &[
            ("SCIMLINK_RETRY_ATTEMPTS", "3"),
            ("SCIMLINK_RETRY_BACKOFF_SECONDS", "1"),
        ],
        None,
    );
    import_people(&host, SALES);
    add_app(&host, "crm", "custom-scim", proxy.port, "acme", "Sales");
    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually("ann", "creation", |account| account["active"] == true);
    application.eventually("ben", "creation", |account| account["active"] == true);

    // While carl keeps failing, later changes go through.
    import_people(
        &host,
        "userName,email,givenName,familyName,groups\n\
         dora,dora@example.com,Dora,Diaz,Sales\n",
    );
    application.eventually("dora", "creation", |account| account["active"] == true);

    let carl = user_id(&host, "carl");
    let reason = eventually_dead_letter(&host, "crm", &carl, Duration::from_secs(40));
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(reason.contains("500"), "{reason}");
    wait_until_idle(&host, WITHIN);
    assert!(application.users_named("carl").is_empty());
    assert_eq!(state_of(&host, "crm")["state"], "active");
}

#[test]
fn work_done_on_demand_waits_out_the_pause_the_application_asked_the_engine_for() {
    let application = Application::start();
    let proxy = FaultProxy::start(application.server.port);
    let (host, _folder) = host_with(&[], None);
    import_people(&host, SALES);
    add_app(&host, "crm", "custom-scim", proxy.port, "acme", "Sales");
    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually("carl", "creation", |account| account["active"] == true);
    wait_until_idle(&host, WITHIN);

    // The application asks the engine to wait 3 s...
    proxy.set(Faults {
        too_many: Some((1, 3)),
        ..Faults::default()
    });
    let changed = host.admin("PATCH", "/users/ann", Some(&json!({ "title": "Chief" })));
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let deadline = Instant::now() + WITHIN;
    let throttled = loop {
        if let Some(logged) = proxy
            .log()
            .into_iter()
            .find(|logged| logged.status == Some(429))
        {
            break logged.at;
        }
        assert!(Instant::now() < deadline, "the engine sent nothing");
        std::thread::sleep(Duration::from_millis(10));
    };
    // ...and a reconcile asked for meanwhile waits with it: one client,
    // one pause.
    run_ok(&host, &["reconcile", "crm"]);
    let early: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|logged| {
            logged.at > throttled && logged.at < throttled + Duration::from_millis(2500)
        })
        .map(|logged| format!("{} {}", logged.method, logged.path))
        .collect();
    assert!(early.is_empty(), "sent during the pause: {early:?}");
    application.eventually("ann", "the update", |account| account["title"] == "Chief");
}
