//! Contract 0.1.0 (`guest-sdk/wit/v0.1.0`): the first contract, without
//! the batch `map-users`. Its types are also 0.2.0's (see `v0_2.rs`).
//!
//! Its bindings have types of their own. Every value crosses between them
//! and the newest version's types (the host's) through the conversions at
//! the end of this file: the host's inputs are copied into 0.1.0's types,
//! a connector's outputs are moved into the host's. Each conversion names
//! every field of both sides, so a newer contract that changes a type
//! breaks the build here until this file says what 0.1.0 connectors get.
//!
//! Emulated: `map-users` is one `map-user` call per user, each under the
//! deadline of one call.

use semver::Version;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use self::scimlink::connector::{log, types};
use super::latest::scimlink::connector::types as latest;
use super::{ConnectorInstance, ConnectorPre, ContractBindings, Mapped};
use crate::runtime::limits::PluginState;

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../guest-sdk/wit/v0.1.0",
});

pub(super) static BINDINGS: ContractBindings = ContractBindings {
    version: Version::new(0, 1, 0),
    add_to_linker,
    prepare,
};

/// The world's one import with functions is `log` (`types` holds only types).
fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    log::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

fn prepare(instance: InstancePre<PluginState>) -> wasmtime::Result<Box<dyn ConnectorPre>> {
    Ok(Box::new(PluginPre::new(instance)?))
}

impl ConnectorPre for PluginPre<PluginState> {
    fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Box<dyn ConnectorInstance>> {
        Ok(Box::new(PluginPre::instantiate(self, store)?))
    }
}

impl ConnectorInstance for Plugin {
    fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<latest::Manifest> {
        let manifest = self.scimlink_connector_connector().call_describe(store)?;
        Ok(manifest.into())
    }

    fn map_user(
        &self,
        store: &mut Store<PluginState>,
        user: &latest::DirectoryUser,
        settings: &[latest::Setting],
    ) -> wasmtime::Result<Mapped> {
        let mapped = self.scimlink_connector_connector().call_map_user(
            store,
            &user.into(),
            &settings_of(settings),
        )?;
        Ok(mapped.map_err(Into::into))
    }

    fn map_users(
        &self,
        store: &mut Store<PluginState>,
        users: &[latest::DirectoryUser],
        settings: &[latest::Setting],
        call_deadline_ticks: u64,
    ) -> wasmtime::Result<Vec<Mapped>> {
        // 0.1.0 has no batch call: one call per user, each with its own
        // deadline, so a batch is bounded as the same calls one by one.
        let connector = self.scimlink_connector_connector();
        let settings = settings_of(settings);
        users
            .iter()
            .map(|user| {
                store.set_epoch_deadline(call_deadline_ticks);
                let mapped = connector.call_map_user(&mut *store, &user.into(), &settings)?;
                Ok(mapped.map_err(Into::into))
            })
            .collect()
    }

    fn map_group(
        &self,
        store: &mut Store<PluginState>,
        group: &latest::DirectoryGroup,
        settings: &[latest::Setting],
    ) -> wasmtime::Result<Mapped> {
        let mapped = self.scimlink_connector_connector().call_map_group(
            store,
            &group.into(),
            &settings_of(settings),
        )?;
        Ok(mapped.map_err(Into::into))
    }

    fn lookup_filters(
        &self,
        store: &mut Store<PluginState>,
        user: &latest::DirectoryUser,
        settings: &[latest::Setting],
    ) -> wasmtime::Result<Vec<String>> {
        self.scimlink_connector_connector().call_lookup_filters(
            store,
            &user.into(),
            &settings_of(settings),
        )
    }

    fn on_group_event(
        &self,
        store: &mut Store<PluginState>,
        facts: &latest::GroupEventFacts,
        settings: &[latest::Setting],
    ) -> wasmtime::Result<latest::GroupDecision> {
        let decision = self.scimlink_connector_connector().call_on_group_event(
            store,
            &facts.into(),
            &settings_of(settings),
        )?;
        Ok(decision.into())
    }

    fn read_user(
        &self,
        store: &mut Store<PluginState>,
        scim_user: &str,
        settings: &[latest::Setting],
    ) -> wasmtime::Result<Result<latest::DirectoryUser, latest::MappingError>> {
        let read = self.scimlink_connector_connector().call_read_user(
            store,
            scim_user,
            &settings_of(settings),
        )?;
        Ok(read.map(Into::into).map_err(Into::into))
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        super::log(self, level, &message);
    }
}

// The host's inputs, copied into 0.1.0's types.

