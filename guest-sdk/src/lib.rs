//! The scimlink guest SDK: everything a connector author needs to turn a
//! Rust crate into a scimlink connector component.
//!
//! A connector implements [`Connector`]. Only [`Connector::manifest`] is
//! required; every other method has a default that speaks plain SCIM 2.0
//! (RFC 7643 core User and Group, the enterprise extension for
//! `employeeNumber`, `department` and `organization`). One macro,
//! [`export_connector!`], exports the implementation as the component's
//! `scimlink:connector/connector` interface.
//!
//! ```ignore
//! use scimlink_sdk::prelude::*;
//!
//! struct Minimal;
//!
//! impl Connector for Minimal {
//!     fn manifest() -> Manifest {
//!         Manifest::new("minimal", env!("CARGO_PKG_VERSION"))
//!     }
//! }
//!
//! scimlink_sdk::export_connector!(Minimal);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm`
//! file in `target/wasm32-wasip2/release/` is the component to drop into the
//! host's plugins folder.
//!
//! Invariants the host relies on and this SDK keeps:
//! - every output document is a JSON object with a `schemas` array naming the
//!   resource type (the host refuses anything else);
//! - nothing here touches a clock, the environment or randomness, so a
//!   connector built on the defaults is deterministic given its inputs.

pub mod allocator;
pub mod defaults;
mod json_text;
pub mod scim;
pub mod settings;

#[doc(hidden)]
pub mod glue;

/// The generated bindings of the contract this SDK is built against.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "wit/v0.3.0",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "scimlink_sdk::bindings",
    });
}

use bindings::scimlink::connector::types as contract;
pub use contract::{
    AccountAction, Address, Capabilities, CustomAttribute, DirectoryGroup, DirectoryUser, Email,
    GroupAction, GroupDecision, GroupEvent, GroupEventFacts, Manifest, MappingError,
    MemberDecision, MemberFacts, Offboarding, PasswordSupport, Phone, Setting, SettingSpec,
    UpdateMethod,
};
pub use scim::ScimJson;
pub use serde_json::{self, Value, json};
pub use settings::Settings;

/// The contract version this SDK implements; a connector's manifest carries it.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// A connector: the mapping and the rules of one application.
///
/// Every method is an associated function: a connector holds no state
/// between calls, which is what makes its decisions replayable.
pub trait Connector {
    /// Who the connector is and what its application supports.
    fn manifest() -> Manifest;

    /// The SCIM User to send for a directory user. Build it with
    /// [`ScimResource`] (or `json!`) and `.into()`.
    fn map_user(user: &DirectoryUser, settings: &Settings) -> Result<ScimJson, MappingError> {
        let _ = settings;
        defaults::scim_user(user)
    }

    /// The SCIM Group to send for a directory group (members are the host's).
    fn map_group(group: &DirectoryGroup, settings: &Settings) -> Result<ScimJson, MappingError> {
        let _ = settings;
        defaults::scim_group(group)
    }

    /// Filters that find an existing account to take over, in order.
    fn lookup_filters(user: &DirectoryUser, settings: &Settings) -> Vec<String> {
        let _ = settings;
        defaults::lookup_filters(user)
    }

    /// The application's group-management rule.
    fn on_group_event(facts: &GroupEventFacts, settings: &Settings) -> GroupDecision {
        let _ = settings;
        defaults::group_rule(facts, Self::manifest().capabilities.offboarding)
    }

    /// A SCIM User read back from the application, as a directory user.
    fn read_user(scim_user: &Value, settings: &Settings) -> Result<DirectoryUser, MappingError> {
        let _ = settings;
        defaults::read_user(scim_user)
    }
}

impl Manifest {
    /// A manifest with the defaults of plain SCIM 2.0: groups supported,
    /// direct assignment allowed, offboarding deactivates, PATCH updates,
    /// 100 members per group PATCH, no passwords.
    pub fn new(name: &str, version: &str) -> Self {
        Manifest {
            name: name.to_owned(),
            version: version.to_owned(),
            contract_version: CONTRACT_VERSION.to_owned(),
            description: String::new(),
            base_url_template: None,
            settings: Vec::new(),
            capabilities: Capabilities {
                groups: true,
                direct_assignment: true,
                offboarding: Offboarding::Deactivate,
                update_method: UpdateMethod::Patch,
                max_members_per_patch: 100,
                required_attributes: defaults::ALL_ATTRIBUTES
                    .iter()
                    .map(|a| (*a).to_owned())
                    .collect(),
                passwords: PasswordSupport {
                    on_create: false,
                    on_change: None,
                },
            },
        }
    }

    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// The application's base URL, `{key}` placeholders filled from settings.
    pub fn base_url(mut self, template: &str) -> Self {
        self.base_url_template = Some(template.to_owned());
        self
    }

    /// Declares a setting the connector reads.
    pub fn setting(mut self, key: &str, description: &str, required: bool) -> Self {
        self.settings.push(SettingSpec {
            key: key.to_owned(),
            description: description.to_owned(),
            required,
        });
        self
    }

    pub fn groups(mut self, supported: bool) -> Self {
        self.capabilities.groups = supported;
        self
    }

    pub fn direct_assignment(mut self, allowed: bool) -> Self {
        self.capabilities.direct_assignment = allowed;
        self
    }

