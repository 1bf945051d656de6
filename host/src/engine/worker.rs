//! The engine's loop: it consumes the outbox and syncs every user and group
//! a change touches in every active application.
//!
//! The outbox is the durable queue. A change is claimed with a lease and
//! completed only after every sync it caused has finished (or failed for
//! good, which an event and a dead letter record); a host killed in between
//! leaves the lease to expire and the change to be claimed again. Because a
//! sync is level-triggered ([`super::provision`], [`super::groups`]),
//! running a change twice, or changes out of order, converges on the same
//! state.
//!
//! For each change and application, in this order:
//! 1. the deprovisioning guard: a change that would offboard too many
//!    accounts is held for an operator and nothing of it is sent;
//! 2. the connector's group-management rules, for the group events the
//!    change carries;
//! 3. the users it touches, in parallel up to the application's concurrency;
//! 4. the groups it touches, once per batch, after every user (a group
//!    pushes the accounts its users now have).
//!
//! Between batches the loop quarantines applications whose circuit opened,
//! probes quarantined ones (a probe that passes resumes the application and
//! syncs it whole), and reconciles applications whose interval has passed.
//!
//! The loop runs on a thread of its own with a single-threaded runtime: the
//! store is synchronous, and its short calls then block nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::groups::{apply_group_event, directory_group, sync_group};
use super::provision::DEACTIVATED;
use super::provision::{SyncError, Synced, Target, sync_user};
use super::reconcile::{RECONCILE, Reconciled, reconcile_users};
use crate::runtime::contract::{DirectoryGroup, GroupEvent};
use crate::runtime::{LoadedPlugin, PluginRegistry};
use crate::scim_client::{ClientSettings, ScimClient};
use crate::store::{
    AppRecord, AppState, AppUpdate, Change, HeldChange, HeldState, Outcome, Page, Store, StoreError,
};

/// How long a claimed change is held before another consumer may take it:
/// after a crash, how long its changes wait. A long change renews its lease
/// every [`RENEW_EVERY`].
const LEASE_SECONDS: u32 = 20;
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Changes claimed at once.
const BATCH: u32 = 100;
/// Users synced between two lease renewals.
const SYNC_CHUNK: usize = 256;
/// How often an idle engine looks for work.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// What an operator may tune in the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    /// How often a quarantined application is probed for recovery.
    pub quarantine_probe: Duration,
    /// The deprovisioning guard: a change that would deactivate or delete
    /// more than `guard_percent` of an application's active accounts, and
    /// more than `guard_minimum` of them, is held for an operator.
    pub guard_percent: f64,
    pub guard_minimum: u64,
    /// How often each active application is read back and its drift
    /// repaired.
    pub reconcile_every: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            quarantine_probe: Duration::from_secs(30),
            guard_percent: 10.0,
            guard_minimum: 20,
            reconcile_every: Duration::from_secs(3600),
        }
    }
}

impl EngineSettings {
    /// The most accounts one change may offboard without being held.
    pub fn guard_threshold(&self, active_accounts: u64) -> u64 {
        let share = (active_accounts as f64 * self.guard_percent / 100.0).ceil() as u64;
        share.max(self.guard_minimum)
    }
}

pub const QUARANTINE: &str = "idm_integration_quarantine";
pub const RESUME: &str = "idm_integration_resume";
pub const HELD: &str = "deprovision_held";

pub struct Engine {
    store: Arc<dyn Store>,
    plugins: Arc<PluginRegistry>,
    settings: EngineSettings,
    /// When each quarantined application was last probed.
    probed: HashMap<String, std::time::Instant>,
    /// When each active application was last reconciled (or first seen).
    reconciled: HashMap<String, std::time::Instant>,
    consumer: String,
    clients: HashMap<String, (i64, Arc<ScimClient>)>,
    /// The changes claimed now, and when their leases were last renewed.
    claimed: Vec<i64>,
    renewed: std::time::Instant,
}

impl Engine {
    /// Starts the engine on its own thread, for the life of the process.
    pub fn start(
        store: Arc<dyn Store>,
        plugins: Arc<PluginRegistry>,
        settings: EngineSettings,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        Self::start_until(store, plugins, settings, Arc::default())
    }

