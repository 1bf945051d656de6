//! The provisioning engine end to end, as an operator runs it. Prints its
//! figures:
//!
//! - initial provisioning of 10,000 users in 100 bound groups (groups
//!   managed) to a fast local SCIM server: objects per second, and the ratio
//!   to a plain HTTP load generator sending the same requests (a lookup and
//!   a create per user; a lookup, a create and member PATCHes per group) at
//!   the same concurrency to a fresh server of the same kind;
//! - the host's peak memory (VmHWM) during that run;
//! - a reconcile of every provisioned user, unchanged: its time and the
//!   write requests it sent (zero expected);
//! - change-to-request latency: 200 directory changes one after the other,
//!   each from its commit (the user's `modified`) to the application's
//!   answer (the event's time); p50 and p99.
//!
//! The host is a `scimlink serve` process and the application a `scimlink
//! sandbox-sp` process (the in-memory simulated application, request log
//! off), both on loopback, so that the host's memory is its own and the
//! application is not what limits the run. Needs the bundled connectors
//! built (`scripts/build-plugins.sh`).
//!
//! `SCIMLINK_BENCH_USERS` (default 10000) and `SCIMLINK_BENCH_GROUPS`
//! (default 100) change the size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

mod support;

use support::{ADMIN_TOKEN, APP_TOKEN, Served, Simulated, count, repository};

const CONCURRENCY: usize = 8;
const MEMBERS_PER_PATCH: usize = 100;

