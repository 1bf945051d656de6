//! A component that lacks one function of the connector interface.
//! Written against the raw bindings, as a connector built without the SDK
//! would be.

// raw_connector.rs also serves `read-user`, which this fixture lacks.
#![allow(dead_code)]

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use exports::scimlink::connector::connector::Guest;
use scimlink::connector::types::*;

include!("../../raw_connector.rs");

struct Fixture;

impl Guest for Fixture {
    fn describe() -> Manifest {
        fixture_manifest("missing-export", "0.2.0")
    }

    fn map_user(user: DirectoryUser, _settings: Vec<Setting>) -> Result<String, MappingError> {
        user_json(&user)
    }

    fn map_users(
        users: Vec<DirectoryUser>,
        _settings: Vec<Setting>,
    ) -> Vec<Result<String, MappingError>> {
        users.iter().map(user_json).collect()
    }

    fn map_group(group: DirectoryGroup, _settings: Vec<Setting>) -> Result<String, MappingError> {
        group_json(&group)
    }

    fn lookup_filters(user: DirectoryUser, _settings: Vec<Setting>) -> Vec<String> {
        username_filter(&user)
    }

    fn on_group_event(facts: GroupEventFacts, _settings: Vec<Setting>) -> GroupDecision {
        keep_everyone(facts)
    }
}

// Natively (tests, `cargo build --workspace`) nothing is exported: symbol
// names with ':' are for WebAssembly only.
#[cfg(target_arch = "wasm32")]
export!(Fixture);
