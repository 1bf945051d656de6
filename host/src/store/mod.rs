//! The source of truth: the directory, applications, and the engine's
//! durable state, behind the [`Store`] trait.
//!
//! `Store` is the composition of one trait per aggregate, each in its own
//! file with its records: [`DirectoryStore`] (users, groups, membership,
//! import), [`ApplicationStore`] (applications and their sealed tokens),
//! [`ScopeStore`] (bindings, assignments and who is in scope),
//! [`OutboxStore`] (the changes writes append, consumed through leases),
//! [`LedgerStore`] (links to remote accounts, dead letters),
//! [`GuardStore`] (the deprovisioning guard's holds), [`AuditStore`]
//! (events), [`MetaStore`] (host metadata), [`HostsStore`] (the hosts
//! sharing the store, and the leases that keep an object with one of them)
//! and [`PasswordStore`] (users' passwords on their way to applications,
//! sealed). [`sqlite`] implements each in
//! a file of the same name; [`rules`] holds what every backend decides the
//! same way; host/tests/store/conformance.rs is what every backend must
//! pass.
//!
//! Invariants every implementation keeps:
//! - Every write is one transaction, and the same transaction appends what
//!   changed to the outbox ([`Change`], typed by [`ChangeKind`]). A crash
//!   therefore never leaves a change without the record that follow-up
//!   work is owed.
//! - Ids are UUIDs chosen by the host, not database sequences, and nothing is
//!   cached between calls, so several hosts may share one database (the
//!   outbox is consumed through leases, see [`OutboxStore::claim_pairs`]).
//! - `userName` and group `displayName` are unique without regard to case
//!   ([`rules::fold_name`]).
//! - Group membership never references a missing user or group and never
//!   forms a cycle: a write that would is refused whole.
//! - A remote account is linked (in the ledger) to at most one directory
//!   object of a kind per application: a write that would link it to a
//!   second is refused with [`StoreError::LinkedElsewhere`].
//! - Application bearer tokens and users' passwords are sealed before they
//!   reach storage ([`TokenCipher`]); only [`ApplicationStore::app_token`]
//!   opens a token, and only [`PasswordStore`] a password.
//! - Times are [`Timestamp`]s: UTC, to the millisecond, stored so that text
//!   order is time order.
//!
//! The traits are synchronous, and async code never calls them in place: it
//! holds a [`StoreHandle`], which runs every call on the blocking pool (see
//! its module for why the store is synchronous and how an async driver
//! fits).

mod applications;
mod audit;
mod directory;
#[cfg(test)]
pub(crate) mod fixtures;
mod guard;
mod handle;
mod hosts;
mod ledger;
mod meta;
mod outbox;
mod passwords;
pub mod postgres;
pub mod rules;
mod scope;
mod snapshot;
pub mod sqlite;
mod timestamp;
pub mod transfer;

pub use applications::*;
pub use audit::*;
pub use directory::*;
pub use guard::*;
pub use handle::StoreHandle;
pub use hosts::*;
pub use ledger::*;
pub use meta::*;
pub use outbox::*;
pub use passwords::*;
pub use scope::*;
pub use snapshot::SnapshotStore;
pub use timestamp::{Timestamp, TimestampError};

pub use crate::secrets::{Secret, TokenCipher};
pub use postgres::PostgresStore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
pub use sqlite::SqliteStore;
use std::sync::Arc;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {key:?} not found")]
    NotFound { entity: &'static str, key: String },
    #[error("a {entity} with {field} {value:?} already exists")]
    Conflict {
        entity: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("{entity} {id} is at version {current}, not {expected}")]
    VersionMismatch {
        entity: &'static str,
        id: String,
        expected: i64,
        current: i64,
    },
    /// A membership change that names a missing member or forms a cycle.
    #[error("{0}")]
    InvalidMembership(String),
    /// A ledger write would link a remote account that another directory
    /// object of the same application already holds.
    #[error("account {remote_id} is already linked to {holder}")]
    LinkedElsewhere { remote_id: String, holder: String },
    /// A write for a host whose lease on the object ran out: another host
    /// may have taken the object over, so nothing was written.
    #[error(
        "this host's lease on {0} ran out and another host may have taken it over; nothing was \
         recorded"
    )]
    LeaseLost(String),
    #[error("sealed token cannot be opened: {0}")]
    Secret(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Backend(error.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new row's id: a UUID whose leading bits are its creation time
/// (version 7), so that rows made one after another sit side by side in
/// every index keyed by id. A random id would land each insert on a page
/// of its own, and every commit would write a page per new row and index.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A window into an ordered list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// The storage of one host, or of several sharing a database: every
/// aggregate's store in one.
pub trait Store:
    DirectoryStore
    + ApplicationStore
    + ScopeStore
    + OutboxStore
    + LedgerStore
    + GuardStore
    + AuditStore
    + MetaStore
    + HostsStore
    + PasswordStore
    + SnapshotStore
    + 'static
{
}

impl<T> Store for T where
    T: DirectoryStore
        + ApplicationStore
        + ScopeStore
        + OutboxStore
        + LedgerStore
        + GuardStore
        + AuditStore
        + MetaStore
        + HostsStore
        + PasswordStore
        + SnapshotStore
        + 'static
{
}

/// The aggregate traits, for calling a store's methods on a concrete
/// backend (`use scimlink::store::prelude::*`); through `dyn Store` they
/// need no import.
pub mod prelude {
    pub use super::{
        ApplicationStore, AuditStore, DirectoryStore, GuardStore, HostsStore, LedgerStore,
        MetaStore, OutboxStore, PasswordStore, ScopeStore, SnapshotStore, Store,
    };
}
