//! The source of truth: the directory, applications, and the engine's
//! durable state, behind the [`Store`] trait.
//!
//! Invariants every implementation keeps:
//! - Every write is one transaction, and the same transaction appends what
//!   changed to the outbox ([`Change`]). A crash therefore never leaves a
//!   change without the record that follow-up work is owed.
//! - Ids are UUIDs chosen by the host, not database sequences, and nothing is
//!   cached between calls, so several hosts may share one database (the
//!   outbox is consumed through leases, see [`Store::claim_changes`]).
//! - `userName` and group `displayName` are unique without regard to case.
//! - Group membership never references a missing user or group and never
//!   forms a cycle: a write that would is refused whole.
//! - A remote account is linked (in the ledger) to at most one directory
//!   object of a kind per application: a write that would link it to a
//!   second is refused with [`StoreError::LinkedElsewhere`].
//! - Application bearer tokens are sealed before they reach storage
//!   ([`secrets::TokenCipher`]); only [`Store::app_token`] opens them.
//!
//! [`sqlite::SqliteStore`] is the embedded default. The trait is synchronous:
//! callers on an async runtime go through [`blocking`].

mod applications;
mod audit;
mod directory;
mod guard;
mod handle;
mod ledger;
mod meta;
mod outbox;
pub mod rules;
mod scope;
pub mod secrets;
pub mod sqlite;
mod timestamp;

pub use applications::*;
pub use audit::*;
pub use directory::*;
pub use guard::*;
pub use handle::StoreHandle;
pub use ledger::*;
pub use meta::*;
pub use outbox::*;
pub use scope::*;
pub use timestamp::{Timestamp, TimestampError};

pub use secrets::{Secret, TokenCipher};
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

/// Runs a store call off the async runtime's worker threads.
pub async fn blocking<T, F>(store: &Arc<dyn Store>, call: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|join| StoreError::Backend(format!("store task failed: {join}")))?
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
        + 'static
{
}

/// The aggregate traits, for calling a store's methods on a concrete
/// backend (`use scimlink::store::prelude::*`); through `dyn Store` they
/// need no import.
pub mod prelude {
    pub use super::{
        ApplicationStore, AuditStore, DirectoryStore, GuardStore, LedgerStore, MetaStore,
        OutboxStore, ScopeStore, Store,
    };
}
