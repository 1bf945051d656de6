//! A SQLite deployment moved into PostgreSQL (`scimlink::store::transfer`)
//! carries on where it stopped: accounts provisioned before the move are
//! neither created nor sent again, and a change after it is pushed once;
//! a password on its way moves sealed and reaches its account once.

use std::sync::Arc;

use scimlink::store::transfer::sqlite_to_postgres;
use scimlink::store::{
    AppState, AppUpdate, GroupKey, Member, MemberKind, PasswordPolicy, PostgresStore, Reveal,
    Secret, Store, StoreHandle, UserKey, UserWrite,
};
use serde_json::{Map, json};

use crate::database::Database;
use crate::worker::{RunningEngine, settings};
use crate::world::{Remote, World, eventually, log_mark, sent_since};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_deployment_carries_on_without_sending_anything_again() {
    let world = World::new().await;
    let names: Vec<String> = (0..20).map(|n| format!("user{n:02}")).collect();
    let ids: Vec<String> = names.iter().map(|name| world.user(name)).collect();
    let members: Vec<&str> = ids.iter().map(String::as_str).collect();
    let staff = world.group("staff", &members);
    let crm = world.app("crm", "custom-scim", &[&staff]);
    world.manage_groups(&crm.id, true);
    world.activate(&crm.id);

    // Provisioned on SQLite.
    let registry = world.serving(&["custom-scim"]);
    let engine =
        RunningEngine::on(Arc::clone(&world.store), Arc::clone(&registry), settings()).await;
    eventually("everyone is provisioned", async || {
        world.pending_changes() == 0
            && ids
                .iter()
                .all(|id| world.remote_id(&crm.id, "user", id).is_some())
    })
    .await;
    engine.stop().await;
    let remote = Remote::of(&world.sp, "crm");
    let before = log_mark(&world.sp);
    // A password on its way, and the application's policy, move too.
    let policy = PasswordPolicy {
        length: 12,
        symbols: false,
        reveal: Reveal::Once,
        ..PasswordPolicy::default()
    };
    world
        .store
        .update_app(
            &crm.id,
            AppUpdate {
                passwords: Some(policy),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    world
        .store
        .set_password(&ids[0], &Secret::new("Moved-Sealed-1"))
        .unwrap();

    // Moved, as `scimlink migrate` does, into an empty database.
    // The PostgreSQL client blocks: made, used and dropped off the runtime.
    let database = tokio::task::spawn_blocking(Database::new).await.unwrap();
    let url = database.url().to_string();
    let data = world.data().to_path_buf();
    let target: Arc<dyn Store> = tokio::task::spawn_blocking(move || {
        let target = PostgresStore::open(&url, World::cipher()).unwrap();
        let mut reported = Vec::new();
        let moved = sqlite_to_postgres(&data, World::cipher(), &target, &mut |table, rows| {
            reported.push((table.to_string(), rows))
        })
        .unwrap();
        assert_eq!(
            moved
                .tables
                .iter()
                .map(|(table, rows)| (table.to_string(), *rows))
                .collect::<Vec<_>>(),
            reported
        );
        // A second move into the same database is refused.
        let again = sqlite_to_postgres(&data, World::cipher(), &target, &mut |_, _| {});
        assert!(
            again
                .unwrap_err()
                .to_string()
                .contains("already holds data"),
            "a second move was not refused"
        );
        Arc::new(target) as Arc<dyn Store>
    })
    .await
    .unwrap();
    let moved = StoreHandle::new(Arc::clone(&target));

    // What the directory and the engine knew came along.
    let app = moved.get_app("crm").await.unwrap().unwrap();
    assert_eq!(
        (app.id.as_str(), app.state),
        (crm.id.as_str(), AppState::Active)
    );
    assert_eq!(
        moved.app_token("crm").await.unwrap(),
        world.store.app_token("crm").unwrap()
    );
    assert_eq!(app.passwords, policy);
    let user00 = ids[0].clone();
    let password = moved
        .run(move |store| store.user_password(&user00))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(password.secret.expose(), "Moved-Sealed-1");
    for (id, name) in ids.iter().zip(&names) {
        assert_eq!(
            moved
                .ledger_entry(&crm.id, "user", id)
                .await
                .unwrap()
                .map(|entry| entry.remote_id),
            world.remote_id(&crm.id, "user", id),
            "{name}"
        );
    }
    assert_eq!(
        moved.pending_changes().await.unwrap(),
        2,
        "the policy's change and the password's are what is left to do"
    );

    // The engine on PostgreSQL has nothing to send for what was done…
    let engine = RunningEngine::on(Arc::clone(&target), Arc::clone(&registry), settings()).await;
    let mut attributes = Map::new();
    attributes.insert("userName".into(), json!("late"));
    let late = moved
        .create_user(UserWrite {
            password: None,
            user_name: "late".into(),
            external_id: None,
            active: true,
            attributes,
        })
        .await
        .unwrap();
    let staff_group = moved
        .find_groups(GroupKey::DisplayName, "staff")
        .await
        .unwrap()
        .pop()
        .unwrap();
    moved
        .change_members(
            &staff_group.id,
            &[Member {
                id: late.id.clone(),
                kind: MemberKind::User,
            }],
            &[],
        )
        .await
        .unwrap();
    // …and pushes a change made after the move, once.
    eventually("the newcomer is provisioned", async || {
        moved.pending_changes().await.unwrap() == 0
            && moved
                .ledger_entry(&crm.id, "user", &late.id)
                .await
                .unwrap()
                .is_some()
    })
    .await;
    engine.stop().await;
    let sent = sent_since(&world.sp, before);
    let creates: Vec<&String> = sent
        .iter()
        .filter(|request| request.starts_with("POST ") && request.ends_with("/Users"))
        .collect();
    assert_eq!(creates.len(), 1, "{sent:?}");
    // The password set before the move reached its account once.
    let user00_account = format!(
        "PATCH /crm/Users/{}",
        world.remote_id(&crm.id, "user", &ids[0]).unwrap()
    );
    assert_eq!(
        sent.iter()
            .filter(|request| **request == user00_account)
            .count(),
        1,
        "{sent:?}"
    );
    for name in &names {
        assert!(
            !sent.iter().any(|request| request.contains(name.as_str())),
            "{name} was sent again: {sent:?}"
        );
    }
    assert_eq!(remote.users_named("late").await.len(), 1);
    for name in &names {
        assert_eq!(remote.users_named(name).await.len(), 1, "{name}");
    }
    // The moved directory still finds users by name.
    assert_eq!(
        moved
            .find_users(UserKey::UserName, "USER07")
            .await
            .unwrap()
            .len(),
        1
    );
    drop(moved);
    tokio::task::spawn_blocking(move || drop((target, database)))
        .await
        .unwrap();
}
