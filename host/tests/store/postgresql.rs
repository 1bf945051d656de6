//! The PostgreSQL backend: the conformance suite, each case in a database
//! of its own, and what only a shared database has (a newer schema
//! refused, hosts starting together migrating once).
//!
//! The cluster is the one `SCIMLINK_TEST_DATABASE_URL` names: a throwaway
//! one that `scripts/test.sh` starts (`scripts/postgres.sh`), or any
//! database the runner may create databases in. Without it these tests
//! fail and say so: they are never skipped.

use postgres::{Client, NoTls};
use scimlink::store::prelude::*;
use scimlink::store::{PostgresStore, TokenCipher};

use crate::conformance::{app, store_conformance};

const URL_VARIABLE: &str = "SCIMLINK_TEST_DATABASE_URL";

/// A database of its own for one test, dropped with it.
pub struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    pub fn new() -> Database {
        let admin_url = std::env::var(URL_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{URL_VARIABLE} is not set: run scripts/test.sh, which starts a throwaway \
                 PostgreSQL cluster, or set it to a database this user may create databases in"
            )
        });
        let name = format!("scimlink_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = Client::connect(&admin_url, NoTls).expect("the test cluster answers");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("a test database can be created");
        let mut url = reqwest::Url::parse(&admin_url).expect("a URL");
        url.set_path(&format!("/{name}"));
        Database {
            admin_url,
            name,
            url: url.to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

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
    assert_eq!(applied, vec![1]);
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
