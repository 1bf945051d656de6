//! The store as async code holds it.
//!
//! The [`Store`] trait is synchronous: SQLite is, and a transaction that
//! asks the engine's guard policy for a decision half-way (see
//! [`GuardStore::guard_offboarding`]) is simplest as one synchronous call.
//! A synchronous call must never run on an async runtime's worker thread,
//! where it would stall every task scheduled there, so async code does not
//! hold a `Store` at all: it holds a [`StoreHandle`], whose every method
//! runs the call on the blocking pool and awaits it. The compiler keeps the
//! rule: there is no synchronous method to call by mistake. A backend whose
//! driver is async (PostgreSQL) drives it to completion inside that same
//! blocking call.
//!
//! A call, once sent, runs to its end: dropping the future that awaits it
//! (a `select!` that took another branch, a timeout) does not call it back,
//! and its write may land after whatever the caller does next. A caller
//! that must know its writes are over awaits them (see how the engine stops
//! its lease renewal in `engine::worker`).
//!
//! Records of a ledger change with its event ([`StoreHandle::record_with_ledger`],
//! and [`StoreHandle::record_with_ledger_holding`] where hosts share the
//! store) are the one write every synced object makes, so they are gathered: a
//! record made while others are being written waits for them, and then is
//! written with every record that queued meanwhile, in one blocking call
//! ([`LedgerStore::record_each_with_ledger`]). A record made while none is
//! being written goes at once. Once records come together (the last write
//! held more than one: many objects are being synced), the writer waits a
//! little for more before its next write, up to [`GATHER_WAIT`] or until
//! [`GATHER_AT_ONCE`] are queued: a commit's cost is mostly per page, and
//! records written together share their pages. Each record still stands on
//! its own, and each caller hears its own outcome only once its record is
//! committed.
//!
//! Where hosts share the store, every object synced also gives its lease
//! up once done ([`StoreHandle::release_object_lease`]); those releases
//! are gathered too, without waiting for more: each call gives up every
//! lease released while the one before it ran, and each caller hears only
//! once its own is gone.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::*;

/// A store for async code: each call runs on the blocking pool.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
    records: Arc<Records>,
    releases: Arc<Releases>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

