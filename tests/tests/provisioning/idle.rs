//! An idle host stays idle: with applications active and nothing to do,
//! its engine looks for work about once a second, however many
//! applications it runs, and a change made then still wakes it.

use std::time::Duration;

use scimlink_e2e::Host;
use scimlink_e2e::application::{
    Application, WITHIN, add_app, import_people, run_ok, wait_until_idle,
};

/// Applications the host runs; each idle round once looked at every one.
const APPLICATIONS: usize = 5;
/// How long the engine's thread is watched once idle.
const WATCHED: Duration = Duration::from_secs(4);
/// The most times the engine's thread may sleep in [`WATCHED`]. A loop
/// going round every 50 ms, calling the store for each application, slept
/// about 140 times a second with five applications; one that waits up to a
/// second between rounds sleeps about ten.
const MOST_SLEEPS: u64 = 200;

#[test]
fn an_idle_host_looks_for_work_seldom_and_a_change_still_reaches_the_application() {
    let application = Application::start();
    let host = Host::start();
    // One person per application, in a team of their own, all in one
    // tenant.
    let mut people = String::from("userName,email,givenName,familyName,groups\n");
    for index in 0..APPLICATIONS {
        people.push_str(&format!(
            "user{index},user{index}@example.com,User,{index},Team{index}\n"
        ));
    }
    import_people(&host, &people);
    for index in 0..APPLICATIONS {
        let name = format!("crm{index}");
        add_app(
            &host,
            &name,
            "custom-scim",
            application.server.port,
            &application.tenant,
            &format!("Team{index}"),
        );
        run_ok(&host, &["app", "activate", &name]);
    }
    for index in 0..APPLICATIONS {
        application.eventually(&format!("user{index}"), "the first sync", |account| {
            account["active"] == true
        });
    }
    wait_until_idle(&host, WITHIN);
    // The loop's wait grows to its longest within about 1.6 s of idleness.
    std::thread::sleep(Duration::from_secs(2));

    let engine = engine_thread(host.process.pid());
    let before = sleeps(&engine);
    std::thread::sleep(WATCHED);
    let slept = sleeps(&engine) - before;
    assert!(
        slept <= MOST_SLEEPS,
        "the engine's thread slept {slept} times in {WATCHED:?} with nothing to do"
    );

    // A change made now still reaches the application.
    let changed = host.admin(
        "PATCH",
        "/users/user2",
        Some(&serde_json::json!({ "title": "Engineer" })),
    );
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    application.eventually("user2", "the update", |account| {
        account["title"] == "Engineer"
    });
}

/// The status file of the host's engine thread.
fn engine_thread(pid: u32) -> std::path::PathBuf {
    let tasks = std::path::PathBuf::from(format!("/proc/{pid}/task"));
    std::fs::read_dir(&tasks)
        .expect("the host's threads")
        .filter_map(Result::ok)
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "scimlink-engine")
        })
        .map(|task| task.path().join("status"))
        .expect("the host runs its engine on a thread named scimlink-engine")
}

/// How many times the thread has slept (given up the CPU to wait).
fn sleeps(status: &std::path::Path) -> u64 {
    let status = std::fs::read_to_string(status).expect("the engine thread's status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a count of voluntary context switches")
}
