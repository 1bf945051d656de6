//! Misbehaving connectors cost one failed call and an event, never the host
//! or another connector.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use scimlink::runtime::{Loader, PluginErrorKind, PluginLimits, RuntimeEvent};

use crate::support::{bundled, fixture, load, runtime, user};

fn expect_failure(kind: &PluginErrorKind, username: &str) {
    let matches = match username {
        "infinite-loop" => matches!(kind, PluginErrorKind::Timeout(_)),
        "memory-bomb" => matches!(kind, PluginErrorKind::MemoryCap(_)),
        "panic" => {
            matches!(kind, PluginErrorKind::Trap(reason) if reason.contains("the connector panicked on purpose"))
        }
        "not-an-object" | "wrong-schema" | "no-schemas" | "oversize" => {
            matches!(kind, PluginErrorKind::InvalidOutput(_))
        }
        other => unreachable!("no expectation for {other}"),
    };
    assert!(matches, "{username}: unexpected failure {kind}");
}

#[test]
fn every_misdeed_costs_one_error_and_an_event_while_everything_keeps_serving() {
    let loader = Loader::new(runtime());
    let mut events = loader.events().subscribe();
    let hostile = load(&loader, &fixture("hostile"));
    let neighbour = load(&loader, &bundled("custom-scim"));

    for misdeed in [
        "infinite-loop",
        "memory-bomb",
        "panic",
        "not-an-object",
        "wrong-schema",
        "no-schemas",
        "oversize",
    ] {
        let error = hostile.map_user(&user(misdeed), &[]).expect_err(misdeed);
        assert!(error.is_plugin_fault());
        expect_failure(&error.kind, misdeed);
        match events.try_recv() {
            Ok(RuntimeEvent::PluginCallFailed {
                plugin,
                call,
                reason,
            }) => {
                assert_eq!(plugin, "hostile@0.1.0");
                assert_eq!(call, "map-user");
                assert_eq!(reason, error.kind.to_string());
            }
            other => panic!("{misdeed}: expected a call-failed event, got {other:?}"),
        }
        // The same connector serves the next, well-formed call …
        let document = hostile
            .map_user(&user("after"), &[])
            .expect("hostile recovers")
            .value
            .value();
        assert_eq!(document["userName"], "after");
        // … and so does its neighbour.
        let document = neighbour
            .map_user(&user("neighbour"), &[])
            .expect("neighbour")
            .value
            .value();
        assert_eq!(document["userName"], "neighbour");
    }
}

#[test]
fn a_trap_is_explained_by_what_the_failing_call_wrote_only() {
    let loader = Loader::new(runtime());
    let hostile = load(&loader, &fixture("hostile"));
    hostile.map_user(&user("chatty"), &[]).unwrap();
    let error = hostile.map_user(&user("panic"), &[]).unwrap_err();
    let reason = error.kind.to_string();
    assert!(reason.contains("panicked on purpose"), "{reason}");
    assert!(!reason.contains("chatter"), "{reason}");
}

#[test]
fn an_instance_that_failed_is_never_reused() {
    let loader = Loader::new(runtime());
    let hostile = load(&loader, &fixture("hostile"));
    hostile.map_user(&user("warm-up"), &[]).unwrap();
    let warm_before = hostile.warm_instances();
    assert!(warm_before >= 1);
    hostile.map_user(&user("panic"), &[]).unwrap_err();
    assert_eq!(hostile.warm_instances(), warm_before - 1);
}

#[test]
fn a_loop_in_one_connector_does_not_hold_up_another() {
    let loader = Loader::new(runtime());
    let hostile = Arc::new(load(&loader, &fixture("hostile")));
    let neighbour = load(&loader, &bundled("custom-scim"));
    let looping = {
        let hostile = Arc::clone(&hostile);
        std::thread::spawn(move || hostile.map_user(&user("infinite-loop"), &[]))
    };
    let mut answered = 0;
    while !looping.is_finished() {
        neighbour
            .map_user(&user("busy"), &[])
            .expect("neighbour answers");
        answered += 1;
    }
    let error = looping.join().unwrap().unwrap_err();
    assert!(matches!(error.kind, PluginErrorKind::Timeout(_)));
    assert!(answered > 0);
}