impl StoreHandle {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreHandle {
            store,
            records: Arc::default(),
            releases: Arc::default(),
        }
    }

    /// Runs `call` on the blocking pool: several store calls that belong
    /// together, or code that is synchronous throughout.
    pub async fn run<T, F>(&self, call: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    {
        self.run_fallible(call).await
    }

    /// [`StoreHandle::run`] for synchronous work that fails in its own way
    /// (a connector call between store reads, say).
    pub async fn run_fallible<T, E, F>(&self, call: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|join| StoreError::Backend(format!("store task failed: {join}")))?
    }

    /// Woken when a commit of this process appended to the outbox (see
    /// [`OutboxStore::outbox_signal`]); it does not block.
    pub fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.store.outbox_signal()
    }

    /// Whether other processes share the store ([`HostsStore::shared_by_hosts`]);
    /// it does not block.
    pub fn shared_by_hosts(&self) -> bool {
        self.store.shared_by_hosts()
    }

    // Hosts.

    pub async fn announce_host(
        &self,
        engine: &str,
        name: &str,
        connectors: std::collections::BTreeMap<String, String>,
        lease_seconds: u32,
    ) -> StoreResult<Vec<HostPresence>> {
        let (engine, name) = (engine.to_owned(), name.to_owned());
        self.run(move |store| store.announce_host(&engine, &name, &connectors, lease_seconds))
            .await
    }

    pub async fn withdraw_host(&self, engine: &str) -> StoreResult<()> {
        let engine = engine.to_owned();
        self.run(move |store| store.withdraw_host(&engine)).await
    }

    pub async fn take_object_leases(
        &self,
        holder: &str,
        app_id: &str,
        object_kind: &str,
        object_ids: Vec<String>,
        lease_seconds: u32,
    ) -> StoreResult<Vec<bool>> {
        let (holder, app_id, object_kind) =
            (holder.to_owned(), app_id.to_owned(), object_kind.to_owned());
        self.run(move |store| {
            store.take_object_leases(&holder, &app_id, &object_kind, &object_ids, lease_seconds)
        })
        .await
    }

    pub async fn take_object_lease(
        &self,
        holder: &str,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
        lease_seconds: u32,
    ) -> StoreResult<bool> {
        let (holder, app_id, object_kind, object_id) = (
            holder.to_owned(),
            app_id.to_owned(),
            object_kind.to_owned(),
            object_id.to_owned(),
        );
        self.run(move |store| {
            let object = ObjectKey {
                app_id: &app_id,
                object_kind: &object_kind,
                object_id: &object_id,
            };
            store.take_object_lease(&holder, object, lease_seconds)
        })
        .await
    }

    pub async fn renew_object_lease(
        &self,
        holder: &str,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
        lease_seconds: u32,
    ) -> StoreResult<bool> {
        let (holder, app_id, object_kind, object_id) = (
            holder.to_owned(),
            app_id.to_owned(),
            object_kind.to_owned(),
            object_id.to_owned(),
        );
        self.run(move |store| {
            let object = ObjectKey {
                app_id: &app_id,
                object_kind: &object_kind,
                object_id: &object_id,
            };
            store.renew_object_lease(&holder, object, lease_seconds)
        })
        .await
    }

    /// [`HostsStore::release_object_lease`], given up together with the
    /// leases released while it waited for the call before (one statement
    /// for them all where the backend can); over once it is given up.
    pub async fn release_object_lease(
        &self,
        holder: &str,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<()> {
        let (done, outcome) = oneshot::channel();
        let release = QueuedRelease {
            holder: holder.to_owned(),
            object: [app_id, object_kind, object_id].map(str::to_owned),
            done,
        };
        if self.releases.push(release) {
            let releaser = Releaser {
                store: Arc::clone(&self.store),
                releases: Arc::clone(&self.releases),
                done: false,
            };
            tokio::task::spawn_blocking(move || releaser.release_queued());
        }
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the lease was not given up: the store task failed".into(),
            ))
        })
    }

    // Directory.

    pub async fn create_user(&self, user: UserWrite) -> StoreResult<UserRecord> {
        self.run(move |store| store.create_user(user)).await
    }

    pub async fn replace_user(
        &self,
        id: &str,
        user: UserWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<UserRecord> {
        let id = id.to_owned();
        self.run(move |store| store.replace_user(&id, user, expected_version))
            .await
    }

    pub async fn delete_user(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        let id = id.to_owned();
        self.run(move |store| store.delete_user(&id, expected_version))
            .await
    }

    pub async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let id = id.to_owned();
        self.run(move |store| store.get_user(&id)).await
    }

    pub async fn find_users(&self, key: UserKey, value: &str) -> StoreResult<Vec<UserRecord>> {
        let value = value.to_owned();
        self.run(move |store| store.find_users(key, &value)).await
    }

    pub async fn list_users(&self, page: Page) -> StoreResult<Listing<UserRecord>> {
        self.run(move |store| store.list_users(page)).await
    }

    pub async fn user_groups(&self, id: &str) -> StoreResult<Vec<GroupRef>> {
        let id = id.to_owned();
        self.run(move |store| store.user_groups(&id)).await
    }

    pub async fn create_group(&self, group: GroupWrite) -> StoreResult<GroupRecord> {
        self.run(move |store| store.create_group(group)).await
    }

    pub async fn replace_group(
        &self,
        id: &str,
        group: GroupWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<GroupRecord> {
        let id = id.to_owned();
        self.run(move |store| store.replace_group(&id, group, expected_version))
            .await
    }

    pub async fn delete_group(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        let id = id.to_owned();
        self.run(move |store| store.delete_group(&id, expected_version))
            .await
    }

    pub async fn get_group(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        let id = id.to_owned();
        self.run(move |store| store.get_group(&id)).await
    }

    /// [`crate::store::DirectoryStore::get_group_without_members`].
    pub async fn get_group_without_members(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        let id = id.to_owned();
        self.run(move |store| store.get_group_without_members(&id))
            .await
    }

    pub async fn find_groups(&self, key: GroupKey, value: &str) -> StoreResult<Vec<GroupRecord>> {
        let value = value.to_owned();
        self.run(move |store| store.find_groups(key, &value)).await
    }

    pub async fn list_groups(&self, page: Page) -> StoreResult<Listing<GroupRecord>> {
        self.run(move |store| store.list_groups(page)).await
    }

    pub async fn change_members(
        &self,
        group_id: &str,
        add: &[Member],
        remove: &[String],
    ) -> StoreResult<GroupRecord> {
        let group_id = group_id.to_owned();
        let add = add.to_vec();
        let remove = remove.to_vec();
        self.run(move |store| store.change_members(&group_id, &add, &remove))
            .await
    }

    pub async fn import(&self, batch: ImportBatch) -> StoreResult<ImportOutcome> {
        self.run(move |store| store.import(batch)).await
    }

    pub async fn users_of(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        let ids = ids.to_vec();
        self.run(move |store| store.users_of(&ids)).await
    }

    // Applications.

    pub async fn create_app(&self, app: AppWrite) -> StoreResult<AppRecord> {
        self.run(move |store| store.create_app(app)).await
    }

    pub async fn get_app(&self, name_or_id: &str) -> StoreResult<Option<AppRecord>> {
        let name_or_id = name_or_id.to_owned();
        self.run(move |store| store.get_app(&name_or_id)).await
    }

    pub async fn list_apps(&self, page: Page) -> StoreResult<Listing<AppRecord>> {
        self.run(move |store| store.list_apps(page)).await
    }

    pub async fn update_app(&self, name_or_id: &str, update: AppUpdate) -> StoreResult<AppRecord> {
        let name_or_id = name_or_id.to_owned();
        self.run(move |store| store.update_app(&name_or_id, update))
            .await
    }

    pub async fn delete_app(&self, name_or_id: &str) -> StoreResult<()> {
        let name_or_id = name_or_id.to_owned();
        self.run(move |store| store.delete_app(&name_or_id)).await
    }

    pub async fn app_token(&self, name_or_id: &str) -> StoreResult<Secret> {
        let name_or_id = name_or_id.to_owned();
        self.run(move |store| store.app_token(&name_or_id)).await
    }

    // Scope.

    pub async fn bind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        let app = app.to_owned();
        let group_id = group_id.to_owned();
        self.run(move |store| store.bind(&app, &group_id)).await
    }

    pub async fn unbind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        let app = app.to_owned();
        let group_id = group_id.to_owned();
        self.run(move |store| store.unbind(&app, &group_id)).await
    }

    pub async fn bindings(&self, app: &str) -> StoreResult<Vec<GroupRef>> {
        let app = app.to_owned();
        self.run(move |store| store.bindings(&app)).await
    }

    pub async fn assign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        let app = app.to_owned();
        let user_id = user_id.to_owned();
        self.run(move |store| store.assign(&app, &user_id)).await
    }

    pub async fn unassign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        let app = app.to_owned();
        let user_id = user_id.to_owned();
        self.run(move |store| store.unassign(&app, &user_id)).await
    }

    pub async fn assignments(&self, app: &str) -> StoreResult<Vec<String>> {
        let app = app.to_owned();
        self.run(move |store| store.assignments(&app)).await
    }

    pub async fn users_in_scope(&self, app: &str) -> StoreResult<Vec<String>> {
        let app = app.to_owned();
        self.run(move |store| store.users_in_scope(&app)).await
    }

    pub async fn user_in_scope(&self, app_id: &str, user_id: &str) -> StoreResult<bool> {
        let app_id = app_id.to_owned();
        let user_id = user_id.to_owned();
        self.run(move |store| store.user_in_scope(&app_id, &user_id))
            .await
    }

    pub async fn bound_groups_containing(
        &self,
        app_id: &str,
        member_id: &str,
    ) -> StoreResult<Vec<String>> {
        let app_id = app_id.to_owned();
        let member_id = member_id.to_owned();
        self.run(move |store| store.bound_groups_containing(&app_id, &member_id))
            .await
    }

    // Outbox.

    pub async fn dispatch_changes(&self, limit: u32) -> StoreResult<u32> {
        self.run(move |store| store.dispatch_changes(limit)).await
    }

    pub async fn claim_pairs(
        &self,
        consumer: &str,
        app_id: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<(Change, ChangeProgress)>> {
        let (consumer, app_id) = (consumer.to_owned(), app_id.to_owned());
        self.run(move |store| store.claim_pairs(&consumer, &app_id, limit, lease_seconds))
            .await
    }

    pub async fn renew_pairs(
        &self,
        consumer: &str,
        app_id: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>> {
        let (consumer, app_id, seqs) = (consumer.to_owned(), app_id.to_owned(), seqs.to_vec());
        self.run(move |store| store.renew_pairs(&consumer, &app_id, &seqs, lease_seconds))
            .await
    }

    pub async fn settle_pairs(
        &self,
        consumer: &str,
        progress: Vec<ChangeProgress>,
    ) -> StoreResult<()> {
        let consumer = consumer.to_owned();
        self.run(move |store| store.settle_pairs(&consumer, &progress))
            .await
    }

    pub async fn sweep_pairs(&self) -> StoreResult<u64> {
        self.run(|store| store.sweep_pairs()).await
    }

    pub async fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>> {
        let seqs = seqs.to_vec();
        self.run(move |store| store.change_progress(&seqs)).await
    }

    pub async fn pending_changes(&self) -> StoreResult<u64> {
        self.run(move |store| store.pending_changes()).await
    }

    // Ledger.

    pub async fn ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        let app_id = app_id.to_owned();
        let object_kind = object_kind.to_owned();
        let object_id = object_id.to_owned();
        self.run(move |store| store.ledger_entry(&app_id, &object_kind, &object_id))
            .await
    }

    pub async fn ledger_entries(
        &self,
        app_id: &str,
        object_kind: &str,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let app_id = app_id.to_owned();
        let object_kind = object_kind.to_owned();
        self.run(move |store| store.ledger_entries(&app_id, &object_kind))
            .await
    }

    pub async fn ledger_links(
        &self,
        app_id: &str,
        object_kind: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        let app_id = app_id.to_owned();
        let object_kind = object_kind.to_owned();
        self.run(move |store| store.ledger_links(&app_id, &object_kind))
            .await
    }

    pub async fn remote_ids(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let app_id = app_id.to_owned();
        let object_kind = object_kind.to_owned();
        let object_ids = object_ids.to_vec();
        self.run(move |store| store.remote_ids(&app_id, &object_kind, &object_ids))
            .await
    }

    pub async fn ledger_holder(
        &self,
        app_id: &str,
        object_kind: &str,
        remote_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        let app_id = app_id.to_owned();
        let object_kind = object_kind.to_owned();
        let remote_id = remote_id.to_owned();
        self.run(move |store| store.ledger_holder(&app_id, &object_kind, &remote_id))
            .await
    }

    pub async fn count_ledger_entries(
        &self,
        app_id: &str,
        object_kind: &str,
        excluding_hash: &str,
    ) -> StoreResult<u64> {
        let app_id = app_id.to_owned();
        let object_kind = object_kind.to_owned();
        let excluding_hash = excluding_hash.to_owned();
        self.run(move |store| store.count_ledger_entries(&app_id, &object_kind, &excluding_hash))
            .await
    }

    pub async fn put_ledger_entry(&self, entry: &LedgerEntry) -> StoreResult<()> {
        let entry = entry.clone();
        self.run(move |store| store.put_ledger_entry(&entry)).await
    }

    pub async fn remove_ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<()> {
        let app_id = app_id.to_owned();
        let object_kind = object_kind.to_owned();
        let object_id = object_id.to_owned();
        self.run(move |store| store.remove_ledger_entry(&app_id, &object_kind, &object_id))
            .await
    }

    pub async fn put_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        let letter = letter.clone();
        self.run(move |store| store.put_dead_letter(&letter)).await
    }

    pub async fn dead_letters(&self, app_id: &str) -> StoreResult<Vec<DeadLetter>> {
        let app_id = app_id.to_owned();
        self.run(move |store| store.dead_letters(&app_id)).await
    }

    pub async fn replay_dead_letters(
        &self,
        app_id: &str,
        object_ids: Option<&[String]>,
    ) -> StoreResult<u64> {
        let app_id = app_id.to_owned();
        let object_ids = object_ids.map(<[String]>::to_vec);
        self.run(move |store| store.replay_dead_letters(&app_id, object_ids.as_deref()))
            .await
    }

    /// [`LedgerStore::record_with_ledger`], written together with the
    /// records made while it waited for the writer (see the module's
    /// documentation).
    pub async fn record_with_ledger(
        &self,
        change: LedgerChange<'_>,
        event: Event,
    ) -> StoreResult<()> {
        self.record_gathered(change, event, None).await
    }

    /// A record queued for the writer: `holder`'s lease checked with it
    /// when it names one.
    async fn record_gathered(
        &self,
        change: LedgerChange<'_>,
        event: Event,
        holder: Option<&str>,
    ) -> StoreResult<()> {
        let (done, outcome) = oneshot::channel();
        let record = QueuedRecord {
            change: OwnedLedgerChange::from(change),
            event,
            holder: holder.map(str::to_owned),
            done,
        };
        if self.records.push(record) {
            let writer = self.record_writer();
            tokio::task::spawn_blocking(move || writer.write_queued());
        }
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the record was not written: the store task failed".into(),
            ))
        })
    }

    /// A call to write this handle's queued records.
    fn record_writer(&self) -> RecordWriter {
        RecordWriter {
            store: Arc::clone(&self.store),
            records: Arc::clone(&self.records),
            done: false,
        }
    }

    /// [`LedgerStore::record_with_ledger_holding`]: with an event, written
    /// together with the other records as [`StoreHandle::record_with_ledger`]
    /// is.
    pub async fn record_with_ledger_holding(
        &self,
        holder: &str,
        change: LedgerChange<'_>,
        event: Option<Event>,
    ) -> StoreResult<()> {
        if let Some(event) = event {
            return self.record_gathered(change, event, Some(holder)).await;
        }
        let (holder, change) = (holder.to_owned(), OwnedLedgerChange::from(change));
        self.run(move |store| store.record_with_ledger_holding(&holder, change.borrowed(), event))
            .await
    }

    // Guard.

    pub async fn guard_offboarding(
        &self,
        app_id: &str,
        object: &HeldObject,
        entry_state: &str,
        window_seconds: u64,
        decide: impl Fn(&GuardFacts) -> GuardStep + Send + 'static,
    ) -> StoreResult<GuardRecorded> {
        let app_id = app_id.to_owned();
        let object = object.clone();
        let entry_state = entry_state.to_owned();
        self.run(move |store| {
            store.guard_offboarding(&app_id, &object, &entry_state, window_seconds, &decide)
        })
        .await
    }

    pub async fn held_changes(&self, app_id: Option<&str>) -> StoreResult<Vec<HeldChange>> {
        let app_id = app_id.map(str::to_owned);
        self.run(move |store| store.held_changes(app_id.as_deref()))
            .await
    }

    pub async fn decide_held_change(&self, id: &str, approve: bool) -> StoreResult<HeldChange> {
        let id = id.to_owned();
        self.run(move |store| store.decide_held_change(&id, approve))
            .await
    }

    // Audit.

    pub async fn record_event(&self, event: Event) -> StoreResult<Event> {
        self.run(move |store| store.record_event(event)).await
    }

    pub async fn events(&self, query: &EventQuery, page: Page) -> StoreResult<Listing<Event>> {
        let query = query.clone();
        self.run(move |store| store.events(&query, page)).await
    }

    pub async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        self.run(move |store| store.prune_events(before)).await
    }

    // Meta.

    pub async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_owned();
        self.run(move |store| store.meta(&key)).await
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        let key = key.to_owned();
        let value = value.to_owned();
        self.run(move |store| store.set_meta(&key, &value)).await
    }
}

