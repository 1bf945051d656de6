//! Hosts sharing one PostgreSQL database, against the simulated
//! application. Prints its figures: the first sync of `A` applications
//! (each a tenant of one `scimlink sandbox-sp`), every one bound to the same
//! `U` users in `G` groups (groups managed), in objects per second from the
//! activation of every application until each holds every account and
//! group, for
//!
//! - one host on SQLite (the default),
//! - one, two and three hosts on one PostgreSQL database.
//!
//! The database is the cluster `SCIMLINK_BENCH_DATABASE_URL` names (a
//! database per run is made in it), or a throwaway cluster started with
//! `scripts/postgres.sh`. `SCIMLINK_BENCH_APPS` (default 6),
//! `SCIMLINK_BENCH_USERS` (default 2000) and `SCIMLINK_BENCH_GROUPS`
//! (default 20) change the size, `SCIMLINK_BENCH_HOSTS` (default 3) the
//! most hosts run on PostgreSQL, `SCIMLINK_BENCH_STATEMENT_CACHE_SIZE` the
//! hosts' `statement_cache_size` (0: nothing prepared); with
//! `SCIMLINK_BENCH_LOGS` naming a folder, each host logs there at `info`.
//! Each run also prints when each application held every account and
//! group. Needs the bundled connectors built
//! (`scripts/build-plugins.sh`). Every process shares the machine's cores:
//! the hosts, the application and PostgreSQL.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{ADMIN_TOKEN, APP_TOKEN, Served, Simulated, count, repository};

/// How long a run may take before the bench gives up on it.
const PATIENCE: Duration = Duration::from_secs(600);

/// A PostgreSQL cluster: the one named, or a throwaway one stopped at the
/// end.
struct Cluster {
    url: String,
    throwaway: Option<tempfile::TempDir>,
}

impl Cluster {
    fn open() -> Cluster {
        if let Ok(url) = std::env::var("SCIMLINK_BENCH_DATABASE_URL") {
            return Cluster {
                url,
                throwaway: None,
            };
        }
        let parent = tempfile::Builder::new()
            .prefix("scimlink-bench-pg")
            .tempdir_in("/var/tmp")
            .expect("a folder for the cluster");
        // The cluster's own user must be able to reach its folder.
        set_mode(parent.path(), 0o755);
        let output = std::process::Command::new(repository().join("scripts/postgres.sh"))
            .arg("start")
            .arg(parent.path().join("cluster"))
            .output()
            .expect("scripts/postgres.sh runs");
        assert!(
            output.status.success(),
            "scripts/postgres.sh start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Cluster {
            url: String::from_utf8_lossy(&output.stdout).trim().to_string(),
            throwaway: Some(parent),
        }
    }

