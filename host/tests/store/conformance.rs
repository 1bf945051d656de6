//! What every store backend must do, written against the [`Store`] trait
//! alone: a backend's test module runs all of it with
//! [`store_conformance!`]. Each case starts from an empty store.
//!
//! The invariants it holds a backend to are the ones `scimlink::store`
//! documents: one transaction per write with the change it appends (and
//! which write appends which change), leases, membership integrity, scope
//! through nested groups, case-folded uniqueness, versions, one link per
//! remote account, dead letters cleared by success, the ledger and its
//! event written together, the guard's counting and holds, events.

use scimlink::store::{
    AppState, AppUpdate, AppWrite, ChangeKind, DeadLetter, Event, EventQuery, GroupKey, GroupWrite,
    GuardStep, HeldObject, HeldState, ImportBatch, ImportGroup, LedgerChange, LedgerEntry,
    LedgerRecord, Member, MemberKind, ObjectKey, OffboardAction, Outcome, Page, PasswordSent,
    Secret, Store, StoreError, Timestamp, UserKey, UserWrite, group_id_by_id_or_name,
};
use serde_json::{Map, json};

pub fn user(name: &str) -> UserWrite {
    let mut attributes = Map::new();
    attributes.insert("userName".into(), json!(name));
    UserWrite {
        password: None,
        user_name: name.into(),
        external_id: None,
        active: true,
        attributes,
    }
}

/// Creates a user of each name: their ids, in order.
fn create_users(store: &dyn Store, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| store.create_user(user(name)).unwrap().id)
        .collect()
}

fn group(name: &str, members: Option<Vec<Member>>) -> GroupWrite {
    let mut attributes = Map::new();
    attributes.insert("displayName".into(), json!(name));
    GroupWrite {
        display_name: name.into(),
        external_id: None,
        attributes,
        members,
    }
}

fn user_member(id: &str) -> Member {
    Member {
        id: id.into(),
        kind: MemberKind::User,
    }
}

fn group_member(id: &str) -> Member {
    Member {
        id: id.into(),
        kind: MemberKind::Group,
    }
}

pub fn app(store: &dyn Store, name: &str) -> String {
    store
        .create_app(AppWrite {
            name: name.into(),
            label: name.into(),
            connector: "custom-scim".into(),
            base_url: "https://app.example/scim/v2".into(),
            token: Secret::new(format!("token-of-{name}")),
            manage_groups: true,
            settings: vec![],
            pacing: Default::default(),
            guard: Default::default(),
            passwords: Default::default(),
        })
        .unwrap()
        .id
}

pub fn link(app_id: &str, object: &str, remote: &str) -> LedgerEntry {
    LedgerEntry {
        app_id: app_id.into(),
        object_kind: "user".into(),
        object_id: object.into(),
        remote_id: remote.into(),
        doc_hash: "h".into(),
        document: None,
        updated: Timestamp::now(),
    }
}

pub fn every_change_is_recorded_in_the_outbox_in_order(store: &dyn Store) {
    let ada = store.create_user(user("ada")).unwrap();
    let eng = store.create_group(group("eng", None)).unwrap();
    store
        .change_members(&eng.id, &[user_member(&ada.id)], &[])
        .unwrap();
    store.delete_user(&ada.id, None).unwrap();
    let changes = store.changes_after(0, 100).unwrap();
    let seen: Vec<String> = changes
        .iter()
        .map(|c| {
            let (entity, action, _) = c.kind.to_row();
            format!("{entity}.{action}")
        })
        .collect();
    assert_eq!(
        seen,
        [
            "user.created",
            "group.created",
            "group.members-changed",
            "user.deleted"
        ]
    );
    assert_eq!(
        changes[2].kind,
        ChangeKind::MembersChanged {
            added: vec![ada.id.clone()],
            removed: vec![]
        }
    );
    assert_eq!(
        changes[3].kind,
        ChangeKind::UserDeleted {
            user_name: "ada".into(),
            groups: vec![eng.id.clone()]
        },
        "a deleted user's groups travel with the change"
    );
    assert_eq!(store.pending_changes().unwrap(), 4);
}

pub fn a_failed_change_leaves_neither_data_nor_outbox_record(store: &dyn Store) {
    store.create_user(user("ada")).unwrap();
    let before = store.pending_changes().unwrap();
    let error = store.create_user(user("ADA")).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                field: "userName",
                ..
            }
        ),
        "{error}"
    );
    let error = store
        .create_group(group("eng", Some(vec![user_member("missing")])))
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidMembership(_)), "{error}");
    assert!(
        store
            .find_groups(scimlink::store::GroupKey::DisplayName, "eng")
            .unwrap()
            .is_empty()
    );
    let error = store
        .import(ImportBatch {
            users: vec![user("bob"), user("carol")],
            groups: vec![ImportGroup {
                display_name: "team".into(),
                member_user_names: vec!["bob".into(), "nobody".into()],
            }],
        })
        .unwrap_err();
    assert!(error.to_string().contains("nobody"), "{error}");
    assert!(
        store
            .find_users(UserKey::UserName, "bob")
            .unwrap()
            .is_empty(),
        "the import was all or nothing"
    );
    assert_eq!(store.pending_changes().unwrap(), before);
}

