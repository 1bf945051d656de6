//! Users assigned to an application directly, without a group: in scope
//! while assigned, whatever their groups; offboarded once unassigned and in
//! no bound group.

use std::time::Duration;

use scimlink_e2e::Host;
use scimlink_e2e::application::{Application, connect, run_ok};

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
