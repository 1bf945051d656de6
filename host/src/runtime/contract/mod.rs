//! The connector contract as the host speaks it: which versions it
//! accepts, and one file per version holding everything that version
//! needs.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | the supported versions, version detection, what every version provides ([`ContractBindings`], [`ConnectorPre`], [`ConnectorInstance`]) |
//! | `v0_1.rs` | contract 0.1.0: its bindings, its `log` import, the batch `map-users` it lacks, conversions to and from the newest types |
//! | `v0_2.rs` | contract 0.2.0: its bindings (over 0.1.0's types, which it did not change) and its `log` import |
//! | `v0_3.rs` | contract 0.3.0, the newest: its bindings and its `log` import; its types are the host's |
//!
//! Invariants:
//! - the host accepts a component whose `scimlink:connector/connector`
//!   export has the host's major version and a minor version listed in
//!   [`SUPPORTED`]; anything else is refused with both versions named;
//! - the rest of the host sees one set of types, the newest version's
//!   (re-exported here: [`DirectoryUser`], [`Manifest`] …). Every older
//!   version's types convert, field by field, to and from the newest ones,
//!   so no version depends on the newest WIT staying the same. An older
//!   version that changed no type (0.2.0) reuses the generated types of
//!   the version before it, and with them its conversions;
//! - a version's file serves every call of the newest contract: a call the
//!   version lacks is emulated there (0.1.0 has no batch `map-users`: it is
//!   served by repeated `map-user` calls);
//! - every version's imports (its `log`) are in the one linker the runtime
//!   shares, and every one of them ends in the same host function
//!   ([`log`]), so what a connector may ask of the host does not depend on
//!   the version it was built against.

mod v0_1;
mod v0_2;
mod v0_3;

use std::fmt;

use semver::Version;
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use super::limits::PluginState;

/// The newest contract version: the rest of the host speaks its types.
use v0_3 as latest;

pub use latest::scimlink::connector::types::{
    AccountAction, Address, Capabilities, CustomAttribute, DirectoryGroup, DirectoryUser, Email,
    GroupAction, GroupDecision, GroupEvent, GroupEventFacts, Manifest, MappingError,
    MemberDecision, MemberFacts, Offboarding, PasswordSupport, Phone, Setting, SettingSpec,
    UpdateMethod,
};

/// Every contract version this host speaks, oldest first; the last is
/// [`CURRENT`].
static SUPPORTED: &[&ContractBindings] = &[&v0_1::BINDINGS, &v0_2::BINDINGS, &v0_3::BINDINGS];

/// The interface a connector component exports, without its version.
pub const CONNECTOR_INTERFACE: &str = "scimlink:connector/connector";

/// The newest contract version this host speaks.
pub const CURRENT: ContractVersion = ContractVersion(&latest::BINDINGS);

/// What one contract version's file gives the rest of the host.
pub(crate) struct ContractBindings {
    /// The version of the WIT package the bindings were generated from.
    version: Version,
    /// Adds the host functions the version's world imports.
    add_to_linker: fn(&mut Linker<PluginState>) -> wasmtime::Result<()>,
    /// Checks that a component has the version's exports, and keeps them
    /// ready to instantiate.
    prepare: fn(InstancePre<PluginState>) -> wasmtime::Result<Box<dyn ConnectorPre>>,
}

/// A component linked against its contract version, ready to instantiate.
pub(crate) trait ConnectorPre: Send + Sync {
    fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Box<dyn ConnectorInstance>>;
}

/// What a call that maps one object returns: the SCIM document's JSON
/// text, or the connector's refusal.
pub(crate) type Mapped = Result<String, MappingError>;

/// The calls of one instance, in the newest contract's types, whatever
/// version the component was built against. An `Err` is a failure of the
/// call itself (a trap, a timeout, a transfer over budget); a connector's
/// refusal is inside the `Ok`.
pub(crate) trait ConnectorInstance: Send {
    fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Manifest>;

    fn map_user(
        &self,
        store: &mut Store<PluginState>,
        user: &DirectoryUser,
        settings: &[Setting],
    ) -> wasmtime::Result<Mapped>;

    /// `map_user` for every user, in order. `call_deadline_ticks` is the
    /// epoch deadline of one call: a version that serves the batch as
    /// several calls gives each of them that deadline.
    fn map_users(
        &self,
        store: &mut Store<PluginState>,
        users: &[DirectoryUser],
        settings: &[Setting],
        call_deadline_ticks: u64,
    ) -> wasmtime::Result<Vec<Mapped>>;

