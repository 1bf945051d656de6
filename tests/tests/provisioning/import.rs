//! Accounts that exist only in the application: `scimlink app import`
//! lists them as new, reads the chosen ones into the directory through the
//! connector (a new directory user, or a link to the existing one), and
//! they are managed in place from then on — never duplicated, never
//! deactivated.

use std::time::Duration;

use scimlink_e2e::Host;
use scimlink_e2e::application::{Application, connect, run_ok};
use serde_json::{Value, json};

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
