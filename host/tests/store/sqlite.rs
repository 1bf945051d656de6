//! The SQLite backend: the conformance suite, and what only a file on disk
//! has (tokens sealed at rest, reopening, migrations from older releases).

use scimlink::store::prelude::*;
use scimlink::store::{AppState, AppUpdate, Page, Secret, SqliteStore, StoreError, TokenCipher};

use crate::conformance::{app, store_conformance, user};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[3; 32])).unwrap();
    (folder, store)
}

store_conformance!(open);

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