/// How many queued records the writer waits for, once records come
/// together, before its next write. A first sync makes several records a
/// millisecond, so it is mostly [`GATHER_WAIT`] that ends the wait.
const GATHER_AT_ONCE: usize = 32;

/// The longest the writer waits for them. Short beside a sync's requests:
/// a record is made after its object's last request, so no request waits;
/// what waits is the caller, still holding its object's lock, until it
/// hears that its record is committed. Two milliseconds rather than one
/// let more records share each commit's pages (BENCHMARKS.md).
const GATHER_WAIT: Duration = Duration::from_millis(2);

/// The records queued for the writer, and the signal that enough have
/// gathered.
#[derive(Default)]
struct Records {
    queue: Mutex<RecordQueue>,
    gathered: Condvar,
}

impl Records {
    fn queue(&self) -> MutexGuard<'_, RecordQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `record`; whether no call is writing, so the caller starts
    /// one.
    fn push(&self, record: QueuedRecord) -> bool {
        let mut queue = self.queue();
        queue.waiting.push(record);
        if queue.waiting.len() >= GATHER_AT_ONCE {
            self.gathered.notify_one();
        }
        !std::mem::replace(&mut queue.writing, true)
    }

    /// The queue once [`GATHER_AT_ONCE`] records wait in it or `wait` has
    /// passed.
    fn gather(&self, wait: Duration) -> MutexGuard<'_, RecordQueue> {
        let deadline = Instant::now() + wait;
        let mut queue = self.queue();
        while queue.waiting.len() < GATHER_AT_ONCE {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            queue = self
                .gathered
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        queue
    }
}

