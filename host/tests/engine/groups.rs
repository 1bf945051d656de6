//! Groups pushed to an application, and the connector's group-management
//! rules ([`scimlink::engine::groups`]), one call at a time against the
//! simulated application: what `sync_group` sends and what the ledger keeps;
//! what `apply_group_event` does when a member is removed, a group is
//! unbound or deleted, or group management is turned off — decided by the
//! connector, carried out on the scope as it is when the object's lock is
//! held.

use std::collections::HashMap;
use std::time::Duration;

use scimlink::engine::groups::{
    GROUP_CREATE, GROUP_DELETE, GROUP_UPDATE, GroupSynced, apply_group_event, sync_group,
    sync_groups,
};
use scimlink::engine::locks::lock_object;
use scimlink::engine::provision::{DELETE, DEPROVISION, Synced, sync_user, sync_users};
use scimlink::runtime::contract::GroupEvent;
use scimlink::store::{Event, Outcome};
use serde_json::json;

use crate::world::{Connected, Remote, World, log_mark, member_ids, sent_since, sorted};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Creates or takes over the accounts of `users` in the application.
async fn provision(world: &World, app: &Connected, users: &[&str]) {
    for user in users {
        let synced = sync_user(&app.target(world), user).await.unwrap();
        assert!(
            matches!(synced, Synced::Created | Synced::TakenOver),
            "{synced:?}"
        );
    }
}

/// The rules of `events`, each of which must have succeeded, sorted.
fn rules(events: &[Event]) -> Vec<&str> {
    let mut rules: Vec<&str> = events
        .iter()
        .map(|event| {
            assert_eq!(event.outcome, Outcome::Success, "{event:?}");
            event.rule.as_deref().unwrap_or_default()
        })
        .collect();
    rules.sort();
    rules
}

/// The application `crm` (custom-scim: offboarding deactivates) with
/// `groups` bound and group management on.
fn crm_managing(world: &World, groups: &[&str]) -> Connected {
    let app = world.app("crm", "custom-scim", groups);
    world.connect(
        world.manage_groups(&app.id, true),
        world.bundled("custom-scim"),
    )
}

#[tokio::test]
async fn a_bound_group_is_created_with_the_accounts_of_its_members_and_sent_once() {
    let world = World::new().await;
    let (ada, grace) = (world.user("ada"), world.user("grace"));
    let engineering = world.group("Engineering", &[&ada, &grace]);
    let crm = crm_managing(&world, &[&engineering]);
    let app = &crm.app.id;
    let remote = Remote::of(&world.sp, "crm");
    provision(&world, &crm, &[&ada, &grace]).await;

    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Created);
    let pushed = remote.groups_named("Engineering").await;
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let accounts = [
        world.remote_id(app, "user", &ada).unwrap(),
        world.remote_id(app, "user", &grace).unwrap(),
    ];
    assert_eq!(member_ids(&pushed[0]), sorted(&accounts));
    assert_eq!(
        world.remote_id(app, "group", &engineering).as_deref(),
        pushed[0]["id"].as_str()
    );
    assert_eq!(
        rules(&world.events_of(app, &engineering, GROUP_CREATE)),
        ["created"]
    );

    // Nothing changed: nothing is sent.
    let mark = log_mark(&world.sp);
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Unchanged);
    assert_eq!(sent_since(&world.sp, mark), Vec::<String>::new());

    // A member without an account joins the group once they have one.
    let bob = world.user("bob");
    world.add_member(&engineering, &bob);
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Unchanged);
    provision(&world, &crm, &[&bob]).await;
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Updated);
    let bobs = world.remote_id(app, "user", &bob).unwrap();
    let group = remote
        .group(pushed[0]["id"].as_str().unwrap())
        .await
        .unwrap();
    assert!(member_ids(&group).contains(&bobs), "{group}");
}