    /// Starts the engine on its own thread; it ends once `stop` is set,
    /// after the batch in hand (a throwaway host ends with its test).
    pub fn start_until(
        store: Arc<dyn Store>,
        plugins: Arc<PluginRegistry>,
        settings: EngineSettings,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("scimlink-engine".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!("the provisioning engine cannot start: {error}");
                        return;
                    }
                };
                let mut engine = Engine {
                    store,
                    plugins,
                    settings,
                    probed: HashMap::new(),
                    reconciled: HashMap::new(),
                    consumer: format!("engine-{}", uuid::Uuid::new_v4()),
                    clients: HashMap::new(),
                    claimed: Vec::new(),
                    renewed: std::time::Instant::now(),
                };
                runtime.block_on(engine.run(&stop));
            })
    }

    async fn run(&mut self, stop: &std::sync::atomic::AtomicBool) {
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            if let Err(error) = self.probe_quarantined().await {
                tracing::warn!("provisioning engine: {error}");
            }
            if let Err(error) = self.reconcile_due().await {
                tracing::warn!("provisioning engine: {error}");
            }
            match self.step().await {
                Ok(0) => match self.store.outbox_signal() {
                    Some(signal) => {
                        let _ = tokio::time::timeout(IDLE_POLL, signal.notified()).await;
                    }
                    None => tokio::time::sleep(IDLE_POLL).await,
                },
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!("provisioning engine: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Claims a batch of changes and applies them; how many it claimed.
    ///
    /// Users are synced change by change; the groups the batch touched are
    /// synced once, after every user (a group pushes the accounts its users
    /// now have). A change completes when its users and its groups are done.
    pub async fn step(&mut self) -> Result<usize, StoreError> {
        let changes = self
            .store
            .claim_changes(&self.consumer, BATCH, LEASE_SECONDS)?;
        let claimed = changes.len();
        self.claimed = changes.iter().map(|change| change.seq).collect();
        self.renewed = std::time::Instant::now();
        if changes.is_empty() {
            return Ok(0);
        }
        // Read once a batch: a user's change goes to every active app.
        let active = self.active_apps()?;
        let mut done = BTreeSet::new();
        let mut groups: BTreeMap<(String, String), (AppRecord, Vec<i64>)> = BTreeMap::new();
        for change in changes {
            match self.apply(&change, &active).await {
                Ok(touched) => {
                    done.insert(change.seq);
                    for (app, group_ids) in touched {
                        for group_id in group_ids {
                            groups
                                .entry((app.id.clone(), group_id))
                                .or_insert_with(|| (app.clone(), Vec::new()))
                                .1
                                .push(change.seq);
                        }
                    }
                }
                // Left to its lease: it is tried again when the lease ends.
                Err(error) => tracing::warn!(
                    "change {} ({} {} {}) waits for another try: {error}",
                    change.seq,
                    change.entity,
                    change.entity_id,
                    change.action
                ),
            }
        }
        for ((_, group_id), (app, seqs)) in groups {
            if seqs.iter().all(|seq| !done.contains(seq)) {
                continue;
            }
            if let Err(error) = self.sync_one_group(&app, &group_id).await {
                tracing::warn!(
                    "group {group_id} in {}: waits for another try: {error}",
                    app.name
                );
                for seq in seqs {
                    done.remove(&seq);
                }
            }
        }
        let done: Vec<i64> = done.into_iter().collect();
        self.store.complete_changes(&self.consumer, &done)?;
        self.quarantine_open_circuits(&active)?;
        Ok(claimed)
    }

    /// Quarantines every active application whose circuit opened: its
    /// changes stop waiting on it, and when it resumes a full sync (the
    /// activation's) brings it up to date, so nothing is lost.
    fn quarantine_open_circuits(&mut self, active: &[AppRecord]) -> Result<(), StoreError> {
        for app in active {
            let Some((_, client)) = self.clients.get(&app.id) else {
                continue;
            };
            let crate::scim_client::breaker::BreakerState::Open { failures, last, .. } =
                client.breaker().state()
            else {
                continue;
            };
            let update = AppUpdate {
                state: Some(AppState::Quarantined),
                ..AppUpdate::default()
            };
            let app = self.store.update_app(&app.id, update)?;
            self.probed
                .insert(app.id.clone(), std::time::Instant::now());
            self.store.record_event(super::lifecycle::event(
                &app,
                QUARANTINE,
                Outcome::Failure,
                None,
                format!(
                    "quarantined after {failures} consecutive failures (last: {last}); \
                     changes wait and are applied when it resumes"
                ),
            ))?;
        }
        Ok(())
    }

    /// Reconciles each active application whose interval has passed since
    /// it was last reconciled (or first seen by this engine).
    async fn reconcile_due(&mut self) -> Result<(), StoreError> {
        let now = std::time::Instant::now();
        let every = self.settings.reconcile_every;
        for app in self.active_apps()? {
            let last = *self.reconciled.entry(app.id.clone()).or_insert(now);
            if last.elapsed() < every {
                continue;
            }
            self.reconciled.insert(app.id.clone(), now);
            let (plugin, client) = match self.connection(&app) {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!("cannot reconcile {}: {error}", app.name);
                    continue;
                }
            };
            let target = Target {
                store: self.store.as_ref(),
                app: &app,
                plugin: &plugin,
                client: &client,
            };
            record_reconcile(&target, reconcile_users(&target).await)?;
        }
        Ok(())
    }

    /// Tests the connection of each quarantined application once every
    /// probe interval; one that answers is resumed, which syncs it whole.
    async fn probe_quarantined(&mut self) -> Result<(), StoreError> {
        let due: Vec<AppRecord> = self
            .all_apps()?
            .into_iter()
            .filter(|app| app.state == AppState::Quarantined)
            .filter(|app| {
                self.probed
                    .get(&app.id)
                    .is_none_or(|at| at.elapsed() >= self.settings.quarantine_probe)
            })
            .collect();
        for app in due {
            self.probed
                .insert(app.id.clone(), std::time::Instant::now());
            let token = self.store.app_token(&app.id)?;
            let Ok(tested) = super::lifecycle::test_connection(&app, &token).await else {
                continue;
            };
            let update = AppUpdate {
                state: Some(AppState::Active),
                ..AppUpdate::default()
            };
            let resumed = self.store.update_app(&app.id, update)?;
            self.probed.remove(&app.id);
            self.store.record_event(super::lifecycle::event(
                &resumed,
                RESUME,
                Outcome::Success,
                Some(tested.http_status),
                format!("resumed: {}", tested.summary),
            ))?;
        }
        Ok(())
    }

    fn renew_if_due(&mut self) -> Result<(), StoreError> {
        if self.renewed.elapsed() >= RENEW_EVERY {
            self.store
                .renew_claims(&self.consumer, &self.claimed, LEASE_SECONDS)?;
            self.renewed = std::time::Instant::now();
        }
        Ok(())
    }

    async fn sync_one_group(&mut self, app: &AppRecord, group_id: &str) -> Result<(), SyncError> {
        self.renew_if_due()?;
        let (plugin, client) = self.connection(app)?;
        let target = Target {
            store: self.store.as_ref(),
            app,
            plugin: &plugin,
            client: &client,
        };
        match sync_group(&target, group_id).await {
            Ok(_) => Ok(()),
            Err(SyncError::Application(error)) if error.is_permanent() => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn active_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        Ok(self
            .all_apps()?
            .into_iter()
            .filter(|app| app.state == AppState::Active)
            .collect())
    }

    fn all_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let mut apps = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.store.list_apps(Page {
                offset,
                limit: 1000,
            })?;
            let count = page.items.len() as u64;
            apps.extend(page.items);
            offset += count;
            if count == 0 || offset >= page.total {
                return Ok(apps);
            }
        }
    }

    /// What a change asks of each active application it concerns.
    fn affected(&self, change: &Change, active: &[AppRecord]) -> Result<Vec<Work>, StoreError> {
        let store = self.store.as_ref();
        let ids = |key: &str| -> Vec<String> {
            change
                .detail
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let bound_holding =
            |app: &AppRecord, members: &[String]| -> Result<BTreeSet<String>, StoreError> {
                let mut groups = BTreeSet::new();
                for member in members {
                    groups.extend(store.bound_groups_containing(&app.id, member)?);
                }
                Ok(groups)
            };
        let this_app = active.iter().find(|app| app.id == change.entity_id);
        let group_named = |group_id: &str| -> Result<DirectoryGroup, StoreError> {
            Ok(match store.get_group(group_id)? {
                Some(group) => directory_group(&group),
                None => DirectoryGroup {
                    id: group_id.to_string(),
                    name: change
                        .detail
                        .get("displayName")
                        .and_then(Value::as_str)
                        .unwrap_or(group_id)
                        .to_string(),
                    description: None,
                },
            })
        };
        let mut work = Vec::new();
        match (change.entity.as_str(), change.action.as_str()) {
            ("user", _) => {
                // A deleted user's groups are in the change: its memberships
                // are gone from the directory.
                let mut holders = ids("groups");
                holders.push(change.entity_id.clone());
                for app in active {
                    let mut item = Work::new(app);
                    item.users.insert(change.entity_id.clone());
                    // Only when the account appears or goes does its
                    // groups' membership change: an attribute change
                    // leaves the groups alone.
                    item.groups_on_link = bound_holding(app, &holders)?;
                    work.push(item);
                }
            }
            // A member may be a group: its users (nested included) are the
            // ones whose scope may have changed.
            ("group", "members-changed") => {
                let removed = ids("removed");
                let mut members = ids("added");
                members.extend(removed.iter().cloned());
                let users = store.users_of(&members)?;
                let removed_users = store.users_of(&removed)?;
                for app in active {
                    let mut item = Work::new(app);
                    item.users.extend(users.iter().cloned());
                    item.groups = bound_holding(app, std::slice::from_ref(&change.entity_id))?;
                    if !item.groups.is_empty() && !removed_users.is_empty() {
                        item.events.push((
                            GroupEvent::UserRemovedFromGroup,
                            group_named(&change.entity_id)?,
                            removed_users.clone(),
                        ));
                    }
                    work.push(item);
                }
            }
            ("group", "created" | "updated" | "renamed") => {
                for app in active {
                    let mut item = Work::new(app);
                    item.groups = bound_holding(app, std::slice::from_ref(&change.entity_id))?;
                    work.push(item);
                }
            }
            ("group", "deleted") => {
                let users = store.users_of(&ids("members"))?;
                let bound_apps = ids("boundApps");
                let parents = ids("parents");
                for app in active {
                    let mut item = Work::new(app);
                    item.users.extend(users.iter().cloned());
                    item.groups = bound_holding(app, &parents)?;
                    if bound_apps.contains(&app.id) {
                        item.events.push((
                            GroupEvent::GroupDeleted,
                            group_named(&change.entity_id)?,
                            users.clone(),
                        ));
                    }
                    work.push(item);
                }
            }
            ("binding", "bound") => {
                if let Some(app) = this_app {
                    let group_id = change.detail.get("group").and_then(Value::as_str);
                    let mut item = Work::new(app);
                    if let Some(group_id) = group_id {
                        item.users.extend(store.users_of(&[group_id.to_string()])?);
                        item.groups.insert(group_id.to_string());
                    }
                    work.push(item);
                }
            }
            ("assignment", "assigned" | "unassigned") => {
                if let (Some(app), Some(user)) =
                    (this_app, change.detail.get("user").and_then(Value::as_str))
                {
                    let mut item = Work::new(app);
                    item.users.insert(user.to_string());
                    item.groups_on_link = bound_holding(app, &[user.to_string()])?;
                    work.push(item);
                }
            }
            ("binding", "unbound") => {
                if let Some(app) = this_app {
                    let users = store.users_of(&ids("members"))?;
                    let mut item = Work::new(app);
                    item.users.extend(users.iter().cloned());
                    if let Some(group_id) = change.detail.get("group").and_then(Value::as_str) {
                        item.events
                            .push((GroupEvent::GroupUnbound, group_named(group_id)?, users));
                    }
                    work.push(item);
                }
            }
            ("app", "activated") => {
                if let Some(app) = this_app {
                    // The first sync: everyone in scope, and every account
                    // the ledger knows (some may have left scope meanwhile).
                    let mut item = Work::new(app);
                    item.users.extend(store.users_in_scope(&app.id)?);
                    item.users.extend(
                        store
                            .ledger_entries(&app.id, "user")?
                            .into_iter()
                            .map(|entry| entry.object_id),
                    );
                    item.groups
                        .extend(store.bindings(&app.id)?.into_iter().map(|group| group.id));
                    work.push(item);
                }
            }
            ("app", "group-management-enabled") => {
                if let Some(app) = this_app {
                    let mut item = Work::new(app);
                    item.groups
                        .extend(store.bindings(&app.id)?.into_iter().map(|group| group.id));
                    work.push(item);
                }
            }
            ("app", "replay") => {
                if let Some(app) = this_app {
                    let mut item = Work::new(app);
                    item.users.extend(ids("users"));
                    item.groups.extend(ids("groups"));
                    work.push(item);
                }
            }
            // An operator approved a change the guard held: that change,
            // for that application, past the guard.
            ("guard", "approved") => {
                let original = change
                    .detail
                    .get("change")
                    .cloned()
                    .and_then(|original| serde_json::from_value::<Change>(original).ok());
                if let (Some(original), Some(app)) = (original, this_app) {
                    for mut item in self.affected(&original, std::slice::from_ref(app))? {
                        item.past_guard = true;
                        work.push(item);
                    }
                }
            }
            ("app", "group-management-disabled") => {
                if let Some(app) = this_app {
                    let mut item = Work::new(app);
                    for entry in store.ledger_entries(&app.id, "group")? {
                        let users = store.users_of(std::slice::from_ref(&entry.object_id))?;
                        item.events.push((
                            GroupEvent::GroupManagementDisabled,
                            group_named(&entry.object_id)?,
                            users,
                        ));
                    }
                    work.push(item);
                }
            }
            _ => {}
        }
        Ok(work)
    }

    /// The connector and the SCIM client an application is served by.
    fn connection(
        &mut self,
        app: &AppRecord,
    ) -> Result<(Arc<LoadedPlugin>, Arc<ScimClient>), SyncError> {
        let Some(plugin) = self.plugins.get(&app.connector) else {
            return Err(SyncError::Connector {
                connector: app.connector.clone(),
                reason: "not served by this host".into(),
            });
        };
        Ok((plugin, self.client(app)?))
    }

    fn client(&mut self, app: &AppRecord) -> Result<Arc<ScimClient>, SyncError> {
        if let Some((version, client)) = self.clients.get(&app.id)
            && *version == app.version
        {
            return Ok(Arc::clone(client));
        }
        let base =
            super::lifecycle::resolved_base_url(app).map_err(|reason| SyncError::Connector {
                connector: app.connector.clone(),
                reason,
            })?;
        let token = self.store.app_token(&app.id)?;
        let settings = ClientSettings::paced(&app.pacing);
        let client = ScimClient::new(&base, &token, settings)?;
        self.clients
            .insert(app.id.clone(), (app.version, Arc::clone(&client)));
        Ok(client)
    }

    /// Applies one change: the connector's rules for its group events, then
    /// every user it touches. The groups it touches, per application, are
    /// returned for the batch to sync once.
    async fn apply(
        &mut self,
        change: &Change,
        active: &[AppRecord],
    ) -> Result<Vec<(AppRecord, BTreeSet<String>)>, SyncError> {
        let mut touched = Vec::new();
        for work in self.affected(change, active)? {
            if !work.past_guard && self.held_by_guard(change, &work)? {
                continue;
            }
            let (plugin, client) = self.connection(&work.app)?;
            for (event, group, users) in &work.events {
                self.renew_if_due()?;
                let target = Target {
                    store: self.store.as_ref(),
                    app: &work.app,
                    plugin: &plugin,
                    client: &client,
                };
                match apply_group_event(&target, *event, group, users).await {
                    Ok(()) => {}
                    Err(SyncError::Application(error)) if error.is_permanent() => {}
                    Err(error) => return Err(error),
                }
            }
            // Different users in parallel, within the application's
            // concurrency; each user once, so one object's work stays in
            // order. Chunks let the leases be renewed between them.
            let in_flight = usize::try_from(work.app.pacing.concurrency)
                .unwrap_or(1)
                .max(1);
            let users: Vec<&String> = work.users.iter().collect();
            let mut linked_or_unlinked = false;
            for chunk in users.chunks(SYNC_CHUNK) {
                self.renew_if_due()?;
                let target = Target {
                    store: self.store.as_ref(),
                    app: &work.app,
                    plugin: &plugin,
                    client: &client,
                };
                let results: Vec<Result<_, SyncError>> =
                    futures_util::stream::iter(chunk.iter().map(|user| sync_user(&target, user)))
                        .buffer_unordered(in_flight)
                        .collect()
                        .await;
                for result in results {
                    match result {
                        Ok(
                            Synced::Created
                            | Synced::TakenOver
                            | Synced::Deactivated
                            | Synced::Deleted,
                        ) => linked_or_unlinked = true,
                        Ok(_) => {}
                        // Failed for good: the event and the dead letter
                        // say so; another try would fail the same way.
                        Err(SyncError::Application(error)) if error.is_permanent() => {}
                        Err(error) => return Err(error),
                    }
                }
            }
            let mut groups = work.groups;
            if linked_or_unlinked {
                groups.extend(work.groups_on_link);
            }
            if !groups.is_empty() {
                touched.push((work.app, groups));
            }
        }
        Ok(touched)
    }
}

/// Records how a reconcile ended, as one event about the application.
pub fn record_reconcile(
    target: &Target<'_>,
    result: Result<Reconciled, SyncError>,
) -> Result<Reconciled, StoreError> {
    let (outcome, summary, done) = match result {
        Ok(done) => (
            Outcome::Success,
            format!(
                "listed {} accounts: {} repaired, {} recreated, {} provisioned",
                done.listed, done.repaired, done.recreated, done.provisioned
            ),
            done,
        ),
        Err(error) => (
            Outcome::Failure,
            format!("stopped without repairing: {error}"),
            Reconciled::default(),
        ),
    };
    target.store.record_event(super::lifecycle::event(
        target.app, RECONCILE, outcome, None, summary,
    ))?;
    Ok(done)
}

impl Engine {
    /// Whether the deprovisioning guard holds this work: it would
    /// deactivate or delete more accounts than the threshold. A held change
    /// is recorded (once) with an event, and nothing of it is sent.
    fn held_by_guard(&self, change: &Change, work: &Work) -> Result<bool, StoreError> {
        let store = self.store.as_ref();
        let app = &work.app;
        if (work.users.len() as u64) <= self.settings.guard_minimum {
            return Ok(false);
        }
        let mut offboarding = 0u64;
        for user in &work.users {
            let Some(entry) = store.ledger_entry(&app.id, "user", user)? else {
                continue;
            };
            if entry.doc_hash != DEACTIVATED
                && (store.get_user(user)?.is_none() || !store.user_in_scope(&app.id, user)?)
            {
                offboarding += 1;
            }
        }
        let active_accounts = store.count_ledger_entries(&app.id, "user", DEACTIVATED)?;
        let threshold = self.settings.guard_threshold(active_accounts);
        if offboarding <= threshold {
            return Ok(false);
        }
        let already = store
            .held_changes(Some(&app.id))?
            .into_iter()
            .any(|held| held.change.seq == change.seq);
        if !already {
            let held = store.hold_change(HeldChange {
                id: String::new(),
                app_id: app.id.clone(),
                change: change.clone(),
                offboarding,
                active_accounts,
                state: HeldState::Held,
                held_at: String::new(),
                decided_at: None,
            })?;
            store.record_event(super::lifecycle::event(
                app,
                HELD,
                Outcome::Failure,
                None,
                format!(
                    "{} {} {} would deactivate or delete {offboarding} of {active_accounts} \
                     active accounts (more than {threshold}): held as {} until an operator \
                     approves or rejects it",
                    change.entity, change.entity_id, change.action, held.id
                ),
            ))?;
        }
        Ok(true)
    }
}

/// What one change asks of one application.
struct Work {
    app: AppRecord,
    /// Group events for the connector's rules, applied before the users.
    events: Vec<(GroupEvent, DirectoryGroup, Vec<String>)>,
    users: BTreeSet<String>,
    groups: BTreeSet<String>,
    /// Groups to sync only if one of the users' accounts was created, taken
    /// over, deactivated or deleted (their membership changed).
    groups_on_link: BTreeSet<String>,
    /// An operator approved it: the deprovisioning guard lets it through.
    past_guard: bool,
}

impl Work {
    fn new(app: &AppRecord) -> Self {
        Work {
            app: app.clone(),
            events: Vec::new(),
            users: BTreeSet::new(),
            groups: BTreeSet::new(),
            groups_on_link: BTreeSet::new(),
            past_guard: false,
        }
    }
}
