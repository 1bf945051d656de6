//! Contract versions: older minor versions keep loading, an incompatible
//! major version is refused with both versions named.

use scimlink::runtime::Loader;

use crate::support::{fixture, load, runtime, user};

#[test]
fn a_connector_built_against_the_previous_minor_version_loads_and_serves() {
    let loader = Loader::new(runtime());
    let old = load(&loader, &fixture("contract-v0-1"));
    assert_eq!(old.identity().contract, "0.1.0");
    assert_eq!(old.manifest().contract_version, "0.1.0");

    let document = old.map_user(&user("legacy"), &[]).unwrap().value.value();
    assert_eq!(document["userName"], "legacy");
    // 0.1.0 has no batch call: the host serves it with one call per user.
    let users = [user("a"), user("b"), user("c")];
    let batch = old.map_users(&users, &[]).unwrap().value;
    let names: Vec<String> = batch
        .into_iter()
        .map(|d| d.unwrap().value()["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    // Its output is checked like any other's.
    let error = old.map_user(&user("invalid-json"), &[]).unwrap_err();
    assert!(error.to_string().contains("not JSON"), "{error}");
}

#[test]
fn an_incompatible_major_version_is_refused_naming_both_versions() {
    let loader = Loader::new(runtime());
    let error = loader
        .load_path(&fixture("incompatible-major"))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(message.contains("incompatible-major.wasm"), "{message}");
    assert!(message.contains("1.0.0"), "{message}");
    assert!(message.contains("0.2.0"), "{message}");
}

#[test]
fn a_missing_export_is_refused_naming_the_function() {
    let loader = Loader::new(runtime());
    let error = loader
        .load_path(&fixture("missing-export"))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(message.contains("read-user"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}
