//! The hosts sharing a store: which engines are present and which
//! connectors each serves, and the leases that keep one object of one
//! application with one host at a time.
//!
//! Invariants: a host counts as present until the time it last announced
//! (it announces again well before then, and withdraws when it stops), so a
//! host that died drops out on its own; an object lease is held by one
//! holder at a time, until it runs out unrenewed or its holder releases it;
//! the store's own clock sets and compares every deadline, so hosts whose
//! clocks differ agree on when one ran out.

use std::collections::BTreeMap;

use super::*;

/// A host whose engine announced itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPresence {
    /// The engine's id, as it holds its leases.
    pub engine: String,
    /// A name for people: the machine's name and the process id.
    pub name: String,
    /// The connectors it serves: name → version.
    pub connectors: BTreeMap<String, String>,
    /// When it last announced itself.
    pub seen: Timestamp,
    /// Until when it counts as present unless it announces again.
    pub until: Timestamp,
}

/// One object of one application, as a lease names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKey<'a> {
    pub app_id: &'a str,
    /// `user`, `group`, `user account` or `group account`.
    pub object_kind: &'a str,
    pub object_id: &'a str,
}

/// A lease held now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLease {
    pub app_id: String,
    pub object_id: String,
    pub holder: String,
    pub until: Timestamp,
}

pub trait HostsStore: Send + Sync {
    /// Records that the host `engine` (called `name`, serving
    /// `connectors`) is present for `lease_seconds`, forgets hosts long
    /// gone, and returns every host present now, in engine order.
    fn announce_host(
        &self,
        engine: &str,
        name: &str,
        connectors: &BTreeMap<String, String>,
        lease_seconds: u32,
    ) -> StoreResult<Vec<HostPresence>>;
    /// The host `engine` stopped: it is no longer present.
    fn withdraw_host(&self, engine: &str) -> StoreResult<()>;
    /// Every host present now, in engine order.
    fn hosts(&self) -> StoreResult<Vec<HostPresence>>;
    /// Takes or renews `holder`'s lease on `object` for `lease_seconds`;
    /// whether `holder` holds it now. Another holder's lease is taken over
    /// only once it ran out.
    fn take_object_lease(
        &self,
        holder: &str,
        object: ObjectKey<'_>,
        lease_seconds: u32,
    ) -> StoreResult<bool>;
    /// [`HostsStore::take_object_lease`] for each of `object_ids` (distinct,
    /// of one application and kind), taken in their order and all at once
    /// where the backend can: whether `holder` holds each now, in order.
    fn take_object_leases(
        &self,
        holder: &str,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
        lease_seconds: u32,
    ) -> StoreResult<Vec<bool>> {
        object_ids
            .iter()
            .map(|object_id| {
                let object = ObjectKey {
                    app_id,
                    object_kind,
                    object_id,
                };
                self.take_object_lease(holder, object, lease_seconds)
            })
            .collect()
    }
    /// Extends `holder`'s lease on `object` by `lease_seconds` if it still
    /// holds it and it has not run out; whether it did. Unlike taking, a
    /// renewal never takes a lease back: a holder that lost it meanwhile
    /// must not carry on as if it had not.
    fn renew_object_lease(
        &self,
        holder: &str,
        object: ObjectKey<'_>,
        lease_seconds: u32,
    ) -> StoreResult<bool>;
    /// Gives up `holder`'s lease on `object`, if it holds it.
    fn release_object_lease(&self, holder: &str, object: ObjectKey<'_>) -> StoreResult<()>;
    /// [`HostsStore::release_object_lease`] for each of `leases` (a holder
    /// and its object), all at once where the backend can: those it gave
    /// up are gone even when a later one fails.
    fn release_object_leases(&self, leases: &[(&str, ObjectKey<'_>)]) -> StoreResult<()> {
        leases
            .iter()
            .try_for_each(|(holder, object)| self.release_object_lease(holder, *object))
    }
    /// The leases on objects of `object_kind` that have not run out, by
    /// application and object.
    fn object_leases(&self, object_kind: &str) -> StoreResult<Vec<ObjectLease>>;
    /// Whether other processes may use this store at the same time (a
    /// shared database), so that what one process holds in memory does not
    /// keep another out and objects are leased in the store.
    fn shared_by_hosts(&self) -> bool {
        false
    }
}