pub(super) fn settings_of(settings: &[latest::Setting]) -> Vec<types::Setting> {
    settings.iter().map(Into::into).collect()
}

impl From<&latest::Setting> for types::Setting {
    fn from(setting: &latest::Setting) -> Self {
        let latest::Setting { key, value } = setting;
        types::Setting {
            key: key.clone(),
            value: value.clone(),
        }
    }
}

impl From<&latest::DirectoryUser> for types::DirectoryUser {
    fn from(user: &latest::DirectoryUser) -> Self {
        let latest::DirectoryUser {
            id,
            username,
            password_expired,
            suspended,
            first_name,
            middle_name,
            last_name,
            display_name,
            emails,
            addresses,
            phones,
            employee_identifier,
            department,
            company,
            job_title,
            location,
            custom_attributes,
        } = user;
        types::DirectoryUser {
            id: id.clone(),
            username: username.clone(),
            password_expired: *password_expired,
            suspended: *suspended,
            first_name: first_name.clone(),
            middle_name: middle_name.clone(),
            last_name: last_name.clone(),
            display_name: display_name.clone(),
            emails: emails.iter().map(Into::into).collect(),
            addresses: addresses.iter().map(Into::into).collect(),
            phones: phones.iter().map(Into::into).collect(),
            employee_identifier: employee_identifier.clone(),
            department: department.clone(),
            company: company.clone(),
            job_title: job_title.clone(),
            location: location.clone(),
            custom_attributes: custom_attributes.iter().map(Into::into).collect(),
        }
    }
}

impl From<&latest::Email> for types::Email {
    fn from(email: &latest::Email) -> Self {
        let latest::Email {
            value,
            kind,
            primary,
        } = email;
        types::Email {
            value: value.clone(),
            kind: kind.clone(),
            primary: *primary,
        }
    }
}

impl From<&latest::Address> for types::Address {
    fn from(address: &latest::Address) -> Self {
        let latest::Address {
            kind,
            street_address,
            locality,
            region,
            postal_code,
            country,
            primary,
        } = address;
        types::Address {
            kind: kind.clone(),
            street_address: street_address.clone(),
            locality: locality.clone(),
            region: region.clone(),
            postal_code: postal_code.clone(),
            country: country.clone(),
            primary: *primary,
        }
    }
}

impl From<&latest::Phone> for types::Phone {
    fn from(phone: &latest::Phone) -> Self {
        let latest::Phone {
            kind,
            number,
            primary,
        } = phone;
        types::Phone {
            kind: kind.clone(),
            number: number.clone(),
            primary: *primary,
        }
    }
}

impl From<&latest::CustomAttribute> for types::CustomAttribute {
    fn from(attribute: &latest::CustomAttribute) -> Self {
        let latest::CustomAttribute { name, value } = attribute;
        types::CustomAttribute {
            name: name.clone(),
            value: value.clone(),
        }
    }
}

impl From<&latest::DirectoryGroup> for types::DirectoryGroup {
    fn from(group: &latest::DirectoryGroup) -> Self {
        let latest::DirectoryGroup {
            id,
            name,
            description,
        } = group;
        types::DirectoryGroup {
            id: id.clone(),
            name: name.clone(),
            description: description.clone(),
        }
    }
}

impl From<&latest::GroupEventFacts> for types::GroupEventFacts {
    fn from(facts: &latest::GroupEventFacts) -> Self {
        let latest::GroupEventFacts {
            event,
            group,
            members,
            group_management,
        } = facts;
        types::GroupEventFacts {
            event: (*event).into(),
            group: group.into(),
            members: members.iter().map(Into::into).collect(),
            group_management: *group_management,
        }
    }
}

impl From<latest::GroupEvent> for types::GroupEvent {
    fn from(event: latest::GroupEvent) -> Self {
        match event {
            latest::GroupEvent::UserRemovedFromGroup => types::GroupEvent::UserRemovedFromGroup,
            latest::GroupEvent::GroupUnbound => types::GroupEvent::GroupUnbound,
            latest::GroupEvent::GroupDeleted => types::GroupEvent::GroupDeleted,
            latest::GroupEvent::GroupManagementDisabled => {
                types::GroupEvent::GroupManagementDisabled
            }
        }
    }
}

impl From<&latest::MemberFacts> for types::MemberFacts {
    fn from(member: &latest::MemberFacts) -> Self {
        let latest::MemberFacts {
            user_id,
            other_managed_groups,
            directly_assigned,
        } = member;
        types::MemberFacts {
            user_id: user_id.clone(),
            other_managed_groups: other_managed_groups.clone(),
            directly_assigned: *directly_assigned,
        }
    }
}