/// Groups synced together are locked and read in chunks; more groups than
/// a chunk holds, neighbours sharing members, and among them one named
/// twice, one empty, one not bound and one deleted: each ends as its own
/// sync would, with its own members.
#[tokio::test]
async fn groups_synced_together_each_end_as_their_own_sync_would() {
    let world = World::new().await;
    let everyone = world.user("everyone");
    let users: Vec<String> = (0..45)
        .map(|index| world.user(&format!("user{index:02}")))
        .collect();
    let teams: Vec<String> = (0..44)
        .map(|index| {
            let members = [&users[index], &users[index + 1], &everyone];
            world.group(&format!("Team {index:02}"), &members.map(String::as_str))
        })
        .collect();
    let empty = world.group("Empty", &[]);
    let unbound = world.group("Unbound", &[&everyone]);
    let deleted = world.group("Deleted", &[&everyone]);
    let mut bound: Vec<&str> = teams.iter().map(String::as_str).collect();
    bound.extend([empty.as_str(), deleted.as_str()]);
    let crm = crm_managing(&world, &bound);
    world.delete_group(&deleted);
    let app = &crm.app.id;
    let remote = Remote::of(&world.sp, "crm");
    let mut accounts: Vec<&str> = users.iter().map(String::as_str).collect();
    accounts.push(&everyone);
    provision(&world, &crm, &accounts).await;

    let mut named = teams.clone();
    named.extend([
        empty.clone(),
        unbound.clone(),
        deleted.clone(),
        teams[3].clone(),
    ]);
    let synced = sync_groups(&crm.target(&world), &named, 4).await;
    assert_eq!(
        synced.len(),
        named.len() - 1,
        "a group named twice is synced once"
    );
    let outcomes: HashMap<&str, GroupSynced> = synced
        .iter()
        .map(|(group, synced)| (group.as_str(), *synced.as_ref().unwrap()))
        .collect();
    for team in &teams {
        assert_eq!(outcomes[team.as_str()], GroupSynced::Created, "{team}");
    }
    assert_eq!(outcomes[empty.as_str()], GroupSynced::Empty);
    assert_eq!(outcomes[unbound.as_str()], GroupSynced::NotManaged);
    assert_eq!(outcomes[deleted.as_str()], GroupSynced::NotManaged);

    let account = |user: &str| world.remote_id(app, "user", user).unwrap();
    for (index, team) in teams.iter().enumerate() {
        let pushed = remote
            .group(&world.remote_id(app, "group", team).unwrap())
            .await
            .unwrap();
        let wanted = [
            account(&users[index]),
            account(&users[index + 1]),
            account(&everyone),
        ];
        assert_eq!(member_ids(&pushed), sorted(&wanted), "{pushed}");
    }
    for name in ["Empty", "Unbound", "Deleted"] {
        assert_eq!(
            remote.groups_named(name).await,
            Vec::<serde_json::Value>::new()
        );
    }

    // Nothing changed: nothing is sent.
    let mark = log_mark(&world.sp);
    let synced = sync_groups(&crm.target(&world), &teams, 4).await;
    assert_eq!(synced.len(), teams.len());
    for (team, synced) in synced {
        assert_eq!(synced.unwrap(), GroupSynced::Unchanged, "{team}");
    }
    assert_eq!(sent_since(&world.sp, mark), Vec::<String>::new());
}

/// Groups too large to be read with the others of their chunk (past the
/// members' budget of a read, 1,024) are read each on its own and synced a
/// few at a time: each still ends with all its members, and none waits
/// forever for its turn.
#[tokio::test]
async fn groups_too_large_to_be_read_together_each_end_with_all_their_members() {
    let world = World::new().await;
    let users: Vec<String> = (0..600)
        .map(|index| world.user(&format!("member{index:03}")))
        .collect();
    let members: Vec<&str> = users.iter().map(String::as_str).collect();
    // Eight groups of the same 600 users: a chunk's read takes the first
    // two (1,200 members), and the six after it are read on their own.
    let large: Vec<String> = (0..8)
        .map(|index| world.group(&format!("Large {index}"), &members))
        .collect();
    let bound: Vec<&str> = large.iter().map(String::as_str).collect();
    let crm = crm_managing(&world, &bound);
    let app = &crm.app.id;
    let provisioned = sync_users(&crm.target(&world), &users, 16).await;
    assert!(
        provisioned
            .iter()
            .all(|(_, synced)| matches!(synced, Ok(Synced::Created))),
        "every member has an account"
    );

    let synced = tokio::time::timeout(
        Duration::from_secs(120),
        sync_groups(&crm.target(&world), &large, 8),
    )
    .await
    .expect("every group had its turn");
    assert_eq!(synced.len(), large.len());
    for (group, synced) in synced {
        assert_eq!(synced.unwrap(), GroupSynced::Created, "{group}");
    }
    let accounts: Vec<String> = users
        .iter()
        .map(|user| world.remote_id(app, "user", user).unwrap())
        .collect();
    let remote = Remote::of(&world.sp, "crm");
    for group in &large {
        let pushed = remote
            .group(&world.remote_id(app, "group", group).unwrap())
            .await
            .unwrap();
        assert_eq!(member_ids(&pushed), sorted(&accounts), "{group}");
    }
}

