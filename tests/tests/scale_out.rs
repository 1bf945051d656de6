//! Three hosts on one PostgreSQL database provision 2,000 users in 20
//! groups to two applications — the simulated application (`scimlink
//! sandbox-sp`) and scim2-server — while one host is killed (SIGKILL) in
//! the middle of a sync and another is stopped (SIGSTOP) past its leases
//! and then resumed: every account exists exactly once, every group holds
//! exactly its members, and each account's provisioning is recorded once.
//! A change made afterwards through one host's inbound SCIM is pushed to
//! both applications, by whichever hosts run them, within a second or two.
//!
//! The cluster is the one `SCIMLINK_TEST_DATABASE_URL` names (a throwaway
//! one `scripts/test.sh` starts).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use scimlink_e2e::application::{APP_TOKEN, Application, Remote, import_people, run_ok};
use scimlink_e2e::database::{Database, KEY};
use scimlink_e2e::{Host, Running};
use serde_json::json;

const USERS: usize = 2000;
const GROUPS: usize = 20;

/// The engine that holds application `name`'s lease now, if any.
fn runner_engine(database: &Database, name: &str) -> Option<String> {
    let mut client = Client::connect(database.url(), NoTls).ok()?;
    client
        .query_opt(
            "SELECT l.holder FROM object_leases l JOIN applications a ON a.id = l.app_id
             WHERE l.object_kind = 'application' AND a.name = $1
               AND l.until > clock_timestamp()",
            &[&name],
        )
        .ok()
        .flatten()
        .map(|row| row.get(0))
}

/// The index among `hosts` of the host whose engine is `engine`, from the
/// hosts table and each host's process id.
fn host_of(database: &Database, hosts: &[Option<Host>], engine: &str) -> Option<usize> {
    let mut client = Client::connect(database.url(), NoTls).ok()?;
    let name: String = client
        .query_opt("SELECT name FROM hosts WHERE engine = $1", &[&engine])
        .ok()
        .flatten()?
        .get(0);
    let pid = name.rsplit(':').next()?.to_string();
    hosts.iter().position(|host| {
        host.as_ref()
            .is_some_and(|host| host.process.pid().to_string() == pid)
    })
}

