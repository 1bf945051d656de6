//! PostgreSQL for the end-to-end tests: a database of its own per test in
//! the throwaway cluster `scripts/test.sh` starts
//! (`SCIMLINK_TEST_DATABASE_URL`), dropped when the test ends, and hosts
//! serving on it.

use std::path::Path;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use crate::{ADMIN_TOKEN, Host, SCIM_TOKEN};

/// A host key, base64 as `SCIMLINK_SECRET_KEY` takes it: hosts sharing a
/// database share their key.
pub const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// An empty database, dropped (with its connections) when this is.
pub struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    pub fn new() -> Database {
        let admin_url = std::env::var("SCIMLINK_TEST_DATABASE_URL").unwrap_or_else(|_| {
            panic!(
                "SCIMLINK_TEST_DATABASE_URL is not set: run scripts/test.sh, which starts a \
                 throwaway PostgreSQL cluster"
            )
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is past 1970")
            .as_nanos();
        let name = format!("scimlink_e2e_{}_{nanos}", std::process::id());
        let mut admin = Client::connect(&admin_url, NoTls).expect("the test cluster answers");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("a database is created");
        let mut url = reqwest::Url::parse(&admin_url).expect("the test cluster's URL parses");
        url.set_path(&format!("/{name}"));
        Database {
            admin_url,
            name,
            url: url.to_string(),
        }
    }

    /// The database's URL, as `--database` takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of the database, for reading what the hosts wrote.
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("the test database answers")
    }

    /// A host on `data` that keeps its directory in this database, with
    /// the host key `key` and the test tokens.
    pub fn host(&self, data: &Path, key: &str) -> Host {
        Host::start_with(
            data,
            &[
                ("SCIMLINK_ADMIN_TOKEN", ADMIN_TOKEN),
                ("SCIMLINK_SCIM_TOKEN", SCIM_TOKEN),
                ("SCIMLINK_DATABASE_URL", &self.url),
                ("SCIMLINK_SECRET_KEY", key),
            ],
        )
    }

    /// Waits, up to `within`, until `count` engines are present, and then
    /// until each has seen the others (they look every five seconds).
    pub fn wait_for_engines(&self, count: usize, within: Duration) {
        let mut client = self.client();
        let deadline = Instant::now() + within;
        loop {
            let present: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM hosts WHERE until > clock_timestamp()",
                    &[],
                )
                .map(|row| row.get(0))
                .unwrap_or(0);
            if present >= count as i64 {
                std::thread::sleep(Duration::from_secs(6));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{present} of {count} engines present"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Database::new()
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
