//! The bundled connectors whose rules are their own, each against a real
//! SCIM server (scim2-server) with the application's URL shape:
//! - Coda: users only, with five attributes, under a tenant path;
//! - Cinode: its attribute table and its group rules;
//! - Scalekit: users assigned through groups only; unbinding a group
//!   unassigns every member and keeps the group;
//! - Swimlane Turbine: users keyed by email, deleted with their last group.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{APP_TOKEN, Application, Remote, WITHIN, connect_with, run_ok};
use serde_json::{Value, json};

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
