//! The connector contract as the host speaks it: one set of bindings per
//! contract version it supports, and the rules for which components it
//! accepts.
//!
//! Invariants:
//! - the host accepts a component whose `scimlink:connector/connector`
//!   export has the host's major version and a minor version it knows
//!   (0.1 or 0.2); anything else is refused with both versions named;
//! - every older version's types are mapped onto the newest bindings'
//!   types (`with:`), so the rest of the host sees one set of types; an
//!   older component's missing functions are emulated here (0.1.0 has no
//!   batch `map-users`: it is served by repeated `map-user` calls).

use std::fmt;

use semver::Version;

/// Bindings of contract 0.2.0, the current one.
pub mod since_v0_2_0 {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../guest-sdk/wit/v0.2.0",
    });
}

/// Bindings of contract 0.1.0 (no batch `map-users`).
pub mod since_v0_1_0 {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../guest-sdk/wit/v0.1.0",
        with: {
            "scimlink:connector/types": super::since_v0_2_0::scimlink::connector::types,
        },
    });
}

pub use since_v0_2_0::scimlink::connector::types::{
    AccountAction, Address, Capabilities, CustomAttribute, DirectoryGroup, DirectoryUser, Email,
    GroupAction, GroupDecision, GroupEvent, GroupEventFacts, Manifest, MappingError,
    MemberDecision, MemberFacts, Offboarding, Phone, Setting, SettingSpec, UpdateMethod,
};

/// The interface a connector component exports, without its version.
pub const CONNECTOR_INTERFACE: &str = "scimlink:connector/connector";

/// The newest contract version this host speaks.
pub const CURRENT: ContractVersion = ContractVersion::V0_2;

/// A contract version the host has bindings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    V0_1,
    V0_2,
}

impl ContractVersion {
    pub const ALL: [ContractVersion; 2] = [ContractVersion::V0_1, ContractVersion::V0_2];

    pub fn semver(self) -> Version {
        match self {
            ContractVersion::V0_1 => Version::new(0, 1, 0),
            ContractVersion::V0_2 => Version::new(0, 2, 0),
        }
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
        ContractVersion::ALL
            .into_iter()
            .rev()
            .find(|known| known.semver().minor == version.minor)
            .ok_or_else(|| ContractError::UnknownMinor {
                found: version.clone(),
                supported: current,
            })
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.semver(), f)
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
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_minor_versions_are_served_by_their_own_bindings() {
        let (_, version) = detect(["scimlink:connector/connector@0.1.0"]).unwrap();
        assert_eq!(version, ContractVersion::V0_1);
        let (_, version) = detect(["scimlink:connector/connector@0.2.3"]).unwrap();
        assert_eq!(version, ContractVersion::V0_2);
    }

    #[test]
    fn an_incompatible_major_names_both_versions() {
        let error = detect(["scimlink:connector/connector@1.0.0"]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("1.0.0") && message.contains("0.2.0"),
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
