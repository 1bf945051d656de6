//! The PostgreSQL backend: the conformance suite, each case in a database
//! of its own (with each connection's statement cache and without it), and what only a shared database has (a newer schema
//! refused, hosts starting together migrating once, one host woken by
//! another's change, the planner's statistics kept while a host writes).
//!
//! The cluster is the one `SCIMLINK_TEST_DATABASE_URL` names
//! ([`crate::database`]).

use postgres::{Client, NoTls};
use scimlink::store::prelude::*;
use scimlink::store::{LedgerChange, LedgerRecord, PostgresStore, TokenCipher};

use crate::conformance::{app, event, link, store_conformance};
use crate::database::Database;

fn open() -> (Database, PostgresStore) {
    let database = Database::new();
    let store = PostgresStore::open(database.url(), TokenCipher::from_key(&[3; 32])).unwrap();
    (database, store)
}

store_conformance!(open);

/// The same suite with each connection preparing nothing
/// (`statement_cache_size=0`, for a pooler that keeps no prepared
/// statements): every statement sent as text works as well.
mod without_a_statement_cache {
    use super::*;

    fn open() -> (Database, PostgresStore) {
        let database = Database::new();
        let separator = if database.url().contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{separator}statement_cache_size=0", database.url());
        let store = PostgresStore::open(&url, TokenCipher::from_key(&[3; 32])).unwrap();
        (database, store)
    }

    store_conformance!(open);
}

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

/// A ledger a host fills is analyzed while it writes, without waiting for
/// autovacuum: its entries are then looked up by the primary key, not by
/// reading every entry of the application through `ledger_remote`.
#[test]
fn a_ledger_filled_while_the_host_writes_is_analyzed_and_looked_up_by_its_key() {
    let (database, store) = open();
    let crm = app(&store, "crm");
    let entries: Vec<_> = (0..1_200)
        .map(|n| link(&crm, &format!("user-{n:04}"), &format!("remote-{n:04}")))
        .collect();
    for chunk in entries.chunks(100) {
        let outcomes = store.record_each_with_ledger(
            chunk
                .iter()
                .map(|entry| LedgerRecord {
                    change: LedgerChange::Put(entry),
                    event: event(&crm, "created"),
                    holder: None,
                })
                .collect(),
        );
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    }

    let mut client = Client::connect(database.url(), NoTls).unwrap();
    // `last_analyze` is an analysis asked for; autovacuum's is
    // `last_autoanalyze`.
    let analyzed = |client: &mut Client| -> bool {
        client
            .query_one(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'ledger'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while !analyzed(&mut client) {
        assert!(
            std::time::Instant::now() < deadline,
            "the ledger was not analyzed while the host wrote"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT doc_hash FROM ledger
             WHERE app_id = $1 AND object_kind = 'user' AND object_id = 'user-0777'",
            &[&crm],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        plan.iter().any(|line| line.contains("ledger_pkey")),
        "{plan:?}"
    );
    drop(store);
}
