//! Groups pushed to a real SCIM application (scim2-server) with their
//! members: created, or taken over with the application's own members left
//! in them; renamed in place; and the connector's rules followed when a
//! member leaves, group management is turned off and on, a group is
//! unbound or deleted — each in the audit trail with its rule.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{Application, Remote, WITHIN, connect, run_ok, sorted};
use serde_json::{Value, json};

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