#[tokio::test]
async fn a_group_is_pushed_only_while_managed_bound_and_not_empty() {
    let world = World::new().await;
    let ada = world.user("ada");
    let engineering = world.group("Engineering", &[&ada]);
    let empty = world.group("Empty", &[]);
    let unbound = world.group("Sales", &[&ada]);
    let app = world.app("crm", "custom-scim", &[&engineering, &empty]);
    let mut crm = world.connect(app, world.bundled("custom-scim"));
    provision(&world, &crm, &[&ada]).await;
    let mark = log_mark(&world.sp);

    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::NotManaged, "group management is off");
    crm.app = world.manage_groups(&crm.app.id, true);
    let synced = sync_group(&crm.target(&world), &empty).await.unwrap();
    assert_eq!(synced, GroupSynced::Empty);
    let synced = sync_group(&crm.target(&world), &unbound).await.unwrap();
    assert_eq!(synced, GroupSynced::NotManaged, "Sales is not bound");

    assert_eq!(sent_since(&world.sp, mark), Vec::<String>::new());
    for group in [&engineering, &empty, &unbound] {
        assert_eq!(world.remote_id(&crm.app.id, "group", group), None);
    }
}

#[tokio::test]
async fn an_existing_group_of_the_same_name_is_taken_over_and_its_own_members_stay() {
    let world = World::new().await;
    let remote = Remote::of(&world.sp, "crm");
    // The application's own account, in its own group of the same name.
    let outsider = remote
        .create(
            "/Users",
            json!({ "schemas": [USER_SCHEMA], "userName": "outsider" }),
        )
        .await;
    let existing = remote
        .create(
            "/Groups",
            json!({ "schemas": [GROUP_SCHEMA], "displayName": "Design",
                    "members": [{ "value": outsider }] }),
        )
        .await;
    let (carol, dan) = (world.user("carol"), world.user("dan"));
    let design = world.group("Design", &[&carol, &dan]);
    let crm = crm_managing(&world, &[&design]);
    let app = &crm.app.id;
    provision(&world, &crm, &[&carol, &dan]).await;
    let (carols, dans) = (
        world.remote_id(app, "user", &carol).unwrap(),
        world.remote_id(app, "user", &dan).unwrap(),
    );

    let synced = sync_group(&crm.target(&world), &design).await.unwrap();
    assert_eq!(synced, GroupSynced::TakenOver);
    assert_eq!(
        remote.groups_named("Design").await.len(),
        1,
        "not duplicated"
    );
    assert_eq!(
        world.remote_id(app, "group", &design),
        Some(existing.clone())
    );
    let group = remote.group(&existing).await.unwrap();
    assert_eq!(member_ids(&group), sorted(&[&outsider, &carols, &dans]));
    assert_eq!(
        rules(&world.events_of(app, &design, GROUP_CREATE)),
        ["takeover: displayName eq \"Design\""]
    );

    // The host removes only the members it manages.
    world.remove_members(&design, &[&carol]);
    let synced = sync_group(&crm.target(&world), &design).await.unwrap();
    assert_eq!(synced, GroupSynced::Updated);
    let group = remote.group(&existing).await.unwrap();
    assert_eq!(member_ids(&group), sorted(&[&outsider, &dans]));
}

