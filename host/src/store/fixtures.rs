//! What unit tests across the crate put in a store the same way: an
//! application, a user, a link to an account.

use super::{AppWrite, LedgerEntry, Secret, Store, Timestamp, UserWrite};

/// An application `name` of the custom SCIM connector, groups managed, at
/// an address nothing is sent to: its id.
pub(crate) fn app(store: &dyn Store, name: &str) -> String {
    store
        .create_app(AppWrite {
            name: name.into(),
            label: name.into(),
            connector: "custom-scim".into(),
            base_url: "https://app.example/scim/v2".into(),
            token: Secret::new(String::from("token")),
            manage_groups: true,
            settings: vec![],
            pacing: Default::default(),
            guard: Default::default(),
            passwords: Default::default(),
        })
        .expect("the application is created")
        .id
}

/// An active user `name`, with nothing but its `userName`: its id.
pub(crate) fn user(store: &dyn Store, name: &str) -> String {
    let mut attributes = serde_json::Map::new();
    attributes.insert("userName".into(), serde_json::json!(name));
    store
        .create_user(UserWrite {
            password: None,
            user_name: name.into(),
            external_id: None,
            active: true,
            attributes,
        })
        .expect("the user is created")
        .id
}

/// The ledger's link of user `object_id` to account `remote_id` in
/// `app_id`, with no document.
pub(crate) fn link(app_id: &str, object_id: &str, remote_id: &str) -> LedgerEntry {
    LedgerEntry {
        app_id: app_id.into(),
        object_kind: "user".into(),
        object_id: object_id.into(),
        remote_id: remote_id.into(),
        doc_hash: "h".into(),
        document: None,
        updated: Timestamp::now(),
    }
}