// A connector's outputs, moved into the host's types.

impl From<types::Manifest> for latest::Manifest {
    fn from(manifest: types::Manifest) -> Self {
        let types::Manifest {
            name,
            version,
            contract_version,
            description,
            base_url_template,
            settings,
            capabilities,
        } = manifest;
        latest::Manifest {
            name,
            version,
            contract_version,
            description,
            base_url_template,
            settings: settings.into_iter().map(Into::into).collect(),
            capabilities: capabilities.into(),
        }
    }
}

impl From<types::SettingSpec> for latest::SettingSpec {
    fn from(spec: types::SettingSpec) -> Self {
        let types::SettingSpec {
            key,
            description,
            required,
        } = spec;
        latest::SettingSpec {
            key,
            description,
            required,
        }
    }
}

impl From<types::Capabilities> for latest::Capabilities {
    fn from(capabilities: types::Capabilities) -> Self {
        let types::Capabilities {
            groups,
            direct_assignment,
            offboarding,
            update_method,
            max_members_per_patch,
            required_attributes,
        } = capabilities;
        latest::Capabilities {
            groups,
            direct_assignment,
            offboarding: match offboarding {
                types::Offboarding::Deactivate => latest::Offboarding::Deactivate,
                types::Offboarding::Delete => latest::Offboarding::Delete,
            },
            update_method: match update_method {
                types::UpdateMethod::Patch => latest::UpdateMethod::Patch,
                types::UpdateMethod::Put => latest::UpdateMethod::Put,
            },
            max_members_per_patch,
            required_attributes,
            // Passwords came with 0.3.0: an older connector's application
            // takes none.
            passwords: latest::PasswordSupport {
                on_create: false,
                on_change: None,
            },
        }
    }
}

impl From<types::MappingError> for latest::MappingError {
    fn from(error: types::MappingError) -> Self {
        let types::MappingError { attribute, message } = error;
        latest::MappingError { attribute, message }
    }
}

