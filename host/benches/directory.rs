//! The directory under load. Prints its figures:
//!
//! - the store: 100,000 users, 1,000 groups and 100,000 memberships loaded
//!   through imports; the time to load them, and the time to answer "which
//!   users are in scope for app X";
//! - inbound SCIM through HTTP on loopback: creating 10,000 users, then
//!   10,000 filtered lookups; requests per second and p50/p99 latency.
//!
//! `SCIMLINK_BENCH_SCALE` (default 1.0) scales every count, for a quick run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scimlink::auth::BearerToken;
use scimlink::host::HostBuilder;
use scimlink::store::{
    AppWrite, ImportBatch, ImportGroup, Secret, SqliteStore, Store, TokenCipher, UserWrite,
};
use serde_json::{Map, json};

const SCIM_TOKEN: &str = "bench-scim-token";
const CONCURRENCY: usize = 8;

fn scaled(count: usize) -> usize {
    let scale: f64 = std::env::var("SCIMLINK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((count as f64 * scale) as usize).max(1)
}

fn open_store(folder: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open_in(folder, TokenCipher::from_key(&[5; 32])).expect("store"))
}

fn user(index: usize) -> UserWrite {
    let name = format!("user{index:06}");
    let mut attributes = Map::new();
    attributes.insert("userName".into(), json!(name));
    attributes.insert(
        "name".into(),
        json!({ "givenName": "Bench", "familyName": format!("User {index}") }),
    );
    attributes.insert(
        "emails".into(),
        json!([{ "value": format!("{name}@example.com"), "type": "work", "primary": true }]),
    );
    attributes.insert("active".into(), json!(true));
    UserWrite {
        password: None,
        user_name: name,
        external_id: None,
        active: true,
        attributes,
    }
}

fn store_benchmark() {
    let users = scaled(100_000);
    let groups = scaled(1_000);
    let per_group = users / groups;
    let folder = tempfile::tempdir().expect("tempdir");
    let store = open_store(folder.path());

    let started = Instant::now();
    for chunk in (0..users).collect::<Vec<_>>().chunks(5_000) {
        store
            .import(ImportBatch {
                users: chunk.iter().map(|&i| user(i)).collect(),
                groups: vec![],
            })
            .expect("users import");
    }
    let users_loaded = started.elapsed();
    let started = Instant::now();
    for chunk in (0..groups).collect::<Vec<_>>().chunks(100) {
        let batch = chunk
            .iter()
            .map(|&g| ImportGroup {
                display_name: format!("group{g:04}"),
                member_user_names: (0..per_group)
                    .map(|m| format!("user{:06}", g * per_group + m))
                    .collect(),
            })
            .collect();
        store
            .import(ImportBatch {
                users: vec![],
                groups: batch,
            })
            .expect("groups import");
    }
    let groups_loaded = started.elapsed();

    let crm = store
        .create_app(AppWrite {
            name: "crm".into(),
            label: "CRM".into(),
            connector: "custom-scim".into(),
            base_url: "https://crm.example/scim/v2".into(),
            token: Secret::new("t"),
            manage_groups: true,
            settings: vec![],
            pacing: Default::default(),
            guard: Default::default(),
            passwords: Default::default(),
        })
        .expect("app");
    // A tenth of the groups are bound: a tenth of the users are in scope.
    for g in (0..groups).step_by(10) {
        let id = store
            .find_groups(
                scimlink::store::GroupKey::DisplayName,
                &format!("group{g:04}"),
            )
            .expect("group")
            .remove(0)
            .id;
        store.bind(&crm.id, &id).expect("bind");
    }
    let mut scope_times = Vec::new();
    let mut in_scope = 0;
    for _ in 0..5 {
        let started = Instant::now();
        in_scope = store.users_in_scope(&crm.id).expect("scope").len();
        scope_times.push(started.elapsed());
    }
    scope_times.sort();

    println!("store (SQLite, WAL)");
    println!(
        "  load {users} users               {:>8.2} s  ({:.0} users/s)",
        users_loaded.as_secs_f64(),
        users as f64 / users_loaded.as_secs_f64()
    );
    println!(
        "  load {groups} groups, {} memberships {:>6.2} s",
        groups * per_group,
        groups_loaded.as_secs_f64()
    );
    println!(
        "  users in scope of an app ({in_scope} users, {} bound groups): median {:.1} ms, worst {:.1} ms",
        groups.div_ceil(10),
        ms(scope_times[scope_times.len() / 2]),
        ms(scope_times[scope_times.len() - 1])
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn report(what: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  {what:<28} {:>7.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests, {} concurrent)",
        latencies.len() as f64 / wall.as_secs_f64(),
        ms(at(0.50)),
        ms(at(0.99)),
        latencies.len(),
        CONCURRENCY
    );
}

async fn drive<F, Fut>(count: usize, request: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut index = worker;
            while index < count {
                let sent = Instant::now();
                request(index).await;
                latencies.push(sent.elapsed());
                index += CONCURRENCY;
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.extend(task.await.expect("worker"));
    }
    (latencies, started.elapsed())
}

fn scim_benchmark() {
    let count = scaled(10_000);
    let folder = tempfile::tempdir().expect("tempdir");
    let store = open_store(folder.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let router = HostBuilder::new(
            store,
            BearerToken::from_plain("admin"),
            BearerToken::from_plain(SCIM_TOKEN),
        )
        .build()
        .expect("host")
        .router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let base = format!("http://{}/scim/v2", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .expect("client");

        let (create_client, create_base) = (client.clone(), base.clone());
        let (latencies, wall) = drive(count, move |index| {
            let client = create_client.clone();
            let url = format!("{create_base}/Users");
            async move {
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("user{index:06}"),
                    "name": { "givenName": "Bench", "familyName": format!("User {index}") },
                    "emails": [{ "value": format!("user{index:06}@example.com"), "type": "work", "primary": true }],
                    "active": true,
                });
                let response = client
                    .post(url)
                    .bearer_auth(SCIM_TOKEN)
                    .header("content-type", "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("create");
                assert_eq!(response.status().as_u16(), 201);
            }
        })
        .await;
        println!("inbound SCIM over loopback HTTP/1.1");
        report(&format!("create {count} users"), latencies, wall);

        let (lookup_client, lookup_base) = (client.clone(), base.clone());
        let (latencies, wall) = drive(count, move |index| {
            let client = lookup_client.clone();
            let url = format!(
                "{lookup_base}/Users?filter=userName%20eq%20%22user{:06}%22",
                (index * 7919) % count
            );
            async move {
                let response = client
                    .get(url)
                    .bearer_auth(SCIM_TOKEN)
                    .send()
                    .await
                    .expect("lookup");
                assert_eq!(response.status().as_u16(), 200);
                let body = response.text().await.expect("body");
                assert!(body.contains("\"totalResults\":1"), "{body}");
            }
        })
        .await;
        report(&format!("{count} filtered lookups"), latencies, wall);
    });
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    store_benchmark();
    scim_benchmark();
}