    fn map_group(
        &self,
        store: &mut Store<PluginState>,
        group: &DirectoryGroup,
        settings: &[Setting],
    ) -> wasmtime::Result<Mapped>;

    fn lookup_filters(
        &self,
        store: &mut Store<PluginState>,
        user: &DirectoryUser,
        settings: &[Setting],
    ) -> wasmtime::Result<Vec<String>>;

    fn on_group_event(
        &self,
        store: &mut Store<PluginState>,
        facts: &GroupEventFacts,
        settings: &[Setting],
    ) -> wasmtime::Result<GroupDecision>;

    fn read_user(
        &self,
        store: &mut Store<PluginState>,
        scim_user: &str,
        settings: &[Setting],
    ) -> wasmtime::Result<Result<DirectoryUser, MappingError>>;
}

/// Adds the imports of every supported version to the runtime's linker.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    SUPPORTED
        .iter()
        .try_for_each(|bindings| (bindings.add_to_linker)(linker))
}

/// A connector's log line, under its plugin's name: where the `log`
/// import of every version ends.
fn log(state: &PluginState, level: tracing::Level, message: &str) {
    use tracing::Level;
    let message = super::truncate_for_log(message);
    let plugin = state.plugin.as_str();
    match level {
        Level::TRACE => tracing::trace!(target: "scimlink::plugin", plugin, "{message}"),
        Level::DEBUG => tracing::debug!(target: "scimlink::plugin", plugin, "{message}"),
        Level::INFO => tracing::info!(target: "scimlink::plugin", plugin, "{message}"),
        Level::WARN => tracing::warn!(target: "scimlink::plugin", plugin, "{message}"),
        _ => tracing::error!(target: "scimlink::plugin", plugin, "{message}"),
    }
}

/// A contract version the host has bindings for.
#[derive(Clone, Copy)]
pub struct ContractVersion(&'static ContractBindings);

impl ContractVersion {
    /// Every version this host speaks, oldest first.
    pub fn supported() -> impl DoubleEndedIterator<Item = ContractVersion> {
        SUPPORTED.iter().map(|bindings| ContractVersion(bindings))
    }

    pub fn semver(self) -> Version {
        self.0.version.clone()
    }

    /// The bindings that serve a component exporting `version`.
    ///
    /// Compatible means: the same major version, a minor version the host
    /// knows. (In the 0.x series the host treats the minor version as the
    /// feature level, as the contract's changelog does.)
    pub fn for_version(version: &Version) -> Result<ContractVersion, ContractError> {
        let current = CURRENT.semver();
        if version.major != current.major {
            return Err(ContractError::IncompatibleMajor {
                found: version.clone(),
                supported: current,
            });
        }
        ContractVersion::supported()
            .rev()
            .find(|known| known.0.version.minor == version.minor)
            .ok_or_else(|| ContractError::UnknownMinor {
                found: version.clone(),
                supported: current,
            })
    }

    /// Checks that a linked component has this version's exports.
    pub(crate) fn prepare(
        self,
        instance: InstancePre<PluginState>,
    ) -> wasmtime::Result<Box<dyn ConnectorPre>> {
        (self.0.prepare)(instance)
    }
}

impl PartialEq for ContractVersion {
    fn eq(&self, other: &Self) -> bool {
        self.0.version == other.0.version
    }
}

impl Eq for ContractVersion {}

impl fmt::Debug for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContractVersion({})", self.0.version)
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.version, f)
    }
}

/// Why a component's contract version is not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ContractError {
    #[error(
        "the component does not export {CONNECTOR_INTERFACE} (it exports: {exports}); \
         is it a scimlink connector?"
    )]
    NotAConnector { exports: String },
    #[error(
        "the component exports {CONNECTOR_INTERFACE} without a version: rebuild it against the versioned contract"
    )]
    Unversioned,
    #[error(
        "the component exports {CONNECTOR_INTERFACE}@{found}: `{found}` is not a semantic version"
    )]
    BadVersion { found: String },
    #[error(
        "the component was built against contract {found}, an incompatible major version: \
         this host speaks contract {supported} (and every earlier {major}.x)",
        major = supported.major
    )]
    IncompatibleMajor { found: Version, supported: Version },
    #[error(
        "the component was built against contract {found}, newer than this host's {supported}: \
         upgrade scimlink to load it"
    )]
    UnknownMinor { found: Version, supported: Version },
}

