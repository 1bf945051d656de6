//! The provisioning engine end to end, as an operator runs it. Prints its
//! figures, and writes them as JSON to the file `SCIMLINK_BENCH_JSON` names:
//!
//! - initial provisioning of 10,000 users in 100 bound groups (groups
//!   managed) to a fast local SCIM server: objects per second, and the ratio
//!   to a plain HTTP load generator sending the same requests (a lookup and
//!   a create per user; a lookup, a create and member PATCHes per group) at
//!   the same concurrency to a fresh server of the same kind. Each side
//!   runs twice, in turn (load generator, engine, load generator, engine;
//!   each engine run on a host and an application of its own), and each
//!   side's faster run counts: a minute in which the shared machine runs
//!   slow neither flatters the ratio nor spoils it. The host's peak memory
//!   (VmHWM, the larger of the two hosts'); the faster run's host CPU
//!   during the sync, whole and by thread (network, engine, store calls);
//! - a reconcile of every provisioned user, unchanged: its time and the
//!   write requests it sent (zero expected);
//! - change-to-request latency while a first sync of the same 10,000 users
//!   runs to another application: directory changes one after the other,
//!   each from its commit (the user's `modified`) to the application's
//!   answer (the event's time); p50 and p99;
//! - first syncs into rate-limited applications (the simulated application
//!   answering 429 with Retry-After beyond L requests a second, with a
//!   bucket of one second's worth): time against the physical limit (the
//!   bucket at once, then the other requests needed at L a second), and the
//!   share of requests answered 429, at two limits;
//! - on a host of its own, the first sync of 100,000 users (time and peak
//!   memory) and a reconcile of them unchanged (time, write requests).
//!
//! The hosts are `scimlink serve` processes and the applications `scimlink
//! sandbox-sp` processes (the in-memory simulated application, request log
//! off), all on loopback, so that a host's memory is its own and the
//! application is not what limits the run. Needs the bundled connectors
//! built (`scripts/build-plugins.sh`).
//!
//! Sizes: `SCIMLINK_BENCH_USERS` (10000) and `SCIMLINK_BENCH_GROUPS` (100);
//! `SCIMLINK_BENCH_LARGE_USERS` (100000, 0 leaves that part out);
//! `SCIMLINK_BENCH_RATE_LIMITS` (`100:1000,25:200`: requests a second and
//! users, for each limited application).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

mod support;

use support::{
    ADMIN_TOKEN, APP_TOKEN, Served, Simulated, ThreadTimes, count, cpu_time, repository,
};

const CONCURRENCY: usize = 8;
/// The pace of an application whose throughput is measured: the highest an
/// application may be given, past what the engine or the load generator
/// can send, so that the engine is held only by its concurrency, like the
/// load generator.
const UNPACED: f64 = 1_000_000.0;
const MEMBERS_PER_PATCH: usize = 100;

