//! The engine's decisions against a simulated application, driven step by
//! step: what a connector's rule decides is carried out on the scope and
//! ledger as they are when the object's lock is held, never on a read taken
//! before it.

#[path = "../runtime/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::Duration;

use scimlink::engine::groups::{apply_group_event, directory_group};
use scimlink::engine::locks::lock_object;
use scimlink::engine::provision::{Synced, Target, sync_user};
use scimlink::runtime::Loader;
use scimlink::runtime::contract::GroupEvent;
use scimlink::sandbox::sp::{Quirks, SandboxSp};
use scimlink::scim_client::{ClientSettings, ScimClient, ScimRequest};
use scimlink::store::prelude::*;
use scimlink::store::{
    AppState, AppUpdate, AppWrite, GroupWrite, Member, MemberKind, Secret, SqliteStore,
    StoreHandle, TokenCipher, UserWrite,
};
use serde_json::{Map, json};

fn user(name: &str) -> UserWrite {
    let mut attributes = Map::new();
    attributes.insert("userName".into(), json!(name));
    attributes.insert(
        "emails".into(),
        json!([{ "value": format!("{name}@example.com"), "primary": true }]),
    );
    UserWrite {
        user_name: name.into(),
        external_id: None,
        active: true,
        attributes,
    }
}

fn member(id: &str) -> Member {
    Member {
        id: id.into(),
        kind: MemberKind::User,
    }
}

#[tokio::test]
async fn a_rule_does_not_offboard_a_user_who_came_back_while_it_waited() {
    let folder = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[7; 32])).unwrap());
    let sp = SandboxSp::start("127.0.0.1:0".parse().unwrap(), Quirks::default())
        .await
        .unwrap();
    let loader = Loader::new(support::runtime());
    let plugin = support::load(&loader, &support::bundled("custom-scim"));

    let ada = store.create_user(user("ada")).unwrap();
    let mut attributes = Map::new();
    attributes.insert("displayName".into(), json!("Sales"));
    let sales = store
        .create_group(GroupWrite {
            display_name: "Sales".into(),
            external_id: None,
            attributes,
            members: Some(vec![member(&ada.id)]),
        })
        .unwrap();
    let app = store
        .create_app(AppWrite {
            name: "crm".into(),
            label: "crm".into(),
            connector: "custom-scim".into(),
            base_url: sp.base_url("acme"),
            token: Secret::new("app-token".to_string()),
            manage_groups: false,
            settings: vec![],
            pacing: Default::default(),
            guard: Default::default(),
        })
        .unwrap();
    store.bind(&app.id, &sales.id).unwrap();
    let app = store
        .update_app(
            &app.id,
            AppUpdate {
                state: Some(AppState::Active),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    let client = ScimClient::new(
        &sp.base_url("acme"),
        &Secret::new("app-token".to_string()),
        ClientSettings::default(),
    )
    .unwrap();
    let handle = StoreHandle::new(store.clone());
    let target = Target {
        store: &handle,
        app: &app,
        plugin: &plugin,
        client: &client,
    };
    assert_eq!(sync_user(&target, &ada.id).await.unwrap(), Synced::Created);
    let remote = store
        .ledger_entry(&app.id, "user", &ada.id)
        .unwrap()
        .unwrap()
        .remote_id;

    // ada leaves the group; the connector's rule for it would deactivate
    // her. While the rule waits for her lock, she is added back.
    store
        .change_members(&sales.id, &[], std::slice::from_ref(&ada.id))
        .unwrap();
    let held = lock_object(&app.id, "user", &ada.id).await;
    let group = directory_group(&store.get_group(&sales.id).unwrap().unwrap());
    let removed = [ada.id.clone()];
    let rule = apply_group_event(&target, GroupEvent::UserRemovedFromGroup, &group, &removed);
    let comes_back = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store
            .change_members(&sales.id, &[member(&ada.id)], &[])
            .unwrap();
        drop(held);
    };
    let (ruled, ()) = tokio::join!(rule, comes_back);
    ruled.unwrap();

    let account = client
        .send(&ScimRequest::get(format!("/Users/{remote}")))
        .await
        .unwrap()
        .body;
    assert_eq!(account["active"], true, "{account}");
    let entry = store
        .ledger_entry(&app.id, "user", &ada.id)
        .unwrap()
        .unwrap();
    assert_ne!(entry.doc_hash, "deactivated");
    let sent: Vec<String> = sp
        .requests()
        .iter()
        .map(|request| format!("{} {}", request.method, request.path))
        .collect();
    assert!(
        !sent.iter().any(|request| request.starts_with("PATCH")),
        "nothing is sent for a user back in scope: {sent:?}"
    );
}
