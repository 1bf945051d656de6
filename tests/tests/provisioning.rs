//! Provisioning through a real SCIM server (scim2-server from PyPI, with a
//! tenant path and a bearer token), checked by reading the server back:
//! take over an existing account, create, update, deactivate on leaving
//! scope, each with its audit event.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{
    APP_TOKEN, Application, Remote, WITHIN, connect, connect_through, connect_with, people, run_ok,
    sorted, wait_for_accounts,
};
use serde_json::{Value, json};

#[test]
fn the_directory_reaches_the_application_and_follows_its_changes() {
    let application = Application::start();
    // Grace already has an account in the application: it is taken over.
    let graces_account = application.create(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "grace",
        "active": true,
    }));

    let host = Host::start();
    connect(
        &host,
        &application,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Engineering\n\
         bob,bob@example.com,Bob,Builder,\n",
        "Engineering",
    );
    run_ok(&host, &["app", "activate", "crm"]);

    let ada = application.eventually("ada", "creation", |account| {
        account["name"]["familyName"] == "Lovelace" && account["active"] == true
    });
    let grace = application.eventually("grace", "takeover", |account| {
        account["name"]["familyName"] == "Hopper"
    });
    assert_eq!(
        grace["id"],
        graces_account.as_str(),
        "the existing account was linked, not duplicated"
    );
    assert!(
        application.users_named("bob").is_empty(),
        "bob is in no bound group"
    );

    // A change in the directory reaches the application.
    let changed = host.admin("PATCH", "/users/ada", Some(&json!({ "title": "Countess" })));
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    application.eventually("ada", "the update", |account| {
        account["title"] == "Countess"
    });

    // Leaving the bound group deactivates; joining it provisions.
    let removed = host.admin("DELETE", "/groups/Engineering/members/ada", None);
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    application.eventually("ada", "deactivation", |account| account["active"] == false);
    let added = host.admin("PUT", "/groups/Engineering/members/bob", None);
    assert_eq!(added.status, 200, "{:?}", added.body);
    application.eventually("bob", "creation", |account| account["active"] == true);

    // And back: rejoining reactivates the same account.
    host.admin("PUT", "/groups/Engineering/members/ada", None);
    let back = application.eventually("ada", "reactivation", |account| account["active"] == true);
    assert_eq!(back["id"], ada["id"]);

    // Every step is in the audit trail, with the rule that led to it.
    let events: Value = serde_json::from_str(&run_ok(
        &host,
        &["events", "--app", "crm", "--format", "json"],
    ))
    .unwrap();
    let has = |operation: &str, rule_prefix: &str| {
        events.as_array().unwrap().iter().any(|event| {
            event["operation"] == operation
                && event["outcome"] == "success"
                && event["rule"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(rule_prefix)
        })
    };
    assert!(has("user_create_provision", "created"), "{events}");
    assert!(
        has("user_create_provision", "takeover: userName eq \"grace\""),
        "{events}"
    );
    assert!(has("user_update_provision", ""), "{events}");
    // The connector updates with PATCH: only what changed is sent.
    assert!(
        events.as_array().unwrap().iter().any(|event| {
            event["operation"] == "user_update_provision"
                && event["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("PATCH /Users/")
                && event["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("(title)")
        }),
        "{events}"
    );
    // Leaving the group was ruled on by the connector, which names its rule.
    assert!(
        has("user_deprovision", "offboard-unless-other-group"),
        "{events}"
    );
    assert!(!events.to_string().contains(APP_TOKEN));
}

#[test]
fn a_host_killed_during_the_first_sync_finishes_it_after_restart_without_duplicates() {
    const USERS: usize = 2000;
    let application = Application::start();
    let folder = tempfile::tempdir().unwrap();
    let data = folder.path().join("data");
    let host = Host::start_in(&data);
    let mut rows = String::from("userName,email,givenName,familyName,groups\n");
    for index in 0..USERS {
        rows.push_str(&format!(
            "user{index:04},user{index:04}@example.com,User,{index},Everyone\n"
        ));
    }
    connect(&host, &application, &rows, "Everyone");
    run_ok(&host, &["app", "activate", "crm"]);

    // Kill -9 in the middle of the first sync.
    let deadline = Instant::now() + Duration::from_secs(120);
    while application.total() < 200 {
        assert!(Instant::now() < deadline, "the first sync did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(host);
    let at_kill = application.total();
    assert!(
        at_kill < USERS as u64,
        "the sync finished before the kill ({at_kill})"
    );

    let _restarted = Host::start_in(&data);
    let deadline = Instant::now() + Duration::from_secs(300);
    while application.total() < USERS as u64 {
        assert!(
            Instant::now() < deadline,
            "after the restart the application holds {} of {USERS}",
            application.total()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Exactly the desired state: every user once, nobody twice.
    std::thread::sleep(Duration::from_millis(500));
    let mut names = application.user_names();
    assert_eq!(names.len(), USERS);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), USERS, "no account was created twice");
}

#[test]
fn a_plan_shows_what_a_sync_would_send_and_sends_nothing() {
    let application = Application::start();
    let host = Host::start();
    connect(
        &host,
        &application,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Engineering\n\
         bob,bob@example.com,Bob,Builder,\n",
        "Engineering",
    );

    let plan = run_ok(&host, &["plan", "crm"]);
    assert!(
        plan.contains("crm: 2 create_or_take_over; nothing was sent"),
        "{plan}"
    );
    assert!(
        plan.contains("ada") && plan.contains("grace") && !plan.contains("bob"),
        "{plan}"
    );
    assert_eq!(application.total(), 0, "a plan sends nothing");

    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually("ada", "creation", |account| account["active"] == true);
    application.eventually("grace", "creation", |account| account["active"] == true);
    let deadline = Instant::now() + WITHIN;
    while !run_ok(&host, &["plan", "crm"]).contains("nothing to send") {
        assert!(Instant::now() < deadline, "the plan never emptied");
        std::thread::sleep(Duration::from_millis(100));
    }

    // With the application inactive, changes wait; the plan shows them.
    run_ok(&host, &["app", "deactivate", "crm"]);
    host.admin("PATCH", "/users/ada", Some(&json!({ "title": "Countess" })));
    host.admin("DELETE", "/groups/Engineering/members/grace", None);
    let planned: Value =
        serde_json::from_str(&run_ok(&host, &["plan", "crm", "--format", "json"])).unwrap();
    let by_user = |name: &str| {
        planned
            .as_array()
            .unwrap()
            .iter()
            .find(|operation| operation["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {planned}"))
    };
    assert_eq!(by_user("ada")["operation"], "update");
    assert_eq!(by_user("ada")["attributes"], json!(["title"]));
    assert_eq!(by_user("grace")["operation"], "deactivate");
    assert_eq!(planned.as_array().unwrap().len(), 2, "{planned}");
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(
        application.users_named("ada")[0]["title"],
        "Countess",
        "nothing was sent"
    );

    // Provisioning on demand needs an active application, then does it now.
    let refused = host.cli(&["provision", "crm", "ada"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("activate it first"));
    host.admin("POST", "/apps/crm/activate", None);
    let done = run_ok(&host, &["provision", "crm", "ada", "--format", "json"]);
    let done: Value = serde_json::from_str(&done).unwrap();
    // The engine may have been first: either way ada is up to date now.
    assert!(
        matches!(done["result"].as_str(), Some("updated" | "unchanged")),
        "{done}"
    );
    assert_eq!(application.users_named("ada")[0]["title"], "Countess");
}

#[test]
fn groups_are_pushed_with_their_members_and_follow_the_connectors_rules() {
    let application = Application::start();
    // The application already has a Design group, with an account the
    // directory does not manage: the group is taken over, the account left.
    let outsider = application.create(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "outsider",
    }));
    let design_id = application.create_group(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Design",
        "members": [{ "value": outsider }],
    }));

    let host = Host::start();
    connect(
        &host,
        &application,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Engineering\n\
         carol,carol@example.com,Carol,Shaw,Design\n\
         bob,bob@example.com,Bob,Builder,\n",
        "Engineering",
    );
    let created = host.admin("POST", "/groups", Some(&json!({ "name": "Empty" })));
    assert_eq!(created.status, 201, "{:?}", created.body);
    run_ok(&host, &["app", "bind", "crm", "Design"]);
    run_ok(&host, &["app", "bind", "crm", "Empty"]);
    let managed = host.admin("PATCH", "/apps/crm", Some(&json!({ "manageGroups": true })));
    assert_eq!(managed.status, 200, "{:?}", managed.body);
    run_ok(&host, &["app", "activate", "crm"]);

    // Created with its members; taken over with the outsider left in it;
    // the empty group is not created.
    application.eventually("grace", "creation", |account| account["active"] == true);
    let (ada, grace) = (application.id_of("ada"), application.id_of("grace"));
    let engineering = application.eventually_group("Engineering", "creation", |group| {
        Remote::member_ids(group) == sorted(vec![ada.clone(), grace.clone()])
    });
    application.eventually("carol", "creation", |account| account["active"] == true);
    let carol = application.id_of("carol");
    let design = application.eventually_group("Design", "takeover", |group| {
        Remote::member_ids(group) == sorted(vec![carol.clone(), outsider.clone()])
    });
    assert_eq!(
        design["id"],
        design_id.as_str(),
        "taken over, not duplicated"
    );
    assert!(application.groups_named("Empty").is_empty());

    // A rename in the directory renames the same group in the application.
    let renamed = host.admin(
        "PATCH",
        "/groups/Engineering",
        Some(&json!({ "name": "Research" })),
    );
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    let research = application.eventually_group("Research", "the rename", |_| true);
    assert_eq!(research["id"], engineering["id"]);

    // A user removed from the group leaves it and, in no other bound
    // group, is deactivated (the connector's rule).
    host.admin("DELETE", "/groups/Research/members/grace", None);
    application.eventually_group("Research", "grace's removal", |group| {
        Remote::member_ids(group) == vec![ada.clone()]
    });
    application.eventually("grace", "deactivation", |account| {
        account["active"] == false
    });

    // Group management off: groups and membership stay as they are while
    // identities stay managed.
    let off = run_ok(&host, &["app", "manage-groups", "crm", "false"]);
    assert!(off.contains("group management off"), "{off}");
    host.admin("PUT", "/groups/Research/members/bob", None);
    application.eventually("bob", "creation", |account| account["active"] == true);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        Remote::member_ids(&application.groups_named("Research")[0]),
        vec![ada.clone()],
        "membership is no longer pushed"
    );
    // On again: the group is found, taken over, and catches up.
    host.admin("PATCH", "/apps/crm", Some(&json!({ "manageGroups": true })));
    let bob = application.id_of("bob");
    let caught_up = application.eventually_group("Research", "bob joining", |group| {
        Remote::member_ids(group) == sorted(vec![ada.clone(), bob.clone()])
    });
    assert_eq!(caught_up["id"], engineering["id"]);

    // Unbinding leaves the group as it is and deactivates its members.
    run_ok(&host, &["app", "unbind", "crm", "Design"]);
    application.eventually("carol", "deactivation", |account| {
        account["active"] == false
    });
    assert_eq!(
        Remote::member_ids(&application.groups_named("Design")[0]),
        sorted(vec![carol.clone(), outsider.clone()])
    );

    // Deleting a group deletes it in the application; its members leave.
    let deleted = host.admin("DELETE", "/groups/Research", None);
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    let deadline = Instant::now() + WITHIN;
    while !application.groups_named("Research").is_empty() {
        assert!(Instant::now() < deadline, "Research was never deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    application.eventually("ada", "deactivation", |account| account["active"] == false);
    application.eventually("bob", "deactivation", |account| account["active"] == false);

    let events: Value = serde_json::from_str(&run_ok(
        &host,
        &["events", "--app", "crm", "--format", "json"],
    ))
    .unwrap();
    let has = |operation: &str, rule_prefix: &str| {
        events.as_array().unwrap().iter().any(|event| {
            event["operation"] == operation
                && event["outcome"] == "success"
                && event["object_kind"] == "group"
                && event["rule"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(rule_prefix)
        })
    };
    assert!(has("group_create_provision", "created"), "{events}");
    assert!(
        has(
            "group_create_provision",
            "takeover: displayName eq \"Design\""
        ),
        "{events}"
    );
    assert!(has("group_update_provision", "renamed"), "{events}");
    assert!(has("group_update_provision", "membership"), "{events}");
    assert!(
        has("group_update_provision", "unbind-leave-group"),
        "{events}"
    );
    assert!(has("group_delete_provision", "delete-group"), "{events}");
    let rule_of = |user: &str| {
        let id = host.admin("GET", &format!("/users/{user}"), None).body["id"].clone();
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["object_id"] == id && event["operation"] == "user_deprovision")
            .map(|event| event["rule"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rule_of("grace"),
        ["remove-member-offboard-unless-other-group"]
    );
    assert_eq!(
        rule_of("carol"),
        ["unbind-leave-group-offboard-unless-other-group"]
    );
}

fn app_state(host: &Host) -> String {
    host.admin("GET", "/apps/crm", None).body["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn throttling_server_errors_resets_and_timeouts_are_survived() {
    use scimlink_e2e::fault_proxy::{FaultProxy, Faults};
    let application = Application::start();
    let proxy = FaultProxy::start(application.server.port);
    let host = Host::start();
    connect_through(&host, proxy.port, &people(30, "Everyone"), "Everyone");
    let paced = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({
            "manageGroups": true,
            "pacing": { "requestsPerSecond": 1000, "concurrency": 4,
                        "timeoutSeconds": 2, "maxAttempts": 10, "quarantineAfter": 50 },
        })),
    );
    assert_eq!(paced.status, 200, "{:?}", paced.body);
    run_ok(&host, &["app", "activate", "crm"]);
    // Once the connection test passed, the sync meets every fault in turn.
    proxy.set(Faults {
        resets: 2,
        too_many: Some((1, 2)),
        server_errors: 2,
        delays: Some((1, Duration::from_secs(4))),
        ..Faults::default()
    });

    wait_for_accounts(&application, 30, Duration::from_secs(90));
    let everyone = application.eventually_group("Everyone", "every member", |group| {
        Remote::member_ids(group).len() == 30
    });
    assert_eq!(Remote::member_ids(&everyone).len(), 30);

    let log = proxy.log();
    let injected: Vec<Option<u16>> = log
        .iter()
        .filter(|logged| logged.injected)
        .map(|logged| logged.status)
        .collect();
    assert_eq!(injected, [None, None, Some(429), Some(500), Some(500)]);
    // Retry-After: 2 was obeyed by every request, not only the refused
    // one (requests already on their way when it came are let be).
    let throttled = log
        .iter()
        .find(|logged| logged.status == Some(429))
        .unwrap()
        .at;
    let too_soon: Vec<_> = log
        .iter()
        .filter(|logged| {
            logged.at > throttled + Duration::from_millis(100)
                && logged.at < throttled + Duration::from_millis(1900)
        })
        .collect();
    assert!(too_soon.is_empty(), "sent during the pause: {too_soon:?}");
    assert!(
        log.iter()
            .any(|logged| logged.at >= throttled + Duration::from_millis(1900)),
        "the sync went on after the pause"
    );
}

#[test]
fn a_refused_user_is_a_dead_letter_until_replayed_and_a_failing_application_is_quarantined() {
    use scimlink_e2e::fault_proxy::{FaultProxy, Faults};
    let application = Application::start();
    let proxy = FaultProxy::start(application.server.port);
    let folder = tempfile::tempdir().unwrap();
    let host = Host::start_with(
        &folder.path().join("data"),
        &[
            ("SCIMLINK_ADMIN_TOKEN", scimlink_e2e::ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", scimlink_e2e::SCIM_TOKEN),
            ("SCIMLINK_QUARANTINE_PROBE_SECONDS", "1"),
        ],
    );
    proxy.set(Faults {
        refuse_containing: Some(("mallory".into(), 400)),
        ..Faults::default()
    });
    connect_through(
        &host,
        proxy.port,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Everyone\n\
         mallory,mallory@example.com,Mallory,Mal,Everyone\n\
         grace,grace@example.com,Grace,Hopper,Everyone\n",
        "Everyone",
    );
    let paced = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({
            "pacing": { "requestsPerSecond": 1000, "concurrency": 4 },
        })),
    );
    assert_eq!(paced.status, 200, "{:?}", paced.body);
    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually("ada", "creation", |account| account["active"] == true);
    application.eventually("grace", "creation", |account| account["active"] == true);

    // The application refused mallory for good: listed, not retried.
    let deadline = Instant::now() + WITHIN;
    let letters = loop {
        let letters: Value =
            serde_json::from_str(&run_ok(&host, &["dead-letters", "crm", "--format", "json"]))
                .unwrap();
        if !letters.as_array().unwrap().is_empty() {
            break letters;
        }
        assert!(Instant::now() < deadline, "no dead letter appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(letters.as_array().unwrap().len(), 1, "{letters}");
    assert_eq!(letters[0]["http_status"], 400);
    assert_eq!(letters[0]["operation"], "user_create_provision");
    let refusals = proxy
        .log()
        .iter()
        .filter(|logged| logged.status == Some(400))
        .count();
    assert_eq!(refusals, 1, "a permanent refusal is not retried");
    assert!(application.users_named("mallory").is_empty());

    // Once the application accepts it, a replay provisions it.
    proxy.set(Faults::default());
    let replayed = run_ok(&host, &["dead-letters", "crm", "--replay"]);
    assert!(replayed.contains("1 queued"), "{replayed}");
    application.eventually("mallory", "creation", |account| account["active"] == true);
    let letters = run_ok(&host, &["dead-letters", "crm"]);
    assert!(letters.contains("no dead letters"), "{letters}");

    // An application that keeps failing is quarantined; its changes wait.
    // (Quarantined at the first request that fails, to keep the test short.)
    let paced = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({
            "pacing": { "requestsPerSecond": 1000, "concurrency": 4,
                        "timeoutSeconds": 2, "maxAttempts": 2, "quarantineAfter": 1 },
        })),
    );
    assert_eq!(paced.status, 200, "{:?}", paced.body);
    proxy.set(Faults {
        status_for_all: Some(503),
        ..Faults::default()
    });
    host.admin("PATCH", "/users/ada", Some(&json!({ "title": "Countess" })));
    let deadline = Instant::now() + Duration::from_secs(60);
    while app_state(&host) != "quarantined" {
        assert!(Instant::now() < deadline, "never quarantined");
        std::thread::sleep(Duration::from_millis(100));
    }
    host.admin(
        "PATCH",
        "/users/grace",
        Some(&json!({ "title": "Admiral" })),
    );

    // It answers again: a probe resumes it and the waiting changes land.
    proxy.set(Faults::default());
    application.eventually("ada", "the held update", |account| {
        account["title"] == "Countess"
    });
    application.eventually("grace", "the held update", |account| {
        account["title"] == "Admiral"
    });
    assert_eq!(app_state(&host), "active");
    let events = run_ok(&host, &["events", "--app", "crm", "--format", "json"]);
    assert!(events.contains("idm_integration_quarantine"), "{events}");
    assert!(events.contains("idm_integration_resume"), "{events}");
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
        &application,
        "userName,email,givenName,familyName,title,groups\n\
         ada,ada@example.com,Ada,Lovelace,Countess,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Admiral,Engineering\n\
         bob,bob@example.com,Bob,Builder,Builder,Engineering\n",
        "Engineering",
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

#[test]
fn accounts_only_in_the_application_are_listed_as_new_and_imported() {
    let application = Application::start();
    let zoe = application.create(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "zoë",
        "name": { "givenName": "Zoë", "familyName": "Ng" },
        "emails": [{ "value": "zoe@example.com", "primary": true }],
        "title": "Designer",
        "active": true,
    }));
    let ada = application.create(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada",
        "active": true,
    }));
    let host = Host::start();
    connect(
        &host,
        &application,
        "userName,email,givenName,familyName,groups\n\
         grace,grace@example.com,Grace,Hopper,Engineering\n\
         ada,ada@example.com,Ada,Lovelace,\n",
        "Engineering",
    );
    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually("grace", "creation", |account| account["active"] == true);

    let listed: Value = serde_json::from_str(&run_ok(
        &host,
        &["app", "import", "crm", "--format", "json"],
    ))
    .unwrap();
    let status = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|account| account["user_name"] == name)
            .map(|account| account["status"].clone())
    };
    assert_eq!(status("grace"), Some(json!("imported")), "{listed}");
    assert_eq!(status("zoë"), Some(json!("new")), "{listed}");
    assert_eq!(status("ada"), Some(json!("new")), "{listed}");

    let done: Value = serde_json::from_str(&run_ok(
        &host,
        &[
            "app", "import", "crm", "--apply", "--user", &zoe, "--user", &ada, "--format", "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        done,
        json!({ "created": 1, "linked": 1, "failed": 0, "refused": 0, "group": "crm-imported" })
    );
    // The connector read the account into the directory.
    let imported = host.admin("GET", "/users/zoë", None);
    assert_eq!(imported.status, 200, "{:?}", imported.body);
    assert_eq!(imported.body["familyName"], "Ng");
    assert_eq!(imported.body["title"], "Designer");
    let scope = host.admin("GET", "/apps/crm/scope", None);
    assert_eq!(scope.body["total"], 3, "{:?}", scope.body);

    // Managed from now on, in place: no duplicate, never deactivated.
    std::thread::sleep(Duration::from_millis(500));
    let account = application.eventually("zoë", "staying active", |account| {
        account["active"] == true
    });
    assert_eq!(account["id"], zoe.as_str());
    assert_eq!(application.id_of("ada"), ada);
    assert_eq!(
        application.eventually("ada", "the directory's document", |account| {
            account["name"]["familyName"] == "Lovelace"
        })["id"],
        ada.as_str()
    );
    let listed = run_ok(&host, &["app", "import", "crm"]);
    assert!(listed.contains("3 accounts, 0 new"), "{listed}");
    let events = run_ok(
        &host,
        &["events", "--app", "crm", "--operation", "user_import"],
    );
    assert!(events.contains("created in the directory"), "{events}");
    assert!(events.contains("linked to the directory user"), "{events}");
}

#[test]
fn a_group_is_provisioned_on_demand_with_its_members() {
    let application = Application::start();
    let host = Host::start();
    connect(
        &host,
        &application,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Engineering\n",
        "Engineering",
    );
    run_ok(&host, &["app", "manage-groups", "crm", "true"]);
    // The plan shows the group too.
    let plan = run_ok(&host, &["plan", "crm"]);
    assert!(
        plan.contains("crm: 2 create_or_take_over, 1 create_or_take_over_group;"),
        "{plan}"
    );
    run_ok(&host, &["app", "activate", "crm"]);
    let done: Value = serde_json::from_str(&run_ok(
        &host,
        &[
            "provision",
            "crm",
            "--group",
            "Engineering",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    // The engine may have been first for some of it: either way, when the
    // command returns, the application holds the group with both members.
    assert_eq!(done["members"].as_array().unwrap().len(), 2, "{done}");
    let group = application.groups_named("Engineering");
    assert_eq!(group.len(), 1);
    assert_eq!(
        Remote::member_ids(&group[0]),
        sorted(vec![application.id_of("ada"), application.id_of("grace")])
    );
    let text = run_ok(&host, &["provision", "crm", "--group", "Engineering"]);
    assert!(
        text.contains("group unchanged; members: 2 unchanged"),
        "{text}"
    );
    let plan = run_ok(&host, &["plan", "crm"]);
    assert!(plan.contains("nothing to send"), "{plan}");
    // A rename waits in the plan while the application is inactive.
    run_ok(&host, &["app", "deactivate", "crm"]);
    host.admin(
        "PATCH",
        "/groups/Engineering",
        Some(&json!({ "name": "Research" })),
    );
    let plan = run_ok(&host, &["plan", "crm"]);
    assert!(plan.contains("1 update_group"), "{plan}");
    assert!(plan.contains("(displayName)"), "{plan}");
}

#[test]
fn accounts_are_deleted_when_the_connector_says_so_and_members_go_one_per_patch() {
    let application = Application::start();
    let folder = tempfile::tempdir().unwrap();
    let plugins = folder.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        scimlink_e2e::fixture_component("deleting"),
        plugins.join("deleting.wasm"),
    )
    .unwrap();
    let host = Host::start_serving(
        &folder.path().join("data"),
        &plugins,
        &[
            ("SCIMLINK_ADMIN_TOKEN", scimlink_e2e::ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", scimlink_e2e::SCIM_TOKEN),
        ],
    );
    let people = folder.path().join("people.csv");
    std::fs::write(
        &people,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Engineering\n\
         grace,grace@example.com,Grace,Hopper,Engineering\n\
         alan,alan@example.com,Alan,Turing,Engineering\n",
    )
    .unwrap();
    run_ok(&host, &["directory", "import", people.to_str().unwrap()]);
    run_ok(
        &host,
        &[
            "app",
            "add",
            "crm",
            "--connector",
            "deleting",
            "--base-url",
            application.base(),
            "--token",
            APP_TOKEN,
            "--manage-groups",
            "--requests-per-second",
            "1000",
        ],
    );
    run_ok(&host, &["app", "bind", "crm", "Engineering"]);
    run_ok(&host, &["app", "activate", "crm"]);
    for name in ["ada", "grace", "alan"] {
        application.eventually(name, "creation", |account| account["active"] == true);
    }
    application.eventually_group("Engineering", "three members", |group| {
        Remote::member_ids(group).len() == 3
    });

    // Leaving the group deletes the account (the connector's offboarding);
    // so does leaving the directory.
    host.admin("DELETE", "/groups/Engineering/members/grace", None);
    host.admin("DELETE", "/users/alan", None);
    let deadline = Instant::now() + WITHIN;
    while !(application.users_named("grace").is_empty()
        && application.users_named("alan").is_empty())
    {
        assert!(Instant::now() < deadline, "the accounts were not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ada = application.id_of("ada");
    application.eventually_group("Engineering", "only ada left", |group| {
        Remote::member_ids(group) == vec![ada.clone()]
    });

    let events: Value = serde_json::from_str(&run_ok(
        &host,
        &["events", "--app", "crm", "--format", "json"],
    ))
    .unwrap();
    let deletions = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| {
            event["operation"] == "user_delete_provision" && event["outcome"] == "success"
        })
        .count();
    assert_eq!(deletions, 2, "{events}");
    assert!(
        events
            .to_string()
            .contains("3 member(s) added, 0 removed for Engineering (chunks of 1)"),
        "{events}"
    );
}

#[test]
fn users_assigned_directly_are_in_scope_without_a_group() {
    let application = Application::start();
    let host = Host::start();
    connect(
        &host,
        &application,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Engineering\n\
         bob,bob@example.com,Bob,Builder,\n",
        "Engineering",
    );
    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually("ada", "creation", |account| account["active"] == true);

    let assigned = run_ok(&host, &["app", "assign", "crm", "bob"]);
    assert!(assigned.contains("assigned bob to crm"), "{assigned}");
    application.eventually("bob", "creation", |account| account["active"] == true);
    run_ok(&host, &["app", "assign", "crm", "ada"]);
    let listed = host.admin("GET", "/apps/crm/assignments", None);
    assert_eq!(listed.body["total"], 2, "{:?}", listed.body);

    // Assigned directly, ada stays when she leaves the group.
    host.admin("DELETE", "/groups/Engineering/members/ada", None);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(application.users_named("ada")[0]["active"], true);

    // Unassigned and in no bound group, bob is deactivated.
    run_ok(&host, &["app", "unassign", "crm", "bob"]);
    application.eventually("bob", "deactivation", |account| account["active"] == false);
    let again = host.cli(&["app", "unassign", "crm", "bob"]);
    assert!(!again.status.success(), "not assigned any more");
}

#[test]
fn coda_gets_users_only_with_its_five_attributes() {
    let application = Application::serving("org-4242");
    let zoe = application.create(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "zoe", "active": true,
        "name": { "givenName": "Zoe", "familyName": "Ng" },
    }));
    let host = Host::start();
    let folder = tempfile::tempdir().unwrap();
    let csv = folder.path().join("people.csv");
    std::fs::write(
        &csv,
        "userName,email,givenName,familyName,title,groups\n\
         ada,ada@example.com,Ada,Lovelace,Countess,Docs\n\
         grace,grace@example.com,Grace,Hopper,Admiral,Docs\n",
    )
    .unwrap();
    run_ok(&host, &["directory", "import", csv.to_str().unwrap()]);
    // Coda's own URL with the tenant placeholder, here pointed at loopback.
    let template = format!(
        "http://127.0.0.1:{}/org-{{tenantId}}/v2",
        application.server.port
    );
    run_ok(
        &host,
        &[
            "app",
            "add",
            "docs",
            "--connector",
            "coda",
            "--base-url",
            &template,
            "--token",
            APP_TOKEN,
            "--setting",
            "tenantId=4242",
            "--manage-groups",
            "--requests-per-second",
            "1000",
        ],
    );
    run_ok(&host, &["app", "bind", "docs", "Docs"]);
    run_ok(&host, &["app", "activate", "docs"]);

    // Tenant path, the five attributes, nothing else (no title).
    let read = |path: &str| application.read(path);
    let deadline = Instant::now() + WITHIN;
    let ada = loop {
        let found = read("/Users?filter=userName%20eq%20%22ada%22");
        if let Some(account) = found["Resources"].get(0) {
            break account.clone();
        }
        assert!(Instant::now() < deadline, "ada was not created");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ada["name"]["familyName"], "Lovelace");
    assert_eq!(ada["emails"][0]["value"], "ada@example.com");
    assert_eq!(ada["active"], true);
    assert!(
        ada.get("title").is_none(),
        "Coda does not get a title: {ada}"
    );
    assert!(ada.get("externalId").is_none(), "{ada}");

    // Users only: group management on, still no group is pushed.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read("/Groups")["totalResults"], 0);

    // An update reaches Coda.
    host.admin(
        "PATCH",
        "/users/ada",
        Some(&json!({ "familyName": "King" })),
    );
    let deadline = Instant::now() + WITHIN;
    while read("/Users?filter=userName%20eq%20%22ada%22")["Resources"][0]["name"]["familyName"]
        != "King"
    {
        assert!(Instant::now() < deadline, "the update did not reach Coda");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Offboarding deactivates.
    host.admin("DELETE", "/groups/Docs/members/ada", None);
    let deadline = Instant::now() + WITHIN;
    while read("/Users?filter=userName%20eq%20%22ada%22")["Resources"][0]["active"] != false {
        assert!(Instant::now() < deadline, "ada was not deactivated");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Import of a user that exists only in Coda.
    let listed = run_ok(&host, &["app", "import", "docs"]);
    assert!(listed.contains("new") && listed.contains("zoe"), "{listed}");
    let done = run_ok(&host, &["app", "import", "docs", "--apply", "--user", &zoe]);
    assert!(done.contains("1 created"), "{done}");
    let imported = host.admin("GET", "/users/zoe", None);
    assert_eq!(imported.body["familyName"], "Ng");
}

#[test]
fn cinode_gets_its_attribute_table_and_its_group_rules() {
    let application = Application::serving("77");
    let read = |path: &str| application.read(path);
    let host = Host::start();
    let folder = tempfile::tempdir().unwrap();
    let json_file = folder.path().join("people.json");
    std::fs::write(
        &json_file,
        json!({
            "users": [
                { "userName": "ada", "givenName": "Ada", "familyName": "Lovelace",
                  "title": "Consultant", "employeeNumber": "E-1", "location": "Göteborg" },
                { "userName": "grace", "givenName": "Grace", "familyName": "Hopper",
                  "title": "Architect", "employeeNumber": "E-2" },
            ],
            "groups": [
                { "name": "Consultants", "members": ["ada", "grace"] },
                { "name": "Architects", "members": ["grace"] },
            ],
        })
        .to_string(),
    )
    .unwrap();
    run_ok(&host, &["directory", "import", json_file.to_str().unwrap()]);
    let template = format!(
        "http://127.0.0.1:{}/{{tenantId}}/v2",
        application.server.port
    );
    run_ok(
        &host,
        &[
            "app",
            "add",
            "cinode",
            "--connector",
            "cinode",
            "--base-url",
            &template,
            "--token",
            APP_TOKEN,
            "--setting",
            "tenantId=77",
            "--manage-groups",
            "--requests-per-second",
            "1000",
        ],
    );
    run_ok(&host, &["app", "bind", "cinode", "Consultants"]);
    run_ok(&host, &["app", "bind", "cinode", "Architects"]);
    run_ok(&host, &["app", "activate", "cinode"]);

    let deadline = Instant::now() + WITHIN;
    loop {
        let groups = read("/Groups");
        let members = |name: &str| {
            groups["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|group| group["displayName"] == name)
                .map(|group| group["members"].as_array().map_or(0, Vec::len))
        };
        if members("Consultants") == Some(2) && members("Architects") == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "groups not pushed: {groups}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ada = &read("/Users?filter=userName%20eq%20%22ada%22")["Resources"][0];
    assert_eq!(ada["externalId"], "E-1");
    assert_eq!(ada["title"], "Consultant");
    assert_eq!(ada["addresses"][0]["formatted"], "Göteborg");

    // Unbinding Consultants: the group stays as it is; ada, in no other
    // managed group, is deactivated; grace, still an Architect, is not.
    run_ok(&host, &["app", "unbind", "cinode", "Consultants"]);
    let deadline = Instant::now() + WITHIN;
    while read("/Users?filter=userName%20eq%20%22ada%22")["Resources"][0]["active"] != false {
        assert!(Instant::now() < deadline, "ada was not deactivated");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        read("/Users?filter=userName%20eq%20%22grace%22")["Resources"][0]["active"],
        true
    );
    let consultants = read("/Groups?filter=displayName%20eq%20%22Consultants%22");
    assert_eq!(
        consultants["Resources"][0]["members"]
            .as_array()
            .map_or(0, Vec::len),
        2,
        "left as it is: {consultants}"
    );

    // A rename is followed, in place.
    let architects =
        read("/Groups?filter=displayName%20eq%20%22Architects%22")["Resources"][0]["id"].clone();
    host.admin(
        "PATCH",
        "/groups/Architects",
        Some(&json!({ "name": "Arkitekter" })),
    );
    let deadline = Instant::now() + WITHIN;
    while read("/Groups?filter=displayName%20eq%20%22Arkitekter%22")["Resources"][0]["id"]
        != architects
    {
        assert!(Instant::now() < deadline, "the rename did not reach Cinode");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Group management off: membership is no longer pushed, identities are.
    run_ok(&host, &["app", "manage-groups", "cinode", "false"]);
    host.admin("PUT", "/groups/Arkitekter/members/ada", None);
    let deadline = Instant::now() + WITHIN;
    while read("/Users?filter=userName%20eq%20%22ada%22")["Resources"][0]["active"] != true {
        assert!(Instant::now() < deadline, "ada was not reactivated");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let members = |name: &str| {
        read(&format!("/Groups?filter=displayName%20eq%20%22{name}%22"))["Resources"][0]["members"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(members("Arkitekter"), 1, "membership left as it is");

    // On again, then the group deleted: deleted in Cinode, its members
    // deactivated.
    run_ok(&host, &["app", "manage-groups", "cinode", "true"]);
    let deadline = Instant::now() + WITHIN;
    while members("Arkitekter") != 2 {
        assert!(Instant::now() < deadline, "membership did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    host.admin("DELETE", "/groups/Arkitekter", None);
    let deadline = Instant::now() + WITHIN;
    while read("/Groups?filter=displayName%20eq%20%22Arkitekter%22")["totalResults"] != 0
        || read("/Users?filter=userName%20eq%20%22grace%22")["Resources"][0]["active"] != false
    {
        assert!(
            Instant::now() < deadline,
            "the group was not deleted, or grace stays active"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn scalekit_unassigns_every_member_of_an_unbound_group_and_keeps_it() {
    let application = Application::start();
    let host = Host::start();
    connect_with(
        &host,
        application.server.port,
        "scalekit",
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,YourApp Users\n\
         grace,grace@example.com,Grace,Hopper,YourApp Users\n",
        "YourApp Users",
    );
    run_ok(&host, &["app", "manage-groups", "crm", "true"]);
    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually_group("YourApp Users", "both members", |group| {
        Remote::member_ids(group).len() == 2
    });
    // Users are assigned through groups only.
    let refused = host.admin("PUT", "/apps/crm/assignments/ada", None);
    assert_eq!(refused.status, 409, "{:?}", refused.body);

    run_ok(&host, &["app", "unbind", "crm", "YourApp Users"]);
    application.eventually_group("YourApp Users", "every member unassigned", |group| {
        Remote::member_ids(group).is_empty()
    });
    application.eventually("ada", "deactivation", |account| account["active"] == false);
    application.eventually("grace", "deactivation", |account| {
        account["active"] == false
    });
    let events = run_ok(
        &host,
        &[
            "events",
            "--app",
            "crm",
            "--operation",
            "group_update_provision",
        ],
    );
    assert!(
        events.contains("every member removed; the group stays"),
        "{events}"
    );
}

#[test]
fn swimlane_keys_users_by_email_and_deletes_them_with_their_last_group() {
    let application = Application::start();
    let host = Host::start();
    connect_with(
        &host,
        application.server.port,
        "swimlane-turbine",
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Analysts;Responders\n\
         grace,grace@example.com,Grace,Hopper,Analysts\n\
         nomail,,No,Mail,Analysts\n",
        "Analysts",
    );
    run_ok(&host, &["app", "bind", "crm", "Responders"]);
    run_ok(&host, &["app", "manage-groups", "crm", "true"]);
    run_ok(&host, &["app", "activate", "crm"]);

    // The email is the userName; the email-less user is refused, nothing sent.
    application.eventually("ada@example.com", "creation", |account| {
        account["displayName"] == "Ada Lovelace"
    });
    application.eventually("grace@example.com", "creation", |account| {
        account["active"] == true
    });
    let analysts = application.eventually_group("Analysts", "two members", |group| {
        Remote::member_ids(group).len() == 2
    });
    assert!(application.users_named("nomail").is_empty());
    let letters = run_ok(&host, &["dead-letters", "crm"]);
    assert!(letters.contains("emails"), "{letters}");

    // Removed from her last group, grace is deleted; ada, still a
    // Responder, only leaves Analysts.
    host.admin("DELETE", "/groups/Analysts/members/grace", None);
    let deadline = Instant::now() + WITHIN;
    while !application.users_named("grace@example.com").is_empty() {
        assert!(Instant::now() < deadline, "grace was not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Re-added, grace is created again and her association restored.
    host.admin("PUT", "/groups/Analysts/members/grace", None);
    application.eventually("grace@example.com", "re-creation", |account| {
        account["active"] == true
    });
    let grace = application.id_of("grace@example.com");
    application.eventually_group("Analysts", "grace's association restored", |group| {
        Remote::member_ids(group).contains(&grace)
    });

    // Deleting the group deletes it; grace (only there) is deleted, ada stays.
    let deleted = host.admin("DELETE", "/groups/Analysts", None);
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    let deadline = Instant::now() + WITHIN;
    while !(application.groups_named("Analysts").is_empty()
        && application.users_named("grace@example.com").is_empty())
    {
        assert!(Instant::now() < deadline, "the group or grace remain");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        application.users_named("ada@example.com")[0]["active"],
        true
    );
    assert_ne!(analysts["id"], Value::Null);

    // Group management off: groups and identities stay.
    run_ok(&host, &["app", "manage-groups", "crm", "false"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(application.groups_named("Responders").len(), 1);
    run_ok(&host, &["app", "manage-groups", "crm", "true"]);

    // Unbinding Responders: the group stays, ada (only there) is deleted.
    run_ok(&host, &["app", "unbind", "crm", "Responders"]);
    let deadline = Instant::now() + WITHIN;
    while !application.users_named("ada@example.com").is_empty() {
        assert!(Instant::now() < deadline, "ada was not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(application.groups_named("Responders").len(), 1);
}
