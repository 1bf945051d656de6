//! What an operator does to one application on demand
//! ([`scimlink::engine::operations`]), against the simulated application:
//! the rules every front end gets from the one door — an application that
//! sends must be active; a new token is tested before it is kept; a move to
//! another origin needs the token for it; an account is released only when
//! its user is out of scope — each leaving nothing sent or changed when it
//! refuses.

use scimlink::engine::connections::Clients;
use scimlink::engine::groups::USER_RELEASE;
use scimlink::engine::lifecycle::{ACTIVATE, REAUTH, UPDATE};
use scimlink::engine::operations::{OperationError, Operations};
use scimlink::engine::provision::{CREATE, Synced};
use scimlink::sandbox::sp::Quirks;
use scimlink::store::{AppState, AppUpdate, Outcome, Secret};

use crate::world::{Remote, World, log_mark, member_ids, sent_since};

fn operations(world: &World, connectors: &[&str]) -> Operations {
    Operations::new(
        world.handle.clone(),
        Some(world.serving(connectors)),
        Clients::new(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_application_is_refused_and_sent_nothing() {
    let world = World::new().await;
    let ada = world.user("ada");
    let staff = world.group("staff", &[&ada]);
    world.app("crm", "custom-scim", &[&staff]);
    let operations = operations(&world, &["custom-scim"]);
    let mark = log_mark(&world.sp);

    for refused in [
        operations.provision_user("crm", "ada").await.map(drop),
        operations.provision_group("crm", "staff").await.map(drop),
        operations.reconcile("crm").await.map(drop),
        operations.importable("crm").await.map(drop),
    ] {
        assert!(
            matches!(&refused, Err(OperationError::NotActive { app, state }) if app == "crm" && *state == "inactive"),
            "{refused:?}"
        );
    }
    assert!(sent_since(&world.sp, mark).is_empty());
    assert!(matches!(
        operations.provision_user("nowhere", "ada").await,
        Err(OperationError::NoSuchApp(name)) if name == "nowhere"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_tests_the_connection_and_provisioning_now_joins_the_groups() {
    let world = World::new().await;
    let ada = world.user("ada");
    let staff = world.group("staff", &[&ada]);
    let app = world.app("crm", "custom-scim", &[&staff]);
    world.manage_groups(&app.id, true);
    let operations = operations(&world, &["custom-scim"]);

    let active = operations.activate("crm").await.unwrap();
    assert_eq!(active.state, AppState::Active);
    assert_eq!(active.capabilities["source"], "ServiceProviderConfig");
    let activated = world.events_of(&app.id, &app.id, ACTIVATE);
    assert_eq!(activated.len(), 1);
    assert_eq!(activated[0].outcome, Outcome::Success);

    let done = operations.provision_user("crm", "ada").await.unwrap();
    assert_eq!(done.user_id, ada);
    assert_eq!(done.result, Synced::Created);
    assert!(
        done.events.iter().any(|event| event.operation == CREATE),
        "{:?}",
        done.events
    );
    let remote = Remote::of(&world.sp, "crm");
    let account = world.remote_id(&app.id, "user", &ada).unwrap();
    assert!(remote.user(&account).await.is_some());
    // The new account joined its bound group in the application at once.
    let group = world.remote_id(&app.id, "group", &staff).unwrap();
    let pushed = remote.group(&group).await.unwrap();
    assert_eq!(member_ids(&pushed), vec![account]);

    // Asked again, nothing is sent.
    let mark = log_mark(&world.sp);
    let again = operations.provision_user("crm", &ada).await.unwrap();
    assert_eq!(again.result, Synced::Unchanged);
    assert!(
        sent_since(&world.sp, mark)
            .iter()
            .all(|request| request.starts_with("GET")),
        "{:?}",
        sent_since(&world.sp, mark)
    );

    // Deactivated, it is sent nothing more.
    let inactive = operations.deactivate("crm").await.unwrap();
    assert_eq!(inactive.state, AppState::Inactive);
    assert!(matches!(
        operations.provision_user("crm", "ada").await,
        Err(OperationError::NotActive { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_not_kept() {
    let world = World::with_quirks(Quirks {
        tokens: vec!["app-token".into()],
        ..Quirks::default()
    })
    .await;
    let ada = world.user("ada");
    let staff = world.group("staff", &[&ada]);
    let app = world.app("crm", "custom-scim", &[&staff]);
    let operations = operations(&world, &["custom-scim"]);
    operations.activate("crm").await.unwrap();

    let refused = operations
        .rotate_token("crm", Secret::new("not-the-token".to_string()))
        .await;
    assert!(
        matches!(&refused, Err(OperationError::ConnectionFailed { summary, .. }) if summary.contains("refused the token")),
        "{refused:?}"
    );
    let reauth = world.events_of(&app.id, &app.id, REAUTH);
    assert_eq!(reauth.len(), 1);
    assert_eq!(reauth[0].outcome, Outcome::Failure);
    // The old token still serves.
    let done = operations.provision_user("crm", "ada").await.unwrap();
    assert_eq!(done.result, Synced::Created);

    let kept = operations
        .rotate_token("crm", Secret::new("app-token".to_string()))
        .await
        .unwrap();
    assert!(kept.version > app.version);
    assert_eq!(
        world.events_of(&app.id, &app.id, REAUTH)[0].outcome,
        Outcome::Success
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_another_origin_needs_the_token_for_it() {
    let world = World::new().await;
    let app = world.app("crm", "custom-scim", &[]);
    let operations = operations(&world, &["custom-scim"]);
    let elsewhere = "https://scim.elsewhere.example/v2";
    let moving = || AppUpdate {
        base_url: Some(elsewhere.to_string()),
        ..AppUpdate::default()
    };

    let refused = operations.update(&app, moving()).await;
    assert!(
        matches!(&refused, Err(OperationError::MovedWithoutToken { to, .. }) if to == "https://scim.elsewhere.example"),
        "{refused:?}"
    );
    let unchanged = world.app_record(&app.id);
    assert_eq!(unchanged.base_url, app.base_url);
    assert_eq!(unchanged.version, app.version);
    assert!(world.events_of(&app.id, &app.id, UPDATE).is_empty());

    // The same origin needs no token; another with one moves.
    let same_origin = format!("{}/", app.base_url.trim_end_matches('/'));
    let relabelled = operations
        .update(
            &app,
            AppUpdate {
                label: Some("The CRM".into()),
                base_url: Some(same_origin),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(relabelled.label, "The CRM");
    let moved = operations
        .update(
            &relabelled,
            AppUpdate {
                token: Some(Secret::new("token-for-elsewhere".to_string())),
                ..moving()
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.base_url, elsewhere);
    let updates = world.events_of(&app.id, &app.id, UPDATE);
    assert_eq!(updates.len(), 2);
    let summaries: Vec<&str> = updates.iter().map(|event| event.summary.as_str()).collect();
    assert!(
        summaries.contains(&"changed: label, base URL"),
        "{summaries:?}"
    );
    let move_note = format!(
        "changed: base URL, token; origin http://{} → https://scim.elsewhere.example",
        world.sp.address()
    );
    assert!(summaries.contains(&move_note.as_str()), "{summaries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_released_only_once_its_user_is_out_of_scope() {
    let world = World::new().await;
    let ada = world.user("ada");
    let staff = world.group("staff", &[&ada]);
    let app = world.app("crm", "custom-scim", &[&staff]);
    let operations = operations(&world, &["custom-scim"]);
    operations.activate("crm").await.unwrap();
    operations.provision_user("crm", "ada").await.unwrap();
    let account = world.remote_id(&app.id, "user", &ada).unwrap();

    let refused = operations.release("crm", "ada").await;
    assert!(
        matches!(&refused, Err(OperationError::InScope { remote_id, .. }) if *remote_id == account),
        "{refused:?}"
    );
    assert_eq!(
        world.remote_id(&app.id, "user", &ada),
        Some(account.clone())
    );

    world.remove_members(&staff, &[&ada]);
    let mark = log_mark(&world.sp);
    let released = operations.release("crm", "ada").await.unwrap();
    assert_eq!(
        (released.user_id.as_str(), released.remote_id.as_str()),
        (ada.as_str(), account.as_str())
    );
    assert_eq!(world.remote_id(&app.id, "user", &ada), None);
    assert_eq!(world.events_of(&app.id, &ada, USER_RELEASE).len(), 1);
    // The account is left as it is: nothing was sent.
    assert!(sent_since(&world.sp, mark).is_empty());
    let remote = Remote::of(&world.sp, "crm");
    assert_eq!(remote.user(&account).await.unwrap()["active"], true);

    assert!(matches!(
        operations.release("crm", "ada").await,
        Err(OperationError::NotLinked { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_whose_connector_is_not_served_is_refused() {
    let world = World::new().await;
    world.app("crm", "coda", &[]);
    let operations = operations(&world, &["custom-scim"]);
    assert!(matches!(
        operations.plan("crm").await,
        Err(OperationError::ConnectorNotServed(connector)) if connector == "coda"
    ));
}