/// Finds the contract version of a component from the name of its
/// connector export (`scimlink:connector/connector@0.2.0`).
pub fn detect<'a>(
    export_names: impl IntoIterator<Item = &'a str>,
) -> Result<(Version, ContractVersion), ContractError> {
    let names: Vec<&str> = export_names.into_iter().collect();
    let Some(name) = names
        .iter()
        .find(|name| name.split('@').next() == Some(CONNECTOR_INTERFACE))
    else {
        return Err(ContractError::NotAConnector {
            exports: if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            },
        });
    };
    let Some((_, version)) = name.split_once('@') else {
        return Err(ContractError::Unversioned);
    };
    let version = Version::parse(version).map_err(|_| ContractError::BadVersion {
        found: version.to_owned(),
    })?;
    let known = ContractVersion::for_version(&version)?;
    Ok((version, known))
}

/// A manifest as JSON, for the CLI, the API and events.
pub fn manifest_json(manifest: &Manifest) -> serde_json::Value {
    let capabilities = &manifest.capabilities;
    serde_json::json!({
        "name": manifest.name,
        "version": manifest.version,
        "contract_version": manifest.contract_version,
        "description": manifest.description,
        "base_url_template": manifest.base_url_template,
        "settings": manifest.settings.iter().map(|s| serde_json::json!({
            "key": s.key,
            "description": s.description,
            "required": s.required,
        })).collect::<Vec<_>>(),
        "capabilities": {
            "groups": capabilities.groups,
            "direct_assignment": capabilities.direct_assignment,
            "offboarding": match capabilities.offboarding {
                Offboarding::Deactivate => "deactivate",
                Offboarding::Delete => "delete",
            },
            "update_method": match capabilities.update_method {
                UpdateMethod::Patch => "patch",
                UpdateMethod::Put => "put",
            },
            "max_members_per_patch": capabilities.max_members_per_patch,
            "required_attributes": capabilities.required_attributes,
            "passwords": {
                "on_create": capabilities.passwords.on_create,
                "on_change": capabilities.passwords.on_change.map(|method| match method {
                    UpdateMethod::Patch => "patch",
                    UpdateMethod::Put => "put",
                }),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_versions_are_in_order_and_end_with_the_current_one() {
        let versions: Vec<Version> = ContractVersion::supported()
            .map(ContractVersion::semver)
            .collect();
        assert!(versions.is_sorted(), "{versions:?}");
        // One version per minor: the minor selects the bindings.
        let minors: Vec<u64> = versions.iter().map(|v| v.minor).collect();
        assert!(minors.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert!(versions.iter().all(|v| v.major == CURRENT.semver().major));
        assert_eq!(ContractVersion::supported().last(), Some(CURRENT));
    }

    #[test]
    fn older_minor_versions_are_served_by_their_own_bindings() {
        let (_, version) = detect(["scimlink:connector/connector@0.1.0"]).unwrap();
        assert_eq!(version.semver(), Version::new(0, 1, 0));
        let (_, version) = detect(["scimlink:connector/connector@0.2.3"]).unwrap();
        assert_eq!(version.semver(), Version::new(0, 2, 0));
        let (_, version) = detect(["scimlink:connector/connector@0.3.1"]).unwrap();
        assert_eq!(version, CURRENT);
        assert_eq!(version.to_string(), "0.3.0");
    }

    #[test]
    fn an_incompatible_major_names_both_versions() {
        let error = detect(["scimlink:connector/connector@1.0.0"]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("1.0.0") && message.contains("0.3.0"),
            "{message}"
        );
    }

    #[test]
    fn a_newer_minor_asks_for_a_host_upgrade() {
        let error = detect(["scimlink:connector/connector@0.9.0"]).unwrap_err();
        assert!(error.to_string().contains("upgrade scimlink"), "{error}");
    }

    #[test]
    fn a_component_of_another_world_is_named_as_such() {
        let error = detect(["wasi:http/incoming-handler@0.2.0"]).unwrap_err();
        assert!(
            error.to_string().contains("is it a scimlink connector"),
            "{error}"
        );
    }
}
