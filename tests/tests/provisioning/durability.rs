//! The first sync survives the host: killed with `kill -9` in the middle of
//! it, a host restarted on the same data folder finishes it from the outbox,
//! and no account is created twice.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{Application, connect, run_ok};

#[test]
fn a_host_killed_during_the_first_sync_finishes_it_after_restart_without_duplicates() {
    const USERS: usize = 2000;
    let application = Application::start();
    let folder = tempfile::tempdir().unwrap();
    let data = folder.path().join("data");
    let host = Host::start_in(&data);
    let mut rows = String::from("userName,email,givenName,familyName,groups\n");
    for index in 0..USERS {
        rows.push_str(&format!(
            "user{index:04},user{index:04}@example.com,User,{index},Everyone\n"
        ));
    }
    connect(&host, &application, &rows, "Everyone");
    run_ok(&host, &["app", "activate", "crm"]);

    // Kill -9 in the middle of the first sync.
    let deadline = Instant::now() + Duration::from_secs(120);
    while application.total() < 200 {
        assert!(Instant::now() < deadline, "the first sync did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(host);
    let at_kill = application.total();
    assert!(
        at_kill < USERS as u64,
        "the sync finished before the kill ({at_kill})"
    );

    let _restarted = Host::start_in(&data);
    let deadline = Instant::now() + Duration::from_secs(300);
    while application.total() < USERS as u64 {
        assert!(
            Instant::now() < deadline,
            "after the restart the application holds {} of {USERS}",
            application.total()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Exactly the desired state: every user once, nobody twice.
    std::thread::sleep(Duration::from_millis(500));
    let mut names = application.user_names();
    assert_eq!(names.len(), USERS);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), USERS, "no account was created twice");
}
