//! Shared helpers: where the built components are, and small builders.

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