/// Records waiting to be written, and whether a blocking call is writing.
#[derive(Default)]
struct RecordQueue {
    waiting: Vec<QueuedRecord>,
    writing: bool,
}

/// A record and where its outcome goes.
struct QueuedRecord {
    change: OwnedLedgerChange,
    event: Event,
    /// The holder whose lease the record is written under, if any.
    holder: Option<String>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The blocking call that writes queued records.
struct RecordWriter {
    store: Arc<dyn Store>,
    records: Arc<Records>,
    /// Whether it ran to its end and let the queue go.
    done: bool,
}

impl RecordWriter {
    /// Writes the queued records, all that have queued at each turn, until
    /// none is left; then lets the next record start a call of its own.
    /// After a turn that wrote more than one, the next gathers first.
    fn write_queued(mut self) {
        let mut coming_together = false;
        loop {
            let batch = {
                let mut queue = if coming_together {
                    self.records.gather(GATHER_WAIT)
                } else {
                    self.records.queue()
                };
                if queue.waiting.is_empty() {
                    queue.writing = false;
                    self.done = true;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            coming_together = batch.len() > 1;
            let mut changes = Vec::with_capacity(batch.len());
            let mut events = Vec::with_capacity(batch.len());
            let mut holders = Vec::with_capacity(batch.len());
            let mut senders = Vec::with_capacity(batch.len());
            for record in batch {
                changes.push(record.change);
                events.push(record.event);
                holders.push(record.holder);
                senders.push(record.done);
            }
            // A panic fails this turn's records and leaves the queue served.
            let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let records = changes
                    .iter()
                    .zip(events)
                    .zip(&holders)
                    .map(|((change, event), holder)| LedgerRecord {
                        change: change.borrowed(),
                        event,
                        holder: holder.as_deref(),
                    })
                    .collect();
                self.store.record_each_with_ledger(records)
            }));
            match outcomes {
                Ok(outcomes) if outcomes.len() == senders.len() => {
                    for (sender, outcome) in senders.into_iter().zip(outcomes) {
                        // A caller that stopped waiting no longer hears it.
                        let _ = sender.send(outcome);
                    }
                }
                _ => {
                    for sender in senders {
                        let _ = sender.send(Err(StoreError::Backend(
                            "the record was not written: the store failed unexpectedly".into(),
                        )));
                    }
                }
            }
        }
    }
}