/// Waits until the epoch has not moved for a while (a call that just ended
/// may leave one tick under way), and returns where it rests.
fn settled_epoch(runtime: &scimlink::runtime::Runtime) -> u64 {
    let mut last = runtime.epoch_ticks();
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(25));
        let now = runtime.epoch_ticks();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the epoch never stops advancing, though no connector runs");
}

#[test]
fn the_epoch_advances_while_a_connector_runs_and_rests_while_none_does() {
    let runtime = runtime();
    let tight = PluginLimits {
        call_deadline: Duration::from_millis(20),
        ..PluginLimits::default()
    };
    let loader = Loader::new(Arc::clone(&runtime))
        .with_limits(BTreeMap::from([("hostile".to_owned(), tight)]));
    let hostile = Arc::new(load(&loader, &fixture("hostile")));

    let resting = settled_epoch(&runtime);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(runtime.epoch_ticks(), resting, "no connector runs");

    // The loop ends only by its deadline, which only the epoch can reach:
    // a call the ticker slept through would never return.
    let (done, ended) = std::sync::mpsc::channel();
    let looping = Arc::clone(&hostile);
    std::thread::spawn(move || {
        let _ = done.send(looping.map_user(&user("infinite-loop"), &[]));
    });
    let error = ended
        .recv_timeout(Duration::from_secs(30))
        .expect("the looping call reaches its deadline")
        .unwrap_err();
    assert!(matches!(error.kind, PluginErrorKind::Timeout(_)), "{error}");
    assert!(runtime.epoch_ticks() > resting);

    let after = settled_epoch(&runtime);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(runtime.epoch_ticks(), after, "the call is over");
}

#[test]
fn limits_are_configurable_per_connector() {
    let tight = PluginLimits {
        memory_bytes: 16 << 20,
        call_deadline: Duration::from_millis(20),
        output_bytes: 1024,
    };
    let loader =
        Loader::new(runtime()).with_limits(BTreeMap::from([("hostile".to_owned(), tight)]));
    let hostile = load(&loader, &fixture("hostile"));
    assert_eq!(*hostile.limits(), tight);

    let error = hostile.map_user(&user("memory-bomb"), &[]).unwrap_err();
    assert!(
        matches!(error.kind, PluginErrorKind::MemoryCap(cap) if cap == 16 << 20),
        "{error}"
    );
    let error = hostile.map_user(&user("infinite-loop"), &[]).unwrap_err();
    assert!(
        error.to_string().contains("CPU deadline of 20 ms"),
        "{error}"
    );
    let mut verbose = user("verbose");
    verbose.display_name = Some("x".repeat(2000));
    let error = hostile.map_user(&verbose, &[]).unwrap_err();
    assert!(
        error.to_string().contains("over the cap of 1024 bytes"),
        "{error}"
    );

    // Other connectors keep the defaults.
    let neighbour = load(&loader, &bundled("custom-scim"));
    assert_eq!(*neighbour.limits(), PluginLimits::default());
}

#[test]
fn a_refused_input_is_not_a_plugin_fault() {
    let loader = Loader::new(runtime());
    let plugin = load(&loader, &bundled("custom-scim"));
    let error = plugin.read_user("{\"schemas\":[]}", &[]).unwrap_err();
    assert!(!error.is_plugin_fault());
    assert!(matches!(error.kind, PluginErrorKind::Refused(_)));
    assert!(error.to_string().contains("userName"), "{error}");
}

#[test]
fn the_sandbox_grants_nothing_and_is_deterministic() {
    let probe = |loader: &Loader| {
        let hostile = load(loader, &fixture("hostile"));
        let document = hostile
            .map_user(&user("probe-sandbox"), &[])
            .unwrap()
            .value
            .value();
        document["title"].as_str().unwrap().to_owned()
    };
    let seen = probe(&Loader::new(runtime()));
    let (facts, order) = seen.split_once(" order=").unwrap();
    assert_eq!(
        facts, "env=0 args=0 file=false dir=false net=false time=0",
        "what the connector could see"
    );
    // A fresh runtime, a fresh instance: the same "random" hash order.
    assert_eq!(
        probe(&Loader::new(runtime())),
        format!("{facts} order={order}")
    );
}