impl From<types::DirectoryUser> for latest::DirectoryUser {
    fn from(user: types::DirectoryUser) -> Self {
        let types::DirectoryUser {
            id,
            username,
            password_expired,
            suspended,
            first_name,
            middle_name,
            last_name,
            display_name,
            emails,
            addresses,
            phones,
            employee_identifier,
            department,
            company,
            job_title,
            location,
            custom_attributes,
        } = user;
        latest::DirectoryUser {
            id,
            username,
            password_expired,
            suspended,
            first_name,
            middle_name,
            last_name,
            display_name,
            emails: emails.into_iter().map(Into::into).collect(),
            addresses: addresses.into_iter().map(Into::into).collect(),
            phones: phones.into_iter().map(Into::into).collect(),
            employee_identifier,
            department,
            company,
            job_title,
            location,
            custom_attributes: custom_attributes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<types::Email> for latest::Email {
    fn from(email: types::Email) -> Self {
        let types::Email {
            value,
            kind,
            primary,
        } = email;
        latest::Email {
            value,
            kind,
            primary,
        }
    }
}

impl From<types::Address> for latest::Address {
    fn from(address: types::Address) -> Self {
        let types::Address {
            kind,
            street_address,
            locality,
            region,
            postal_code,
            country,
            primary,
        } = address;
        latest::Address {
            kind,
            street_address,
            locality,
            region,
            postal_code,
            country,
            primary,
        }
    }
}

impl From<types::Phone> for latest::Phone {
    fn from(phone: types::Phone) -> Self {
        let types::Phone {
            kind,
            number,
            primary,
        } = phone;
        latest::Phone {
            kind,
            number,
            primary,
        }
    }
}

impl From<types::CustomAttribute> for latest::CustomAttribute {
    fn from(attribute: types::CustomAttribute) -> Self {
        let types::CustomAttribute { name, value } = attribute;
        latest::CustomAttribute { name, value }
    }
}

impl From<types::GroupDecision> for latest::GroupDecision {
    fn from(decision: types::GroupDecision) -> Self {
        let types::GroupDecision {
            group,
            members,
            rule,
        } = decision;
        latest::GroupDecision {
            group: match group {
                types::GroupAction::LeaveAsIs => latest::GroupAction::LeaveAsIs,
                types::GroupAction::RemoveMembers => latest::GroupAction::RemoveMembers,
                types::GroupAction::ClearMembers => latest::GroupAction::ClearMembers,
                types::GroupAction::DeleteGroup => latest::GroupAction::DeleteGroup,
            },
            members: members.into_iter().map(Into::into).collect(),
            rule,
        }
    }
}

impl From<types::MemberDecision> for latest::MemberDecision {
    fn from(decision: types::MemberDecision) -> Self {
        let types::MemberDecision { user_id, action } = decision;
        latest::MemberDecision {
            user_id,
            action: match action {
                types::AccountAction::Keep => latest::AccountAction::Keep,
                types::AccountAction::Deactivate => latest::AccountAction::Deactivate,
                types::AccountAction::Delete => latest::AccountAction::Delete,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everything_set() -> latest::DirectoryUser {
        latest::DirectoryUser {
            id: "u-1".into(),
            username: "ada".into(),
            password_expired: true,
            suspended: true,
            first_name: Some("Ada".into()),
            middle_name: Some("King".into()),
            last_name: Some("Lovelace".into()),
            display_name: Some("Ada Lovelace".into()),
            emails: vec![latest::Email {
                value: "ada@example.com".into(),
                kind: Some("work".into()),
                primary: true,
            }],
            addresses: vec![latest::Address {
                kind: Some("work".into()),
                street_address: Some("12 St James's Square".into()),
                locality: Some("London".into()),
                region: Some("Greater London".into()),
                postal_code: Some("SW1Y 4JH".into()),
                country: Some("GB".into()),
                primary: true,
            }],
            phones: vec![latest::Phone {
                kind: Some("mobile".into()),
                number: "+44 20 7946 0000".into(),
                primary: false,
            }],
            employee_identifier: Some("E-1815".into()),
            department: Some("Analytical Engines".into()),
            company: Some("Babbage & Co".into()),
            job_title: Some("Programmer".into()),
            location: Some("London".into()),
            custom_attributes: vec![latest::CustomAttribute {
                name: "badge".into(),
                value: "1".into(),
            }],
        }
    }

    #[test]
    fn a_directory_user_crosses_to_0_1_and_back_unchanged() {
        let user = everything_set();
        let crossed = types::DirectoryUser::from(&user);
        let back = latest::DirectoryUser::from(crossed);
        // The generated types have no PartialEq; their Debug lists every field.
        assert_eq!(format!("{back:?}"), format!("{user:?}"));
    }

    #[test]
    fn group_event_facts_reach_0_1_whole() {
        let facts = latest::GroupEventFacts {
            event: latest::GroupEvent::GroupManagementDisabled,
            group: latest::DirectoryGroup {
                id: "g-1".into(),
                name: "engineers".into(),
                description: Some("who builds".into()),
            },
            members: vec![latest::MemberFacts {
                user_id: "u-1".into(),
                other_managed_groups: vec!["g-2".into()],
                directly_assigned: true,
            }],
            group_management: true,
        };
        let crossed = types::GroupEventFacts::from(&facts);
        // Same field names and values: the same Debug text.
        assert_eq!(format!("{crossed:?}"), format!("{facts:?}"));
    }

    #[test]
    fn a_0_1_manifest_and_decision_reach_the_host_whole() {
        let manifest = types::Manifest {
            name: "legacy".into(),
            version: "1.0.0".into(),
            contract_version: "0.1.0".into(),
            description: "an old one".into(),
            base_url_template: Some("https://{tenant}.example.com/scim/v2".into()),
            settings: vec![types::SettingSpec {
                key: "tenant".into(),
                description: "the tenant".into(),
                required: true,
            }],
            capabilities: types::Capabilities {
                groups: false,
                direct_assignment: true,
                offboarding: types::Offboarding::Delete,
                update_method: types::UpdateMethod::Put,
                max_members_per_patch: 7,
                required_attributes: vec!["username".into()],
            },
        };
        let expected = format!("{manifest:?}");
        let converted = latest::Manifest::from(manifest);
        // The same manifest, and an application that takes no passwords.
        assert!(!converted.capabilities.passwords.on_create);
        assert_eq!(converted.capabilities.passwords.on_change, None);
        let converted = format!("{converted:?}").replace(
            ", passwords: PasswordSupport { on-create: false, on-change: None }",
            "",
        );
        assert_eq!(converted, expected);

        let decision = types::GroupDecision {
            group: types::GroupAction::DeleteGroup,
            members: vec![types::MemberDecision {
                user_id: "u-1".into(),
                action: types::AccountAction::Deactivate,
            }],
            rule: "delete-with-group".into(),
        };
        let expected = format!("{decision:?}");
        assert_eq!(
            format!("{:?}", latest::GroupDecision::from(decision)),
            expected
        );
    }
}
