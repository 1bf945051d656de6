//! Shared helpers: where the built components are, and small builders.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use scimlink::runtime::contract::{DirectoryUser, Email};
use scimlink::runtime::{LoadedPlugin, Loader, Runtime, RuntimeConfig};

/// The built components, found from the environment cargo runs tests in
/// (the compile-time path may be another checkout's).
fn dist() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../dist")
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: build the components first with scripts/build-plugins.sh --fixtures",
        path.display()
    );
    path
}

/// A test fixture component (`plugins/testing/NAME`).
pub fn fixture(name: &str) -> PathBuf {
    existing(dist().join("test-plugins").join(format!("{name}.wasm")))
}

/// A bundled connector component (`plugins/NAME`).
pub fn bundled(name: &str) -> PathBuf {
    existing(dist().join("plugins").join(format!("{name}.wasm")))
}

pub fn runtime() -> Arc<Runtime> {
    Runtime::new(RuntimeConfig::default()).expect("runtime")
}

pub fn load(loader: &Loader, path: &Path) -> LoadedPlugin {
    match loader.load_path(path) {
        Ok((plugin, _)) => plugin,
        Err(e) => panic!("{e}"),
    }
}

pub fn user(username: &str) -> DirectoryUser {
    DirectoryUser {
        id: format!("id-{username}"),
        username: username.to_owned(),
        password_expired: false,
        suspended: false,
        first_name: Some("Grace".to_owned()),
        middle_name: None,
        last_name: Some("Hopper".to_owned()),
        display_name: None,
        emails: vec![Email {
            value: format!("{username}@example.com"),
            kind: Some("work".to_owned()),
            primary: true,
        }],
        addresses: Vec::new(),
        phones: Vec::new(),
        employee_identifier: None,
        department: None,
        company: None,
        job_title: None,
        location: None,
        custom_attributes: Vec::new(),
    }
}

/// The test binary's allocator: the system's, counting what each thread
/// holds, so a test can show how much the host copied out of a connector.
pub struct CountingAllocator;

thread_local! {
    // Bytes this thread allocated minus bytes it freed (may go negative:
    // a thread can free what another allocated), and the highest value
    // since the last `peak_allocation` began.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: the allocator also runs while a thread's locals are torn
    // down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn size(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// bookkeeping touches only thread-local counters and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(size(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note(size(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-size(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(size(new_size) - size(layout.size()));
        }
        new
    }
}

/// Runs `f` and says how many bytes of heap this thread held at most
/// meanwhile, beyond what it held before.
pub fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let value = f();
    let peak = PEAK.with(Cell::get);
    (value, usize::try_from(peak - start).unwrap_or(0))
}