impl Drop for RecordWriter {
    /// A call that never ran (its runtime was shutting down) fails the
    /// records that waited for it and lets the queue go, so that the next
    /// record starts a call of its own rather than waiting for this one.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut queue = self.records.queue();
        queue.writing = false;
        for record in queue.waiting.drain(..) {
            let _ = record.done.send(Err(StoreError::Backend(
                "the record was not written: the store task did not run".into(),
            )));
        }
    }
}

/// Leases waiting to be given up, and whether a blocking call is giving
/// them up. Unlike records, releases are not held back to gather: each
/// call gives up all that queued while the one before ran.
#[derive(Default)]
struct Releases {
    queue: Mutex<ReleaseQueue>,
}

#[derive(Default)]
struct ReleaseQueue {
    waiting: Vec<QueuedRelease>,
    releasing: bool,
}

/// A lease to give up (its holder; application, kind and object) and
/// where the outcome goes.
struct QueuedRelease {
    holder: String,
    object: [String; 3],
    done: oneshot::Sender<StoreResult<()>>,
}

impl Releases {
    fn queue(&self) -> MutexGuard<'_, ReleaseQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `release`; whether no call is releasing, so the caller
    /// starts one.
    fn push(&self, release: QueuedRelease) -> bool {
        let mut queue = self.queue();
        queue.waiting.push(release);
        !std::mem::replace(&mut queue.releasing, true)
    }
}

