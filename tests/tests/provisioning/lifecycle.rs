//! A user's account through its lifecycle in a real SCIM application
//! (scim2-server from PyPI, with a tenant path and a bearer token), checked
//! by reading the application back: an existing account taken over, the
//! others created, updated with PATCH, deactivated on leaving scope and
//! reactivated on coming back — or deleted, when the connector's
//! offboarding says so — each step in the audit trail with the rule that
//! led to it.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{APP_TOKEN, Application, Remote, WITHIN, connect, run_ok};
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