/// Waits until some live host among `hosts` runs `name`; its index.
fn wait_for_runner(database: &Database, hosts: &[Option<Host>], name: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(index) =
            runner_engine(database, name).and_then(|engine| host_of(database, hosts, &engine))
        {
            return index;
        }
        assert!(Instant::now() < deadline, "no live host runs {name}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until both applications are run by a host and stay with it for
/// a few seconds: the hosts have settled after the kill and the pause (the
/// resumed host may take some applications back).
fn wait_settled(database: &Database) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut since = Instant::now();
    let mut seen = (None, None);
    loop {
        let now = (
            runner_engine(database, "sim"),
            runner_engine(database, "crm"),
        );
        if now != seen || now.0.is_none() || now.1.is_none() {
            seen = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(8) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the hosts did not settle: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The people: `user0000` … in groups `g00` … `g19` (user n in group n mod
/// 20), as CSV.
fn people(count: usize, from: usize) -> String {
    let mut rows = String::from("userName,email,givenName,familyName,groups\n");
    for index in from..from + count {
        rows.push_str(&format!(
            "user{index:04},user{index:04}@example.com,User,{index},g{:02}\n",
            index % GROUPS
        ));
    }
    rows
}

fn add_app(host: &Host, name: &str, base_url: &str) {
    run_ok(
        host,
        &[
            "app",
            "add",
            name,
            "--connector",
            "custom-scim",
            "--base-url",
            base_url,
            "--token",
            APP_TOKEN,
            "--manage-groups",
            "--requests-per-second",
            "2000",
        ],
    );
    for group in 0..GROUPS {
        run_ok(host, &["app", "bind", name, &format!("g{group:02}")]);
    }
}

/// Every account as id → userName, page by page.
fn accounts(remote: &Remote) -> Vec<(String, String)> {
    let mut found = Vec::new();
    loop {
        let body = remote.read(&format!(
            "/Users?startIndex={}&count=500&attributes=userName",
            found.len() + 1
        ));
        let page = body["Resources"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return found;
        }
        found.extend(page.iter().map(|user| {
            (
                user["id"].as_str().unwrap_or_default().to_string(),
                user["userName"].as_str().unwrap_or_default().to_string(),
            )
        }));
    }
}

/// Waits until `remote` holds `want` accounts.
fn wait_for_accounts(remote: &Remote, want: u64, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let total = remote.total();
        if total >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {total} of {want} accounts"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The members each group should hold in `remote`, as userNames.
fn expected_members(names: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in names {
        let index: usize = name.trim_start_matches("user").parse().unwrap();
        groups
            .entry(format!("g{:02}", index % GROUPS))
            .or_default()
            .insert(name.clone());
    }
    groups
}

/// Checks that every account exists once and every group holds exactly
/// its members, waiting a while for the last group pushes.
fn check_exactly_once(remote: &Remote, what: &str, want: usize) {
    let all = accounts(remote);
    let names: BTreeSet<String> = all.iter().map(|(_, name)| name.clone()).collect();
    assert_eq!(all.len(), want, "{what}: {} accounts", all.len());
    assert_eq!(names.len(), want, "{what}: an account was made twice");
    let by_id: BTreeMap<&str, &str> = all
        .iter()
        .map(|(id, name)| (id.as_str(), name.as_str()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (group, members) in expected_members(&names) {
        loop {
            let found = remote.groups_named(&group);
            let held: BTreeSet<String> = found
                .first()
                .map(|group| {
                    Remote::member_ids(group)
                        .iter()
                        .filter_map(|id| by_id.get(id.as_str()).map(|name| name.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if found.len() == 1 && held == members {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: group {group} is {} time(s) there, holding {} of {} members",
                found.len(),
                held.intersection(&members).count(),
                members.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Each account's provisioning (created, or an account found and taken
/// over) is recorded exactly once.
fn check_recorded_once(host: &Host, app: &str, want: usize) {
    let mut users: BTreeMap<String, u32> = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = host.admin(
            "GET",
            &format!(
                "/events?app={app}&operation=user_create_provision&outcome=success\
                 &limit=1000&offset={offset}"
            ),
            None,
        );
        assert_eq!(page.status, 200, "{:?}", page.body);
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        offset += items.len();
        for event in items {
            let user = event["object_id"]
                .as_str()
                .expect("an event names its user")
                .to_string();
            *users.entry(user).or_default() += 1;
        }
    }
    let twice: Vec<(&String, &u32)> = users.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "{app}: provisioned twice: {twice:?}");
    assert_eq!(users.len(), want, "{app}: provisioning events");
}

#[test]
fn three_hosts_provision_every_account_once_through_a_kill_and_a_pause() {
    let database = Database::new();
    let crm = Application::start();
    let folders = tempfile::tempdir().unwrap();
    let mut simulated = Running::start(&["sandbox-sp", "--listen", "127.0.0.1:0"], folders.path());
    let line = simulated.expect_line(&["listening on"], Duration::from_secs(30));
    let origin = line.rsplit(' ').next().unwrap().trim().to_string();
    let sim = Remote::new(format!("{origin}/acme/v2"));

    let mut hosts: Vec<Option<Host>> = (0..3)
        .map(|index| Some(database.host(&folders.path().join(format!("host{index}")), KEY)))
        .collect();
    database.wait_for_engines(3, Duration::from_secs(60));
    let first = hosts[0].as_ref().unwrap();
    import_people(first, &people(USERS, 0));
    add_app(first, "sim", &format!("{origin}/acme/v2"));
    add_app(
        first,
        "crm",
        &format!("http://127.0.0.1:{}/acme/v2", crm.server.port),
    );
    run_ok(first, &["app", "activate", "sim"]);
    run_ok(first, &["app", "activate", "crm"]);

    // The host running sim is killed once it has made a tenth of the
    // accounts.
    let killed = wait_for_runner(&database, &hosts, "sim");
    wait_for_accounts(&sim, (USERS / 10) as u64, Duration::from_secs(120), "sim");
    drop(hosts[killed].take());
    let sim_at_kill = sim.total();

    // Another host — the one running crm, if the killed one did not — is
    // stopped past its leases, then resumed.
    let stopped = match wait_for_runner(&database, &hosts, "crm") {
        index if index != killed && hosts[index].is_some() => index,
        _ => (0..3).find(|index| hosts[*index].is_some()).unwrap(),
    };
    let crm_at_stop = crm.total();
    hosts[stopped].as_ref().unwrap().process.signal("STOP");
    std::thread::sleep(Duration::from_secs(30));
    hosts[stopped].as_ref().unwrap().process.signal("CONT");

    wait_for_accounts(&sim, USERS as u64, Duration::from_secs(240), "sim");
    wait_for_accounts(&crm, USERS as u64, Duration::from_secs(240), "crm");
    eprintln!(
        "sim had {sim_at_kill} accounts when its host was killed; crm had {crm_at_stop} when \
         host {stopped} was stopped"
    );

    // A change through one host's inbound SCIM, pushed within a second or
    // two by whichever hosts run the applications.
    wait_settled(&database);
    let inbound = hosts.iter().flatten().next().unwrap();
    let started = Instant::now();
    let created = inbound.scim(
        "POST",
        "/Users",
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("user{USERS:04}"),
            "emails": [{ "value": format!("user{USERS:04}@example.com"), "primary": true }]
        })),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let user_id = created.body["id"].as_str().unwrap().to_string();
    let group = inbound.admin("GET", &format!("/groups/g{:02}", USERS % GROUPS), None);
    let group_id = group.body["id"].as_str().unwrap().to_string();
    let patched = inbound.scim(
        "PATCH",
        &format!("/Groups/{group_id}"),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "add", "path": "members", "value": [{ "value": user_id }] }]
        })),
    );
    assert!((200..300).contains(&patched.status), "{:?}", patched.body);
    let new_name = format!("user{USERS:04}");
    let deadline = started + Duration::from_secs(10);
    while sim.users_named(&new_name).is_empty() || crm.users_named(&new_name).is_empty() {
        assert!(Instant::now() < deadline, "the new user was not pushed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pushed_in = started.elapsed();
    eprintln!("a change through inbound SCIM reached both applications in {pushed_in:?}");
    assert!(
        pushed_in < Duration::from_secs(2),
        "pushed in {pushed_in:?}, not within a second or two"
    );

    check_exactly_once(&sim, "sim", USERS + 1);
    check_exactly_once(&crm, "crm", USERS + 1);
    check_recorded_once(inbound, "sim", USERS + 1);
    check_recorded_once(inbound, "crm", USERS + 1);
}
