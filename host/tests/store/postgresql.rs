//! The PostgreSQL backend: the conformance suite, each case in a database
//! of its own, and what only a shared database has (a newer schema
//! refused, hosts starting together migrating once, one host woken by
//! another's change).
//!
//! The cluster is the one `SCIMLINK_TEST_DATABASE_URL` names
//! ([`crate::database`]).

use postgres::{Client, NoTls};
use scimlink::store::prelude::*;
use scimlink::store::{PostgresStore, TokenCipher};

use crate::conformance::{app, store_conformance};
use crate::database::Database;

fn open() -> (Database, PostgresStore) {
    let database = Database::new();
    let store = PostgresStore::open(database.url(), TokenCipher::from_key(&[3; 32])).unwrap();
    (database, store)
}

store_conformance!(open);

#[test]
fn a_database_written_by_a_newer_scimlink_is_refused() {
    let database = Database::new();
    drop(open_at(&database, 3));
    let mut client = Client::connect(database.url(), NoTls).unwrap();
    client
        .execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (9999, now())",
            &[],
        )
        .unwrap();
    let refused = PostgresStore::open(database.url(), TokenCipher::from_key(&[3; 32]));
    let message = refused.map(drop).unwrap_err().to_string();
    assert!(
        message.contains("schema version 9999, newer than this scimlink knows"),
        "{message}"
    );
}

#[test]
fn hosts_starting_together_migrate_once() {
    let database = Database::new();
    let opened: Vec<PostgresStore> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| open_at(&database, 3)))
            .collect();
        starting
            .into_iter()
            .map(|host| host.join().unwrap())
            .collect()
    });
    let mut client = Client::connect(database.url(), NoTls).unwrap();
    let applied: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(applied, vec![1, 2, 3, 4], "each migration once, in order");
    // Each host sees what another wrote.
    app(&opened[0], "crm");
    assert!(opened[3].get_app("crm").unwrap().is_some());
}

#[test]
fn a_token_sealed_under_one_key_does_not_open_under_another() {
    let database = Database::new();
    let first = open_at(&database, 3);
    app(&first, "crm");
    assert_eq!(
        first.app_token("crm").unwrap(),
        scimlink::store::Secret::new("token-of-crm")
    );
    let other_key = open_at(&database, 4);
    assert!(matches!(
        other_key.app_token("crm"),
        Err(scimlink::store::StoreError::Secret(_))
    ));
    // Nothing of the token is stored in clear.
    let mut client = Client::connect(database.url(), NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT token_sealed, settings::text, pacing::text FROM applications",
            &[],
        )
        .unwrap();
    let sealed: Vec<u8> = row.get(0);
    assert!(!sealed.windows(12).any(|window| window == b"token-of-crm"));
}

fn open_at(database: &Database, key: u8) -> PostgresStore {
    PostgresStore::open(database.url(), TokenCipher::from_key(&[key; 32])).unwrap()
}

/// A host waiting for work is woken by a change another host writes,
/// without polling for it.
#[test]
fn a_change_on_one_host_wakes_the_others() {
    let database = Database::new();
    let waiting = open_at(&database, 3);
    let writing = open_at(&database, 3);
    let signal = waiting.outbox_signal().expect("PostgreSQL signals");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let woken_within = |span: std::time::Duration| {
        runtime.block_on(async { tokio::time::timeout(span, signal.notified()).await.is_ok() })
    };

    // The listener connects in the background: a write before it listens
    // is not heard, so writes go on until one is.
    let mut heard = false;
    for attempt in 0..40 {
        app(&writing, &format!("app-{attempt}"));
        if woken_within(std::time::Duration::from_millis(250)) {
            heard = true;
            break;
        }
    }
    assert!(heard, "no write of the other host woke this one");
    // Drain what the writes before were heard as.
    while woken_within(std::time::Duration::from_millis(200)) {}

    // Nothing is said when nothing happened.
    assert!(!woken_within(std::time::Duration::from_millis(300)));
}