/// The blocking call that gives queued leases up.
struct Releaser {
    store: Arc<dyn Store>,
    releases: Arc<Releases>,
    /// Whether it ran to its end and let the queue go.
    done: bool,
}

impl Releaser {
    /// Gives up all queued leases at each turn, until none is left.
    fn release_queued(mut self) {
        loop {
            let batch = {
                let mut queue = self.releases.queue();
                if queue.waiting.is_empty() {
                    queue.releasing = false;
                    self.done = true;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let released = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let leases: Vec<(&str, ObjectKey<'_>)> = batch
                    .iter()
                    .map(|release| {
                        let [app_id, object_kind, object_id] = &release.object;
                        (
                            release.holder.as_str(),
                            ObjectKey {
                                app_id,
                                object_kind,
                                object_id,
                            },
                        )
                    })
                    .collect();
                self.store.release_object_leases(&leases)
            }));
            let outcome = match released {
                Ok(outcome) => outcome.map_err(|error| error.to_string()),
                Err(_) => Err("the store failed unexpectedly".to_string()),
            };
            for release in batch {
                // A caller that stopped waiting no longer hears it.
                let _ = release
                    .done
                    .send(outcome.clone().map_err(StoreError::Backend));
            }
        }
    }
}

impl Drop for Releaser {
    /// A call that never ran (its runtime was shutting down) fails the
    /// releases that waited for it (their leases run out by themselves)
    /// and lets the queue go.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut queue = self.releases.queue();
        queue.releasing = false;
        for release in queue.waiting.drain(..) {
            let _ = release.done.send(Err(StoreError::Backend(
                "the lease was not given up: the store task did not run".into(),
            )));
        }
    }
}

/// A [`LedgerChange`] that owns what it names, to cross to the blocking pool.
enum OwnedLedgerChange {
    Put(LedgerEntry),
    PutWithPassword(LedgerEntry, OwnedPasswordSent),
    Remove {
        app_id: String,
        object_kind: String,
        object_id: String,
    },
}

/// A [`PasswordSent`] that owns what it names.
enum OwnedPasswordSent {
    Own { generation: String },
    Temporary { reveal: Option<Secret> },
}

impl From<LedgerChange<'_>> for OwnedLedgerChange {
    fn from(change: LedgerChange<'_>) -> Self {
        match change {
            LedgerChange::Put(entry) => OwnedLedgerChange::Put(entry.clone()),
            LedgerChange::PutWithPassword(entry, sent) => {
                let sent = match sent {
                    PasswordSent::Own { generation } => OwnedPasswordSent::Own {
                        generation: generation.to_owned(),
                    },
                    PasswordSent::Temporary { reveal } => OwnedPasswordSent::Temporary {
                        reveal: reveal.cloned(),
                    },
                };
                OwnedLedgerChange::PutWithPassword(entry.clone(), sent)
            }
            LedgerChange::Remove {
                app_id,
                object_kind,
                object_id,
            } => OwnedLedgerChange::Remove {
                app_id: app_id.to_owned(),
                object_kind: object_kind.to_owned(),
                object_id: object_id.to_owned(),
            },
        }
    }
}

impl OwnedLedgerChange {
    fn borrowed(&self) -> LedgerChange<'_> {
        match self {
            OwnedLedgerChange::Put(entry) => LedgerChange::Put(entry),
            OwnedLedgerChange::PutWithPassword(entry, sent) => LedgerChange::PutWithPassword(
                entry,
                match sent {
                    OwnedPasswordSent::Own { generation } => PasswordSent::Own { generation },
                    OwnedPasswordSent::Temporary { reveal } => PasswordSent::Temporary {
                        reveal: reveal.as_ref(),
                    },
                },
            ),
            OwnedLedgerChange::Remove {
                app_id,
                object_kind,
                object_id,
            } => LedgerChange::Remove {
                app_id,
                object_kind,
                object_id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::secrets::{Secret, TokenCipher};
    use crate::store::sqlite::SqliteStore;

    fn handle() -> (tempfile::TempDir, StoreHandle, String) {
        let folder = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[7; 32])).unwrap();
        let app = store
            .create_app(AppWrite {
                name: "crm".into(),
                label: "CRM".into(),
                connector: "custom-scim".into(),
                base_url: "https://app.example/scim/v2".into(),
                token: Secret::new("token"),
                manage_groups: true,
                settings: vec![],
                pacing: Default::default(),
                guard: Default::default(),
                passwords: Default::default(),
            })
            .unwrap();
        (folder, StoreHandle::new(Arc::new(store)), app.id)
    }