#[tokio::test]
async fn membership_goes_in_chunks_of_the_connectors_size() {
    let world = World::new().await;
    let users = [world.user("ada"), world.user("grace"), world.user("alan")];
    let members: Vec<&str> = users.iter().map(String::as_str).collect();
    let engineering = world.group("Engineering", &members);
    // One member per PATCH, says this connector's manifest.
    let app = world.app("crm", "deleting", &[&engineering]);
    let crm = world.connect(
        world.manage_groups(&app.id, true),
        world.fixture("deleting"),
    );
    provision(&world, &crm, &members).await;
    let mark = log_mark(&world.sp);

    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Created);
    let remote_group = world.remote_id(&app.id, "group", &engineering).unwrap();
    let patches: Vec<_> = world
        .sp
        .requests()
        .into_iter()
        .filter(|request| request.seq >= mark && request.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 3, "{:?}", sent_since(&world.sp, mark));
    for patch in &patches {
        assert!(patch.path.ends_with(&remote_group), "{}", patch.path);
        let body = patch.request.as_ref().unwrap();
        let added = body["Operations"][0]["value"].as_array().unwrap();
        assert_eq!(added.len(), 1, "{body}");
    }
    let group = Remote::of(&world.sp, "crm")
        .group(&remote_group)
        .await
        .unwrap();
    assert_eq!(member_ids(&group).len(), 3, "{group}");
    // One event tells of all the chunks, written with the last one's link.
    let updates = world.events_of(&app.id, &engineering, GROUP_UPDATE);
    assert_eq!(rules(&updates), ["membership"]);
    assert!(
        updates[0]
            .summary
            .contains("3 member(s) added, 0 removed for Engineering (chunks of 1)"),
        "{:?}",
        updates[0]
    );
    assert!(
        updates[0]
            .http_status
            .is_some_and(|status| (200..300).contains(&status)),
        "{:?}",
        updates[0]
    );
}

#[tokio::test]
async fn a_member_removed_from_a_bound_group_is_offboarded_unless_still_in_scope() {
    let world = World::new().await;
    let (ada, grace, carol) = (world.user("ada"), world.user("grace"), world.user("carol"));
    let engineering = world.group("Engineering", &[&ada, &grace, &carol]);
    let operations = world.group("Operations", &[&grace]);
    let crm = crm_managing(&world, &[&engineering, &operations]);
    let app = &crm.app.id;
    world.assign(app, &carol);
    let remote = Remote::of(&world.sp, "crm");
    provision(&world, &crm, &[&ada, &grace, &carol]).await;
    for group in [&engineering, &operations] {
        let synced = sync_group(&crm.target(&world), group).await.unwrap();
        assert_eq!(synced, GroupSynced::Created);
    }

    world.remove_members(&engineering, &[&ada, &grace, &carol]);
    let removed = [ada.clone(), grace.clone(), carol.clone()];
    apply_group_event(
        &crm.target(&world),
        GroupEvent::UserRemovedFromGroup,
        &world.directory_group(&engineering),
        &removed,
    )
    .await
    .unwrap();

    // ada is in no other bound group: the connector's rule deactivates her.
    let adas = world.remote_id(app, "user", &ada).unwrap();
    assert_eq!(remote.user(&adas).await.unwrap()["active"], false);
    assert!(world.is_deactivated(app, &ada));
    assert_eq!(
        rules(&world.events_of(app, &ada, DEPROVISION)),
        ["remove-member-offboard-unless-other-group"]
    );
    // grace is still in Operations, carol is assigned directly: both stay.
    for user in [&grace, &carol] {
        let account = world.remote_id(app, "user", user).unwrap();
        assert_eq!(remote.user(&account).await.unwrap()["active"], true);
        assert!(world.events_of(app, user, DEPROVISION).is_empty());
    }

    // The group follows the directory at its next sync: emptied, kept.
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Updated);
    let remote_group = world.remote_id(app, "group", &engineering).unwrap();
    let group = remote.group(&remote_group).await.unwrap();
    assert_eq!(member_ids(&group), Vec::<String>::new());
}

#[tokio::test]
async fn a_member_removed_is_deleted_when_the_connector_offboards_by_deleting() {
    let world = World::new().await;
    let (ada, grace) = (world.user("ada"), world.user("grace"));
    let engineering = world.group("Engineering", &[&ada, &grace]);
    let app = world.app("crm", "deleting", &[&engineering]);
    let crm = world.connect(app, world.fixture("deleting"));
    let app = &crm.app.id;
    provision(&world, &crm, &[&ada, &grace]).await;
    let adas = world.remote_id(app, "user", &ada).unwrap();

    world.remove_members(&engineering, &[&ada]);
    apply_group_event(
        &crm.target(&world),
        GroupEvent::UserRemovedFromGroup,
        &world.directory_group(&engineering),
        std::slice::from_ref(&ada),
    )
    .await
    .unwrap();

    let remote = Remote::of(&world.sp, "crm");
    assert_eq!(remote.user(&adas).await, None, "deleted in the application");
    assert_eq!(world.remote_id(app, "user", &ada), None, "and forgotten");
    assert_eq!(
        rules(&world.events_of(app, &ada, DELETE)),
        ["offboard-unless-other-group"]
    );
    let graces = world.remote_id(app, "user", &grace).unwrap();
    assert_eq!(remote.user(&graces).await.unwrap()["active"], true);
}

