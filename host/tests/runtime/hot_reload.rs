//! Hot reload: versions swapped while calls run, broken versions refused,
//! removal and rollback.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scimlink::runtime::cache::PrecompileCache;
use scimlink::runtime::watcher::{DEFAULT_DEBOUNCE, FolderWatcher};
use scimlink::runtime::{Loader, PluginRegistry, RuntimeEvent};
use tokio::sync::broadcast;

use crate::support::{fixture, runtime, user};

/// Generous: a cold compile on a loaded two-core machine takes about a
/// second; this bounds "eventually", it does not measure speed (the
/// benchmarks do).
const WITHIN: Duration = Duration::from_secs(20);

/// Deploys like an operator should: copy beside, then rename into place.
fn deploy(component: &Path, folder: &Path) {
    let temporary = folder.join(".versioned.wasm.partial");
    std::fs::copy(component, &temporary).unwrap();
    std::fs::rename(&temporary, folder.join("versioned.wasm")).unwrap();
}

fn serving_version(registry: &PluginRegistry) -> Option<String> {
    registry
        .get("versioned")
        .map(|plugin| plugin.identity().version.clone())
}

fn wait_for_version(registry: &PluginRegistry, version: &str) -> Duration {
    let started = Instant::now();
    while serving_version(registry).as_deref() != Some(version) {
        assert!(
            started.elapsed() < WITHIN,
            "version {version} not serving after {WITHIN:?} (serving {:?})",
            serving_version(registry)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    started.elapsed()
}

fn wait_for_event(
    events: &mut broadcast::Receiver<RuntimeEvent>,
    wanted: impl Fn(&RuntimeEvent) -> bool,
) -> RuntimeEvent {
    let started = Instant::now();
    loop {
        match events.try_recv() {
            Ok(event) if wanted(&event) => return event,
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Empty) => {
                assert!(
                    started.elapsed() < WITHIN,
                    "no such event within {WITHIN:?}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("event stream: {e}"),
        }
    }
}

fn watched_registry(folder: &Path, cache: &Path) -> (Arc<PluginRegistry>, FolderWatcher) {
    let loader = Loader::new(runtime()).with_cache(PrecompileCache::open(cache, &[7; 32]).unwrap());
    let registry = Arc::new(PluginRegistry::new(loader, folder));
    let watcher = FolderWatcher::start(Arc::clone(&registry), DEFAULT_DEBOUNCE).unwrap();
    (registry, watcher)
}

#[test]
fn versions_are_swapped_refused_removed_and_rolled_back() {
    let folder = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (registry, _watcher) = watched_registry(folder.path(), cache.path());
    let mut events = registry.events().subscribe();

    deploy(&fixture("versioned-1.0.0"), folder.path());
    wait_for_version(&registry, "1.0.0");
    deploy(&fixture("versioned-2.0.0"), folder.path());
    wait_for_version(&registry, "2.0.0");
    let replaced = wait_for_event(
        &mut events,
        |e| matches!(e, RuntimeEvent::PluginLoaded { version, .. } if version == "2.0.0"),
    );
    assert!(
        matches!(replaced, RuntimeEvent::PluginLoaded { replaced: Some(old), .. } if old == "1.0.0")
    );

    // A version that fails its smoke call never serves.
    deploy(&fixture("versioned-broken"), folder.path());
    let rejected = wait_for_event(&mut events, |e| {
        matches!(e, RuntimeEvent::PluginRejected { .. })
    });
    let RuntimeEvent::PluginRejected {
        reason,
        still_serving,
        ..
    } = rejected
    else {
        unreachable!()
    };
    assert!(reason.contains("this version is broken"), "{reason}");
    assert_eq!(still_serving.as_deref(), Some("versioned@2.0.0"));
    assert_eq!(serving_version(&registry).as_deref(), Some("2.0.0"));
    let document = registry
        .get("versioned")
        .unwrap()
        .map_user(&user("u"), &[])
        .unwrap();
    assert_eq!(document.value.value()["title"], "2.0.0");

    // Rollback serves the previous version; a second one undoes it.
    registry.rollback("versioned").unwrap();
    assert_eq!(serving_version(&registry).as_deref(), Some("1.0.0"));
    let rolled = wait_for_event(&mut events, |e| {
        matches!(e, RuntimeEvent::PluginRolledBack { .. })
    });
    assert_eq!(
        rolled,
        RuntimeEvent::PluginRolledBack {
            plugin: "versioned".into(),
            from_version: "2.0.0".into(),
            to_version: "1.0.0".into(),
        }
    );
    registry.rollback("versioned").unwrap();
    assert_eq!(serving_version(&registry).as_deref(), Some("2.0.0"));
    assert!(registry.rollback("custom-scim").is_err());

    // Removing the file unloads the connector.
    std::fs::remove_file(folder.path().join("versioned.wasm")).unwrap();
    wait_for_event(&mut events, |e| {
        matches!(e, RuntimeEvent::PluginRemoved { .. })
    });
    assert!(registry.get("versioned").is_none());
    // … and the removed version can be brought back.
    registry.rollback("versioned").unwrap();
    assert_eq!(serving_version(&registry).as_deref(), Some("2.0.0"));
}

#[test]
fn hot_reload_under_load_loses_no_call() {
    let folder = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (registry, _watcher) = watched_registry(folder.path(), cache.path());
    deploy(&fixture("versioned-1.0.0"), folder.path());
    wait_for_version(&registry, "1.0.0");

    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let registry = Arc::clone(&registry);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut answered_by: BTreeMap<String, u64> = BTreeMap::new();
                let mut failures = Vec::new();
                let user = user(&format!("caller-{caller}"));
                while !stop.load(Ordering::Relaxed) {
                    let plugin = registry
                        .get("versioned")
                        .expect("always one version serving");
                    match plugin.map_user(&user, &[]) {
                        Ok(called) => {
                            let answered = called.value.value()["title"]
                                .as_str()
                                .unwrap_or("")
                                .to_owned();
                            // The version the call went to is the one that answered.
                            assert_eq!(answered, plugin.identity().version);
                            *answered_by.entry(answered).or_default() += 1;
                        }
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (answered_by, failures)
            })
        })
        .collect();

    let mut slowest = Duration::ZERO;
    for version in ["2.0.0", "3.0.0", "1.0.0", "2.0.0", "3.0.0"] {
        deploy(&fixture(&format!("versioned-{version}")), folder.path());
        slowest = slowest.max(wait_for_version(&registry, version));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);

    let mut answered_by: BTreeMap<String, u64> = BTreeMap::new();
    for caller in callers {
        let (counts, failures) = caller.join().unwrap();
        assert!(failures.is_empty(), "failed calls: {failures:?}");
        for (version, count) in counts {
            *answered_by.entry(version).or_default() += count;
        }
    }
    assert_eq!(
        answered_by.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1.0.0", "2.0.0", "3.0.0"],
        "{answered_by:?}"
    );
    eprintln!("calls answered per version: {answered_by:?}; slowest swap {slowest:?}");
}