    fn link(app_id: &str, user: &str, remote: &str) -> LedgerEntry {
        LedgerEntry {
            app_id: app_id.into(),
            object_kind: "user".into(),
            object_id: user.into(),
            remote_id: remote.into(),
            doc_hash: "h".into(),
            document: None,
            updated: Timestamp::now(),
        }
    }

    fn event(app_id: &str, user: &str) -> Event {
        Event {
            id: String::new(),
            at: Timestamp::now(),
            app_id: Some(app_id.into()),
            app_name: None,
            object_kind: Some("user".into()),
            object_id: Some(user.into()),
            operation: "user_create_provision".into(),
            outcome: Outcome::Success,
            rule: None,
            http_status: Some(201),
            summary: format!("{user} created"),
        }
    }

    /// A writing call that never runs (its runtime shut down first) fails
    /// the records waiting for it and leaves the queue to the next record.
    #[tokio::test]
    async fn a_writing_call_that_never_runs_lets_the_queue_go() {
        let (_folder, handle, app) = handle();
        handle.records.queue().writing = true;
        let entry = link(&app, "u1", "r1");
        let record = handle.record_with_ledger(LedgerChange::Put(&entry), event(&app, "u1"));
        let mut record = Box::pin(record);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(record.as_mut().poll(&mut context).is_pending());
        drop(handle.record_writer());
        assert!(record.await.is_err());
        assert!(!handle.records.queue().writing);
        handle
            .record_with_ledger(LedgerChange::Put(&entry), event(&app, "u1"))
            .await
            .unwrap();
        assert!(
            handle
                .ledger_entry(&app, "user", "u1")
                .await
                .unwrap()
                .is_some()
        );
    }

