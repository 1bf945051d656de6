//! Contract 0.3.0, the newest (`guest-sdk/wit/v0.3.0`). It added
//! `password-support` to a manifest's capabilities: whether and how the
//! application takes users' passwords, which the host adds to the
//! documents a connector makes.
//!
//! Its generated types are the host's types (re-exported by the contract
//! module), so its calls pass the host's values through unconverted. When
//! a newer version becomes the newest, this file gains the conversions to
//! that version's types, as `v0_1.rs` has.

use semver::Version;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use self::scimlink::connector::log;
use self::scimlink::connector::types::{
    DirectoryGroup, DirectoryUser, GroupDecision, GroupEventFacts, Manifest, MappingError, Setting,
};
use super::{ConnectorInstance, ConnectorPre, ContractBindings, Mapped};
use crate::runtime::limits::PluginState;

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../guest-sdk/wit/v0.3.0",
});

pub(super) static BINDINGS: ContractBindings = ContractBindings {
    version: Version::new(0, 3, 0),
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
    fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Manifest> {
        self.scimlink_connector_connector().call_describe(store)
    }

    fn map_user(
        &self,
        store: &mut Store<PluginState>,
        user: &DirectoryUser,
        settings: &[Setting],
    ) -> wasmtime::Result<Mapped> {
        self.scimlink_connector_connector()
            .call_map_user(store, user, settings)
    }

    fn map_users(
        &self,
        store: &mut Store<PluginState>,
        users: &[DirectoryUser],
        settings: &[Setting],
        _call_deadline_ticks: u64,
    ) -> wasmtime::Result<Vec<Mapped>> {
        // One guest call: the deadline the caller set covers it.
        self.scimlink_connector_connector()
            .call_map_users(store, users, settings)
    }

    fn map_group(
        &self,
        store: &mut Store<PluginState>,
        group: &DirectoryGroup,
        settings: &[Setting],
    ) -> wasmtime::Result<Mapped> {
        self.scimlink_connector_connector()
            .call_map_group(store, group, settings)
    }

    fn lookup_filters(
        &self,
        store: &mut Store<PluginState>,
        user: &DirectoryUser,
        settings: &[Setting],
    ) -> wasmtime::Result<Vec<String>> {
        self.scimlink_connector_connector()
            .call_lookup_filters(store, user, settings)
    }

    fn on_group_event(
        &self,
        store: &mut Store<PluginState>,
        facts: &GroupEventFacts,
        settings: &[Setting],
    ) -> wasmtime::Result<GroupDecision> {
        self.scimlink_connector_connector()
            .call_on_group_event(store, facts, settings)
    }

    fn read_user(
        &self,
        store: &mut Store<PluginState>,
        scim_user: &str,
        settings: &[Setting],
    ) -> wasmtime::Result<Result<DirectoryUser, MappingError>> {
        self.scimlink_connector_connector()
            .call_read_user(store, scim_user, settings)
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
