//! A connector built against contract 0.2.0, without the SDK: what every
//! connector built before passwords came (0.3.0) looks like to the host.
//! Written against the raw bindings, as a connector built without the SDK
//! would be.

wit_bindgen::generate!({ world: "plugin", path: "../../../guest-sdk/wit/v0.2.0" });

use exports::scimlink::connector::connector::Guest;
use scimlink::connector::types::*;

include!("../../raw_connector.rs");

struct Fixture;

impl Guest for Fixture {
    fn describe() -> Manifest {
        fixture_manifest("contract-v0-2", "0.2.0")
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

    fn read_user(
        scim_user: String,
        _settings: Vec<Setting>,
    ) -> Result<DirectoryUser, MappingError> {
        import_unsupported(&scim_user)
    }
}

// Natively (tests, `cargo build --workspace`) nothing is exported: symbol
// names with ':' are for WebAssembly only.
#[cfg(target_arch = "wasm32")]
export!(Fixture);
