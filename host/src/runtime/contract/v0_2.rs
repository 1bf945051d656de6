//! Contract 0.2.0 (`guest-sdk/wit/v0.2.0`). It added `map-users`, the
//! batch form of `map-user`, and changed no type.
//!
//! Its types are 0.1.0's: the bindings map 0.2.0's `types` interface onto
//! the ones generated for 0.1.0 (bindgen's `with`), so the conversions of
//! `v0_1.rs` serve both versions. That holds only while the two interfaces
//! are the same; the component model checks it structurally when a 0.2.0
//! component is linked, and the fixture built against 0.2.0
//! (`plugins/testing/contract-v0-2`) is loaded by the compatibility tests.
use semver::Version;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use self::scimlink::connector::log;
use super::latest::scimlink::connector::types as latest;
use super::v0_1::settings_of;
use super::{ConnectorInstance, ConnectorPre, ContractBindings, Mapped};
use crate::runtime::limits::PluginState;

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../guest-sdk/wit/v0.2.0",
    with: {
        "scimlink:connector/types@0.2.0": super::v0_1::scimlink::connector::types,
    },
});

pub(super) static BINDINGS: ContractBindings = ContractBindings {
    version: Version::new(0, 2, 0),
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
        _call_deadline_ticks: u64,
    ) -> wasmtime::Result<Vec<Mapped>> {
        // One guest call: the deadline the caller set covers it.
        let users: Vec<_> = users.iter().map(Into::into).collect();
        let mapped = self.scimlink_connector_connector().call_map_users(
            store,
            &users,
            &settings_of(settings),
        )?;
        Ok(mapped
            .into_iter()
            .map(|mapped| mapped.map_err(Into::into))
            .collect())
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
