//! The ledger: which remote account each directory object is linked to in
//! each application, and the last document the application accepted; and
//! the dead letters, objects an application refused for good.
//!
//! Invariants: a remote account is linked to at most one object of a kind
//! per application (a second link is refused with
//! [`StoreError::LinkedElsewhere`]); writing or removing an object's entry
//! takes its dead letter off the list (it succeeded); a ledger change and
//! the event that records it land in one transaction
//! ([`LedgerStore::record_with_ledger`]).

use super::*;

/// What an application holds of one directory object, as last accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub app_id: String,
    /// `user` or `group`.
    pub object_kind: String,
    pub object_id: String,
    /// The object's id in the application.
    pub remote_id: String,
    /// sha256 of the last document the application accepted, or a marker
    /// of a state without a document (`deactivated`).
    pub doc_hash: String,
    /// The last document the application accepted, when one was sent.
    pub document: Option<String>,
    pub updated: Timestamp,
}

/// One of the records [`LedgerStore::record_each_with_ledger`] writes: a
/// ledger change with the event that records it.
#[derive(Debug, Clone)]
pub struct LedgerRecord<'a> {
    pub change: LedgerChange<'a>,
    pub event: Event,
    /// Where hosts share the store, the holder whose lease on the changed
    /// object must still hold for the record to be written, checked in the
    /// same transaction ([`LedgerStore::record_with_ledger_holding`]).
    pub holder: Option<&'a str>,
}

/// A change to the ledger made together with the event that records it.
#[derive(Debug, Clone, Copy)]
pub enum LedgerChange<'a> {
    Put(&'a LedgerEntry),
    /// [`LedgerChange::Put`] for a request that carried a password: the
    /// user's own (its delivery to the entry's application is recorded) or
    /// a temporary one (kept for an operator when the policy says so).
    PutWithPassword(&'a LedgerEntry, PasswordSent<'a>),
    Remove {
        app_id: &'a str,
        object_kind: &'a str,
        object_id: &'a str,
    },
}

/// An object an application refused for a reason another attempt will not
/// cure. It stays listed until a sync of the object succeeds or an operator
/// replays it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub app_id: String,
    /// `user` or `group`.
    pub object_kind: String,
    pub object_id: String,
    /// The operation that failed (`user_create_provision` …).
    pub operation: String,
    pub reason: String,
    pub http_status: Option<u16>,
    pub first_failed: Timestamp,
    pub last_failed: Timestamp,
    /// How many times it failed since it was first listed.
    pub failures: u32,
}

pub trait LedgerStore: Send + Sync {
    // The ledger.
    fn ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<Option<LedgerEntry>>;
    /// The entries the ledger holds for the objects among `object_ids`, in
    /// no particular order: what [`Self::ledger_entry`] answers for each,
    /// read at once (a chunk of users being synced asks for all of theirs).
    fn ledger_entries_among(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<LedgerEntry>> {
        let mut entries = Vec::new();
        for object_id in object_ids {
            entries.extend(self.ledger_entry(app_id, object_kind, object_id)?);
        }
        Ok(entries)
    }
    /// Every entry of one kind for an application.
    fn ledger_entries(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<LedgerEntry>>;
    /// Every entry of one kind for an application as its link alone,
    /// (object id, remote id) in object id order: what a caller that needs
    /// no documents reads, at a fraction of [`Self::ledger_entries`]' cost.
    fn ledger_links(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<(String, String)>>;
    /// The remote ids the ledger holds for the objects among `object_ids`,
    /// as (object id, remote id), in `object_ids` order.
    fn remote_ids(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>>;
    /// The entry that links the remote account `remote_id`, whichever
    /// object holds it: a remote account is linked to at most one object of
    /// a kind per application, and a write that would link it to a second
    /// is refused with [`StoreError::LinkedElsewhere`].
    fn ledger_holder(
        &self,
        app_id: &str,
        object_kind: &str,
        remote_id: &str,
    ) -> StoreResult<Option<LedgerEntry>>;
    /// How many entries of one kind an application has, those whose
    /// `doc_hash` is `excluding_hash` left out.
    fn count_ledger_entries(
        &self,
        app_id: &str,
        object_kind: &str,
        excluding_hash: &str,
    ) -> StoreResult<u64>;
    /// Writes an entry; `updated` is set to now.
    fn put_ledger_entry(&self, entry: &LedgerEntry) -> StoreResult<()>;
    fn remove_ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<()>;

    // Dead letters.
    /// Lists an object as failed for good, or counts one more failure of an
    /// object already listed. (Writing the object's ledger entry, or
    /// removing it, takes it off the list: it succeeded.)
    fn put_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()>;
    /// An application's dead letters, oldest first.
    fn dead_letters(&self, app_id: &str) -> StoreResult<Vec<DeadLetter>>;
    /// Takes dead letters of an application off the list (those of
    /// `object_ids`, or all) and queues their objects for another sync, in
    /// one transaction. How many were replayed.
    fn replay_dead_letters(&self, app_id: &str, object_ids: Option<&[String]>) -> StoreResult<u64>;
    /// Changes the ledger and records the event that says why, in one
    /// transaction: what the application accepted and its audit entry land
    /// together or not at all.
    fn record_with_ledger(&self, change: LedgerChange<'_>, event: Event) -> StoreResult<()>;
    /// [`LedgerStore::record_with_ledger`] (or, for a record that names its
    /// holder, [`LedgerStore::record_with_ledger_holding`]) for each of
    /// `records`, each on its own: one that fails keeps nothing of itself
    /// and leaves the others be. One outcome per record, in order, each
    /// reported only once what it wrote is committed. A backend may commit
    /// them together (the cost of a small write is mostly its commit); this
    /// one writes each in turn.
    fn record_each_with_ledger(&self, records: Vec<LedgerRecord<'_>>) -> Vec<StoreResult<()>> {
        records
            .into_iter()
            .map(|record| match record.holder {
                Some(holder) => {
                    self.record_with_ledger_holding(holder, record.change, Some(record.event))
                }
                None => self.record_with_ledger(record.change, record.event),
            })
            .collect()
    }
    /// [`LedgerStore::record_with_ledger`] (the event, when there is one)
    /// for a host that holds the changed object's lease
    /// ([`HostsStore::take_object_lease`]), checked in the same
    /// transaction: a host whose lease ran out (it was paused past it, and
    /// another host may have synced the object since) records nothing and
    /// is told [`StoreError::LeaseLost`].
    fn record_with_ledger_holding(
        &self,
        holder: &str,
        change: LedgerChange<'_>,
        event: Option<Event>,
    ) -> StoreResult<()>;
}

impl LedgerChange<'_> {
    /// The object the change is about, as its lease names it.
    pub fn object(&self) -> ObjectKey<'_> {
        match self {
            LedgerChange::Put(entry) | LedgerChange::PutWithPassword(entry, _) => ObjectKey {
                app_id: &entry.app_id,
                object_kind: &entry.object_kind,
                object_id: &entry.object_id,
            },
            LedgerChange::Remove {
                app_id,
                object_kind,
                object_id,
            } => ObjectKey {
                app_id,
                object_kind,
                object_id,
            },
        }
    }
}
