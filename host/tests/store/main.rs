//! The embedded store against its invariants: one transaction per change
//! with its outbox record, leases, membership integrity, scope through
//! nested groups, sealed tokens, migrations.

use std::sync::Arc;

use scimlink::store::prelude::*;
use scimlink::store::{
    AppState, AppUpdate, AppWrite, ChangeKind, GroupWrite, ImportBatch, ImportGroup, LedgerEntry,
    Member, MemberKind, Page, Secret, SqliteStore, StoreError, Timestamp, TokenCipher, UserKey,
    UserWrite,
};
use serde_json::{Map, json};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[3; 32])).unwrap();
    (folder, store)
}

fn user(name: &str) -> UserWrite {
    let mut attributes = Map::new();
    attributes.insert("userName".into(), json!(name));
    UserWrite {
        user_name: name.into(),
        external_id: None,
        active: true,
        attributes,
    }
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

fn app(store: &SqliteStore, name: &str) -> String {
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
        })
        .unwrap()
        .id
}

#[test]
fn every_change_is_recorded_in_the_outbox_in_order() {
    let (_folder, store) = open();
    let ada = store.create_user(user("ada")).unwrap();
    let eng = store.create_group(group("eng", None)).unwrap();
    store
        .change_members(&eng.id, &[user_member(&ada.id)], &[])
        .unwrap();
    store.delete_user(&ada.id, None).unwrap();
    let changes = store.claim_changes("worker-1", 100, 60).unwrap();
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

#[test]
fn a_failed_change_leaves_neither_data_nor_outbox_record() {
    let (_folder, store) = open();
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

#[test]
fn leases_hand_unfinished_work_to_the_next_consumer() {
    let (_folder, store) = open();
    store.create_user(user("ada")).unwrap();
    store.create_user(user("bob")).unwrap();
    let first = store.claim_changes("a", 1, 60).unwrap();
    assert_eq!(first.len(), 1);
    let second = store.claim_changes("b", 10, 60).unwrap();
    assert_eq!(second.len(), 1, "a leased change is not handed out twice");
    assert_ne!(first[0].seq, second[0].seq);
    // Completing someone else's lease does nothing.
    store.complete_changes("b", &[first[0].seq]).unwrap();
    assert_eq!(store.pending_changes().unwrap(), 2);
    store.complete_changes("a", &[first[0].seq]).unwrap();
    assert_eq!(store.pending_changes().unwrap(), 1);
    // A lease that runs out returns the change to the queue.
    let expired = store.claim_changes("c", 10, 0).unwrap();
    assert!(expired.is_empty(), "b's lease still holds");
}

#[test]
fn an_expired_lease_is_claimed_again() {
    let (_folder, store) = open();
    store.create_user(user("ada")).unwrap();
    let first = store.claim_changes("crashed", 10, 0).unwrap();
    assert_eq!(first.len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = store.claim_changes("survivor", 10, 60).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].seq, first[0].seq);
}

#[test]
fn membership_never_forms_a_cycle() {
    let (_folder, store) = open();
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

#[test]
fn scope_follows_bindings_through_nested_groups() {
    let (_folder, store) = open();
    let users: Vec<String> = ["ada", "bob", "carol", "dave"]
        .iter()
        .map(|name| store.create_user(user(name)).unwrap().id)
        .collect();
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
    let crm = app(&store, "crm");
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

#[test]
fn remote_ids_answer_only_for_what_the_ledger_holds() {
    let (_folder, store) = open();
    let crm = app(&store, "crm");
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
}

#[test]
fn versions_refuse_lost_updates() {
    let (_folder, store) = open();
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

#[test]
fn application_tokens_are_sealed_and_rotate_without_deactivation() {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[9; 32])).unwrap();
    app(&store, "crm");
    store
        .update_app(
            "crm",
            AppUpdate {
                state: Some(AppState::Active),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(store.app_token("crm").unwrap(), Secret::new("token-of-crm"));
    let rotated = store
        .update_app(
            "crm",
            AppUpdate {
                token: Some(Secret::new("new-token")),
                ..AppUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(rotated.state, AppState::Active);
    assert_eq!(store.app_token("crm").unwrap(), Secret::new("new-token"));
    drop(store);
    for file in ["scimlink.db", "scimlink.db-wal"] {
        let bytes = std::fs::read(folder.path().join(file)).unwrap_or_default();
        for secret in ["token-of-crm", "new-token"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{file}"
            );
        }
    }
    // Another key cannot open it, and says so.
    let other = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[1; 32])).unwrap();
    assert!(matches!(other.app_token("crm"), Err(StoreError::Secret(_))));
}

#[test]
fn the_store_survives_reopening_and_refuses_a_newer_schema() {
    let folder = tempfile::tempdir().unwrap();
    let cipher = || TokenCipher::from_key(&[3; 32]);
    let store = SqliteStore::open_in(folder.path(), cipher()).unwrap();
    store.create_user(user("ada")).unwrap();
    drop(store);
    let store = SqliteStore::open_in(folder.path(), cipher()).unwrap();
    assert_eq!(
        store
            .list_users(Page {
                offset: 0,
                limit: 10
            })
            .unwrap()
            .total,
        1
    );
    drop(store);
    mark_future_schema(folder.path());
    let error = SqliteStore::open_in(folder.path(), cipher()).unwrap_err();
    assert!(error.to_string().contains("newer"), "{error}");
}

/// Marks the database as written by a future schema version.
fn mark_future_schema(folder: &std::path::Path) {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute(\"INSERT INTO schema_migrations VALUES (999, 'future')\"); c.commit()",
        )
        .arg(folder.join("scimlink.db"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn readers_see_what_was_committed_from_other_threads() {
    let (_folder, store) = open();
    let store = Arc::new(store);
    let handles: Vec<_> = (0..4)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for index in 0..50 {
                    let created = store
                        .create_user(user(&format!("u{thread}-{index}")))
                        .unwrap();
                    assert!(store.get_user(&created.id).unwrap().is_some());
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
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

#[test]
fn an_import_updates_what_it_names_and_keeps_the_rest() {
    let (_folder, store) = open();
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

#[test]
fn names_are_unique_and_found_without_regard_to_unicode_case() {
    let (_folder, store) = open();
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

#[test]
fn events_are_listed_newest_first_filtered_and_pruned() {
    use scimlink::store::{Event, EventQuery, Outcome};
    let (_folder, store) = open();
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
    assert_eq!(
        store
            .prune_events("2026-02-15T00:00:00.000Z".parse().unwrap())
            .unwrap(),
        2
    );
    assert_eq!(store.events(&EventQuery::default(), page).unwrap().total, 1);
}

#[test]
fn the_users_of_a_group_include_those_of_nested_groups() {
    let (_folder, store) = open();
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

fn link(app_id: &str, object: &str, remote: &str) -> LedgerEntry {
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

#[test]
fn a_remote_account_is_linked_to_one_object_at_most() {
    let (_folder, store) = open();
    let crm = app(&store, "crm");
    let other = app(&store, "other");
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

#[test]
fn links_that_shared_an_account_before_the_upgrade_keep_the_newest() {
    let folder = tempfile::tempdir().unwrap();
    let database = folder.path().join("scimlink.db");
    let migrations =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/sqlite/migrations");
    // A database as the previous release left it: two users linked to r1.
    let script = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
         c.executescript(open(sys.argv[2]).read()); c.executescript(open(sys.argv[3]).read()); \
         c.execute(\"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)\"); \
         c.execute(\"INSERT INTO schema_migrations VALUES (1, 'x'), (2, 'x')\"); \
         c.execute(\"INSERT INTO applications (id, name, label, connector, base_url, token_nonce, token_sealed, manage_groups, state, settings, version, created, modified) VALUES ('app', 'crm', 'crm', 'custom-scim', 'https://x', x'00', x'00', 0, 'active', '[]', 1, 'now', 'now')\"); \
         c.execute(\"INSERT INTO ledger VALUES ('app', 'user', 'old', 'r1', 'deactivated', NULL, '2026-01-01T00:00:00.000Z')\"); \
         c.execute(\"INSERT INTO ledger VALUES ('app', 'user', 'new', 'r1', 'h', NULL, '2026-06-01T00:00:00.000Z')\"); \
         c.execute(\"INSERT INTO ledger VALUES ('app', 'user', 'other', 'r2', 'h', NULL, '2026-06-01T00:00:00.000Z')\"); \
         c.commit()";
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&database)
        .arg(migrations.join("0001_directory.sql"))
        .arg(migrations.join("0002_engine_safety_and_assignments.sql"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[3; 32])).unwrap();
    let holder = store.ledger_holder("app", "user", "r1").unwrap().unwrap();
    assert_eq!(holder.object_id, "new");
    assert!(store.ledger_entry("app", "user", "old").unwrap().is_none());
    assert!(
        store
            .ledger_entry("app", "user", "other")
            .unwrap()
            .is_some()
    );
    let letters = store.dead_letters("app").unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].object_id, "old");
    assert!(
        letters[0]
            .reason
            .contains("account r1 was also linked to user new"),
        "{}",
        letters[0].reason
    );
}

#[test]
fn a_renewal_says_which_claims_are_still_held() {
    let (_folder, store) = open();
    store.create_user(user("ada")).unwrap();
    store.create_user(user("bob")).unwrap();
    let mine = store.claim_changes("paused", 10, 0).unwrap();
    assert_eq!(mine.len(), 2);
    let seqs: Vec<i64> = mine.iter().map(|change| change.seq).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The lease ran out while the consumer was paused; another took one.
    let taken = store.claim_changes("other", 1, 60).unwrap();
    assert_eq!(taken.len(), 1);
    let held = store.renew_claims("paused", &seqs, 60).unwrap();
    assert_eq!(held.len(), 1);
    assert!(!held.contains(&taken[0].seq));
    assert_eq!(
        store.renew_claims("other", &seqs, 60).unwrap(),
        [taken[0].seq]
    );
}

#[test]
fn progress_is_kept_per_change_and_application_until_the_change_completes() {
    use scimlink::store::ChangeProgress;
    let (_folder, store) = open();
    store.create_user(user("ada")).unwrap();
    let claimed = store.claim_changes("a", 10, 60).unwrap();
    let seq = claimed[0].seq;
    let pair = |app: &str, done: bool| ChangeProgress {
        seq,
        app_id: app.into(),
        done,
        attempts: u32::from(!done),
        retry_at: (!done).then(|| "2999-01-01T00:00:00.000Z".parse().unwrap()),
        last_error: (!done).then(|| "user ada: 500".to_string()),
    };
    store
        .record_progress("a", &[pair("crm", true), pair("hr", false)])
        .unwrap();
    // A consumer that does not hold the change records nothing.
    store.record_progress("b", &[pair("wiki", true)]).unwrap();
    let progress = store.change_progress(&[seq]).unwrap();
    assert_eq!(progress, [pair("crm", true), pair("hr", false)]);
    // Deferred: not claimed again before it is due.
    store
        .defer_changes("a", &[(seq, "2999-01-01T00:00:00.000Z".parse().unwrap())])
        .unwrap();
    assert!(store.claim_changes("b", 10, 60).unwrap().is_empty());
    store.complete_changes("a", &[seq]).unwrap();
    assert_eq!(store.pending_changes().unwrap(), 0);
    assert!(store.change_progress(&[seq]).unwrap().is_empty());
}

#[test]
fn a_quarantine_keeps_its_reason_and_any_other_state_clears_it() {
    let (_folder, store) = open();
    let crm = app(&store, "crm");
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
