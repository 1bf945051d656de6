//! An application that fails, behind the fault-injecting proxy: throttling
//! (429 with `Retry-After`), server errors, connection resets and timeouts
//! are retried and survived; a permanent refusal is a dead letter until an
//! operator replays it; an application that keeps failing is quarantined,
//! its changes wait, and a probe resumes it once it answers again.

use std::time::{Duration, Instant};

use scimlink_e2e::Host;
use scimlink_e2e::application::{
    Application, Remote, WITHIN, connect_through, people, run_ok, wait_for_accounts,
};
use scimlink_e2e::fault_proxy::{FaultProxy, Faults};
use serde_json::{Value, json};

/// The state of the application `crm` (`active`, `quarantined` …).
fn app_state(host: &Host) -> String {
    host.admin("GET", "/apps/crm", None).body["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn throttling_server_errors_resets_and_timeouts_are_survived() {
    let application = Application::start();
    let proxy = FaultProxy::start(application.server.port);
    let host = Host::start();
    connect_through(&host, proxy.port, &people(30, "Everyone"), "Everyone");
    let paced = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({
            "manageGroups": true,
            "pacing": { "requestsPerSecond": 1000, "concurrency": 4,
                        "timeoutSeconds": 2, "maxAttempts": 10, "quarantineAfter": 50 },
        })),
    );
    assert_eq!(paced.status, 200, "{:?}", paced.body);
    run_ok(&host, &["app", "activate", "crm"]);
    // Once the connection test passed, the sync meets every fault in turn.
    proxy.set(Faults {
        resets: 2,
        too_many: Some((1, 2)),
        server_errors: 2,
        delays: Some((1, Duration::from_secs(4))),
        ..Faults::default()
    });

    wait_for_accounts(&application, 30, Duration::from_secs(90));
    let everyone = application.eventually_group("Everyone", "every member", |group| {
        Remote::member_ids(group).len() == 30
    });
    assert_eq!(Remote::member_ids(&everyone).len(), 30);

    let log = proxy.log();
    let injected: Vec<Option<u16>> = log
        .iter()
        .filter(|logged| logged.injected)
        .map(|logged| logged.status)
        .collect();
    assert_eq!(injected, [None, None, Some(429), Some(500), Some(500)]);
    // Retry-After: 2 was obeyed by every request, not only the refused
    // one (requests already on their way when it came are let be).
    let throttled = log
        .iter()
        .find(|logged| logged.status == Some(429))
        .unwrap()
        .at;
    let too_soon: Vec<_> = log
        .iter()
        .filter(|logged| {
            logged.at > throttled + Duration::from_millis(100)
                && logged.at < throttled + Duration::from_millis(1900)
        })
        .collect();
    assert!(too_soon.is_empty(), "sent during the pause: {too_soon:?}");
    assert!(
        log.iter()
            .any(|logged| logged.at >= throttled + Duration::from_millis(1900)),
        "the sync went on after the pause"
    );
}

#[test]
fn a_refused_user_is_a_dead_letter_until_replayed_and_a_failing_application_is_quarantined() {
    let application = Application::start();
    let proxy = FaultProxy::start(application.server.port);
    let folder = tempfile::tempdir().unwrap();
    let host = Host::start_with(
        &folder.path().join("data"),
        &[
            ("SCIMLINK_ADMIN_TOKEN", scimlink_e2e::ADMIN_TOKEN),
            ("SCIMLINK_SCIM_TOKEN", scimlink_e2e::SCIM_TOKEN),
            ("SCIMLINK_QUARANTINE_PROBE_SECONDS", "1"),
        ],
    );
    proxy.set(Faults {
        refuse_containing: Some(("mallory".into(), 400)),
        ..Faults::default()
    });
    connect_through(
        &host,
        proxy.port,
        "userName,email,givenName,familyName,groups\n\
         ada,ada@example.com,Ada,Lovelace,Everyone\n\
         mallory,mallory@example.com,Mallory,Mal,Everyone\n\
         grace,grace@example.com,Grace,Hopper,Everyone\n",
        "Everyone",
    );
    let paced = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({
            "pacing": { "requestsPerSecond": 1000, "concurrency": 4 },
        })),
    );
    assert_eq!(paced.status, 200, "{:?}", paced.body);
    run_ok(&host, &["app", "activate", "crm"]);
    application.eventually("ada", "creation", |account| account["active"] == true);
    application.eventually("grace", "creation", |account| account["active"] == true);

    // The application refused mallory for good: listed, not retried.
    let deadline = Instant::now() + WITHIN;
    let letters = loop {
        let letters: Value =
            serde_json::from_str(&run_ok(&host, &["dead-letters", "crm", "--format", "json"]))
                .unwrap();
        if !letters.as_array().unwrap().is_empty() {
            break letters;
        }
        assert!(Instant::now() < deadline, "no dead letter appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(letters.as_array().unwrap().len(), 1, "{letters}");
    assert_eq!(letters[0]["http_status"], 400);
    assert_eq!(letters[0]["operation"], "user_create_provision");
    let refusals = proxy
        .log()
        .iter()
        .filter(|logged| logged.status == Some(400))
        .count();
    assert_eq!(refusals, 1, "a permanent refusal is not retried");
    assert!(application.users_named("mallory").is_empty());

    // Once the application accepts it, a replay provisions it.
    proxy.set(Faults::default());
    let replayed = run_ok(&host, &["dead-letters", "crm", "--replay"]);
    assert!(replayed.contains("1 queued"), "{replayed}");
    application.eventually("mallory", "creation", |account| account["active"] == true);
    let letters = run_ok(&host, &["dead-letters", "crm"]);
    assert!(letters.contains("no dead letters"), "{letters}");

    // An application that keeps failing is quarantined; its changes wait.
    // (Quarantined at the first request that fails, to keep the test short.)
    let paced = host.admin(
        "PATCH",
        "/apps/crm",
        Some(&json!({
            "pacing": { "requestsPerSecond": 1000, "concurrency": 4,
                        "timeoutSeconds": 2, "maxAttempts": 2, "quarantineAfter": 1 },
        })),
    );
    assert_eq!(paced.status, 200, "{:?}", paced.body);
    proxy.set(Faults {
        status_for_all: Some(503),
        ..Faults::default()
    });
    host.admin("PATCH", "/users/ada", Some(&json!({ "title": "Countess" })));
    let deadline = Instant::now() + Duration::from_secs(60);
    while app_state(&host) != "quarantined" {
        assert!(Instant::now() < deadline, "never quarantined");
        std::thread::sleep(Duration::from_millis(100));
    }
    host.admin(
        "PATCH",
        "/users/grace",
        Some(&json!({ "title": "Admiral" })),
    );

    // It answers again: a probe resumes it and the waiting changes land.
    proxy.set(Faults::default());
    application.eventually("ada", "the held update", |account| {
        account["title"] == "Countess"
    });
    application.eventually("grace", "the held update", |account| {
        account["title"] == "Admiral"
    });
    assert_eq!(app_state(&host), "active");
    let events = run_ok(&host, &["events", "--app", "crm", "--format", "json"]);
    assert!(events.contains("idm_integration_quarantine"), "{events}");
    assert!(events.contains("idm_integration_resume"), "{events}");
}
