//! Hot reload: the time from a component file landing in a watched plugins
//! folder to its new version serving, from a cold compile and from the
//! precompile cache. Prints the figures (median and worst of several
//! swaps); needs `scripts/build-plugins.sh --fixtures` first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scimlink::runtime::cache::PrecompileCache;
use scimlink::runtime::watcher::{DEFAULT_DEBOUNCE, FolderWatcher};
use scimlink::runtime::{Loader, PluginRegistry, Runtime, RuntimeConfig};

const SWAPS: usize = 10;

fn fixture(version: &str) -> PathBuf {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf())
        .join(format!("../dist/test-plugins/versioned-{version}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh --fixtures",
        path.display()
    );
    path
}

fn land(component: &Path, folder: &Path) -> Instant {
    let temporary = folder.join(".landing");
    std::fs::copy(component, &temporary).expect("copy");
    let landed = Instant::now();
    std::fs::rename(&temporary, folder.join("versioned.wasm")).expect("rename");
    landed
}

fn serving_after(registry: &PluginRegistry, version: &str, landed: Instant) -> Duration {
    loop {
        if registry
            .get("versioned")
            .is_some_and(|p| p.identity().version == version)
        {
            return landed.elapsed();
        }
        assert!(
            landed.elapsed() < Duration::from_secs(60),
            "{version} never served"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Swaps between two versions; `fresh_cache` gives every swap an empty
/// cache (a cold compile), otherwise both versions are cached after the
/// first round.
fn measure(fresh_cache: bool) -> Vec<Duration> {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let folder = tempfile::tempdir().expect("tempdir");
    let cache_root = tempfile::tempdir().expect("tempdir");
    let mut timings = Vec::new();
    let versions = ["1.0.0", "2.0.0"];
    let mut registry = None;
    let mut watcher = None;
    for swap in 0..SWAPS + 2 {
        if fresh_cache || registry.is_none() {
            drop(watcher.take());
            let cache = PrecompileCache::open(cache_root.path().join(format!("{swap}")), &[7; 32])
                .expect("cache");
            let loader = Loader::new(Arc::clone(&runtime)).with_cache(cache);
            let fresh = Arc::new(PluginRegistry::new(loader, folder.path()));
            watcher =
                Some(FolderWatcher::start(Arc::clone(&fresh), DEFAULT_DEBOUNCE).expect("watch"));
            registry = Some(fresh);
        }
        let registry = registry.as_ref().expect("registry");
        let version = versions[swap % 2];
        let landed = land(&fixture(version), folder.path());
        let took = serving_after(registry, version, landed);
        // The first two swaps fill the cache; measure the rest.
        if swap >= 2 {
            timings.push(took);
        }
    }
    timings.sort();
    timings
}

fn main() {
    for (label, fresh_cache) in [("cold compile", true), ("precompile cache", false)] {
        let timings = measure(fresh_cache);
        println!(
            "hot reload, {label}: file landed → new version serving: median {:.1} ms, worst {:.1} ms ({} swaps, debounce {} ms)",
            timings[timings.len() / 2].as_secs_f64() * 1e3,
            timings[timings.len() - 1].as_secs_f64() * 1e3,
            timings.len(),
            DEFAULT_DEBOUNCE.as_millis()
        );
    }
}
