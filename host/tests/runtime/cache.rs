//! The precompile cache: a second load skips compilation, a damaged entry
//! is a miss, and so is any entry not authenticated with this host's key —
//! a well-formed compiled component planted by someone else included.

use scimlink::runtime::Loader;
use scimlink::runtime::cache::PrecompileCache;

use crate::support::{bundled, fixture, runtime, user};

const KEY: [u8; 32] = [7; 32];

#[test]
fn a_cached_component_loads_without_compiling_and_a_damaged_entry_is_a_miss() {
    let cache_folder = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let loader = Loader::new(runtime.clone())
        .with_cache(PrecompileCache::open(cache_folder.path(), &KEY).unwrap());
    let path = bundled("custom-scim");

    let (_, first) = loader.load_path(&path).unwrap();
    assert!(!first.from_cache);
    let entries: Vec<_> = std::fs::read_dir(cache_folder.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one entry, no temporary files: {entries:?}"
    );
    assert!(entries[0].extension().is_some_and(|e| e == "cwasm"));

    let (plugin, second) = loader.load_path(&path).unwrap();
    assert!(second.from_cache);
    assert_eq!(
        plugin.map_user(&user("cached"), &[]).unwrap().value.value()["userName"],
        "cached"
    );

    std::fs::write(&entries[0], b"damaged").unwrap();
    let (plugin, third) = loader.load_path(&path).unwrap();
    assert!(!third.from_cache, "a damaged entry must be recompiled");
    assert_eq!(
        plugin.map_user(&user("again"), &[]).unwrap().value.value()["userName"],
        "again"
    );
    let (_, fourth) = loader.load_path(&path).unwrap();
    assert!(fourth.from_cache, "the entry was rewritten");
}

/// What an attacker who can write the cache folder but lacks the host key
/// can plant: a genuine compilation, in wasmtime's own format, under the
/// right file name — of another component, or MAC'd with another key.
#[test]
fn an_entry_not_authenticated_by_this_host_is_never_loaded() {
    let cache_folder = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let cache = PrecompileCache::open(cache_folder.path(), &KEY).unwrap();
    let loader = Loader::new(runtime.clone()).with_cache(cache.clone());
    let path = bundled("custom-scim");
    let (_, first) = loader.load_path(&path).unwrap();
    assert!(!first.from_cache);
    let entry = single_entry(cache_folder.path());

    // Another component's compiled code, bare, as the cache stored it
    // before entries were authenticated.
    let foreign = runtime
        .engine()
        .precompile_component(&std::fs::read(fixture("minimal")).unwrap())
        .unwrap();
    for planted in [foreign.clone(), {
        // The same code in today's format, MAC'd under another host's key.
        let other = tempfile::tempdir().unwrap();
        let other_cache = PrecompileCache::open(other.path(), &[8; 32]).unwrap();
        Loader::new(runtime.clone())
            .with_cache(other_cache)
            .load_path(&fixture("minimal"))
            .unwrap();
        let other_entry = single_entry(other.path());
        std::fs::read(other_entry).unwrap()
    }] {
        std::fs::write(&entry, &planted).unwrap();
        let (plugin, again) = loader.load_path(&path).unwrap();
        assert!(!again.from_cache, "a planted entry must be a miss");
        assert_eq!(plugin.identity().name, "custom-scim");
        assert_ne!(std::fs::read(&entry).unwrap(), planted, "rewritten");
        let (_, after) = loader.load_path(&path).unwrap();
        assert!(after.from_cache, "the rewritten entry verifies");
    }

    // A genuine entry of this host, moved onto another component's name,
    // does not verify either: the MAC covers the name.
    let minimal = fixture("minimal");
    let (_, minimal_first) = loader.load_path(&minimal).unwrap();
    assert!(!minimal_first.from_cache);
    let minimal_entry = std::fs::read_dir(cache_folder.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| *p != entry)
        .unwrap();
    std::fs::copy(&minimal_entry, &entry).unwrap();
    let (plugin, swapped) = loader.load_path(&path).unwrap();
    assert!(!swapped.from_cache);
    assert_eq!(plugin.identity().name, "custom-scim");
}

#[cfg(unix)]
#[test]
fn the_cache_folder_is_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("plugin-cache");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    PrecompileCache::open(&folder, &KEY).unwrap();
    assert_eq!(mode(&folder), 0o700);
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    PrecompileCache::open(&folder, &KEY).unwrap();
    assert_eq!(mode(&folder), 0o700, "an existing folder is tightened");
}

fn single_entry(folder: &std::path::Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}
