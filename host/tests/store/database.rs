//! A PostgreSQL database of a test's own, on the cluster that
//! `SCIMLINK_TEST_DATABASE_URL` names: a throwaway one that `scripts/test.sh`
//! starts (`scripts/postgres.sh`), or any database the runner may create
//! databases in. Without it the tests that need one fail and say so: they
//! are never skipped.

use postgres::{Client, NoTls};

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