/// An application made active, for the outbox cases, its first sync
/// (the pair its activation hands out) done with.
fn active_app(store: &dyn Store, name: &str) -> String {
    let id = app(store, name);
    store
        .update_app(
            &id,
            AppUpdate {
                state: Some(AppState::Active),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    while store.dispatch_changes(100).unwrap() > 0 {}
    let first_sync = store.claim_pairs("setup", &id, 100, 60).unwrap();
    assert_eq!(
        first_sync.len(),
        1,
        "the activation is the application's own"
    );
    let done: Vec<scimlink::store::ChangeProgress> = first_sync
        .into_iter()
        .map(|(_, pair)| scimlink::store::ChangeProgress { done: true, ..pair })
        .collect();
    store.settle_pairs("setup", &done).unwrap();
    id
}

/// Hands out every change so far; the seqs of the users created.
fn dispatched_users(store: &dyn Store, names: &[&str]) -> Vec<i64> {
    let seqs = names
        .iter()
        .map(|name| {
            store.create_user(user(name)).unwrap();
            store.changes_after(0, 1000).unwrap().last().unwrap().seq
        })
        .collect();
    while store.dispatch_changes(100).unwrap() > 0 {}
    seqs
}

/// A change becomes one pair per application it concerns; one that
/// concerns none is done at once; each is handed out once.
pub fn changes_are_handed_out_once_as_one_pair_per_application(store: &dyn Store) {
    let crm = active_app(store, "crm");
    let hr = active_app(store, "hr");
    let idle = app(store, "idle");
    // An application's own settings concern no application.
    store
        .update_app(
            &idle,
            AppUpdate {
                label: Some("Idle".into()),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(store.dispatch_changes(100).unwrap(), 2);
    assert_eq!(store.pending_changes().unwrap(), 0);

    let ada = store.create_user(user("ada")).unwrap();
    store.assign(&crm, &ada.id).unwrap();
    assert_eq!(store.dispatch_changes(100).unwrap(), 2);
    assert_eq!(store.dispatch_changes(100).unwrap(), 0, "each change once");
    let changes = store.changes_after(0, 1000).unwrap();
    let created = changes[changes.len() - 2].seq;
    let assigned = changes[changes.len() - 1].seq;
    let pairs = |seq: i64| -> Vec<String> {
        store
            .change_progress(&[seq])
            .unwrap()
            .into_iter()
            .map(|pair| pair.app_id)
            .collect()
    };
    let mut every_active = vec![crm.clone(), hr.clone()];
    every_active.sort();
    assert_eq!(
        pairs(created),
        every_active,
        "a directory change: every active one"
    );
    assert_eq!(
        pairs(assigned),
        std::slice::from_ref(&crm),
        "an assignment: its application"
    );
    assert!(!pairs(created).contains(&idle));
    assert_eq!(store.pending_changes().unwrap(), 2);
}

/// Each application's pairs are claimed in change order, by one consumer
/// at a time, and only when due; a lease that ran out is claimed again.
pub fn pairs_are_claimed_in_order_by_one_consumer_at_a_time(store: &dyn Store) {
    let crm = active_app(store, "crm");
    let hr = active_app(store, "hr");
    let seqs = dispatched_users(store, &["ada", "bob", "cy"]);
    let first = store.claim_pairs("a", &crm, 2, 60).unwrap();
    let claimed: Vec<i64> = first.iter().map(|(change, _)| change.seq).collect();
    assert_eq!(claimed, seqs[..2], "in change order");
    assert!(first.iter().all(|(change, pair)| pair.seq == change.seq
        && pair.app_id == crm
        && !pair.done
        && pair.attempts == 0));
    let second = store.claim_pairs("b", &crm, 10, 60).unwrap();
    let claimed: Vec<i64> = second.iter().map(|(change, _)| change.seq).collect();
    assert_eq!(claimed, seqs[2..], "a leased pair is not handed out twice");
    // Another application's pairs are its own.
    assert_eq!(store.claim_pairs("b", &hr, 10, 60).unwrap().len(), 3);

    // A lease that runs out returns the pair to the queue.
    assert!(store.claim_pairs("c", &crm, 10, 60).unwrap().is_empty());
    store.renew_pairs("a", &crm, &seqs[..2], 0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = store.claim_pairs("c", &crm, 10, 60).unwrap();
    let claimed: Vec<i64> = again.iter().map(|(change, _)| change.seq).collect();
    assert_eq!(claimed, seqs[..2]);
}

pub fn membership_never_forms_a_cycle(store: &dyn Store) {
    let a = store.create_group(group("a", None)).unwrap();
    let b = store
        .create_group(group("b", Some(vec![group_member(&a.id)])))
        .unwrap();
    let c = store
        .create_group(group("c", Some(vec![group_member(&b.id)])))
        .unwrap();
    for (outer, inner) in [(&a.id, &c.id), (&a.id, &a.id), (&b.id, &c.id)] {
        let error = store
            .change_members(outer, &[group_member(inner)], &[])
            .unwrap_err();
        assert!(error.to_string().contains("contain itself"), "{error}");
    }
}

pub fn the_scope_and_its_accounts_are_counted_in_the_store(store: &dyn Store) {
    use scimlink::store::ScopeTally;
    let users = create_users(store, &["ada", "bob", "carol", "dave"]);
    let inner = store
        .create_group(group("inner", Some(vec![user_member(&users[0])])))
        .unwrap();
    let outer = store
        .create_group(group(
            "outer",
            Some(vec![group_member(&inner.id), user_member(&users[1])]),
        ))
        .unwrap();
    let crm = app(store, "crm");
    assert_eq!(store.scope_tally(&crm).unwrap(), ScopeTally::default());
    store.bind(&crm, &outer.id).unwrap();
    store.assign(&crm, &users[2]).unwrap();
    // ada (through inner), bob and carol are in scope; dave is not, but
    // keeps a deactivated account from before.
    let put = |object: &str, remote: &str, kind: &str, doc_hash: &str| {
        let mut entry = link(&crm, object, remote);
        entry.object_kind = kind.into();
        entry.doc_hash = doc_hash.into();
        store
            .record_with_ledger(LedgerChange::Put(&entry), event(&crm, "linked"))
            .unwrap();
    };
    put(&users[0], "r-ada", "user", "h");
    put(&users[3], "r-dave", "user", "deactivated");
    put(&outer.id, "r-outer", "group", "h");
    assert_eq!(
        store.scope_tally(&crm).unwrap(),
        ScopeTally {
            users_in_scope: 3,
            users_linked: 1,
            accounts: 2,
            accounts_deactivated: 1,
            groups: 1,
        }
    );
    assert_eq!(
        store.scope_tally(&crm).unwrap().users_in_scope,
        store.users_in_scope(&crm).unwrap().len() as u64
    );
}

/// Asked of many users at once, scope answers for each as it does for
/// one: through groups nested two deep, in a bound group and an unbound
/// one, assigned directly, in no group, and unknown; the users read at
/// once are those that exist.
pub fn scope_and_users_read_for_many_answer_as_for_each(store: &dyn Store) {
    let users = create_users(store, &["ada", "bob", "carol", "dave", "erin", "frank"]);
    let deepest = store
        .create_group(group("deepest", Some(vec![user_member(&users[0])])))
        .unwrap();
    let inner = store
        .create_group(group(
            "inner",
            Some(vec![group_member(&deepest.id), user_member(&users[1])]),
        ))
        .unwrap();
    let outer = store
        .create_group(group(
            "outer",
            Some(vec![group_member(&inner.id), user_member(&users[2])]),
        ))
        .unwrap();
    store
        .create_group(group(
            "other",
            Some(vec![user_member(&users[3]), user_member(&users[2])]),
        ))
        .unwrap();
    let crm = app(store, "crm");
    let mut asked = users.clone();
    asked.push("nobody".into());
    let among = |store: &dyn Store| {
        let mut in_scope = store.users_in_scope_among(&crm, &asked).unwrap();
        in_scope.sort();
        in_scope
    };
    let each = |store: &dyn Store| {
        let mut in_scope: Vec<String> = asked
            .iter()
            .filter(|id| store.user_in_scope(&crm, id).unwrap())
            .cloned()
            .collect();
        in_scope.sort();
        in_scope
    };
    assert!(among(store).is_empty());
    store.bind("crm", &outer.id).unwrap();
    store.assign("crm", &users[4]).unwrap();
    let mut expected = vec![
        users[0].clone(),
        users[1].clone(),
        users[2].clone(),
        users[4].clone(),
    ];
    expected.sort();
    assert_eq!(among(store), expected);
    assert_eq!(each(store), expected);
    // Bound twice over (the inner group too): each user still once.
    store.bind("crm", &inner.id).unwrap();
    assert_eq!(among(store), expected);
    store.unbind("crm", &outer.id).unwrap();
    assert_eq!(among(store), each(store));
    assert!(!among(store).contains(&users[2]));
    assert!(store.users_in_scope_among(&crm, &[]).unwrap().is_empty());

    let mut read: Vec<String> = store
        .get_users(&asked)
        .unwrap()
        .into_iter()
        .map(|user| user.user_name)
        .collect();
    read.sort();
    assert_eq!(read, ["ada", "bob", "carol", "dave", "erin", "frank"]);
    assert!(store.get_users(&["nobody".into()]).unwrap().is_empty());
}

pub fn scope_follows_bindings_through_nested_groups(store: &dyn Store) {
    let users = create_users(store, &["ada", "bob", "carol", "dave"]);
    let inner = store
        .create_group(group(
            "inner",
            Some(vec![user_member(&users[0]), user_member(&users[1])]),
        ))
        .unwrap();
    let outer = store
        .create_group(group(
            "outer",
            Some(vec![group_member(&inner.id), user_member(&users[2])]),
        ))
        .unwrap();
    store
        .create_group(group("other", Some(vec![user_member(&users[3])])))
        .unwrap();
    let crm = app(store, "crm");
    assert!(store.users_in_scope(&crm).unwrap().is_empty());
    store.bind("crm", &outer.id).unwrap();
    let mut expected = users[..3].to_vec();
    expected.sort();
    assert_eq!(store.users_in_scope("crm").unwrap(), expected);
    // The bound groups that hold a member, through nesting, and the bound
    // group itself.
    assert_eq!(
        store.bound_groups_containing(&crm, &users[0]).unwrap(),
        std::slice::from_ref(&outer.id)
    );
    assert_eq!(
        store.bound_groups_containing(&crm, &outer.id).unwrap(),
        std::slice::from_ref(&outer.id)
    );
    assert!(
        store
            .bound_groups_containing(&crm, &users[3])
            .unwrap()
            .is_empty()
    );
    store.bind("crm", &inner.id).unwrap();
    // A member of a bound group assigned as well is listed and counted
    // once.
    store.assign("crm", &users[0]).unwrap();
    assert_eq!(store.users_in_scope("crm").unwrap(), expected);
    assert_eq!(store.scope_tally(&crm).unwrap().users_in_scope, 3);
    store.unassign("crm", &users[0]).unwrap();
    let mut both = vec![inner.id.clone(), outer.id.clone()];
    both.sort();
    assert_eq!(
        store.bound_groups_containing(&crm, &users[0]).unwrap(),
        both
    );
    store.unbind("crm", &inner.id).unwrap();
    store.unbind("crm", &outer.id).unwrap();
    assert!(store.users_in_scope("crm").unwrap().is_empty());
    // A user assigned directly is in scope without a group.
    store.assign("crm", &users[3]).unwrap();
    store.assign("crm", &users[3]).unwrap();
    assert_eq!(store.users_in_scope("crm").unwrap(), [users[3].clone()]);
    assert!(store.user_in_scope(&crm, &users[3]).unwrap());
    assert_eq!(store.assignments("crm").unwrap(), [users[3].clone()]);
    store.unassign("crm", &users[3]).unwrap();
    assert!(!store.user_in_scope(&crm, &users[3]).unwrap());
    assert!(matches!(
        store.unassign("crm", &users[3]),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.unbind("crm", &outer.id),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn remote_ids_and_links_answer_only_for_what_the_ledger_holds(store: &dyn Store) {
    let crm = app(store, "crm");
    for (object, remote) in [("u1", "r1"), ("u3", "r3")] {
        store
            .put_ledger_entry(&LedgerEntry {
                app_id: crm.clone(),
                object_kind: "user".into(),
                object_id: object.into(),
                remote_id: remote.into(),
                doc_hash: "h".into(),
                document: None,
                updated: Timestamp::now(),
            })
            .unwrap();
    }
    let asked: Vec<String> = ["u3", "u2", "u1"].map(String::from).to_vec();
    assert_eq!(
        store.remote_ids(&crm, "user", &asked).unwrap(),
        [("u3".into(), "r3".into()), ("u1".into(), "r1".into())]
    );
    assert!(store.remote_ids(&crm, "group", &asked).unwrap().is_empty());
    assert!(store.remote_ids(&crm, "user", &[]).unwrap().is_empty());
    // A large group's members are asked for at once.
    let many: Vec<String> = (0..5_000)
        .map(|index| format!("u{index}"))
        .chain(["u1".to_string()])
        .collect();
    assert_eq!(
        store.remote_ids(&crm, "user", &many).unwrap(),
        [
            ("u1".into(), "r1".into()),
            ("u3".into(), "r3".into()),
            ("u1".into(), "r1".into())
        ]
    );
    // Whole entries read at once are each what a look-up of its own finds,
    // once, whatever is asked beside them.
    for asked in [&asked, &many] {
        let mut among = store.ledger_entries_among(&crm, "user", asked).unwrap();
        among.sort_by(|a, b| a.object_id.cmp(&b.object_id));
        let each: Vec<LedgerEntry> = ["u1", "u3"]
            .iter()
            .map(|id| store.ledger_entry(&crm, "user", id).unwrap().unwrap())
            .collect();
        assert_eq!(among, each);
    }
    assert!(
        store
            .ledger_entries_among(&crm, "group", &asked)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .ledger_entries_among(&crm, "user", &[])
            .unwrap()
            .is_empty()
    );
    // The links alone, without documents, in object id order.
    assert_eq!(
        store.ledger_links(&crm, "user").unwrap(),
        [("u1".into(), "r1".into()), ("u3".into(), "r3".into())]
    );
    assert!(store.ledger_links(&crm, "group").unwrap().is_empty());
}

pub fn versions_refuse_lost_updates(store: &dyn Store) {
    let ada = store.create_user(user("ada")).unwrap();
    let updated = store.replace_user(&ada.id, user("ada.l"), Some(1)).unwrap();
    assert_eq!(updated.version, 2);
    let error = store
        .replace_user(&ada.id, user("ada.x"), Some(1))
        .unwrap_err();
    assert!(matches!(
        error,
        StoreError::VersionMismatch { current: 2, .. }
    ));
    assert!(store.delete_user(&ada.id, Some(1)).is_err());
    store.delete_user(&ada.id, Some(2)).unwrap();
    assert!(store.get_user(&ada.id).unwrap().is_none());
}

pub fn readers_see_what_was_committed_from_other_threads(store: &dyn Store) {
    std::thread::scope(|scope| {
        for thread in 0..4 {
            scope.spawn(move || {
                for index in 0..50 {
                    let created = store
                        .create_user(user(&format!("u{thread}-{index}")))
                        .unwrap();
                    assert!(store.get_user(&created.id).unwrap().is_some());
                }
            });
        }
    });
    assert_eq!(
        store
            .list_users(Page {
                offset: 0,
                limit: 1
            })
            .unwrap()
            .total,
        200
    );
}

pub fn an_import_updates_what_it_names_and_keeps_the_rest(store: &dyn Store) {
    let mut suspended = user("ada");
    suspended.active = false;
    suspended.attributes.insert("active".into(), json!(false));
    suspended.attributes.insert(
        "name".into(),
        json!({ "givenName": "Ada", "familyName": "Lovelace" }),
    );
    suspended
        .attributes
        .insert("title".into(), json!("Countess"));
    store.create_user(suspended).unwrap();

    let mut update = user("ada");
    update
        .attributes
        .insert("name".into(), json!({ "familyName": "King" }));
    let outcome = store
        .import(ImportBatch {
            users: vec![update],
            groups: vec![],
        })
        .unwrap();
    assert_eq!(outcome.users_updated, 1);
    let ada = store
        .find_users(UserKey::UserName, "ada")
        .unwrap()
        .remove(0);
    assert!(
        !ada.active,
        "an import without `active` does not reactivate"
    );
    assert_eq!(
        ada.attributes["name"],
        json!({ "givenName": "Ada", "familyName": "King" })
    );
    assert_eq!(ada.attributes["title"], "Countess");
}

pub fn names_are_unique_and_found_without_regard_to_unicode_case(store: &dyn Store) {
    store.create_user(user("Zoë")).unwrap();
    assert!(matches!(
        store.create_user(user("ZOË")),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.find_users(UserKey::UserName, "zoë").unwrap().len(), 1);
    store.create_group(group("Équipe", None)).unwrap();
    assert!(store.create_group(group("ÉQUIPE", None)).is_err());
    // A rename is held to the same rule.
    let other = store.create_group(group("Autre", None)).unwrap();
    assert!(matches!(
        store.replace_group(&other.id, group("équipe", None), None),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .find_groups(scimlink::store::GroupKey::DisplayName, "équipe")
            .unwrap()
            .len(),
        1
    );
}

pub fn events_are_listed_newest_first_filtered_and_pruned(store: &dyn Store) {
    use scimlink::store::{Event, EventQuery, Outcome};
    let event = |at: &str, app: &str, operation: &str, outcome: Outcome| Event {
        id: String::new(),
        at: at.parse().unwrap(),
        app_id: Some(app.into()),
        app_name: Some(app.into()),
        object_kind: Some("app".into()),
        object_id: Some(app.into()),
        operation: operation.into(),
        outcome,
        rule: None,
        http_status: Some(200),
        summary: "s".into(),
    };
    for recorded in [
        event(
            "2026-01-01T00:00:00.000Z",
            "a",
            "idm_integration_activate",
            Outcome::Failure,
        ),
        event(
            "2026-02-01T00:00:00.000Z",
            "a",
            "idm_integration_activate",
            Outcome::Success,
        ),
        event(
            "2026-03-01T00:00:00.000Z",
            "b",
            "idm_integration_reauth",
            Outcome::Success,
        ),
    ] {
        assert!(!store.record_event(recorded).unwrap().id.is_empty());
    }
    let page = Page {
        offset: 0,
        limit: 10,
    };
    let all = store.events(&EventQuery::default(), page).unwrap();
    assert_eq!(all.total, 3);
    assert_eq!(
        all.items[0].at.to_string(),
        "2026-03-01T00:00:00.000Z",
        "newest first"
    );
    let query = EventQuery {
        app_id: Some("a".into()),
        outcome: Some(Outcome::Success),
        ..EventQuery::default()
    };
    assert_eq!(store.events(&query, page).unwrap().total, 1);
    let query = EventQuery {
        since: Some("2026-01-15T00:00:00.000Z".parse().unwrap()),
        operation: Some("idm_integration_activate".into()),
        ..EventQuery::default()
    };
    assert_eq!(store.events(&query, page).unwrap().total, 1);
    // A time range is half open: `until` itself is outside it.
    let query = EventQuery {
        since: Some("2026-01-01T00:00:00.000Z".parse().unwrap()),
        until: Some("2026-03-01T00:00:00.000Z".parse().unwrap()),
        ..EventQuery::default()
    };
    assert_eq!(store.events(&query, page).unwrap().total, 2);
    let query = EventQuery {
        object_id: Some("b".into()),
        ..EventQuery::default()
    };
    let about_b = store.events(&query, page).unwrap();
    assert_eq!(about_b.total, 1);
    assert_eq!(about_b.items[0].operation, "idm_integration_reauth");
    assert_eq!(
        store
            .prune_events("2026-02-15T00:00:00.000Z".parse().unwrap())
            .unwrap(),
        2
    );
    assert_eq!(store.events(&EventQuery::default(), page).unwrap().total, 1);
}

pub fn the_users_of_a_group_include_those_of_nested_groups(store: &dyn Store) {
    let ada = store.create_user(user("ada")).unwrap().id;
    let bob = store.create_user(user("bob")).unwrap().id;
    let inner = store
        .create_group(group("inner", Some(vec![user_member(&bob)])))
        .unwrap();
    let mut expected = vec![ada.clone(), bob.clone()];
    expected.sort();
    assert_eq!(
        store.users_of(&[ada.clone(), inner.id.clone()]).unwrap(),
        expected
    );
    assert_eq!(
        store.users_of(&["nobody".into()]).unwrap(),
        Vec::<String>::new()
    );
}

pub fn a_group_read_without_members_is_the_group_less_its_members(store: &dyn Store) {
    let ada = store.create_user(user("ada")).unwrap().id;
    let inner = store.create_group(group("inner", None)).unwrap();
    let mut write = group(
        "outer",
        Some(vec![user_member(&ada), group_member(&inner.id)]),
    );
    write
        .attributes
        .insert("description".into(), json!("everyone"));
    let outer = store.create_group(write).unwrap();
    let whole = store.get_group(&outer.id).unwrap().unwrap();
    assert_eq!(whole.members.len(), 2);
    let alone = store.get_group_without_members(&outer.id).unwrap().unwrap();
    assert!(alone.members.is_empty(), "{:?}", alone.members);
    assert_eq!(
        (&alone.id, &alone.display_name, &alone.external_id),
        (&whole.id, &whole.display_name, &whole.external_id)
    );
    assert_eq!(alone.attributes, whole.attributes);
    assert_eq!(
        (alone.version, &alone.created, &alone.modified),
        (whole.version, &whole.created, &whole.modified)
    );
    assert!(store.get_group_without_members("nobody").unwrap().is_none());

    // Found by name as by id, names compared folded.
    let found = store
        .find_groups_without_members(GroupKey::DisplayName, "OUTER")
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].members.is_empty(), "{:?}", found[0].members);
    assert_eq!(
        (&found[0].id, &found[0].attributes),
        (&whole.id, &whole.attributes)
    );
    let with_members = store.find_groups(GroupKey::DisplayName, "OUTER").unwrap();
    assert_eq!(with_members[0].members.len(), 2);
    assert!(
        store
            .find_groups_without_members(GroupKey::DisplayName, "nobody")
            .unwrap()
            .is_empty()
    );
    assert_eq!(group_id_by_id_or_name(store, &outer.id).unwrap(), outer.id);
    assert_eq!(group_id_by_id_or_name(store, "Outer").unwrap(), outer.id);
    assert!(matches!(
        group_id_by_id_or_name(store, "nobody"),
        Err(StoreError::NotFound {
            entity: "group",
            ..
        })
    ));
}

pub fn a_remote_account_is_linked_to_one_object_at_most(store: &dyn Store) {
    let crm = app(store, "crm");
    let other = app(store, "other");
    store.put_ledger_entry(&link(&crm, "ann", "r1")).unwrap();
    // Rewriting one's own link is fine; taking another's is refused.
    store.put_ledger_entry(&link(&crm, "ann", "r1")).unwrap();
    let error = store
        .put_ledger_entry(&link(&crm, "dave", "r1"))
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::LinkedElsewhere { remote_id, holder } if remote_id == "r1" && holder == "ann"),
        "{error}"
    );
    assert!(store.ledger_entry(&crm, "user", "dave").unwrap().is_none());
    // The same remote id in another application, or of another kind, is
    // another account.
    store.put_ledger_entry(&link(&other, "dave", "r1")).unwrap();
    let mut group = link(&crm, "g1", "r1");
    group.object_kind = "group".into();
    store.put_ledger_entry(&group).unwrap();
    assert_eq!(
        store
            .ledger_holder(&crm, "user", "r1")
            .unwrap()
            .map(|entry| entry.object_id),
        Some("ann".into())
    );
    assert!(store.ledger_holder(&crm, "user", "r2").unwrap().is_none());
    // Moving a link: once released, the account may be linked again.
    store.remove_ledger_entry(&crm, "user", "ann").unwrap();
    store.put_ledger_entry(&link(&crm, "dave", "r1")).unwrap();
}

pub fn a_renewal_says_which_pairs_are_still_held(store: &dyn Store) {
    let crm = active_app(store, "crm");
    dispatched_users(store, &["ada", "bob"]);
    let mine = store.claim_pairs("paused", &crm, 10, 0).unwrap();
    assert_eq!(mine.len(), 2);
    let seqs: Vec<i64> = mine.iter().map(|(change, _)| change.seq).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The lease ran out while the consumer was paused; another took one.
    let taken = store.claim_pairs("other", &crm, 1, 60).unwrap();
    assert_eq!(taken.len(), 1);
    let taken = taken[0].0.seq;
    let held = store.renew_pairs("paused", &crm, &seqs, 60).unwrap();
    assert_eq!(held.len(), 1);
    assert!(!held.contains(&taken));
    assert_eq!(
        store.renew_pairs("other", &crm, &seqs, 60).unwrap(),
        [taken]
    );
}

/// A pair settles only for the consumer holding it; one not done waits for
/// its retry; a change completes, its pairs forgotten, when every pair is
/// done; an application that is no longer active lets its pairs go.
pub fn a_change_completes_when_every_pair_is_done(store: &dyn Store) {
    use scimlink::store::ChangeProgress;
    let crm = active_app(store, "crm");
    let hr = active_app(store, "hr");
    let wiki = active_app(store, "wiki");
    let seq = dispatched_users(store, &["ada"])[0];
    let pair = |app: &str, done: bool| ChangeProgress {
        seq,
        app_id: app.into(),
        done,
        attempts: u32::from(!done),
        retry_at: (!done).then(|| "2999-01-01T00:00:00.000Z".parse().unwrap()),
        last_error: (!done).then(|| "user ada: 500".to_string()),
    };
    assert_eq!(store.claim_pairs("a", &crm, 10, 60).unwrap().len(), 1);
    assert_eq!(store.claim_pairs("a", &hr, 10, 60).unwrap().len(), 1);
    // A consumer that does not hold a pair records nothing.
    store.settle_pairs("b", &[pair("crm", true)]).unwrap();
    store
        .settle_pairs("a", &[pair(&crm, true), pair(&hr, false)])
        .unwrap();
    let recorded = store.change_progress(&[seq]).unwrap();
    let done: Vec<(&str, bool)> = recorded
        .iter()
        .map(|pair| (pair.app_id.as_str(), pair.done))
        .collect();
    let mut expected = vec![
        (crm.as_str(), true),
        (hr.as_str(), false),
        (wiki.as_str(), false),
    ];
    expected.sort();
    assert_eq!(done, expected);
    let waiting = recorded.iter().find(|pair| pair.app_id == hr).unwrap();
    assert_eq!(
        waiting,
        &pair(&hr, false),
        "its attempts, retry time and error"
    );
    // Waiting for its retry: not claimed before it is due.
    assert!(store.claim_pairs("b", &hr, 10, 60).unwrap().is_empty());
    assert_eq!(store.pending_changes().unwrap(), 1);

    // wiki is deactivated, hr deleted: their pairs are let go, and the
    // change is done.
    store
        .update_app(
            &wiki,
            AppUpdate {
                state: Some(AppState::Inactive),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    store.delete_app(&hr).unwrap();
    while store.dispatch_changes(100).unwrap() > 0 {}
    assert_eq!(store.sweep_pairs().unwrap(), 2);
    assert_eq!(store.pending_changes().unwrap(), 0);
    assert!(store.change_progress(&[seq]).unwrap().is_empty());

    // The last pair settled done completes its change at once.
    let seq = dispatched_users(store, &["bob"])[0];
    store.claim_pairs("a", &crm, 10, 60).unwrap();
    store
        .settle_pairs(
            "a",
            &[ChangeProgress {
                seq,
                ..pair(&crm, true)
            }],
        )
        .unwrap();
    assert_eq!(store.pending_changes().unwrap(), 0);
}

pub fn a_quarantine_keeps_its_reason_and_any_other_state_clears_it(store: &dyn Store) {
    let crm = app(store, "crm");
    let quarantined = store
        .update_app(
            &crm,
            AppUpdate {
                state: Some(AppState::Quarantined),
                state_reason: Some("connector coda is not served by this host".into()),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(
        quarantined.state_reason.as_deref(),
        Some("connector coda is not served by this host")
    );
    let resumed = store
        .update_app(
            &crm,
            AppUpdate {
                state: Some(AppState::Active),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(resumed.state_reason, None);
    let active = store
        .update_app(
            &crm,
            AppUpdate {
                state_reason: Some("ignored".into()),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(
        active.state_reason, None,
        "a reason explains a quarantine only"
    );
}

/// The kinds of the changes appended since the last call, in order (where
/// the last call stopped is kept in host metadata).
fn appended(store: &dyn Store) -> Vec<ChangeKind> {
    let seen: i64 = store
        .meta("conformance-seen")
        .unwrap()
        .map_or(0, |seq| seq.parse().unwrap());
    let changes = store.changes_after(seen, 1000).unwrap();
    if let Some(last) = changes.last() {
        store
            .set_meta("conformance-seen", &last.seq.to_string())
            .unwrap();
    }
    changes.into_iter().map(|change| change.kind).collect()
}

fn dead_letter(app_id: &str, object_id: &str) -> DeadLetter {
    DeadLetter {
        app_id: app_id.into(),
        object_kind: "user".into(),
        object_id: object_id.into(),
        operation: "user_create_provision".into(),
        reason: "the application refused the user".into(),
        http_status: Some(400),
        first_failed: Timestamp::now(),
        last_failed: Timestamp::now(),
        failures: 1,
    }
}

pub fn event(app_id: &str, summary: &str) -> Event {
    Event {
        id: String::new(),
        at: Timestamp::now(),
        app_id: Some(app_id.into()),
        app_name: None,
        object_kind: Some("user".into()),
        object_id: None,
        operation: "user_create_provision".into(),
        outcome: Outcome::Success,
        rule: None,
        http_status: Some(201),
        summary: summary.into(),
    }
}

pub fn each_write_appends_its_change(store: &dyn Store) {
    let ada = store.create_user(user("ada")).unwrap();
    assert_eq!(
        appended(store),
        [ChangeKind::UserCreated {
            user_name: "ada".into()
        }]
    );
    let mut suspended = user("ada");
    suspended.active = false;
    store.replace_user(&ada.id, suspended, None).unwrap();
    assert_eq!(
        appended(store),
        [ChangeKind::UserUpdated {
            user_name: "ada".into(),
            active: false
        }]
    );

    let eng = store
        .create_group(group("eng", Some(vec![user_member(&ada.id)])))
        .unwrap();
    assert_eq!(
        appended(store),
        [
            ChangeKind::GroupCreated {
                display_name: "eng".into()
            },
            ChangeKind::MembersChanged {
                added: vec![ada.id.clone()],
                removed: vec![]
            }
        ]
    );
    store
        .replace_group(&eng.id, group("eng", None), None)
        .unwrap();
    store
        .replace_group(&eng.id, group("engineering", None), None)
        .unwrap();
    assert_eq!(
        appended(store),
        [
            ChangeKind::GroupUpdated {
                display_name: "eng".into(),
                previous_display_name: Some("eng".into())
            },
            ChangeKind::GroupRenamed {
                display_name: "engineering".into(),
                previous_display_name: Some("eng".into())
            }
        ]
    );
    store
        .change_members(&eng.id, &[], std::slice::from_ref(&ada.id))
        .unwrap();
    // Removing a member that is not there changes nothing.
    store
        .change_members(&eng.id, &[], std::slice::from_ref(&ada.id))
        .unwrap();
    assert_eq!(
        appended(store),
        [ChangeKind::MembersChanged {
            added: vec![],
            removed: vec![ada.id.clone()]
        }]
    );
    store
        .change_members(&eng.id, &[user_member(&ada.id)], &[])
        .unwrap();
    appended(store);

    let crm = app(store, "crm");
    let activate = AppUpdate {
        state: Some(AppState::Active),
        ..AppUpdate::default()
    };
    store.update_app(&crm, activate.clone()).unwrap();
    // Asking for the state it is in changes nothing.
    store.update_app(&crm, activate).unwrap();
    store
        .update_app(
            &crm,
            AppUpdate {
                manage_groups: Some(false),
                token: Some(Secret::new("rotated")),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    let name = || "crm".to_string();
    assert_eq!(
        appended(store),
        [
            ChangeKind::AppCreated { name: name() },
            ChangeKind::AppActivated { name: name() },
            ChangeKind::GroupManagementDisabled { name: name() },
            ChangeKind::AppTokenRotated { name: name() },
        ]
    );

    store.bind(&crm, &eng.id).unwrap();
    store.bind(&crm, &eng.id).unwrap();
    store.assign(&crm, &ada.id).unwrap();
    store.assign(&crm, &ada.id).unwrap();
    store.unassign(&crm, &ada.id).unwrap();
    store.unbind(&crm, &eng.id).unwrap();
    assert_eq!(
        appended(store),
        [
            ChangeKind::Bound {
                group: eng.id.clone()
            },
            ChangeKind::Assigned {
                user: ada.id.clone()
            },
            ChangeKind::Unassigned {
                user: ada.id.clone()
            },
            ChangeKind::Unbound {
                group: eng.id.clone(),
                members: vec![ada.id.clone()]
            },
        ]
    );

    store.put_dead_letter(&dead_letter(&crm, &ada.id)).unwrap();
    assert_eq!(store.replay_dead_letters(&crm, None).unwrap(), 1);
    assert_eq!(
        appended(store),
        [ChangeKind::Replay {
            users: vec![ada.id.clone()],
            groups: vec![]
        }]
    );

    store.bind(&crm, &eng.id).unwrap();
    appended(store);
    store.delete_group(&eng.id, None).unwrap();
    store.delete_user(&ada.id, None).unwrap();
    store.delete_app(&crm).unwrap();
    assert_eq!(
        appended(store),
        [
            ChangeKind::GroupDeleted {
                display_name: "engineering".into(),
                members: vec![ada.id.clone()],
                bound_apps: vec![crm.clone()],
                parents: vec![]
            },
            ChangeKind::UserDeleted {
                user_name: "ada".into(),
                groups: vec![]
            },
            ChangeKind::AppDeleted { name: name() },
        ]
    );
    assert!(appended(store).is_empty(), "every change was seen");
}

pub fn a_change_of_membership_gives_the_member_a_new_version(store: &dyn Store) {
    let ada = store.create_user(user("ada")).unwrap();
    let eng = store.create_group(group("eng", None)).unwrap();
    let inner = store.create_group(group("inner", None)).unwrap();
    let grown = store
        .change_members(
            &eng.id,
            &[user_member(&ada.id), group_member(&inner.id)],
            &[],
        )
        .unwrap();
    assert_eq!(grown.version, eng.version + 1);
    let member = store.get_user(&ada.id).unwrap().unwrap();
    assert_eq!(
        member.version,
        ada.version + 1,
        "a user's groups are part of it"
    );
    assert!(member.modified >= ada.modified);
    assert_eq!(
        store.user_groups(&ada.id).unwrap()[0].display_name,
        "eng".to_string()
    );
    // Deleting a member group gives the group that held it a new version.
    store.delete_group(&inner.id, None).unwrap();
    assert_eq!(
        store.get_group(&eng.id).unwrap().unwrap().version,
        grown.version + 1
    );
}

pub fn a_missing_member_is_refused_whole(store: &dyn Store) {
    let ada = store.create_user(user("ada")).unwrap();
    let eng = store.create_group(group("eng", None)).unwrap();
    let error = store
        .change_members(
            &eng.id,
            &[user_member(&ada.id), user_member("no-such-user")],
            &[],
        )
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidMembership(_)), "{error}");
    let eng = store.get_group(&eng.id).unwrap().unwrap();
    assert!(eng.members.is_empty(), "nothing of the refused write stays");
    let error = store
        .create_group(group("ops", Some(vec![group_member("no-such-group")])))
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidMembership(_)), "{error}");
    assert!(
        store
            .find_groups(GroupKey::DisplayName, "ops")
            .unwrap()
            .is_empty()
    );
}

pub fn success_takes_an_object_off_the_dead_letters(store: &dyn Store) {
    let crm = app(store, "crm");
    store.put_dead_letter(&dead_letter(&crm, "u1")).unwrap();
    store.put_dead_letter(&dead_letter(&crm, "u1")).unwrap();
    let letters = store.dead_letters(&crm).unwrap();
    assert_eq!(letters.len(), 1, "one letter per object");
    assert_eq!(letters[0].failures, 2);
    assert!(letters[0].last_failed >= letters[0].first_failed);

    store.put_ledger_entry(&link(&crm, "u1", "r1")).unwrap();
    assert!(store.dead_letters(&crm).unwrap().is_empty());

    store.put_dead_letter(&dead_letter(&crm, "u1")).unwrap();
    store.remove_ledger_entry(&crm, "user", "u1").unwrap();
    assert!(
        store.dead_letters(&crm).unwrap().is_empty(),
        "removing the link is a success too (the account was deleted)"
    );
}

/// Records written in one call stand on their own: a refused one (a link
/// to an account another user holds, even one linked earlier in the same
/// call) keeps neither its entry nor its event, and the others land whole.
/// Reads inside `in_one_read` answer from one snapshot, taken at the first
/// of them: a write made meanwhile (from this thread, on another
/// connection) shows only once it is over, a read that finds nothing does
/// not end the snapshot, and a nested `in_one_read` shares it.
pub fn reads_in_one_read_share_one_snapshot(store: &dyn Store) {
    create_users(store, &["before"]);
    let found = |name: &str| {
        !store
            .find_users(UserKey::UserName, name)
            .unwrap()
            .is_empty()
    };
    let mut seen = Vec::new();
    store.in_one_read(&mut || {
        seen.push(found("before"));
        create_users(store, &["during"]);
        seen.push(found("during"));
        seen.push(store.get_user("no-such-user").unwrap().is_none());
        seen.push(found("during"));
        store.in_one_read(&mut || seen.push(found("during")));
    });
    assert_eq!(seen, [true, false, true, false, false]);
    assert!(
        found("during"),
        "a read after the shared one sees the write"
    );
    // The thread is left with no read open: a read after sees what is
    // committed, and so does another run of shared reads.
    create_users(store, &["after"]);
    let mut again = Vec::new();
    store.in_one_read(&mut || again.push(found("after")));
    assert_eq!(again, [true]);
}

pub fn records_written_together_stand_on_their_own(store: &dyn Store) {
    let crm = app(store, "crm");
    store
        .record_with_ledger(
            LedgerChange::Put(&link(&crm, "ann", "r1")),
            event(&crm, "ann created"),
        )
        .unwrap();
    let (bob, cid, dan, eve, fay) = (
        link(&crm, "bob", "r2"),
        link(&crm, "cid", "r1"),
        link(&crm, "dan", "r2"),
        link(&crm, "eve", "r5"),
        link(&crm, "fay", "r6"),
    );
    // An entry of an application that does not exist: the database
    // itself refuses it.
    let gus = link("no-such-application", "gus", "r7");
    let hal = link(&crm, "hal", "r8");
    let lease = |object_id| ObjectKey {
        app_id: &crm,
        object_kind: "user",
        object_id,
    };
    assert!(store.take_object_lease("host-a", lease("eve"), 30).unwrap());
    assert!(store.take_object_lease("host-b", lease("fay"), 30).unwrap());
    assert!(store.take_object_lease("host-a", lease("hal"), 30).unwrap());
    let record = |change, summary: &str, holder| LedgerRecord {
        change,
        event: event(&crm, summary),
        holder,
    };
    let outcomes = store.record_each_with_ledger(vec![
        record(LedgerChange::Put(&bob), "bob created", None),
        record(LedgerChange::Put(&cid), "cid created", None),
        record(LedgerChange::Put(&dan), "dan created", None),
        record(
            LedgerChange::Remove {
                app_id: &crm,
                object_kind: "user",
                object_id: "ann",
            },
            "ann deleted",
            None,
        ),
        record(LedgerChange::Put(&eve), "eve created", Some("host-a")),
        record(LedgerChange::Put(&fay), "fay created", Some("host-a")),
        record(
            LedgerChange::PutWithPassword(&hal, PasswordSent::Temporary { reveal: None }),
            "hal created",
            Some("host-a"),
        ),
    ]);
    assert_eq!(outcomes.len(), 7);
    assert!(
        outcomes[0].is_ok() && outcomes[3].is_ok() && outcomes[4].is_ok(),
        "{outcomes:?}"
    );
    for refused in [&outcomes[1], &outcomes[2]] {
        assert!(
            matches!(refused, Err(StoreError::LinkedElsewhere { .. })),
            "{refused:?}"
        );
    }
    assert!(
        matches!(&outcomes[5], Err(StoreError::LeaseLost(_))),
        "another holder's object is not written: {:?}",
        outcomes[5]
    );
    assert!(outcomes[6].is_ok(), "{:?}", outcomes[6]);
    // A record the database itself refuses fails alone as well.
    let ivy = link(&crm, "ivy", "r9");
    let outcomes = store.record_each_with_ledger(vec![
        record(LedgerChange::Put(&gus), "gus created", None),
        record(LedgerChange::Put(&ivy), "ivy created", None),
    ]);
    assert!(outcomes[0].is_err() && outcomes[1].is_ok(), "{outcomes:?}");
    assert!(
        store
            .ledger_entry("no-such-application", "user", "gus")
            .unwrap()
            .is_none()
    );
    let entry = |user: &str| store.ledger_entry(&crm, "user", user).unwrap();
    assert_eq!(entry("hal").map(|entry| entry.remote_id), Some("r8".into()));
    assert_eq!(entry("ivy").map(|entry| entry.remote_id), Some("r9".into()));
    assert_eq!(entry("bob").map(|entry| entry.remote_id), Some("r2".into()));
    assert_eq!(entry("eve").map(|entry| entry.remote_id), Some("r5".into()));
    assert!(
        entry("cid").is_none()
            && entry("dan").is_none()
            && entry("ann").is_none()
            && entry("fay").is_none()
    );
    // Removals stand on their own as well: one under another holder's
    // lease is refused and removes nothing.
    let removal = |object_id| LedgerChange::Remove {
        app_id: &crm,
        object_kind: "user",
        object_id,
    };
    let outcomes = store.record_each_with_ledger(vec![
        record(removal("eve"), "eve deleted", Some("host-b")),
        record(removal("hal"), "hal deleted", Some("host-a")),
        record(removal("bob"), "bob deleted", None),
    ]);
    assert!(
        matches!(&outcomes[0], Err(StoreError::LeaseLost(_))),
        "{outcomes:?}"
    );
    assert!(outcomes[1].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
    assert_eq!(entry("eve").map(|entry| entry.remote_id), Some("r5".into()));
    assert!(entry("hal").is_none() && entry("bob").is_none());
    let all = Page {
        offset: 0,
        limit: 100,
    };
    let mut summaries: Vec<String> = store
        .events(&EventQuery::default(), all)
        .unwrap()
        .items
        .into_iter()
        .map(|event| event.summary)
        .collect();
    summaries.sort();
    assert_eq!(
        summaries,
        [
            "ann created",
            "ann deleted",
            "bob created",
            "bob deleted",
            "eve created",
            "hal created",
            "hal deleted",
            "ivy created"
        ]
    );
}

pub fn the_ledger_and_its_event_land_together_or_not_at_all(store: &dyn Store) {
    let crm = app(store, "crm");
    let all = Page {
        offset: 0,
        limit: 100,
    };
    let events = |store: &dyn Store| store.events(&EventQuery::default(), all).unwrap().total;
    store
        .record_with_ledger(
            LedgerChange::Put(&link(&crm, "ann", "r1")),
            event(&crm, "ann created"),
        )
        .unwrap();
    assert!(store.ledger_entry(&crm, "user", "ann").unwrap().is_some());
    assert_eq!(events(store), 1);

    let error = store
        .record_with_ledger(
            LedgerChange::Put(&link(&crm, "bob", "r1")),
            event(&crm, "bob created"),
        )
        .unwrap_err();
    assert!(
        matches!(error, StoreError::LinkedElsewhere { .. }),
        "{error}"
    );
    assert_eq!(events(store), 1, "a refused link records no event");
    assert!(store.ledger_entry(&crm, "user", "bob").unwrap().is_none());

    store
        .record_with_ledger(
            LedgerChange::Remove {
                app_id: &crm,
                object_kind: "user",
                object_id: "ann",
            },
            event(&crm, "ann deleted"),
        )
        .unwrap();
    assert!(store.ledger_entry(&crm, "user", "ann").unwrap().is_none());
    let listed = store.events(&EventQuery::default(), all).unwrap();
    assert_eq!(listed.total, 2);
    // Both were recorded within a millisecond or so: found by what they say.
    let deleted = listed
        .items
        .iter()
        .find(|event| event.summary == "ann deleted")
        .expect("the removal's event");
    assert!(!deleted.id.is_empty(), "the store names the event");
}

fn offboarding(object_id: &str) -> HeldObject {
    HeldObject {
        object_kind: "user".into(),
        object_id: object_id.into(),
        user_name: Some(object_id.into()),
        remote_id: format!("remote-{object_id}"),
        action: OffboardAction::Deactivate,
        reason: "out of scope".into(),
        held_at: Timestamp::now(),
        carried_out: None,
    }
}

pub fn the_guard_counts_offboardings_in_turn_and_holds_past_its_threshold(store: &dyn Store) {
    let crm = app(store, "crm");
    for user in ["u1", "u2", "u3"] {
        store.put_ledger_entry(&link(&crm, user, user)).unwrap();
    }
    // Accounts already offboarded are not counted among the active ones.
    let mut deactivated = link(&crm, "gone", "gone");
    deactivated.doc_hash = scimlink::store::rules::DEACTIVATED.into();
    store.put_ledger_entry(&deactivated).unwrap();
    let mut suspended = link(&crm, "suspended", "suspended");
    suspended.document = Some(r#"{"userName":"suspended","active":false}"#.into());
    store.put_ledger_entry(&suspended).unwrap();
    // One offboarding admitted per window; past it, held.
    let decide = |facts: &scimlink::store::GuardFacts| {
        if facts.already_admitted {
            GuardStep::AdmitAgain
        } else if facts.approved_in.is_some() {
            GuardStep::AdmitApproved
        } else if facts.admitted_in_window < 1 {
            GuardStep::Admit
        } else {
            GuardStep::Hold { threshold: 1 }
        }
    };
    let guard = |object: &str| {
        store
            .guard_offboarding(&crm, &offboarding(object), "active", 3600, &decide)
            .unwrap()
    };
    let first = guard("u1");
    assert_eq!(first.step, GuardStep::Admit);
    assert_eq!(first.facts.active_accounts, 3);
    assert_eq!(first.facts.admitted_in_window, 0);
    let retry = guard("u1");
    assert_eq!(retry.step, GuardStep::AdmitAgain, "{:?}", retry.facts);
    assert_eq!(retry.facts.admitted_in_window, 1);

    let held = guard("u2");
    assert_eq!(held.step, GuardStep::Hold { threshold: 1 });
    assert!(held.hold_made && held.newly_held);
    let joined = guard("u3");
    assert_eq!(joined.hold, held.hold, "an application has one open hold");
    assert!(!joined.hold_made && joined.newly_held);
    assert!(!guard("u3").newly_held, "listed once");

    let holds = store.held_changes(Some(&crm)).unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].state, HeldState::Held);
    assert_eq!(holds[0].offboarding, 2);
    assert_eq!(holds[0].threshold, 1);
    let listed: Vec<&str> = holds[0]
        .objects
        .iter()
        .map(|object| object.object_id.as_str())
        .collect();
    assert_eq!(listed, ["u2", "u3"]);

    appended(store);
    let hold_id = holds[0].id.clone();
    let approved = store.decide_held_change(&hold_id, true).unwrap();
    assert_eq!(approved.state, HeldState::Approved);
    assert!(approved.decided_at.is_some());
    assert_eq!(
        appended(store),
        [ChangeKind::HoldApproved {
            held: hold_id.clone(),
            users: vec!["u2".into(), "u3".into()],
            change: None
        }]
    );
    let again = store.decide_held_change(&hold_id, false).unwrap_err();
    assert!(
        matches!(again, StoreError::Conflict { .. }),
        "decided once: {again}"
    );

    let through = guard("u2");
    assert_eq!(through.step, GuardStep::AdmitApproved);
    assert_eq!(through.hold.as_deref(), Some(hold_id.as_str()));
    let carried = store.held_changes(Some(&crm)).unwrap();
    assert!(carried[0].objects[0].carried_out.is_some());
    assert!(carried[0].objects[1].carried_out.is_none());
}

pub fn a_rejected_hold_lets_nothing_through(store: &dyn Store) {
    let crm = app(store, "crm");
    let hold = |facts: &scimlink::store::GuardFacts| {
        let _ = facts;
        GuardStep::Hold { threshold: 0 }
    };
    let held = store
        .guard_offboarding(&crm, &offboarding("u1"), "active", 3600, &hold)
        .unwrap();
    let hold_id = held.hold.unwrap();
    appended(store);
    let rejected = store.decide_held_change(&hold_id, false).unwrap();
    assert_eq!(rejected.state, HeldState::Rejected);
    assert!(appended(store).is_empty(), "a rejection queues nothing");
    let admit = |facts: &scimlink::store::GuardFacts| {
        assert_eq!(facts.approved_in, None);
        assert_eq!(facts.open_hold, None, "the rejected hold is closed");
        GuardStep::Admit
    };
    store
        .guard_offboarding(&crm, &offboarding("u1"), "active", 3600, &admit)
        .unwrap();
}

pub fn applications_are_found_by_name_or_id_and_names_are_unique(store: &dyn Store) {
    let crm = app(store, "crm");
    let by_name = store.get_app("crm").unwrap().unwrap();
    assert_eq!(by_name.id, crm);
    assert_eq!(store.get_app(&crm).unwrap().unwrap().name, "crm");
    assert_eq!(
        by_name.state,
        AppState::Inactive,
        "a new application sends nothing"
    );
    let error = store
        .create_app(AppWrite {
            name: "crm".into(),
            label: "again".into(),
            connector: "custom-scim".into(),
            base_url: "https://other.example/scim/v2".into(),
            token: Secret::new("t"),
            manage_groups: false,
            settings: vec![],
            pacing: Default::default(),
            guard: Default::default(),
            passwords: Default::default(),
        })
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    assert_eq!(
        store.app_token("crm").unwrap().expose(),
        "token-of-crm",
        "the token opens as it was given"
    );
    store.delete_app("crm").unwrap();
    assert!(store.get_app(&crm).unwrap().is_none());
    assert!(matches!(
        store.app_token("crm").unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

pub fn host_metadata_is_kept_by_key(store: &dyn Store) {
    assert_eq!(store.meta("admin-token").unwrap(), None);
    store.set_meta("admin-token", "hash-1").unwrap();
    store.set_meta("admin-token", "hash-2").unwrap();
    assert_eq!(
        store.meta("admin-token").unwrap().as_deref(),
        Some("hash-2")
    );
    // Set once: the first value stays, and every caller learns it.
    assert_eq!(
        store.set_meta_if_absent("key-check", "first").unwrap(),
        "first"
    );
    assert_eq!(
        store.set_meta_if_absent("key-check", "second").unwrap(),
        "first"
    );
    assert_eq!(store.meta("key-check").unwrap().as_deref(), Some("first"));
}

/// A host is present from its announcement until it runs out or
/// withdraws, with the connectors it said it serves.
pub fn hosts_are_present_until_they_run_out_or_withdraw(store: &dyn Store) {
    let coda = std::collections::BTreeMap::from([("coda".to_string(), "1.2.0".to_string())]);
    let none = std::collections::BTreeMap::new();
    let present = store.announce_host("engine-b", "b:2", &none, 30).unwrap();
    assert_eq!(present.len(), 1);
    let present = store.announce_host("engine-a", "a:1", &coda, 30).unwrap();
    let engines: Vec<&str> = present.iter().map(|host| host.engine.as_str()).collect();
    assert_eq!(engines, ["engine-a", "engine-b"], "in engine order");
    assert_eq!(present[0].connectors, coda);
    assert_eq!(present[0].name, "a:1");
    assert!(present[0].until > present[0].seen);
    assert_eq!(store.hosts().unwrap(), present);

    // A new announcement replaces what the host said before.
    store.announce_host("engine-a", "a:1", &none, 30).unwrap();
    assert!(store.hosts().unwrap()[0].connectors.is_empty());

    store.withdraw_host("engine-b").unwrap();
    let engines: Vec<String> = store
        .hosts()
        .unwrap()
        .into_iter()
        .map(|host| host.engine)
        .collect();
    assert_eq!(engines, ["engine-a"]);

    // Run out (announced for no time): no longer present.
    store.announce_host("engine-a", "a:1", &none, 0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(store.hosts().unwrap().is_empty());
}

/// An object's lease is held by one holder at a time; the holder renews it,
/// gives it up by releasing it, and loses it once it ran out.
pub fn an_object_lease_is_held_by_one_holder_at_a_time(store: &dyn Store) {
    let ada = ObjectKey {
        app_id: "app-1",
        object_kind: "user",
        object_id: "u1",
    };
    let other_app = ObjectKey {
        app_id: "app-2",
        ..ada
    };
    assert!(store.take_object_lease("host-a", ada, 30).unwrap());
    assert!(!store.take_object_lease("host-b", ada, 30).unwrap());
    assert!(
        store.take_object_lease("host-a", ada, 30).unwrap(),
        "renewed"
    );
    assert!(
        store.take_object_lease("host-b", other_app, 30).unwrap(),
        "another application's object is another lease"
    );

    store.release_object_lease("host-b", ada).unwrap();
    assert!(
        !store.take_object_lease("host-b", ada, 30).unwrap(),
        "only the holder gives a lease up"
    );
    store.release_object_lease("host-a", ada).unwrap();
    assert!(store.take_object_lease("host-b", ada, 0).unwrap());

    // Run out: a renewal does not take it back, and the next holder takes
    // it over.
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(!store.renew_object_lease("host-b", ada, 30).unwrap());
    assert!(store.take_object_lease("host-a", ada, 30).unwrap());
    assert!(!store.take_object_lease("host-b", ada, 30).unwrap());
    assert!(store.renew_object_lease("host-a", ada, 30).unwrap());
    assert!(
        !store.renew_object_lease("host-b", ada, 30).unwrap(),
        "only the holder renews"
    );
    let leases = store.object_leases("user").unwrap();
    let holders: Vec<(&str, &str)> = leases
        .iter()
        .map(|lease| (lease.app_id.as_str(), lease.holder.as_str()))
        .collect();
    assert_eq!(holders, [("app-1", "host-a"), ("app-2", "host-b")]);
}

/// A ledger write made for a lease holder lands only while it holds the
/// object: one whose lease ran out records neither the link nor its event.
/// Leases asked for together are granted as each would be alone: those no
/// one else holds (or whose lease ran out) and those the holder has
/// already, each answered in the order asked.
pub fn leases_asked_for_together_are_granted_as_each_alone(store: &dyn Store) {
    let key = |object_id| ObjectKey {
        app_id: "app-1",
        object_kind: "user",
        object_id,
    };
    let ids = |ids: &[&str]| ids.iter().map(|id| (*id).to_string()).collect::<Vec<_>>();
    assert!(store.take_object_lease("host-b", key("u2"), 30).unwrap());
    assert!(store.take_object_lease("host-b", key("u4"), 0).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(store.take_object_lease("host-a", key("u3"), 30).unwrap());
    let granted = store
        .take_object_leases(
            "host-a",
            "app-1",
            "user",
            &ids(&["u1", "u2", "u3", "u4"]),
            30,
        )
        .unwrap();
    assert_eq!(
        granted,
        [true, false, true, true],
        "free, held by another, held already, run out"
    );
    assert!(
        store.renew_object_lease("host-a", key("u4"), 30).unwrap(),
        "a lease taken together is held as one taken alone"
    );
    assert!(!store.take_object_lease("host-b", key("u1"), 30).unwrap());
    assert!(
        store
            .take_object_leases("host-a", "app-2", "user", &ids(&["u2"]), 30)
            .unwrap()
            == [true],
        "another application's object is another lease"
    );
    assert!(
        store
            .take_object_leases("host-a", "app-1", "user", &[], 30)
            .unwrap()
            .is_empty()
    );
}

/// Leases given up together are each given up as alone: only the holder's
/// own, whatever else is named beside them.
pub fn leases_given_up_together_are_each_given_up_as_alone(store: &dyn Store) {
    let key = |app_id, object_id| ObjectKey {
        app_id,
        object_kind: "user",
        object_id,
    };
    for object in ["u1", "u2"] {
        assert!(
            store
                .take_object_lease("host-a", key("app-1", object), 30)
                .unwrap()
        );
    }
    assert!(
        store
            .take_object_lease("host-b", key("app-1", "u3"), 30)
            .unwrap()
    );
    assert!(
        store
            .take_object_lease("host-a", key("app-2", "u1"), 30)
            .unwrap()
    );
    store
        .release_object_leases(&[
            ("host-a", key("app-1", "u1")),
            ("host-a", key("app-1", "u2")),
            ("host-a", key("app-1", "u3")),
            ("host-a", key("app-1", "never-held")),
        ])
        .unwrap();
    store.release_object_leases(&[]).unwrap();
    for object in ["u1", "u2"] {
        assert!(
            store
                .take_object_lease("host-b", key("app-1", object), 30)
                .unwrap(),
            "{object} was given up"
        );
    }
    assert!(
        !store
            .take_object_lease("host-a", key("app-1", "u3"), 30)
            .unwrap(),
        "another holder's lease stays"
    );
    assert!(
        !store
            .take_object_lease("host-b", key("app-2", "u1"), 30)
            .unwrap(),
        "another application's lease stays"
    );
}

pub fn a_ledger_write_for_a_lost_lease_records_nothing(store: &dyn Store) {
    let crm = app(store, "crm");
    let ada = ObjectKey {
        app_id: &crm,
        object_kind: "user",
        object_id: "ada",
    };
    let events_before = store
        .events(
            &EventQuery::default(),
            Page {
                offset: 0,
                limit: 100,
            },
        )
        .unwrap()
        .total;
    let refused = store
        .record_with_ledger_holding(
            "host-a",
            LedgerChange::Put(&link(&crm, "ada", "r1")),
            Some(event(&crm, "created")),
        )
        .unwrap_err();
    assert!(matches!(refused, StoreError::LeaseLost(_)), "{refused}");
    assert!(store.ledger_entry(&crm, "user", "ada").unwrap().is_none());

    assert!(store.take_object_lease("host-a", ada, 30).unwrap());
    store
        .record_with_ledger_holding(
            "host-a",
            LedgerChange::Put(&link(&crm, "ada", "r1")),
            Some(event(&crm, "created")),
        )
        .unwrap();
    assert!(store.ledger_entry(&crm, "user", "ada").unwrap().is_some());
    let refused = store
        .record_with_ledger_holding(
            "host-b",
            LedgerChange::Remove {
                app_id: &crm,
                object_kind: "user",
                object_id: "ada",
            },
            Some(event(&crm, "deleted")),
        )
        .unwrap_err();
    assert!(matches!(refused, StoreError::LeaseLost(_)), "{refused}");
    assert!(store.ledger_entry(&crm, "user", "ada").unwrap().is_some());
    let events_after = store
        .events(
            &EventQuery::default(),
            Page {
                offset: 0,
                limit: 100,
            },
        )
        .unwrap()
        .total;
    assert_eq!(
        events_after,
        events_before + 1,
        "only the held write's event"
    );
}

pub fn a_password_is_kept_sealed_until_wiped_and_its_deliveries_are_its_own(store: &dyn Store) {
    let crm = app(store, "crm");
    let docs = app(store, "docs");
    let ada = store.create_user(user("ada")).unwrap();
    let bob = store.create_user(user("bob")).unwrap();
    assert!(store.user_password(&ada.id).unwrap().is_none());
    let both = [
        ada.id.clone(),
        bob.id.clone(),
        "nobody".to_string(),
        ada.id.clone(),
    ];
    assert!(store.users_with_password_among(&both).unwrap().is_empty());
    appended(store);
    store
        .set_password(&ada.id, &Secret::new("first-Pass-1"))
        .unwrap();
    // Asked of many users at once: those with one waiting, each once.
    assert_eq!(
        store.users_with_password_among(&both).unwrap(),
        std::slice::from_ref(&ada.id)
    );
    assert!(store.users_with_password_among(&[]).unwrap().is_empty());
    // Setting it queues the user for a sync, and the change holds no password.
    let changes = appended(store);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(matches!(
        changes.last(),
        Some(ChangeKind::UserUpdated { user_name, .. }) if user_name == "ada"
    ));
    assert!(!format!("{changes:?}").contains("first-Pass-1"));

    let first = store.user_password(&ada.id).unwrap().unwrap();
    assert_eq!(first.secret.expose(), "first-Pass-1");
    assert!(first.delivered_to.is_empty());

    // A delivery is recorded with the ledger entry, in one write.
    sent_with(
        store,
        &crm,
        &ada.id,
        "r-1",
        PasswordSent::Own {
            generation: &first.generation,
        },
    );
    assert!(store.ledger_entry(&crm, "user", &ada.id).unwrap().is_some());
    let states = store.passwords().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].delivered_to, vec![crm.clone()]);
    assert!(
        states[0].set_at <= Timestamp::now(),
        "set at {}",
        states[0].set_at
    );

    // A new password replaces it; the old one's delivery does not count.
    store
        .set_password(&ada.id, &Secret::new("second-Pass-2"))
        .unwrap();
    let second = store.user_password(&ada.id).unwrap().unwrap();
    assert_eq!(second.secret.expose(), "second-Pass-2");
    assert_ne!(second.generation, first.generation);
    assert!(second.delivered_to.is_empty());
    // A delivery of the replaced one, landing late, records nothing.
    sent_with(
        store,
        &crm,
        &ada.id,
        "r-1",
        PasswordSent::Own {
            generation: &first.generation,
        },
    );
    assert!(
        store
            .user_password(&ada.id)
            .unwrap()
            .unwrap()
            .delivered_to
            .is_empty()
    );
    // The same password set again is the same password: nothing to send.
    store
        .set_password(&ada.id, &Secret::new("second-Pass-2"))
        .unwrap();
    assert_eq!(
        store.user_password(&ada.id).unwrap().unwrap().generation,
        second.generation
    );

    // A wipe names its generation: the old one wipes nothing.
    assert!(!store.wipe_password(&ada.id, &first.generation).unwrap());
    assert!(store.user_password(&ada.id).unwrap().is_some());
    sent_with(
        store,
        &docs,
        &ada.id,
        "r-2",
        PasswordSent::Own {
            generation: &second.generation,
        },
    );
    assert_eq!(
        store.user_password(&ada.id).unwrap().unwrap().delivered_to,
        vec![docs.clone()]
    );
    assert!(store.wipe_password(&ada.id, &second.generation).unwrap());
    assert!(store.user_password(&ada.id).unwrap().is_none());
    assert!(store.users_with_password_among(&both).unwrap().is_empty());
    assert!(store.passwords().unwrap().is_empty());

    // A password of a user deleted goes with the user.
    store
        .set_password(&ada.id, &Secret::new("third-Pass-3"))
        .unwrap();
    store.delete_user(&ada.id, None).unwrap();
    assert!(store.passwords().unwrap().is_empty());
    assert!(matches!(
        store.set_password(&ada.id, &Secret::new("x")),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn a_user_written_with_a_password_lands_with_it(store: &dyn Store) {
    let mut write = user("grace");
    write.password = Some(Secret::new("Cobol-1959!"));
    let grace = store.create_user(write).unwrap();
    assert_eq!(
        store
            .user_password(&grace.id)
            .unwrap()
            .unwrap()
            .secret
            .expose(),
        "Cobol-1959!"
    );
    // Nothing of it in the user's document.
    let stored = store.get_user(&grace.id).unwrap().unwrap();
    assert!(
        !serde_json::to_string(&stored.attributes)
            .unwrap()
            .contains("Cobol")
    );

    // A replace without one leaves it; a replace with one replaces it.
    store.replace_user(&grace.id, user("grace"), None).unwrap();
    let kept = store.user_password(&grace.id).unwrap().unwrap();
    assert_eq!(kept.secret.expose(), "Cobol-1959!");
    let mut write = user("grace");
    write.password = Some(Secret::new("Mark-I-1944!"));
    store.replace_user(&grace.id, write, None).unwrap();
    let replaced = store.user_password(&grace.id).unwrap().unwrap();
    assert_eq!(replaced.secret.expose(), "Mark-I-1944!");
    assert_ne!(replaced.generation, kept.generation);

    // A write refused whole keeps no password either.
    let mut taken = user("grace");
    taken.password = Some(Secret::new("never-kept"));
    assert!(store.create_user(taken).is_err());
    assert_eq!(store.passwords().unwrap().len(), 1);
}

pub fn a_temporary_password_is_kept_only_to_be_read_once(store: &dyn Store) {
    let crm = app(store, "crm");
    let ada = store.create_user(user("ada")).unwrap();
    let bob = store.create_user(user("bob")).unwrap();
    let revealed = Secret::new("Temporary-Pass-7");
    sent_with(
        store,
        &crm,
        &ada.id,
        "r-1",
        PasswordSent::Temporary {
            reveal: Some(&revealed),
        },
    );
    // A temporary password the policy does not reveal is not kept.
    sent_with(
        store,
        &crm,
        &bob.id,
        "r-2",
        PasswordSent::Temporary { reveal: None },
    );
    assert_eq!(
        store.reveal_temporary_password(&crm, &bob.id).unwrap(),
        None
    );

    let read = store.reveal_temporary_password(&crm, &ada.id).unwrap();
    assert_eq!(read.as_ref().map(Secret::expose), Some("Temporary-Pass-7"));
    assert_eq!(
        store.reveal_temporary_password(&crm, &ada.id).unwrap(),
        None
    );

    // Unread past the retention, it is wiped.
    sent_with(
        store,
        &crm,
        &ada.id,
        "r-1",
        PasswordSent::Temporary {
            reveal: Some(&revealed),
        },
    );
    assert_eq!(
        store
            .wipe_temporary_passwords(Timestamp::now().minus(std::time::Duration::from_secs(60)))
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .wipe_temporary_passwords(Timestamp::now().plus(std::time::Duration::from_secs(1)))
            .unwrap(),
        1
    );
    assert_eq!(
        store.reveal_temporary_password(&crm, &ada.id).unwrap(),
        None
    );
}

/// Records that the account `remote_id` of `user_id` in `app_id` was
/// written with a password, as the engine records it.
fn sent_with(
    store: &dyn Store,
    app_id: &str,
    user_id: &str,
    remote_id: &str,
    sent: PasswordSent<'_>,
) {
    store
        .record_with_ledger(
            LedgerChange::PutWithPassword(&link(app_id, user_id, remote_id), sent),
            event(app_id, "written with a password"),
        )
        .unwrap();
}

/// Runs every case against a backend: `store_conformance!(open)` in a test
/// module, where `open()` returns `(keep_alive, store)` for a fresh, empty
/// store; `keep_alive` (a temporary folder, a throwaway database) lives as
/// long as the case runs.
macro_rules! store_conformance {
    ($open:path) => {
        $crate::conformance::store_conformance!(@cases $open;
            every_change_is_recorded_in_the_outbox_in_order,
            a_failed_change_leaves_neither_data_nor_outbox_record,
            changes_are_handed_out_once_as_one_pair_per_application,
            pairs_are_claimed_in_order_by_one_consumer_at_a_time,
            membership_never_forms_a_cycle,
            scope_follows_bindings_through_nested_groups,
            scope_and_users_read_for_many_answer_as_for_each,
            remote_ids_and_links_answer_only_for_what_the_ledger_holds,
            versions_refuse_lost_updates,
            readers_see_what_was_committed_from_other_threads,
            an_import_updates_what_it_names_and_keeps_the_rest,
            names_are_unique_and_found_without_regard_to_unicode_case,
            events_are_listed_newest_first_filtered_and_pruned,
            the_users_of_a_group_include_those_of_nested_groups,
            a_group_read_without_members_is_the_group_less_its_members,
            a_remote_account_is_linked_to_one_object_at_most,
            a_renewal_says_which_pairs_are_still_held,
            a_change_completes_when_every_pair_is_done,
            a_quarantine_keeps_its_reason_and_any_other_state_clears_it,
            each_write_appends_its_change,
            a_change_of_membership_gives_the_member_a_new_version,
            a_missing_member_is_refused_whole,
            success_takes_an_object_off_the_dead_letters,
            the_ledger_and_its_event_land_together_or_not_at_all,
            records_written_together_stand_on_their_own,
            reads_in_one_read_share_one_snapshot,
            the_scope_and_its_accounts_are_counted_in_the_store,
            the_guard_counts_offboardings_in_turn_and_holds_past_its_threshold,
            a_rejected_hold_lets_nothing_through,
            applications_are_found_by_name_or_id_and_names_are_unique,
            host_metadata_is_kept_by_key,
            hosts_are_present_until_they_run_out_or_withdraw,
            an_object_lease_is_held_by_one_holder_at_a_time,
            leases_asked_for_together_are_granted_as_each_alone,
            leases_given_up_together_are_each_given_up_as_alone,
            a_ledger_write_for_a_lost_lease_records_nothing,
            a_password_is_kept_sealed_until_wiped_and_its_deliveries_are_its_own,
            a_user_written_with_a_password_lands_with_it,
            a_temporary_password_is_kept_only_to_be_read_once
        );
    };
    (@cases $open:path; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (_keep_alive, store) = $open();
                $crate::conformance::$case(&store);
            }
        )+
    };
}
pub(crate) use store_conformance;