#[tokio::test]
async fn an_unbound_group_is_left_as_it_is_and_members_out_of_scope_are_offboarded() {
    let world = World::new().await;
    let (ada, grace) = (world.user("ada"), world.user("grace"));
    let engineering = world.group("Engineering", &[&ada, &grace]);
    let operations = world.group("Operations", &[&grace]);
    let crm = crm_managing(&world, &[&engineering, &operations]);
    let app = &crm.app.id;
    let remote = Remote::of(&world.sp, "crm");
    provision(&world, &crm, &[&ada, &grace]).await;
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Created);
    let remote_group = world.remote_id(app, "group", &engineering).unwrap();
    let (adas, graces) = (
        world.remote_id(app, "user", &ada).unwrap(),
        world.remote_id(app, "user", &grace).unwrap(),
    );

    world.unbind(app, &engineering);
    let mark = log_mark(&world.sp);
    apply_group_event(
        &crm.target(&world),
        GroupEvent::GroupUnbound,
        &world.directory_group(&engineering),
        &[ada.clone(), grace.clone()],
    )
    .await
    .unwrap();

    // The group is left as it is, and no longer managed.
    let sent = sent_since(&world.sp, mark);
    assert!(
        !sent.iter().any(|request| request.contains("/Groups")),
        "{sent:?}"
    );
    assert_eq!(world.remote_id(app, "group", &engineering), None);
    // (The membership event is the group's first push.)
    assert_eq!(
        rules(&world.events_of(app, &engineering, GROUP_UPDATE)),
        [
            "membership",
            "unbind-leave-group-offboard-unless-other-group"
        ]
    );
    let group = remote.group(&remote_group).await.unwrap();
    assert_eq!(member_ids(&group), sorted(&[&adas, &graces]));
    // ada leaves the application's scope with it; grace stays in it.
    assert_eq!(remote.user(&adas).await.unwrap()["active"], false);
    assert_eq!(remote.user(&graces).await.unwrap()["active"], true);
    assert_eq!(
        rules(&world.events_of(app, &ada, DEPROVISION)),
        ["unbind-leave-group-offboard-unless-other-group"]
    );
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::NotManaged);
}

#[tokio::test]
async fn a_group_bound_again_before_its_unbind_rule_runs_stays_managed() {
    let world = World::new().await;
    let ada = world.user("ada");
    let engineering = world.group("Engineering", &[&ada]);
    let crm = crm_managing(&world, &[&engineering]);
    let app = &crm.app.id;
    provision(&world, &crm, &[&ada]).await;
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Created);

    world.unbind(app, &engineering);
    world.bind(app, &engineering);
    let mark = log_mark(&world.sp);
    apply_group_event(
        &crm.target(&world),
        GroupEvent::GroupUnbound,
        &world.directory_group(&engineering),
        std::slice::from_ref(&ada),
    )
    .await
    .unwrap();

    assert_eq!(sent_since(&world.sp, mark), Vec::<String>::new());
    assert!(world.remote_id(app, "group", &engineering).is_some());
    assert!(!world.is_deactivated(app, &ada));
    assert!(world.events_of(app, &ada, DEPROVISION).is_empty());
}

