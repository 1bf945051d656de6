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

use std::sync::Arc;

use super::*;

/// A store for async code: each call runs on the blocking pool.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

impl StoreHandle {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreHandle { store }
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

    pub async fn release_object_lease(
        &self,
        holder: &str,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<()> {
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
            store.release_object_lease(&holder, object)
        })
        .await
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

    pub async fn record_with_ledger(
        &self,
        change: LedgerChange<'_>,
        event: Event,
    ) -> StoreResult<()> {
        let change = OwnedLedgerChange::from(change);
        self.run(move |store| store.record_with_ledger(change.borrowed(), event))
            .await
    }

    pub async fn record_with_ledger_holding(
        &self,
        holder: &str,
        change: LedgerChange<'_>,
        event: Option<Event>,
    ) -> StoreResult<()> {
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