struct Http {
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Http {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(CONCURRENCY * 2)
                .build()
                .expect("an HTTP client"),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self.client.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let answer = request.send().await.expect("the request is answered");
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "{url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

fn directory_csv(users: usize, groups: usize) -> String {
    // No email: the connector's lookup is then the userName filter alone
    // (the simulated application indexes userName only; an email lookup
    // would be a scan, which would measure the application, not the engine).
    let mut rows = String::from("userName,givenName,familyName,title,groups\n");
    for index in 0..users {
        rows.push_str(&format!(
            "user{index:06},Bench,User {index},Engineer,group{:03}\n",
            index % groups
        ));
    }
    rows
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

async fn wait_until_synced(
    http: &Http,
    host: &Served,
    application: &Simulated,
    users: usize,
    groups: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let status = http
            .send(
                reqwest::Method::GET,
                &format!("{}/api/v1/status", host.base),
                ADMIN_TOKEN,
                None,
            )
            .await;
        let remote_users = http
            .send(
                reqwest::Method::GET,
                &format!("{}/scim/v2/Users?count=0", application.base),
                APP_TOKEN,
                None,
            )
            .await["totalResults"]
            .as_u64()
            .unwrap_or(0);
        let remote_groups = http
            .send(
                reqwest::Method::GET,
                &format!("{}/scim/v2/Groups?count=0", application.base),
                APP_TOKEN,
                None,
            )
            .await["totalResults"]
            .as_u64()
            .unwrap_or(0);
        if status["pendingChanges"] == 0
            && remote_users == users as u64
            && remote_groups == groups as u64
        {
            return;
        }
        assert!(Instant::now() < deadline, "the initial sync did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the engine sends for the initial sync, sent by a plain client.
async fn load_generator(http: Arc<Http>, base: String, users: usize, groups: usize) -> Duration {
    let started = Instant::now();
    let remote_ids: Vec<(usize, String)> = futures_util::stream::iter(0..users)
        .map(|index| {
            let (http, base) = (Arc::clone(&http), base.clone());
            async move {
                let name = format!("user{index:06}");
                http.send(
                    reqwest::Method::GET,
                    &format!("{base}/scim/v2/Users?filter=userName%20eq%20%22{name}%22"),
                    APP_TOKEN,
                    None,
                )
                .await;
                let created = http
                    .send(
                        reqwest::Method::POST,
                        &format!("{base}/scim/v2/Users"),
                        APP_TOKEN,
                        Some(json!({
                            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                            "userName": name,
                            "name": { "givenName": "Bench", "familyName": format!("User {index}") },
                            "title": "Engineer",
                            "active": true,
                        })),
                    )
                    .await;
                (
                    index,
                    created["id"].as_str().unwrap_or_default().to_string(),
                )
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut members: Vec<Vec<String>> = vec![Vec::new(); groups];
    for (index, id) in remote_ids {
        members[index % groups].push(id);
    }
    futures_util::stream::iter(members.into_iter().enumerate())
        .map(|(group, ids)| {
            let (http, base) = (Arc::clone(&http), base.clone());
            async move {
                let name = format!("group{group:03}");
                http.send(
                    reqwest::Method::GET,
                    &format!("{base}/scim/v2/Groups?filter=displayName%20eq%20%22{name}%22"),
                    APP_TOKEN,
                    None,
                )
                .await;
                let created = http
                    .send(
                        reqwest::Method::POST,
                        &format!("{base}/scim/v2/Groups"),
                        APP_TOKEN,
                        Some(json!({
                            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                            "displayName": name,
                        })),
                    )
                    .await;
                let id = created["id"].as_str().unwrap_or_default().to_string();
                for chunk in ids.chunks(MEMBERS_PER_PATCH) {
                    let value: Vec<Value> = chunk.iter().map(|id| json!({ "value": id })).collect();
                    http.send(
                        reqwest::Method::PATCH,
                        &format!("{base}/scim/v2/Groups/{id}"),
                        APP_TOKEN,
                        Some(json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{ "op": "add", "path": "members", "value": value }],
                        })),
                    )
                    .await;
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

fn main() {
    let users = count("SCIMLINK_BENCH_USERS", 10_000);
    let groups = count("SCIMLINK_BENCH_GROUPS", 100).clamp(1, users.max(1));
    let plugins = repository().join("dist/plugins");
    assert!(
        plugins.join("custom-scim.wasm").exists(),
        "build the bundled connectors first: scripts/build-plugins.sh"
    );
    let folder = tempfile::tempdir().expect("a temporary folder");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let http = Arc::new(Http::new());

    // The baseline: a plain client against a fresh application.
    let baseline_app = Simulated::start();
    let baseline = runtime.block_on(load_generator(
        Arc::clone(&http),
        baseline_app.base.clone(),
        users,
        groups,
    ));
    drop(baseline_app);

    let application = Simulated::start();
    let host = Served::start(&folder.path().join("host"), &plugins);
    let csv = folder.path().join("directory.csv");
    std::fs::write(&csv, directory_csv(users, groups)).expect("the directory file");
    host.cli(&["directory", "import", csv.to_str().expect("a path")]);
    host.cli(&[
        "app",
        "add",
        "crm",
        "--connector",
        "custom-scim",
        "--base-url",
        &format!("{}/scim/v2", application.base),
        "--token",
        APP_TOKEN,
        "--manage-groups",
        "--requests-per-second",
        "10000",
        "--concurrency",
        &CONCURRENCY.to_string(),
    ]);
    for group in 0..groups {
        host.cli(&["app", "bind", "crm", &format!("group{group:03}")]);
    }
    let before = host.peak_memory_kib();
    let started = Instant::now();
    host.cli(&["app", "activate", "crm"]);
    runtime.block_on(wait_until_synced(&http, &host, &application, users, groups));
    let initial = started.elapsed();
    let peak = host.peak_memory_kib();

    let objects = (users + groups) as f64;
    let engine_rate = objects / initial.as_secs_f64();
    let baseline_rate = objects / baseline.as_secs_f64();
    println!(
        "initial provisioning: {users} users in {groups} groups (groups managed), concurrency {CONCURRENCY}"
    );
    println!(
        "  engine          {:>8.2} s  {:>8.0} objects/s",
        initial.as_secs_f64(),
        engine_rate
    );
    println!(
        "  load generator  {:>8.2} s  {:>8.0} objects/s  (same requests, same concurrency)",
        baseline.as_secs_f64(),
        baseline_rate
    );
    println!(
        "  ratio           {:>8.2}  (target >= 0.8)",
        engine_rate / baseline_rate
    );
    if let (Some(before), Some(peak)) = (before, peak) {
        println!(
            "  host peak memory {:.1} MiB (before the sync {:.1} MiB)",
            peak as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }

    // A reconcile of everything, unchanged.
    let started = Instant::now();
    let reconciled: Value =
        serde_json::from_str(&host.cli(&["reconcile", "crm", "--format", "json"])).expect("JSON");
    let took = started.elapsed();
    let writes = ["repaired", "recreated", "provisioned", "groups_repaired"]
        .iter()
        .map(|key| reconciled[key].as_u64().unwrap_or(0))
        .sum::<u64>();
    println!(
        "reconcile of {} unchanged users: {:.2} s, {writes} write requests (target: 100,000 in <= 5 s, 0 writes)",
        reconciled["listed"],
        took.as_secs_f64()
    );

    // Change-to-request latency.
    let changes = 200.min(users);
    let mut latencies = Vec::with_capacity(changes);
    runtime.block_on(async {
        let since = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a time");
        let mut committed = std::collections::HashMap::new();
        for index in 0..changes {
            let user = http
                .send(
                    reqwest::Method::PATCH,
                    &format!("{}/api/v1/users/user{index:06}", host.base),
                    ADMIN_TOKEN,
                    Some(json!({ "title": format!("Engineer {index}") })),
                )
                .await;
            committed.insert(
                user["id"].as_str().unwrap_or_default().to_string(),
                user["modified"].as_str().unwrap_or_default().to_string(),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = http
                .send(
                    reqwest::Method::GET,
                    &format!(
                        "{}/api/v1/events?operation=user_update_provision&since={since}&limit=1000",
                        host.base
                    ),
                    ADMIN_TOKEN,
                    None,
                )
                .await;
            let items = events["items"].as_array().cloned().unwrap_or_default();
            if items.len() >= changes || Instant::now() > deadline {
                for event in items {
                    let Some(modified) = event["object_id"]
                        .as_str()
                        .and_then(|id| committed.get(id))
                        .and_then(|at| parse_time(at))
                    else {
                        continue;
                    };
                    if let Some(answered) = event["at"].as_str().and_then(parse_time) {
                        let latency = answered - modified;
                        latencies.push(Duration::from_secs_f64(latency.as_seconds_f64().max(0.0)));
                    }
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    latencies.sort();
    println!(
        "change to request ({} changes): p50 {:.1} ms, p99 {:.1} ms (target p50 <= 50 ms)",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
}