#[tokio::test]
async fn a_deleted_group_is_deleted_in_the_application_and_its_members_offboarded() {
    let world = World::new().await;
    let (ada, grace) = (world.user("ada"), world.user("grace"));
    let engineering = world.group("Engineering", &[&ada, &grace]);
    let operations = world.group("Operations", &[&grace]);
    let crm = crm_managing(&world, &[&engineering, &operations]);
    let app = &crm.app.id;
    let remote = Remote::of(&world.sp, "crm");
    provision(&world, &crm, &[&ada, &grace]).await;
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Created);
    let remote_group = world.remote_id(app, "group", &engineering).unwrap();

    // The rule is given the group as it was, and its members.
    let deleted = world.directory_group(&engineering);
    world.delete_group(&engineering);
    apply_group_event(
        &crm.target(&world),
        GroupEvent::GroupDeleted,
        &deleted,
        &[ada.clone(), grace.clone()],
    )
    .await
    .unwrap();

    assert_eq!(remote.group(&remote_group).await, None);
    assert_eq!(world.remote_id(app, "group", &engineering), None);
    assert_eq!(
        rules(&world.events_of(app, &engineering, GROUP_DELETE)),
        ["delete-group-offboard-unless-other-group"]
    );
    let adas = world.remote_id(app, "user", &ada).unwrap();
    let graces = world.remote_id(app, "user", &grace).unwrap();
    assert_eq!(remote.user(&adas).await.unwrap()["active"], false);
    assert_eq!(remote.user(&graces).await.unwrap()["active"], true);
}

#[tokio::test]
async fn turning_group_management_off_leaves_groups_and_accounts_as_they_are() {
    let world = World::new().await;
    let ada = world.user("ada");
    let engineering = world.group("Engineering", &[&ada]);
    let mut crm = crm_managing(&world, &[&engineering]);
    let app = crm.app.id.clone();
    provision(&world, &crm, &[&ada]).await;
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::Created);
    let remote_group = world.remote_id(&app, "group", &engineering).unwrap();
    let adas = world.remote_id(&app, "user", &ada).unwrap();

    crm.app = world.manage_groups(&app, false);
    let mark = log_mark(&world.sp);
    apply_group_event(
        &crm.target(&world),
        GroupEvent::GroupManagementDisabled,
        &world.directory_group(&engineering),
        std::slice::from_ref(&ada),
    )
    .await
    .unwrap();

    assert_eq!(sent_since(&world.sp, mark), Vec::<String>::new());
    assert_eq!(world.remote_id(&app, "group", &engineering), None);
    assert_eq!(
        rules(&world.events_of(&app, &engineering, GROUP_UPDATE)),
        ["group-management-disabled-leave-as-is", "membership"]
    );
    assert_eq!(world.remote_id(&app, "user", &ada), Some(adas.clone()));
    let remote = Remote::of(&world.sp, "crm");
    let group = remote.group(&remote_group).await.unwrap();
    assert_eq!(member_ids(&group), vec![adas]);
    let synced = sync_group(&crm.target(&world), &engineering).await.unwrap();
    assert_eq!(synced, GroupSynced::NotManaged);
}

#[tokio::test]
async fn a_rule_does_not_offboard_a_user_who_came_back_while_it_waited() {
    let world = World::new().await;
    let ada = world.user("ada");
    let sales = world.group("Sales", &[&ada]);
    let app = world.activate(&world.app("crm", "custom-scim", &[&sales]).id);
    let crm = world.connect(app, world.bundled("custom-scim"));
    let app = &crm.app.id;
    let target = crm.target(&world);
    assert_eq!(sync_user(&target, &ada).await.unwrap(), Synced::Created);
    let remote = world.remote_id(app, "user", &ada).unwrap();

    // ada leaves the group; the connector's rule for it would deactivate
    // her. While the rule waits for her lock, she is added back.
    world.remove_members(&sales, &[&ada]);
    let held = lock_object(&world.handle, app, "user", &ada).await.unwrap();
    let group = world.directory_group(&sales);
    let removed = [ada.clone()];
    let rule = apply_group_event(&target, GroupEvent::UserRemovedFromGroup, &group, &removed);
    let comes_back = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        world.add_member(&sales, &ada);
        drop(held);
    };
    let (ruled, ()) = tokio::join!(rule, comes_back);
    ruled.unwrap();

    let sent = sent_since(&world.sp, 0);
    let account = Remote::of(&world.sp, "crm").user(&remote).await.unwrap();
    assert_eq!(account["active"], true, "{account}");
    assert!(!world.is_deactivated(app, &ada));
    assert!(
        !sent.iter().any(|request| request.starts_with("PATCH")),
        "nothing is sent for a user back in scope: {sent:?}"
    );
}
