//! A connector whose results are many strings that all point at one large
//! buffer: a guest owning 32 MiB can describe a result of hundreds of GiB.
//! The host must refuse such a result before copying it.
//!
//! Built twice (see `scripts/build-plugins.sh`):
//! - as `aliasing`: behaves, except for the user named "alias-bomb": then
//!   `map-user` returns the whole buffer as one document, and `map-users`
//!   and `lookup-filters` return [`ALIASES`] entries aliasing it;
//! - with `FIXTURE_ALIAS_DESCRIBE` set, as `aliasing-describe`: `describe`
//!   returns [`ALIASES`] required attributes aliasing it, so the component
//!   attacks the host already while it is being loaded.
//!
//! Written against the raw bindings: the SDK would serialize (and so copy)
//! every document, and a hostile connector would not use it either.

wit_bindgen::generate!({ world: "plugin", path: "../../../guest-sdk/wit/v0.2.0" });

use exports::scimlink::connector::connector::Guest;
use scimlink::connector::types::*;

include!("../../raw_connector.rs");

/// Size of the one buffer every aliasing string points at.
const BUFFER_BYTES: usize = 32 << 20;
/// How many strings alias it.
const ALIASES: usize = 10_000;
/// The user whose mapping misbehaves.
const TRIGGER: &str = "alias-bomb";

/// The whole buffer, leaked: valid UTF-8 (all 'a'), so only its size is
/// wrong.
fn buffer() -> &'static mut [u8] {
    vec![b'a'; BUFFER_BYTES].leak()
}

/// [`ALIASES`] strings sharing one buffer.
///
/// Deliberately unsound: every `String` claims to own the same allocation.
/// The canonical ABI lowering only forgets them (it passes pointer and
/// length to the host); nothing here frees them.
fn aliases() -> Vec<String> {
    let buffer = buffer();
    let (ptr, len) = (buffer.as_mut_ptr(), buffer.len());
    (0..ALIASES)
        // SAFETY: not sound (see above), on purpose; the host must survive it.
        .map(|_| unsafe { String::from_raw_parts(ptr, len, len) })
        .collect()
}

/// The whole buffer as one string.
fn whole_buffer() -> String {
    let buffer = buffer();
    let (ptr, len) = (buffer.as_mut_ptr(), buffer.len());
    // SAFETY: the leaked buffer is ASCII and owned by nobody else.
    unsafe { String::from_raw_parts(ptr, len, len) }
}

struct Fixture;

impl Guest for Fixture {
    fn describe() -> Manifest {
        let mut manifest = fixture_manifest("aliasing", "0.2.0");
        if option_env!("FIXTURE_ALIAS_DESCRIBE").is_some() {
            manifest.capabilities.required_attributes = aliases();
        }
        manifest
    }

    fn map_user(user: DirectoryUser, _settings: Vec<Setting>) -> Result<String, MappingError> {
        if user.username == TRIGGER {
            return Ok(whole_buffer());
        }
        user_json(&user)
    }

    fn map_users(
        users: Vec<DirectoryUser>,
        _settings: Vec<Setting>,
    ) -> Vec<Result<String, MappingError>> {
        if users.first().is_some_and(|user| user.username == TRIGGER) {
            return aliases().into_iter().map(Ok).collect();
        }
        users.iter().map(user_json).collect()
    }

    fn map_group(group: DirectoryGroup, _settings: Vec<Setting>) -> Result<String, MappingError> {
        group_json(&group)
    }

    fn lookup_filters(user: DirectoryUser, _settings: Vec<Setting>) -> Vec<String> {
        if user.username == TRIGGER {
            return aliases();
        }
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
