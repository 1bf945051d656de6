//! The precompile cache: a second load skips compilation, a damaged entry
//! is a miss.

use scimlink::runtime::Loader;
use scimlink::runtime::cache::PrecompileCache;

use crate::support::{bundled, runtime, user};

#[test]
fn a_cached_component_loads_without_compiling_and_a_damaged_entry_is_a_miss() {
    let cache_folder = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let loader = Loader::new(runtime.clone())
        .with_cache(PrecompileCache::open(cache_folder.path()).unwrap());
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
