//! What a sync would send, and sending it now: `scimlink plan` lists the
//! operations for users and groups and sends nothing; `scimlink provision`
//! brings one user or one group (with its members) up to date on demand,
//! in an active application.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{Application, Remote, WITHIN, connect, run_ok, sorted};
use serde_json::{Value, json};

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