/// What one measured first sync of the engine took and used.
struct FirstSync {
    took: Duration,
    /// The host's and the application's CPU during the sync.
    cpu: [Duration; 2],
    /// The host's CPU during the sync, by thread.
    threads: Vec<(String, Duration)>,
    /// The host's peak memory before the sync and after it.
    before: Option<u64>,
    peak: Option<u64>,
    /// From the activation to the first account created, and from the
    /// last event to the sync seen done.
    span: Option<(time::Duration, time::Duration)>,
}

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

    /// The application's counters (`GET /_sandbox/stats`): no SCIM request,
    /// so no rate limit applies to it.
    async fn stats(&self, application: &Simulated) -> Value {
        self.send(
            reqwest::Method::GET,
            &format!("{}/_sandbox/stats", application.base),
            APP_TOKEN,
            None,
        )
        .await
    }

    async fn pending_changes(&self, host: &Served) -> u64 {
        self.send(
            reqwest::Method::GET,
            &format!("{}/api/v1/status", host.base),
            ADMIN_TOKEN,
            None,
        )
        .await["pendingChanges"]
            .as_u64()
            .unwrap_or(u64::MAX)
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

/// What a host's thread does, by its name.
fn thread_role(name: &str) -> String {
    match name {
        "scimlink-net" => "network (scimlink-net)".to_string(),
        "scimlink-engine" => "engine (scimlink-engine)".to_string(),
        "scimlink-wal" => "log checkpoints (scimlink-wal)".to_string(),
        // The engine's store calls run on its runtime's blocking pool; the
        // API's workers, idle during a sync, share the name.
        "tokio-rt-worker" => "store calls (tokio-rt-worker)".to_string(),
        other => other.to_string(),
    }
}

/// The CPU time each of `pids` has used so far.
fn cpu_times(pids: [u32; 2]) -> [Duration; 2] {
    pids.map(|pid| cpu_time(pid).unwrap_or_default())
}

/// The CPU time each of `pids` used since `before`.
fn cpu_spent(pids: [u32; 2], before: [Duration; 2]) -> [Duration; 2] {
    let now = cpu_times(pids);
    [
        now[0].saturating_sub(before[0]),
        now[1].saturating_sub(before[1]),
    ]
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

fn mib(kib: Option<u64>) -> f64 {
    kib.map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}

/// Waits until `application` holds `users` users and `groups` groups and
/// the host has no change pending, looking every 5 ms (so the time taken
/// is read at most that late; the load generator's needs no looking).
async fn wait_until_synced(
    http: &Http,
    host: &Served,
    application: &Simulated,
    users: usize,
    groups: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let stats = http.stats(application).await;
        if stats["users"] == users as u64
            && stats["groups"] == groups as u64
            && http.pending_changes(host).await == 0
        {
            return;
        }
        assert!(Instant::now() < deadline, "the initial sync did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// When `app`'s first account was created, and when its last event of
/// any kind was recorded.
async fn event_span(
    http: &Http,
    host: &Served,
    app: &str,
) -> Option<(time::OffsetDateTime, time::OffsetDateTime)> {
    let page = |filter: &str, offset: u64| {
        let url = format!(
            "{}/api/v1/events?app={app}{filter}&limit=1&offset={offset}",
            host.base
        );
        async move {
            http.send(reqwest::Method::GET, &url, ADMIN_TOKEN, None)
                .await
        }
    };
    let at = |events: &Value| events["items"][0]["at"].as_str().and_then(parse_time);
    let creations = "&operation=user_create_provision";
    let total = page(creations, 0).await["total"].as_u64()?;
    let first = at(&page(creations, total.checked_sub(1)?).await)?;
    let last = at(&page("", 0).await)?;
    Some((first, last))
}

/// Adds an application of the custom SCIM connector on `application`,
/// groups managed, bound to `groups`; not yet active.
fn add_app(
    host: &Served,
    name: &str,
    application: &Simulated,
    requests_per_second: f64,
    groups: impl IntoIterator<Item = usize>,
) {
    host.cli(&[
        "app",
        "add",
        name,
        "--connector",
        "custom-scim",
        "--base-url",
        &format!("{}/scim/v2", application.base),
        "--token",
        APP_TOKEN,
        "--manage-groups",
        "--requests-per-second",
        &requests_per_second.to_string(),
        "--concurrency",
        &CONCURRENCY.to_string(),
    ]);
    for group in groups {
        host.cli(&["app", "bind", name, &format!("group{group:03}")]);
    }
}

/// Reconciles `app` and says how long it took and how many write
/// requests it sent.
fn reconcile(host: &Served, app: &str) -> (Duration, u64, u64) {
    let started = Instant::now();
    let reconciled: Value =
        serde_json::from_str(&host.cli(&["reconcile", app, "--format", "json"])).expect("JSON");
    let took = started.elapsed();
    let writes = ["repaired", "recreated", "provisioned", "groups_repaired"]
        .iter()
        .map(|key| reconciled[key].as_u64().unwrap_or(0))
        .sum::<u64>();
    (took, writes, reconciled["listed"].as_u64().unwrap_or(0))
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

/// One rate-limited first sync.
struct Limited {
    limit: f64,
    users: usize,
    seconds: f64,
    requests: u64,
    too_many_requests: u64,
}

impl Limited {
    /// The least time the application's limit allows for the requests that
    /// were needed (every request answered other than 429): its bucket
    /// (`--rate-burst`, one second's worth by default) at once, the rest at
    /// the limit.
    fn physical_limit(&self) -> f64 {
        let needed = (self.requests - self.too_many_requests) as f64;
        (needed - self.limit.ceil()).max(0.0) / self.limit
    }

    fn efficiency(&self) -> f64 {
        self.physical_limit() / self.seconds
    }

    fn too_many_share(&self) -> f64 {
        self.too_many_requests as f64 / self.requests.max(1) as f64
    }
}

fn rate_limits() -> Vec<(f64, usize)> {
    let text = std::env::var("SCIMLINK_BENCH_RATE_LIMITS")
        .unwrap_or_else(|_| "100:1000,25:200".to_string());
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (limit, users) = part
                .split_once(':')
                .expect("SCIMLINK_BENCH_RATE_LIMITS: limit:users, comma-separated");
            (
                limit.trim().parse().expect("a limit in requests a second"),
                users.trim().parse().expect("a number of users"),
            )
        })
        .collect()
}

/// Changes users of `app` (`members`) one after the other, 10 ms apart,
/// until `other` holds `other_users` (the other application's first sync is
/// over) or 1,000 changes are made; the latency of each, from its commit to
/// the first event of `app` about its user after it, and whether the other
/// sync outlasted the changes.
async fn latencies_while(
    http: &Http,
    host: &Served,
    app: &str,
    members: &[usize],
    other: &Simulated,
    other_users: usize,
) -> (Vec<Duration>, bool) {
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time");
    let mut committed = Vec::new();
    let mut outlasted = false;
    for (round, index) in members.iter().cycle().take(1000).enumerate() {
        let user = http
            .send(
                reqwest::Method::PATCH,
                &format!("{}/api/v1/users/user{index:06}", host.base),
                ADMIN_TOKEN,
                Some(json!({ "title": format!("Engineer {round}") })),
            )
            .await;
        committed.push((
            user["modified"].as_str().unwrap_or_default().to_string(),
            user["id"].as_str().unwrap_or_default().to_string(),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        if round % 10 == 9 && http.stats(other).await["users"].as_u64() >= Some(other_users as u64)
        {
            break;
        }
        if round == 999 {
            outlasted = true;
        }
    }
    let changes = committed.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut latencies = Vec::new();
    loop {
        let mut items = Vec::new();
        let mut offset = 0;
        loop {
            let events = http
                .send(
                    reqwest::Method::GET,
                    &format!(
                        "{}/api/v1/events?app={app}&operation=user_update_provision&since={since}&limit=1000&offset={offset}",
                        host.base
                    ),
                    ADMIN_TOKEN,
                    None,
                )
                .await;
            let page = events["items"].as_array().cloned().unwrap_or_default();
            offset += page.len();
            let done = page.len() < 1000;
            items.extend(page);
            if done {
                break;
            }
        }
        if items.len() >= changes || Instant::now() > deadline {
            // Each change from its commit to the first event after it for
            // the same user.
            let mut answered: std::collections::HashMap<String, Vec<time::OffsetDateTime>> =
                std::collections::HashMap::new();
            for event in &items {
                if let (Some(user), Some(at)) = (
                    event["object_id"].as_str(),
                    event["at"].as_str().and_then(parse_time),
                ) {
                    answered.entry(user.to_string()).or_default().push(at);
                }
            }
            for times in answered.values_mut() {
                times.sort();
            }
            for (modified, user) in &committed {
                let (Some(modified), Some(times)) = (parse_time(modified), answered.get(user))
                else {
                    continue;
                };
                if let Some(at) = times.iter().find(|at| **at >= modified) {
                    latencies.push(Duration::from_secs_f64((*at - modified).as_seconds_f64()));
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    (latencies, outlasted)
}

fn main() {
    let users = count("SCIMLINK_BENCH_USERS", 10_000);
    let groups = count("SCIMLINK_BENCH_GROUPS", 100).clamp(1, users.max(1));
    let large_users = count("SCIMLINK_BENCH_LARGE_USERS", 100_000);
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
    let mut figures = serde_json::Map::new();
    let mut record = |key: &str, value: Value| {
        figures.insert(key.to_string(), value);
    };
    record("users", json!(users));
    record("groups", json!(groups));

    // The baseline: a plain client against a fresh application, before
    // each of the engine's syncs.
    let load_generator_run = || {
        let baseline_app = Simulated::start();
        let baseline_pids = [std::process::id(), baseline_app.pid()];
        let baseline_cpu = cpu_times(baseline_pids);
        let took = runtime.block_on(load_generator(
            Arc::clone(&http),
            baseline_app.base.clone(),
            users,
            groups,
        ));
        (took, cpu_spent(baseline_pids, baseline_cpu))
    };
    // The engine's first sync, like the load generator's run, is measured
    // twice, each on a host and an application of its own, and the faster
    // counts: a slow minute spoils neither side's figure, and the runs
    // alternate (load generator, engine, load generator, engine).
    let csv = folder.path().join("directory.csv");
    std::fs::write(&csv, directory_csv(users, groups)).expect("the directory file");
    let engine_run = |name: &str| {
        let application = Simulated::start();
        let host = Served::start(&folder.path().join(name), &plugins);
        host.cli(&["directory", "import", csv.to_str().expect("a path")]);
        add_app(&host, "crm", &application, UNPACED, 0..groups);
        let before = host.peak_memory_kib();
        let pids = [host.pid(), application.pid()];
        let cpu = cpu_times(pids);
        let threads = ThreadTimes::of(host.pid());
        let started = Instant::now();
        let started_at = time::OffsetDateTime::now_utc();
        host.cli(&["app", "activate", "crm"]);
        runtime.block_on(wait_until_synced(&http, &host, &application, users, groups));
        let took = started.elapsed();
        let finished_at = time::OffsetDateTime::now_utc();
        let figures = FirstSync {
            took,
            cpu: cpu_spent(pids, cpu),
            threads: ThreadTimes::of(host.pid()).since(&threads),
            before,
            peak: host.peak_memory_kib(),
            span: runtime
                .block_on(event_span(&http, &host, "crm"))
                .map(|(first, last)| (first - started_at, finished_at - last)),
        };
        (host, application, figures)
    };
    let baseline_before = load_generator_run();
    let (host, _application, first_run) = engine_run("host");
    let baseline_after = load_generator_run();
    // The second host is stopped at once: the rest runs on the first.
    let (_, _, second_run) = engine_run("host-again");
    let engine_runs = [first_run.took, second_run.took];
    let faster = if second_run.took < first_run.took {
        &second_run
    } else {
        &first_run
    };
    let largest = if second_run.peak > first_run.peak {
        &second_run
    } else {
        &first_run
    };
    let initial = faster.took;
    let engine_cpu = faster.cpu;
    let host_threads = &faster.threads;
    let (peak, before) = (largest.peak, largest.before);
    let (baseline, baseline_cpu) = if baseline_after.0 < baseline_before.0 {
        baseline_after
    } else {
        baseline_before
    };
    let objects = (users + groups) as f64;
    let engine_rate = objects / initial.as_secs_f64();
    let baseline_rate = objects / baseline.as_secs_f64();
    let ratio = engine_rate / baseline_rate;
    println!(
        "initial provisioning: {users} users in {groups} groups (groups managed), concurrency {CONCURRENCY}"
    );
    println!(
        "  engine          {:>8.2} s  {:>8.0} objects/s  (the faster of {:.2} s and {:.2} s, \
         each on a host of its own)",
        initial.as_secs_f64(),
        engine_rate,
        engine_runs[0].as_secs_f64(),
        engine_runs[1].as_secs_f64(),
    );
    println!(
        "  load generator  {:>8.2} s  {:>8.0} objects/s  (same requests, same concurrency; \
         the faster of {:.2} s and {:.2} s, each before an engine run)",
        baseline.as_secs_f64(),
        baseline_rate,
        baseline_before.0.as_secs_f64(),
        baseline_after.0.as_secs_f64(),
    );
    println!("  ratio           {ratio:>8.2}  (target >= 0.8)");
    if let Some((start, end)) = faster.span {
        let ms = |span: time::Duration| span.as_seconds_f64() * 1e3;
        println!(
            "  from activation to the first account created {:.0} ms; from the last event to the sync seen done {:.0} ms",
            ms(start),
            ms(end),
        );
    }
    let per_thousand = |cpu: Duration| cpu.as_secs_f64() * 1e3 * 1_000.0 / objects;
    println!(
        "  CPU per 1,000 objects: host {:.0} ms and application {:.0} ms; load generator {:.0} ms and application {:.0} ms",
        per_thousand(engine_cpu[0]),
        per_thousand(engine_cpu[1]),
        per_thousand(baseline_cpu[0]),
        per_thousand(baseline_cpu[1]),
    );
    let by_thread: Vec<(String, f64)> = host_threads
        .iter()
        .map(|(name, cpu)| (name.clone(), per_thousand(*cpu)))
        .filter(|(_, ms)| *ms >= 0.5)
        .collect();
    println!(
        "  host CPU per 1,000 objects by thread: {}",
        by_thread
            .iter()
            .map(|(name, ms)| format!("{} {ms:.0} ms", thread_role(name)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    record(
        "host_cpu_ms_per_1000_objects_by_thread",
        Value::Object(
            by_thread
                .iter()
                .map(|(name, ms)| (name.clone(), json!(ms)))
                .collect(),
        ),
    );
    println!(
        "  host peak memory {:.1} MiB (before the sync {:.1} MiB)",
        mib(peak),
        mib(before)
    );
    record("engine_seconds", json!(initial.as_secs_f64()));
    record(
        "engine_runs_seconds",
        json!([engine_runs[0].as_secs_f64(), engine_runs[1].as_secs_f64()]),
    );
    record("engine_objects_per_s", json!(engine_rate));
    record("baseline_seconds", json!(baseline.as_secs_f64()));
    record("baseline_objects_per_s", json!(baseline_rate));
    record(
        "baseline_runs_seconds",
        json!([
            baseline_before.0.as_secs_f64(),
            baseline_after.0.as_secs_f64()
        ]),
    );
    record("ratio", json!(ratio));
    record(
        "host_cpu_ms_per_1000_objects",
        json!(per_thousand(engine_cpu[0])),
    );
    record(
        "application_cpu_ms_per_1000_objects",
        json!(per_thousand(engine_cpu[1])),
    );
    record(
        "load_generator_cpu_ms_per_1000_objects",
        json!(per_thousand(baseline_cpu[0])),
    );
    record("peak_rss_10k_mib", json!(mib(peak)));

    let (took, writes, listed) = reconcile(&host, "crm");
    println!(
        "reconcile of {listed} unchanged users: {:.2} s, {writes} write requests (0 expected)",
        took.as_secs_f64()
    );
    record("reconcile_10k_s", json!(took.as_secs_f64()));
    record("reconcile_10k_writes", json!(writes));

    // Latency: changes to one application's users while a first sync of
    // every user runs to another.
    let chat = Simulated::start();
    add_app(&host, "chat", &chat, 10_000.0, [0]);
    host.cli(&["app", "activate", "chat"]);
    let members: Vec<usize> = (0..users).filter(|index| index % groups == 0).collect();
    runtime.block_on(wait_until_synced(&http, &host, &chat, members.len(), 1));
    let second = Simulated::start();
    add_app(&host, "crm-two", &second, UNPACED, 0..groups);
    host.cli(&["app", "activate", "crm-two"]);
    let (latencies, outlasted) = runtime.block_on(latencies_while(
        &http, &host, "chat", &members, &second, users,
    ));
    runtime.block_on(wait_until_synced(&http, &host, &second, users, groups));
    let (p50, p99) = (
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
    );
    println!(
        "change to request ({} changes during a {users}-user first sync{}): p50 {p50:.1} ms, p99 {p99:.1} ms (target p50 <= 50 ms, p99 <= 200 ms)",
        latencies.len(),
        if outlasted {
            ", which outlasted them"
        } else {
            ""
        }
    );
    record("latency_changes", json!(latencies.len()));
    record("latency_p50_ms", json!(p50));
    record("latency_p99_ms", json!(p99));

    // Rate-limited applications.
    let mut limited = Vec::new();
    for (index, (limit, limited_users)) in rate_limits().into_iter().enumerate() {
        let bound_groups = limited_users
            .div_ceil(users.div_ceil(groups))
            .clamp(1, groups);
        let limited_users = (0..users)
            .filter(|user| user % groups < bound_groups)
            .count();
        let application = Simulated::start_with(&["--rate-limit", &limit.to_string()]);
        let name = format!("limited-{index}");
        add_app(&host, &name, &application, limit, 0..bound_groups);
        let started = Instant::now();
        host.cli(&["app", "activate", &name]);
        runtime.block_on(wait_until_synced(
            &http,
            &host,
            &application,
            limited_users,
            bound_groups,
        ));
        let seconds = started.elapsed().as_secs_f64();
        let stats = runtime.block_on(http.stats(&application));
        let run = Limited {
            limit,
            users: limited_users,
            seconds,
            requests: stats["requests"].as_u64().unwrap_or(0),
            too_many_requests: stats["tooManyRequests"].as_u64().unwrap_or(0),
        };
        println!(
            "rate-limited first sync: {} users and {bound_groups} groups at {limit} requests/s: {:.1} s against a physical limit of {:.1} s (efficiency {:.3}, target >= 0.95); {} of {} requests answered 429 ({:.2} %, target <= 1 %)",
            run.users,
            run.seconds,
            run.physical_limit(),
            run.efficiency(),
            run.too_many_requests,
            run.requests,
            run.too_many_share() * 100.0
        );
        limited.push(run);
    }
    if !limited.is_empty() {
        let efficiency = limited
            .iter()
            .map(Limited::efficiency)
            .fold(f64::INFINITY, f64::min);
        let share = limited
            .iter()
            .map(Limited::too_many_share)
            .fold(0.0, f64::max);
        record("rate_limited_efficiency", json!(efficiency));
        record("rate_limited_429_share", json!(share));
        record(
            "rate_limited",
            Value::Array(
                limited
                    .iter()
                    .map(|run| {
                        json!({
                            "limit": run.limit,
                            "users": run.users,
                            "seconds": run.seconds,
                            "physical_limit_s": run.physical_limit(),
                            "requests": run.requests,
                            "too_many_requests": run.too_many_requests,
                            "efficiency": run.efficiency(),
                        })
                    })
                    .collect(),
            ),
        );
    }
    drop(host);

    // 100,000 users on a host of their own.
    if large_users > 0 {
        let application = Simulated::start();
        let host = Served::start(&folder.path().join("large"), &plugins);
        let csv = folder.path().join("large.csv");
        std::fs::write(&csv, directory_csv(large_users, groups)).expect("the directory file");
        host.cli(&["directory", "import", csv.to_str().expect("a path")]);
        add_app(&host, "large", &application, UNPACED, 0..groups);
        let before = host.peak_memory_kib();
        let started = Instant::now();
        host.cli(&["app", "activate", "large"]);
        runtime.block_on(wait_until_synced(
            &http,
            &host,
            &application,
            large_users,
            groups,
        ));
        let initial = started.elapsed();
        let peak = host.peak_memory_kib();
        println!(
            "first sync of {large_users} users: {:.1} s ({:.0} objects/s); host peak memory {:.1} MiB, {:.1} MiB before it (target <= 150 MiB)",
            initial.as_secs_f64(),
            (large_users + groups) as f64 / initial.as_secs_f64(),
            mib(peak),
            mib(before)
        );
        let (took, writes, listed) = reconcile(&host, "large");
        println!(
            "reconcile of {listed} unchanged users: {:.2} s, {writes} write requests (target <= 5 s, 0 writes)",
            took.as_secs_f64()
        );
        record("large_users", json!(large_users));
        record("first_sync_100k_s", json!(initial.as_secs_f64()));
        record("peak_rss_mib", json!(mib(peak)));
        record("reconcile_100k_s", json!(took.as_secs_f64()));
        record("reconcile_writes", json!(writes));
    } else {
        record("peak_rss_mib", json!(mib(peak)));
        record("reconcile_writes", json!(writes));
    }

    if let Some(path) = std::env::var_os("SCIMLINK_BENCH_JSON") {
        let text = serde_json::to_string_pretty(&Value::Object(figures)).expect("JSON");
        std::fs::write(&path, text + "\n").expect("the figures file is written");
        println!(
            "figures written to {}",
            std::path::Path::new(&path).display()
        );
    }
}