    /// Records made while another is being written queue, and are written
    /// together by the call that is writing; each caller hears its own
    /// outcome, a refused link its refusal, and only once it is committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_made_while_one_is_written_are_written_together() {
        let (_folder, handle, app) = handle();
        // As though a call were writing: the records below queue.
        handle.records.queue().writing = true;
        let records: Vec<_> = (0..10)
            .map(|index| {
                let (handle, app) = (handle.clone(), app.clone());
                // Two users claim each account: the second link is refused.
                let (user, remote) = (format!("u{index}"), format!("r{}", index / 2));
                tokio::spawn(async move {
                    let entry = link(&app, &user, &remote);
                    let outcome = handle
                        .record_with_ledger(LedgerChange::Put(&entry), event(&app, &user))
                        .await;
                    (user, outcome)
                })
            })
            .collect();
        while handle.records.queue().waiting.len() < 10 {
            tokio::task::yield_now().await;
        }
        let writer = handle.record_writer();
        tokio::task::spawn_blocking(move || writer.write_queued())
            .await
            .unwrap();
        assert!(handle.records.queue().waiting.is_empty());
        assert!(!handle.records.queue().writing);
        let mut linked = 0;
        for record in records {
            let (user, outcome) = record.await.unwrap();
            let kept = handle.ledger_entry(&app, "user", &user).await.unwrap();
            match outcome {
                Ok(()) => {
                    assert!(kept.is_some(), "{user}");
                    linked += 1;
                }
                Err(StoreError::LinkedElsewhere { .. }) => assert!(kept.is_none(), "{user}"),
                Err(error) => panic!("{user}: {error}"),
            }
        }
        assert_eq!(linked, 5);
        // The next record finds nobody writing, and goes at once.
        let entry = link(&app, "late", "r-late");
        handle
            .record_with_ledger(LedgerChange::Put(&entry), event(&app, "late"))
            .await
            .unwrap();
        assert!(
            handle
                .ledger_entry(&app, "user", "late")
                .await
                .unwrap()
                .is_some()
        );
    }

    /// Leases given up while a call is giving others up are given up
    /// together by the next, each caller hearing only once its own is gone;
    /// another holder's lease named among them is left alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_given_up_while_one_is_are_given_up_together() {
        let (_folder, handle, app) = handle();
        for index in 0..8 {
            let holder = if index == 7 { "host-b" } else { "host-a" };
            assert!(
                handle
                    .take_object_lease(holder, &app, "user", &format!("u{index}"), 30)
                    .await
                    .unwrap()
            );
        }
        // As though a call were giving leases up: the releases below queue.
        handle.releases.queue().releasing = true;
        let releases: Vec<_> = (0..8)
            .map(|index| {
                let (handle, app) = (handle.clone(), app.clone());
                tokio::spawn(async move {
                    handle
                        .release_object_lease("host-a", &app, "user", &format!("u{index}"))
                        .await
                })
            })
            .collect();
        while handle.releases.queue().waiting.len() < 8 {
            tokio::task::yield_now().await;
        }
        let releaser = Releaser {
            store: Arc::clone(&handle.store),
            releases: Arc::clone(&handle.releases),
            done: false,
        };
        tokio::task::spawn_blocking(move || releaser.release_queued())
            .await
            .unwrap();
        assert!(!handle.releases.queue().releasing);
        for release in releases {
            release.await.unwrap().unwrap();
        }
        for index in 0..7 {
            assert!(
                handle
                    .take_object_lease("host-c", &app, "user", &format!("u{index}"), 30)
                    .await
                    .unwrap(),
                "u{index} was given up"
            );
        }
        assert!(
            !handle
                .take_object_lease("host-c", &app, "user", "u7", 30)
                .await
                .unwrap(),
            "another holder's lease stays"
        );
        // The next release finds nobody releasing, and goes at once.
        handle
            .release_object_lease("host-c", &app, "user", "u0")
            .await
            .unwrap();
        assert!(
            handle
                .take_object_lease("host-d", &app, "user", "u0", 30)
                .await
                .unwrap()
        );
    }

    /// A record as the queue holds it, and where its outcome would go.
    fn queued(app_id: &str, user: &str) -> (QueuedRecord, oneshot::Receiver<StoreResult<()>>) {
        let (done, outcome) = oneshot::channel();
        let record = QueuedRecord {
            change: OwnedLedgerChange::Put(link(app_id, user, &format!("remote-{user}"))),
            event: event(app_id, user),
            holder: None,
            done,
        };
        (record, outcome)
    }

    /// A writer gathering records goes on as soon as enough are queued,
    /// from whichever thread, without waiting out its time.
    #[test]
    fn a_gathering_writer_goes_on_once_enough_records_are_queued() {
        let (_folder, handle, app) = handle();
        let records = Arc::clone(&handle.records);
        // As though a call were writing: none of these starts another.
        records.queue().writing = true;
        let queuer = {
            let records = Arc::clone(&records);
            std::thread::spawn(move || {
                (0..GATHER_AT_ONCE)
                    .map(|index| {
                        let (record, outcome) = queued(&app, &format!("u{index}"));
                        assert!(!records.push(record), "a call is already writing");
                        outcome
                    })
                    .collect::<Vec<_>>()
            })
        };
        let long = Duration::from_secs(60);
        let started = Instant::now();
        let gathered = records.gather(long).waiting.len();
        assert_eq!(gathered, GATHER_AT_ONCE);
        assert!(started.elapsed() < long, "it waited out its time");
        queuer.join().unwrap();
    }

    /// Fewer records than it waits for: the writer goes on with those once
    /// its time is out, never before.
    #[test]
    fn a_gathering_writer_goes_on_with_what_came_once_its_time_is_out() {
        let (_folder, handle, app) = handle();
        handle.records.queue().writing = true;
        let (record, _outcome) = queued(&app, "alone");
        handle.records.push(record);
        let wait = Duration::from_millis(20);
        let started = Instant::now();
        assert_eq!(handle.records.gather(wait).waiting.len(), 1);
        assert!(started.elapsed() >= wait);
    }

    /// After a turn that wrote several records the writer gathers; records
    /// made meanwhile, by this call or (should it have ended) the next,
    /// are each committed and each caller told; then the queue is let go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_made_while_the_writer_gathers_are_each_written() {
        let (_folder, handle, app) = handle();
        handle.records.queue().writing = true;
        let mut first = Vec::new();
        for user in ["first", "second"] {
            let (record, outcome) = queued(&app, user);
            handle.records.push(record);
            first.push((user.to_string(), outcome));
        }
        let writer = handle.record_writer();
        let writing = tokio::task::spawn_blocking(move || writer.write_queued());
        let later: Vec<_> = (0..GATHER_AT_ONCE + 3)
            .map(|index| {
                let (handle, app) = (handle.clone(), app.clone());
                tokio::spawn(async move {
                    let user = format!("later{index}");
                    let entry = link(&app, &user, &format!("remote-{user}"));
                    let outcome = handle
                        .record_with_ledger(LedgerChange::Put(&entry), event(&app, &user))
                        .await;
                    (user, outcome)
                })
            })
            .collect();
        writing.await.unwrap();
        let mut users = Vec::new();
        for (user, outcome) in first {
            outcome.await.unwrap().unwrap();
            users.push(user);
        }
        for record in later {
            let (user, outcome) = record.await.unwrap();
            outcome.unwrap();
            users.push(user);
        }
        for user in users {
            assert!(
                handle
                    .ledger_entry(&app, "user", &user)
                    .await
                    .unwrap()
                    .is_some(),
                "{user}"
            );
        }
        // The last writing call lets the queue go once its gathering is
        // over: wait for it, boundedly.
        for _ in 0..400 {
            if !handle.records.queue().writing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let queue = handle.records.queue();
        assert!(!queue.writing && queue.waiting.is_empty());
    }
}