    /// A new, empty database; its URL.
    fn database(&self, name: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url, postgres::NoTls)
            .expect("the benchmark's cluster answers");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("an old database is dropped");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("a database is made");
        let mut url = reqwest::Url::parse(&self.url).expect("a URL");
        url.set_path(&format!("/{name}"));
        if let Ok(size) = std::env::var("SCIMLINK_BENCH_STATEMENT_CACHE_SIZE") {
            url.query_pairs_mut()
                .append_pair("statement_cache_size", &size);
        }
        url.to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(parent) = &self.throwaway {
            let _ = std::process::Command::new(repository().join("scripts/postgres.sh"))
                .arg("stop")
                .arg(parent.path().join("cluster"))
                .output();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("the folder's mode is set");
}

fn directory_csv(users: usize, groups: usize) -> String {
    let mut csv = String::from("userName,givenName,familyName,groups\n");
    for index in 0..users {
        csv.push_str(&format!(
            "user{index:06},User,{index},group{:03}\n",
            index % groups
        ));
    }
    csv
}

struct Size {
    apps: usize,
    users: usize,
    groups: usize,
}

/// How long a run took, from the activations.
struct Run {
    /// Until the last account and group, and the outbox drained.
    took: Duration,
    /// Until each application held all its accounts and groups.
    done_at: Vec<Duration>,
}

/// Provisions `size` through `hosts` hosts on `database` (SQLite when
/// `None`).
fn run(size: &Size, hosts: usize, database: Option<&str>, folder: &Path) -> Run {
    let plugins = repository().join("dist/plugins");
    let application = Simulated::start();
    let env: Vec<(&str, &str)> = database
        .map(|url| vec![("SCIMLINK_DATABASE_URL", url), ("SCIMLINK_SECRET_KEY", KEY)])
        .unwrap_or_default();
    let served: Vec<Served> = (0..hosts)
        .map(|index| Served::start_with(&folder.join(format!("host{index}")), &plugins, &env))
        .collect();
    // Every host sees the others before the work starts (they announce
    // themselves every five seconds).
    if hosts > 1 {
        std::thread::sleep(Duration::from_secs(6));
    }
    let first = &served[0];
    let csv = folder.join("directory.csv");
    std::fs::write(&csv, directory_csv(size.users, size.groups)).expect("the directory file");
    first.cli(&["directory", "import", csv.to_str().expect("a path")]);
    for app in 0..size.apps {
        let name = format!("app{app}");
        first.cli(&[
            "app",
            "add",
            &name,
            "--connector",
            "custom-scim",
            "--base-url",
            &format!("{}/tenant{app}/scim/v2", application.base),
            "--token",
            APP_TOKEN,
            "--manage-groups",
            "--requests-per-second",
            "10000",
            "--concurrency",
            "8",
        ]);
        for group in 0..size.groups {
            first.cli(&["app", "bind", &name, &format!("group{group:03}")]);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let http = reqwest::Client::new();
    let started = Instant::now();
    for app in 0..size.apps {
        first.cli(&["app", "activate", &format!("app{app}")]);
    }
    let mut done_at: Vec<Option<Duration>> = vec![None; size.apps];
    runtime.block_on(async {
        while done_at.iter().any(Option::is_none) {
            for (app, done) in done_at
                .iter_mut()
                .enumerate()
                .filter(|(_, done)| done.is_none())
            {
                let base = format!("{}/tenant{app}/scim/v2", application.base);
                let users = total(&http, &format!("{base}/Users?count=0")).await;
                let groups = total(&http, &format!("{base}/Groups?count=0")).await;
                if users >= size.users as u64 && groups >= size.groups as u64 {
                    *done = Some(started.elapsed());
                }
                assert!(started.elapsed() < PATIENCE, "app{app}: {users} users");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // And the outbox drained: the last group pushes are in.
        loop {
            let status: Value = http
                .get(format!("{}/api/v1/status", first.base))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("the host answers")
                .json()
                .await
                .expect("JSON");
            if status["pendingChanges"] == 0 {
                break;
            }
            assert!(started.elapsed() < PATIENCE, "{status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Run {
        took: started.elapsed(),
        done_at: done_at.into_iter().flatten().collect(),
    }
}

/// The same key on every host of a run.
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

async fn total(http: &reqwest::Client, url: &str) -> u64 {
    let answer: Value = http
        .get(url)
        .bearer_auth(APP_TOKEN)
        .send()
        .await
        .expect("the application answers")
        .json()
        .await
        .expect("JSON");
    answer["totalResults"].as_u64().unwrap_or(0)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let size = Size {
        apps: count("SCIMLINK_BENCH_APPS", 6).max(1),
        users: count("SCIMLINK_BENCH_USERS", 2000).max(1),
        groups: count("SCIMLINK_BENCH_GROUPS", 20).max(1),
    };
    let most_hosts = count("SCIMLINK_BENCH_HOSTS", 3).max(1);
    assert!(
        repository().join("dist/plugins/custom-scim.wasm").exists(),
        "build the bundled connectors first: scripts/build-plugins.sh"
    );
    let objects = (size.apps * (size.users + size.groups)) as f64;
    println!(
        "first sync of {} applications, each {} users in {} groups (groups managed), \
         {objects} objects in all",
        size.apps, size.users, size.groups
    );
    let report = |what: &str, run: Run| {
        println!(
            "  {what:<28} {:>7.2} s  {:>7.0} objects/s",
            run.took.as_secs_f64(),
            objects / run.took.as_secs_f64()
        );
        let done_at: Vec<String> = run
            .done_at
            .iter()
            .map(|at| format!("{:.1}", at.as_secs_f64()))
            .collect();
        println!("    each application done at {} s", done_at.join(", "));
    };
    let folder = tempfile::tempdir().expect("a temporary folder");
    let sqlite = run(&size, 1, None, &folder.path().join("sqlite"));
    report("SQLite, 1 host", sqlite);
    let cluster = Cluster::open();
    for hosts in 1..=most_hosts {
        let url = cluster.database(&format!("scimlink_bench_hosts_{hosts}"));
        let took = run(
            &size,
            hosts,
            Some(&url),
            &folder.path().join(format!("pg{hosts}")),
        );
        report(&format!("PostgreSQL, {hosts} host(s)"), took);
    }
}