    pub fn offboarding(mut self, offboarding: Offboarding) -> Self {
        self.capabilities.offboarding = offboarding;
        self
    }

    pub fn update_method(mut self, method: UpdateMethod) -> Self {
        self.capabilities.update_method = method;
        self
    }

    pub fn max_members_per_patch(mut self, max: u32) -> Self {
        self.capabilities.max_members_per_patch = max;
        self
    }

    /// The application takes passwords: a new account is created with
    /// one when `on_create`, and a password the user sets later reaches an
    /// existing account by `on_change` (`None`: it does not). The
    /// connector never sees a password: the host adds it to the document
    /// [`Connector::map_user`] made.
    pub fn passwords(mut self, on_create: bool, on_change: Option<UpdateMethod>) -> Self {
        self.capabilities.passwords = PasswordSupport {
            on_create,
            on_change,
        };
        self
    }

    /// The directory attributes the mapping reads (record field names).
    pub fn required_attributes(mut self, attributes: &[&str]) -> Self {
        self.capabilities.required_attributes =
            attributes.iter().map(|a| (*a).to_owned()).collect();
        self
    }
}

impl MappingError {
    /// The input lacks an attribute the application requires.
    pub fn missing(attribute: &str) -> Self {
        MappingError {
            attribute: Some(attribute.to_owned()),
            message: format!("the application requires `{attribute}`, and the user has none"),
        }
    }

    /// The input has an attribute the application cannot take.
    pub fn invalid(attribute: &str, message: impl Into<String>) -> Self {
        MappingError {
            attribute: Some(attribute.to_owned()),
            message: message.into(),
        }
    }

    /// A failure not tied to one attribute.
    pub fn other(message: impl Into<String>) -> Self {
        MappingError {
            attribute: None,
            message: message.into(),
        }
    }
}

/// Logging through the host. Outside a component (native unit tests) the
/// lines go to standard error.
pub mod log {
    use crate::bindings::scimlink::connector::log::Level;

    fn emit(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::bindings::scimlink::connector::log::log(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!("[{level:?}] {message}");
    }

    pub fn debug(message: &str) {
        emit(Level::Debug, message);
    }
    pub fn info(message: &str) {
        emit(Level::Info, message);
    }
    pub fn warn(message: &str) {
        emit(Level::Warn, message);
    }
    pub fn error(message: &str) {
        emit(Level::Error, message);
    }
}

/// What a connector file usually imports.
pub mod prelude {
    pub use crate::scim::{self, ScimJson, ScimResource};
    pub use crate::{
        AccountAction, Connector, DirectoryGroup, DirectoryUser, GroupAction, GroupDecision,
        GroupEvent, GroupEventFacts, Manifest, MappingError, MemberDecision, Offboarding, Settings,
        UpdateMethod, Value, defaults, json,
    };
}

/// Exports a [`Connector`] implementation as the component's connector
/// interface. Use it once, at the crate root.
///
/// Outside a WebAssembly build it expands to nothing, so the same crate can
/// be unit-tested natively and linked beside other connectors.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct ScimlinkExport;
            impl $crate::bindings::exports::scimlink::connector::connector::Guest for ScimlinkExport {
                fn describe() -> $crate::Manifest {
                    <$connector as $crate::Connector>::manifest()
                }
                fn map_user(
                    user: $crate::DirectoryUser,
                    settings: ::std::vec::Vec<$crate::Setting>,
                ) -> ::std::result::Result<::std::string::String, $crate::MappingError> {
                    $crate::glue::map_user::<$connector>(&user, settings)
                }
                fn map_users(
                    users: ::std::vec::Vec<$crate::DirectoryUser>,
                    settings: ::std::vec::Vec<$crate::Setting>,
                ) -> ::std::vec::Vec<::std::result::Result<::std::string::String, $crate::MappingError>>
                {
                    $crate::glue::map_users::<$connector>(&users, settings)
                }
                fn map_group(
                    group: $crate::DirectoryGroup,
                    settings: ::std::vec::Vec<$crate::Setting>,
                ) -> ::std::result::Result<::std::string::String, $crate::MappingError> {
                    $crate::glue::map_group::<$connector>(&group, settings)
                }
                fn lookup_filters(
                    user: $crate::DirectoryUser,
                    settings: ::std::vec::Vec<$crate::Setting>,
                ) -> ::std::vec::Vec<::std::string::String> {
                    <$connector as $crate::Connector>::lookup_filters(
                        &user,
                        &$crate::Settings::from(settings),
                    )
                }
                fn on_group_event(
                    facts: $crate::GroupEventFacts,
                    settings: ::std::vec::Vec<$crate::Setting>,
                ) -> $crate::GroupDecision {
                    <$connector as $crate::Connector>::on_group_event(
                        &facts,
                        &$crate::Settings::from(settings),
                    )
                }
                fn read_user(
                    scim_user: ::std::string::String,
                    settings: ::std::vec::Vec<$crate::Setting>,
                ) -> ::std::result::Result<$crate::DirectoryUser, $crate::MappingError> {
                    $crate::glue::read_user::<$connector>(&scim_user, settings)
                }
            }
            $crate::bindings::export_bindings!(ScimlinkExport with_types_in $crate::bindings);
        };
        // Natively nothing is exported; this keeps the connector type in use.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::Manifest = <$connector as $crate::Connector>::manifest;
    };
}
