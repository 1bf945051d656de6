//! The outbox: every directory or application write appends what changed,
//! in the same transaction, and the engine consumes it through leases.
//!
//! Invariants: changes are claimed in order and a change is held by one
//! consumer at a time (a lease, renewed while the work runs, taken over by
//! another consumer only once it ran out); a consumer whose lease ran out
//! records nothing; progress is kept per (change, application), so one
//! application's failure never holds up another's work on the same change.

use super::*;

/// What changed, as the outbox records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub seq: i64,
    pub at: String,
    /// `user`, `group`, `membership`, `app`, `binding`.
    pub entity: String,
    pub entity_id: String,
    /// `created`, `updated`, `deleted`, `added`, `removed`, `bound`,
    /// `unbound`, `activated`, `deactivated`, `token-rotated`, `renamed` …
    pub action: String,
    pub detail: Value,
}

/// Where one change stands for one application it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeProgress {
    pub seq: i64,
    pub app_id: String,
    /// Done with: applied, or given up on with its objects dead-lettered.
    pub done: bool,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When a failed pair may be tried again (RFC 3339 UTC).
    pub retry_at: Option<String>,
    pub last_error: Option<String>,
}

pub trait OutboxStore: Send + Sync {
    // Outbox.
    /// Up to `limit` unfinished changes in order that no live lease holds,
    /// leased to `consumer` for `lease_seconds`.
    fn claim_changes(
        &self,
        consumer: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<Change>>;
    /// Extends `consumer`'s leases on `seqs` (a long change stays its own);
    /// the seqs it still held and extended. One missing was taken by
    /// another consumer after the lease ran out: its work must stop.
    fn renew_claims(
        &self,
        consumer: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>>;
    /// Marks `consumer`'s changes among `seqs` done and forgets their
    /// per-application progress.
    fn complete_changes(&self, consumer: &str, seqs: &[i64]) -> StoreResult<()>;
    /// Lets `consumer`'s claim on each change run until the given time
    /// (RFC 3339 UTC), when it may be claimed again: a change waiting for a
    /// failed application's retry is not claimed before it is due.
    fn defer_changes(&self, consumer: &str, until: &[(i64, String)]) -> StoreResult<()>;
    /// The per-application progress recorded for `seqs`.
    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>>;
    /// Records where changes stand for applications (replacing what was
    /// recorded for the same pairs), for those still claimed by `consumer`:
    /// a consumer whose lease ran out records nothing.
    fn record_progress(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()>;
    fn pending_changes(&self) -> StoreResult<u64>;
    /// Woken when a commit of this process appended to the outbox, so that
    /// a consumer need not poll to learn of it (it still polls for other
    /// processes sharing the database).
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}
