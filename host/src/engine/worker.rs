//! The engine's loop: it consumes the outbox and syncs every user and group
//! a change touches in every active application.
//!
//! The outbox is the durable queue. A batch of changes is claimed with a
//! lease, renewed on a timer for as long as the batch is in hand; a renewal
//! that finds a claim taken by another consumer (this one was paused past
//! its lease) stops the work at once, and nothing more of it is written. A
//! host killed in between leaves the lease to expire and the change to be
//! claimed again. Because a sync is level-triggered ([`super::provision`],
//! [`super::groups`]), running a change twice, or changes out of order,
//! converges on the same state.
//!
//! One engine works at a time among the hosts that share a store: it holds
//! the engine's turn ([`crate::store::OutboxStore::take_engine_turn`]),
//! renewed at every step and with the batch's leases; the others stand by
//! and the first to ask after the turn ran out takes over, so a host that
//! dies is replaced within [`TURN_SECONDS`]. An engine whose turn was taken
//! (it was paused that long) sends nothing more ([`super::turn`]: each
//! request checks the turn first) and stops its batch as it does for a lost
//! claim.
//! An engine that stops gives its turn up.
//!
//! Progress is tracked per (change, application), so that one application
//! never holds the others back:
//! - each application's share of a batch runs beside the others', its
//!   changes in order;
//! - an application that cannot be served at all — its connector is not
//!   loaded, a setting its base URL needs is missing, its token no longer
//!   opens — or whose circuit opened is quarantined with the reason (shown
//!   by `status` and `app list`, and in an event); its share of the changes
//!   is done with, since the full sync that resumes it brings it up to
//!   date. A probe resumes it by itself once the cause is gone;
//! - an object that fails in one application (a 5xx for one user, a
//!   connector that traps on one user's data) fails only that pair, which is
//!   tried again after a backoff that doubles each time; after the last
//!   attempt the objects that still fail are dead-lettered with the reason,
//!   and the pair is done with (the policy: [`super::retry`]);
//! - a change completes when every application it concerns is done with it.
//!
//! For each change and application, in this order:
//! 1. the connector's group-management rules, for the group events the
//!    change carries;
//! 2. the users it touches, in parallel up to the application's concurrency;
//! 3. the groups it touches, once per batch, after every user (a group
//!    pushes the accounts its users now have).
//!
//! Every offboarding on the way asks the deprovisioning guard
//! ([`super::guard`]) first, which counts them per application across
//! changes; a held one is not sent and its sync reports `Held`.
//!
//! Between batches the loop probes quarantined applications (a probe that
//! passes resumes the application and syncs it whole) and reconciles
//! applications whose interval has passed.
//!
//! The loop runs on a thread of its own with a single-threaded runtime: the
//! store is synchronous, and its short calls then block nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::connections::Clients;
use super::groups::{apply_group_event, directory_group, sync_group};
use super::provision::{SyncError, Synced, Target, sync_user};
use super::reconcile::{RECONCILE, Reconciled, reconcile_app};
use super::retry::{AfterFailure, RetryPolicy};
use crate::runtime::contract::{DirectoryGroup, GroupEvent};
use crate::runtime::{LoadedPlugin, PluginRegistry};
use crate::scim_client::ScimClient;
use crate::store::{
    AppRecord, AppState, AppUpdate, Change, ChangeKind, ChangeProgress, HostPresence, Outcome,
    Page, Store, StoreError, StoreHandle, Timestamp,
};

/// How long a claimed change is held before another consumer may take it:
/// after a crash, how long its changes wait. The lease is renewed every
/// [`RENEW_EVERY`] while the batch is in hand.
const LEASE_SECONDS: u32 = 20;
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long the engine's turn lasts unrenewed: after a host dies, how
/// long its standby waits before taking over. It is renewed at every step
/// and with the batch's leases, so it runs out only for an engine that
/// stopped (or was paused) for that long.
const TURN_SECONDS: u32 = 20;
/// How long a host counts as present after it announced itself, and how
/// often it does.
const PRESENCE_SECONDS: u32 = 20;
const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// How often an engine standing by asks for the turn.
const STANDBY_POLL: Duration = Duration::from_secs(2);
/// How long a change waits, for an application whose connector another
/// host serves, before it is looked at again.
const SERVED_ELSEWHERE_WAIT: Duration = Duration::from_secs(10);
/// Changes claimed at once.
const BATCH: u32 = 100;
/// How often an idle engine looks for work.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// What an operator may tune in the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    /// How often a quarantined application is probed for recovery.
    pub quarantine_probe: Duration,
    /// The deprovisioning guard's host defaults ([`super::guard`]): an
    /// application's offboardings within `guard_window` past
    /// `guard_percent` of its active accounts, and past `guard_minimum` of
    /// them, are held for an operator.
    pub guard_percent: f64,
    pub guard_minimum: u64,
    pub guard_window: Duration,
    /// How often each active application is read back and its drift
    /// repaired.
    pub reconcile_every: Duration,
    /// Attempts at one change in one application before the objects that
    /// still fail are dead-lettered ([`RetryPolicy::attempts`]).
    pub retry_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each
    /// further one ([`RetryPolicy::backoff`]).
    pub retry_backoff: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            quarantine_probe: Duration::from_secs(30),
            guard_percent: 10.0,
            guard_minimum: 20,
            guard_window: Duration::from_secs(3600),
            reconcile_every: Duration::from_secs(3600),
            retry_attempts: 8,
            retry_backoff: Duration::from_secs(5),
        }
    }
}

impl EngineSettings {
    /// The guard's host defaults.
    pub fn guard_limits(&self) -> super::guard::GuardLimits {
        super::guard::GuardLimits {
            percent: self.guard_percent,
            minimum: self.guard_minimum,
            window_seconds: self.guard_window.as_secs(),
        }
    }

    /// What follows a failed attempt at one change in one application.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retry_attempts,
            backoff: self.retry_backoff,
        }
    }
}

pub const QUARANTINE: &str = "idm_integration_quarantine";
pub const RESUME: &str = "idm_integration_resume";
/// An object given up on in one application after its last attempt.
pub const GAVE_UP: &str = "sync_gave_up";
/// One failed attempt at an object that no other event records.
pub const SYNC_FAILED: &str = "sync_failed";

pub struct Engine {
    store: StoreHandle,
    plugins: Arc<PluginRegistry>,
    clients: Arc<Clients>,
    settings: EngineSettings,
    /// When each quarantined application was last probed.
    probed: HashMap<String, std::time::Instant>,
    /// When each active application was last reconciled (or first seen).
    reconciled: HashMap<String, std::time::Instant>,
    consumer: String,
    /// This host as people read it (`status`, the log).
    host_name: String,
    /// The hosts present as this engine last announced itself, itself
    /// among them ([`super::hosts`]); kept by [`announce`] on a timer.
    hosts: Arc<std::sync::Mutex<Vec<HostPresence>>>,
    /// When this engine last weighed whether another host should run.
    hosts_weighed: std::time::Instant,
    /// Until when this engine holds the engine's turn, as last renewed:
    /// its requests ask it first.
    turn: Arc<super::turn::Turn>,
}

/// Where the engine's turn is, as [`Engine::hold_turn`] found it.
enum TurnState {
    /// This engine holds it.
    Held,
    /// Another engine holds it.
    Elsewhere(crate::store::EngineTurn),
    /// This engine leaves it to a host that serves more applications.
    LeftTo(HostPresence),
}

/// One failed object of one pair.
struct Failure {
    object_kind: &'static str,
    object_id: String,
    reason: String,
    http_status: Option<u16>,
    /// Whether an event already records it (the application's refusals).
    recorded: bool,
}

impl Failure {
    fn of(object_kind: &'static str, object_id: &str, error: &SyncError) -> Self {
        let (http_status, recorded) = match error {
            SyncError::Application(error) => (error.status(), true),
            _ => (None, false),
        };
        Failure {
            object_kind,
            object_id: object_id.to_string(),
            reason: error.to_string(),
            http_status,
            recorded,
        }
    }
}

/// What a batch came to: each pair tried, and the pairs whose retry was not
/// due yet (change, when).
struct Applied {
    outcomes: Vec<PairOutcome>,
    waiting: Vec<(i64, Timestamp)>,
}

/// What one application made of one change.
struct PairOutcome {
    seq: i64,
    app: AppRecord,
    /// Failed attempts before this one.
    attempts: u32,
    failures: Vec<Failure>,
    /// The application was quarantined: done with, whatever failed.
    quarantined: bool,
    /// Why another host's engine should send to the application rather
    /// than this one: the pair waits for it, without counting an attempt.
    served_elsewhere: Option<String>,
}

impl Engine {
    /// Starts the engine on its own thread, for the life of the process.
    /// `clients` are the applications' SCIM clients, shared with every
    /// other path that sends to them.
    pub fn start(
        store: Arc<dyn Store>,
        plugins: Arc<PluginRegistry>,
        clients: Arc<Clients>,
        settings: EngineSettings,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        Self::start_until(store, plugins, clients, settings, Arc::default())
    }

    /// Starts the engine on its own thread; it ends once `stop` is set,
    /// after the batch in hand (a throwaway host ends with its test).
    pub fn start_until(
        store: Arc<dyn Store>,
        plugins: Arc<PluginRegistry>,
        clients: Arc<Clients>,
        settings: EngineSettings,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        // Every path of this store (the API's on-demand ones too) applies
        // the same defaults.
        super::guard::record_host_defaults(store.as_ref(), &settings.guard_limits())
            .map_err(std::io::Error::other)?;
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
                    store: StoreHandle::new(store),
                    plugins,
                    clients,
                    settings,
                    probed: HashMap::new(),
                    reconciled: HashMap::new(),
                    consumer: format!("engine-{}", uuid::Uuid::new_v4()),
                    host_name: super::hosts::this_host_name(),
                    hosts: Arc::default(),
                    hosts_weighed: std::time::Instant::now(),
                    turn: Arc::default(),
                };
                runtime.block_on(engine.run(&stop));
            })
    }

    async fn run(&mut self, stop: &std::sync::atomic::AtomicBool) {
        let presence = tokio::spawn(announce(
            self.store.clone(),
            self.consumer.clone(),
            self.host_name.clone(),
            Arc::clone(&self.plugins),
            Arc::clone(&self.hosts),
        ));
        // The engine that runs elsewhere while this one stands by.
        let mut standing_by: Option<String> = None;
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            match self.hold_turn().await {
                Ok(TurnState::Held) => {
                    if standing_by.take().is_some() {
                        tracing::info!("provisioning engine: this host's engine takes over");
                    }
                }
                Ok(TurnState::Elsewhere(turn)) => {
                    if standing_by.as_deref() != Some(turn.holder.as_str()) {
                        tracing::info!(
                            "provisioning engine: standing by; engine {} runs on another host \
                             (its turn lasts until {} unless renewed)",
                            turn.holder,
                            turn.until
                        );
                        standing_by = Some(turn.holder);
                    }
                    self.stand_by().await;
                    continue;
                }
                Ok(TurnState::LeftTo(host)) => {
                    if standing_by.as_deref() != Some(host.engine.as_str()) {
                        tracing::info!(
                            "provisioning engine: standing by for {}, which serves more of \
                             the applications' connectors than this host",
                            host.name
                        );
                        standing_by = Some(host.engine);
                    }
                    self.stand_by().await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!("provisioning engine: cannot take its turn: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            // A probe's full sync or a reconcile can outlast the turn: it is
            // renewed meanwhile, as a batch's leases are.
            let (store, consumer, turn) = (
                self.store.clone(),
                self.consumer.clone(),
                Arc::clone(&self.turn),
            );
            let probed = keeping_turn(store, consumer, turn, self.probe_quarantined()).await;
            if let Err(error) = probed {
                tracing::warn!("provisioning engine: {error}");
            }
            let (store, consumer, turn) = (
                self.store.clone(),
                self.consumer.clone(),
                Arc::clone(&self.turn),
            );
            let reconciled = keeping_turn(store, consumer, turn, self.reconcile_due()).await;
            if let Err(error) = reconciled {
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
        // A standby takes over at once rather than when the turn runs out.
        if let Err(error) = self.store.release_engine_turn(&self.consumer).await {
            tracing::warn!("provisioning engine: cannot give up its turn: {error}");
        }
        presence.abort();
        if let Err(error) = self.store.withdraw_host(&self.consumer).await {
            tracing::warn!("provisioning engine: cannot withdraw this host: {error}");
        }
    }

    /// Waits before asking for the turn again: until another host's write
    /// wakes this one (where the store can say so), or [`STANDBY_POLL`].
    async fn stand_by(&self) {
        match self.store.outbox_signal() {
            Some(signal) => {
                let _ = tokio::time::timeout(STANDBY_POLL, signal.notified()).await;
            }
            None => tokio::time::sleep(STANDBY_POLL).await,
        }
    }

    /// The hosts present, as last announced.
    fn present_hosts(&self) -> Vec<HostPresence> {
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Why another host should send to `app` rather than this one, when
    /// another present host serves its connector and this one does not.
    fn served_elsewhere(&self, app: &AppRecord) -> Option<String> {
        let served = served_connectors(&self.plugins);
        let hosts = self.present_hosts();
        let elsewhere = super::hosts::served_elsewhere(&served, app, &hosts);
        (!elsewhere.is_empty()).then(|| super::hosts::not_served_here(&served, app, &elsewhere))
    }

    /// Takes or keeps the engine's turn, or leaves it to a present host
    /// that serves more of the applications' connectors
    /// ([`super::hosts::better_host`]). A turn with more than half of it
    /// left is kept without a round trip (the batch's renewals keep it
    /// too).
    async fn hold_turn(&mut self) -> Result<TurnState, StoreError> {
        let half_turn = Duration::from_secs(u64::from(TURN_SECONDS) / 2);
        let needs_renewal = self.turn.needs_renewal(half_turn);
        // A busy engine's turn is renewed with its batches, so whether a
        // better host came along is asked on a timer of its own.
        if !needs_renewal && self.hosts_weighed.elapsed() < ANNOUNCE_EVERY {
            return Ok(TurnState::Held);
        }
        self.hosts_weighed = std::time::Instant::now();
        let asked_at = std::time::Instant::now();
        let served = served_connectors(&self.plugins);
        let hosts = self.present_hosts();
        let apps = self.all_apps().await?;
        if let Some(better) = super::hosts::better_host(&self.consumer, &served, &hosts, &apps) {
            let better = better.clone();
            if self.turn.is_held() {
                tracing::info!(
                    "provisioning engine: leaving the engine's turn to {}, which serves more \
                     of the applications' connectors",
                    better.name
                );
            }
            self.turn.lost();
            self.store.release_engine_turn(&self.consumer).await?;
            return Ok(TurnState::LeftTo(better));
        }
        if !needs_renewal {
            return Ok(TurnState::Held);
        }
        let turn = self
            .store
            .take_engine_turn(&self.consumer, TURN_SECONDS)
            .await?;
        if turn.holder == self.consumer {
            self.turn
                .renewed(asked_at, Duration::from_secs(u64::from(TURN_SECONDS)));
            Ok(TurnState::Held)
        } else {
            self.turn.lost();
            Ok(TurnState::Elsewhere(turn))
        }
    }

    /// Claims a batch of changes and applies them; how many it claimed.
    ///
    /// The batch's leases are renewed on a timer while it is applied; if a
    /// renewal finds a claim taken, the work stops where it is and records
    /// nothing more (the consumer that took the claim does it again).
    pub async fn step(&mut self) -> Result<usize, StoreError> {
        let changes = self
            .store
            .claim_changes(&self.consumer, BATCH, LEASE_SECONDS)
            .await?;
        if changes.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = changes.iter().map(|change| change.seq).collect();
        let (stop_renewing, stopped) = tokio::sync::oneshot::channel();
        let renewal = keep_claims(
            self.store.clone(),
            self.consumer.clone(),
            Arc::clone(&self.turn),
            seqs,
            RENEW_EVERY,
            stopped,
        );
        tokio::pin!(renewal);
        let applied = tokio::select! {
            Some(lost) = &mut renewal => {
                tracing::warn!(
                    "provisioning engine: {lost}; the batch stops here and is left to the \
                     consumer that holds it now"
                );
                return Ok(changes.len());
            }
            applied = self.apply_batch(&changes) => applied,
        };
        // A renewal already on its way lands before the batch is settled:
        // landing after, it would overwrite the retry time settling records.
        let _ = stop_renewing.send(());
        let _ = renewal.await;
        let Applied { outcomes, waiting } = applied?;
        // Requests the lost turn kept from going out are not failures of
        // the application: nothing is settled, and the engine that holds the
        // turn now does the batch again.
        if !self.turn.is_held() {
            tracing::warn!(
                "provisioning engine: its turn ran out during the batch; the batch is left \
                 to the engine that holds the turn now"
            );
            return Ok(changes.len());
        }
        self.settle(&changes, outcomes, waiting).await?;
        Ok(changes.len())
    }

    /// Applies a batch: each application's share beside the others', and
    /// what each (change, application) pair came to.
    async fn apply_batch(&self, changes: &[Change]) -> Result<Applied, StoreError> {
        let active = self.active_apps().await?;
        let seqs: Vec<i64> = changes.iter().map(|change| change.seq).collect();
        let recorded: HashMap<(i64, String), ChangeProgress> = self
            .store
            .change_progress(&seqs)
            .await?
            .into_iter()
            .map(|progress| ((progress.seq, progress.app_id.clone()), progress))
            .collect();
        let now = Timestamp::now();
        let mut shares: BTreeMap<String, Vec<(&Change, u32, Work)>> = BTreeMap::new();
        let mut waiting = Vec::new();
        let affected_by_change = {
            let (changes, active) = (changes.to_vec(), active.clone());
            self.store
                .run(move |store| {
                    changes
                        .iter()
                        .map(|change| affected(store, change, &active))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?
        };
        for (change, affected) in changes.iter().zip(affected_by_change) {
            for work in affected {
                let attempts = match recorded.get(&(change.seq, work.app.id.clone())) {
                    Some(progress) if progress.done => continue,
                    // Waits for its retry, and keeps its change open.
                    Some(progress)
                        if let Some(retry_at) = &progress.retry_at
                            && *retry_at > now =>
                    {
                        waiting.push((change.seq, *retry_at));
                        continue;
                    }
                    Some(progress) => progress.attempts,
                    None => 0,
                };
                shares
                    .entry(work.app.id.clone())
                    .or_default()
                    .push((change, attempts, work));
            }
        }
        let per_app = shares.into_values().map(|share| self.apply_share(share));
        let mut outcomes = Vec::new();
        for share in futures_util::future::join_all(per_app).await {
            outcomes.extend(share?);
        }
        Ok(Applied { outcomes, waiting })
    }

    /// Applies one application's share of a batch, its changes in order,
    /// then the groups they touched, once each.
    async fn apply_share(
        &self,
        share: Vec<(&Change, u32, Work)>,
    ) -> Result<Vec<PairOutcome>, StoreError> {
        let Some(app) = share.first().map(|(_, _, work)| work.app.clone()) else {
            return Ok(Vec::new());
        };
        let mut outcomes: Vec<PairOutcome> = share
            .iter()
            .map(|(change, attempts, _)| PairOutcome {
                seq: change.seq,
                app: app.clone(),
                attempts: *attempts,
                failures: Vec::new(),
                quarantined: false,
                served_elsewhere: None,
            })
            .collect();
        if let Some(why) = self.served_elsewhere(&app) {
            for outcome in &mut outcomes {
                outcome.served_elsewhere = Some(why.clone());
            }
            return Ok(outcomes);
        }
        let (plugin, client) = match self
            .clients
            .connection(&self.store, &self.plugins, &app)
            .await
        {
            Ok(connection) => connection,
            Err(SyncError::Unavailable(why)) => {
                self.quarantine(&app, &why.to_string()).await?;
                for outcome in &mut outcomes {
                    outcome.quarantined = true;
                }
                return Ok(outcomes);
            }
            Err(SyncError::Store(error)) => return Err(error),
            Err(error) => {
                // Not expected from building a connection; the pairs
                // are tried again like any failure.
                for outcome in &mut outcomes {
                    outcome.failures.push(Failure::of("app", &app.id, &error));
                }
                return Ok(outcomes);
            }
        };
        let target = Target {
            store: &self.store,
            app: &app,
            plugin: &plugin,
            client: &client,
            turn: Some(&self.turn),
        };
        let mut touched: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, (_, _, work)) in share.into_iter().enumerate() {
            let (failures, groups) = apply_work(&target, work).await;
            outcomes[index].failures.extend(failures);
            for group in groups {
                touched.entry(group).or_default().push(index);
            }
        }
        for (group_id, indexes) in touched {
            match sync_group(&target, &group_id).await {
                Ok(_) => {}
                Err(SyncError::Application(error)) if error.is_permanent() => {}
                Err(error) => {
                    for index in indexes {
                        outcomes[index]
                            .failures
                            .push(Failure::of("group", &group_id, &error));
                    }
                }
            }
        }
        if let crate::scim_client::breaker::BreakerState::Open { failures, last, .. } =
            client.breaker().state()
        {
            // Its changes stop waiting on it: the full sync that resumes it
            // brings it up to date, so nothing is lost.
            self.quarantine(
                &app,
                &format!("{failures} consecutive failed requests (last: {last})"),
            )
            .await?;
            for outcome in &mut outcomes {
                outcome.quarantined = true;
            }
        }
        Ok(outcomes)
    }

    /// Records what each pair came to, and completes the changes every
    /// application is done with; the others are left until their earliest
    /// retry. `waiting` are the pairs whose retry was not due yet.
    async fn settle(
        &self,
        changes: &[Change],
        outcomes: Vec<PairOutcome>,
        waiting: Vec<(i64, Timestamp)>,
    ) -> Result<(), StoreError> {
        let mut open: BTreeMap<i64, Timestamp> = BTreeMap::new();
        let mut keep_open = |seq: i64, retry_at: Timestamp| {
            let until = open.entry(seq).or_insert(retry_at);
            if retry_at < *until {
                *until = retry_at;
            }
        };
        for (seq, retry_at) in &waiting {
            keep_open(*seq, *retry_at);
        }
        let mut progress = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let pair = self.pair_progress(outcome).await?;
            if let (false, Some(retry_at)) = (pair.done, pair.retry_at) {
                keep_open(pair.seq, retry_at);
            }
            progress.push(pair);
        }
        // A pair matters to the store only while its change stays open: the
        // common batch, every change done, writes no progress at all.
        progress.retain(|pair| open.contains_key(&pair.seq));
        if !progress.is_empty() {
            self.store
                .record_progress(&self.consumer, &progress)
                .await?;
        }
        let done: Vec<i64> = changes
            .iter()
            .map(|change| change.seq)
            .filter(|seq| !open.contains_key(seq))
            .collect();
        self.store.complete_changes(&self.consumer, &done).await?;
        let deferred: Vec<(i64, Timestamp)> = open.into_iter().collect();
        self.store.defer_changes(&self.consumer, &deferred).await
    }

    /// Where a pair stands after an attempt: done, waiting for a retry, or
    /// given up on with its failed objects dead-lettered.
    async fn pair_progress(&self, outcome: PairOutcome) -> Result<ChangeProgress, StoreError> {
        let PairOutcome {
            seq,
            app,
            attempts,
            failures,
            quarantined,
            served_elsewhere,
        } = outcome;
        let done = |attempts| ChangeProgress {
            seq,
            app_id: app.id.clone(),
            done: true,
            attempts,
            retry_at: None,
            last_error: None,
        };
        if let Some(why) = served_elsewhere {
            // Not a failure of the application: no attempt is counted, and
            // the pair is looked at again soon, by whichever engine runs.
            return Ok(ChangeProgress {
                seq,
                app_id: app.id.clone(),
                done: false,
                attempts,
                retry_at: Some(Timestamp::in_future(SERVED_ELSEWHERE_WAIT)),
                last_error: Some(why),
            });
        }
        if quarantined || failures.is_empty() {
            return Ok(done(attempts));
        }
        let attempts = attempts + 1;
        let last_error = failures
            .iter()
            .map(|failure| {
                format!(
                    "{} {}: {}",
                    failure.object_kind, failure.object_id, failure.reason
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let wait = match self.settings.retry_policy().after_failure(attempts) {
            AfterFailure::RetryIn(wait) => wait,
            AfterFailure::GiveUp => {
                for failure in &failures {
                    self.give_up(&app, seq, attempts, failure).await?;
                }
                return Ok(ChangeProgress {
                    last_error: Some(last_error),
                    ..done(attempts)
                });
            }
        };
        for failure in failures.iter().filter(|failure| !failure.recorded) {
            // An application's refusal has its event already; a connector
            // or store failure is said here.
            self.store
                .record_event(object_event(
                    &app,
                    failure,
                    SYNC_FAILED,
                    format!(
                        "attempt {attempts} of {} failed: {}; next try in {}s",
                        self.settings.retry_attempts,
                        failure.reason,
                        wait.as_secs()
                    ),
                ))
                .await?;
        }
        tracing::warn!(
            "change {seq} in {}: attempt {attempts} failed ({last_error}); next try in {}s",
            app.name,
            wait.as_secs()
        );
        Ok(ChangeProgress {
            seq,
            app_id: app.id.clone(),
            done: false,
            attempts,
            retry_at: Some(Timestamp::in_future(wait)),
            last_error: Some(last_error),
        })
    }

    /// Dead-letters an object that still fails after the last attempt.
    async fn give_up(
        &self,
        app: &AppRecord,
        seq: i64,
        attempts: u32,
        failure: &Failure,
    ) -> Result<(), StoreError> {
        let reason = format!(
            "gave up after {attempts} attempts at change {seq}: {}",
            failure.reason
        );
        self.store
            .put_dead_letter(&crate::store::DeadLetter {
                app_id: app.id.clone(),
                object_kind: failure.object_kind.to_string(),
                object_id: failure.object_id.clone(),
                operation: GAVE_UP.to_string(),
                reason: reason.clone(),
                http_status: failure.http_status,
                first_failed: Timestamp::now(),
                last_failed: Timestamp::now(),
                failures: 0,
            })
            .await?;
        self.store
            .record_event(object_event(app, failure, GAVE_UP, reason))
            .await?;
        Ok(())
    }

    /// Quarantines an application for `reason`: its changes stop waiting on
    /// it until a probe (or an operator) resumes it with a full sync.
    async fn quarantine(&self, app: &AppRecord, reason: &str) -> Result<(), StoreError> {
        let update = AppUpdate {
            state: Some(AppState::Quarantined),
            state_reason: Some(reason.to_string()),
            ..AppUpdate::default()
        };
        let app = self.store.update_app(&app.id, update).await?;
        tracing::warn!("{} is quarantined: {reason}", app.name);
        self.store
            .record_event(super::lifecycle::event(
                &app,
                QUARANTINE,
                Outcome::Failure,
                None,
                format!(
                    "quarantined: {reason}; changes wait and are applied when it resumes, \
                 which it does by itself once the cause is gone"
                ),
            ))
            .await?;
        Ok(())
    }

    /// Reconciles each active application whose interval has passed since
    /// it was last reconciled, by whichever engine did it (the time is kept
    /// in the store, so an engine taking over neither reconciles everything
    /// at once nor puts it off for another interval), or since an engine
    /// first saw it.
    async fn reconcile_due(&mut self) -> Result<(), StoreError> {
        let every = self.settings.reconcile_every;
        for app in self.active_apps().await? {
            let last = match self.reconciled.get(&app.id) {
                Some(last) => *last,
                None => {
                    let last = self.last_reconciled(&app.id).await?;
                    self.reconciled.insert(app.id.clone(), last);
                    last
                }
            };
            if last.elapsed() < every {
                continue;
            }
            if self.served_elsewhere(&app).is_some() {
                continue;
            }
            self.reconciled
                .insert(app.id.clone(), std::time::Instant::now());
            self.store
                .set_meta(&reconciled_key(&app.id), &Timestamp::now().to_string())
                .await?;
            let (plugin, client) = match self.connection(&app).await? {
                Some(connection) => connection,
                None => continue,
            };
            let target = Target {
                store: &self.store,
                app: &app,
                plugin: &plugin,
                client: &client,
                turn: Some(&self.turn),
            };
            record_reconcile(&target, reconcile_app(&target).await).await?;
        }
        Ok(())
    }

    /// When `app_id` was last reconciled, as the store says, on this
    /// process's clock; an application never reconciled counts from now,
    /// which is recorded.
    async fn last_reconciled(&self, app_id: &str) -> Result<std::time::Instant, StoreError> {
        let key = reconciled_key(app_id);
        let now = Timestamp::now();
        let recorded = match self.store.meta(&key).await? {
            Some(text) => text.parse::<Timestamp>().ok(),
            None => None,
        };
        let Some(recorded) = recorded else {
            self.store.set_meta(&key, &now.to_string()).await?;
            return Ok(std::time::Instant::now());
        };
        // A time ahead of this host's clock counts as now.
        let ago = now.since(recorded);
        let at = std::time::Instant::now();
        Ok(at.checked_sub(ago).unwrap_or(at))
    }

    /// The connector and client of an active application, or `None` once
    /// it is quarantined because it cannot be served.
    #[allow(clippy::type_complexity)]
    async fn connection(
        &self,
        app: &AppRecord,
    ) -> Result<Option<(Arc<LoadedPlugin>, Arc<ScimClient>)>, StoreError> {
        match self
            .clients
            .connection(&self.store, &self.plugins, app)
            .await
        {
            Ok(connection) => Ok(Some(connection)),
            Err(SyncError::Unavailable(why)) => {
                self.quarantine(app, &why.to_string()).await?;
                Ok(None)
            }
            Err(SyncError::Store(error)) => Err(error),
            Err(error) => {
                tracing::warn!("{}: {error}", app.name);
                Ok(None)
            }
        }
    }

    /// Probes each quarantined application once every probe interval: it
    /// must be servable (connector, settings, token) and answer a
    /// connection test. One that passes is resumed, which syncs it whole.
    async fn probe_quarantined(&mut self) -> Result<(), StoreError> {
        let due: Vec<AppRecord> = self
            .all_apps()
            .await?
            .into_iter()
            .filter(|app| app.state == AppState::Quarantined)
            .filter(|app| {
                self.probed
                    .get(&app.id)
                    .is_none_or(|at| at.elapsed() >= self.settings.quarantine_probe)
            })
            .filter(|app| self.served_elsewhere(app).is_none())
            .collect();
        for app in due {
            self.probed
                .insert(app.id.clone(), std::time::Instant::now());
            let client = match self
                .clients
                .connection(&self.store, &self.plugins, &app)
                .await
            {
                Ok((_, client)) => client,
                Err(SyncError::Store(error)) => return Err(error),
                Err(why) => {
                    // Still unservable; say so if the cause changed.
                    let reason = why.to_string();
                    if matches!(why, SyncError::Unavailable(_))
                        && app.state_reason.as_deref() != Some(reason.as_str())
                    {
                        self.quarantine(&app, &reason).await?;
                    }
                    continue;
                }
            };
            let Ok(tested) = super::lifecycle::test_with(&client).await else {
                continue;
            };
            let update = AppUpdate {
                state: Some(AppState::Active),
                ..AppUpdate::default()
            };
            let resumed = self.store.update_app(&app.id, update).await?;
            self.probed.remove(&app.id);
            tracing::info!("{} resumed", resumed.name);
            self.store
                .record_event(super::lifecycle::event(
                    &resumed,
                    RESUME,
                    Outcome::Success,
                    Some(tested.http_status),
                    format!("resumed: {}", tested.summary),
                ))
                .await?;
        }
        Ok(())
    }

    async fn active_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        Ok(self
            .all_apps()
            .await?
            .into_iter()
            .filter(|app| app.state == AppState::Active)
            .collect())
    }

    async fn all_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let mut apps = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .store
                .list_apps(Page {
                    offset,
                    limit: 1000,
                })
                .await?;
            let count = page.items.len() as u64;
            apps.extend(page.items);
            offset += count;
            if count == 0 || offset >= page.total {
                return Ok(apps);
            }
        }
    }
}

/// The host metadata key of when an application was last reconciled.
pub fn reconciled_key(app_id: &str) -> String {
    format!("reconciled:{app_id}")
}

/// The connectors this host serves, by name, with their versions.
fn served_connectors(plugins: &PluginRegistry) -> BTreeMap<String, String> {
    plugins
        .list()
        .into_iter()
        .map(|plugin| {
            let identity = plugin.identity();
            (identity.name.clone(), identity.version.clone())
        })
        .collect()
}

/// Announces this host and the connectors it serves every
/// [`ANNOUNCE_EVERY`], whatever the engine is doing, and keeps the hosts
/// present in `hosts`.
async fn announce(
    store: StoreHandle,
    engine: String,
    name: String,
    plugins: Arc<PluginRegistry>,
    hosts: Arc<std::sync::Mutex<Vec<HostPresence>>>,
) {
    loop {
        let served = served_connectors(&plugins);
        match store
            .announce_host(&engine, &name, served, PRESENCE_SECONDS)
            .await
        {
            Ok(present) => {
                *hosts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = present;
            }
            Err(error) => {
                tracing::warn!("provisioning engine: cannot announce this host: {error}");
            }
        }
        tokio::time::sleep(ANNOUNCE_EVERY).await;
    }
}

/// What a change asks of each active application it concerns.
fn affected(
    store: &dyn Store,
    change: &Change,
    active: &[AppRecord],
) -> Result<Vec<Work>, StoreError> {
    let bound_holding =
        |app: &AppRecord, members: &[String]| -> Result<BTreeSet<String>, StoreError> {
            let mut groups = BTreeSet::new();
            for member in members {
                groups.extend(store.bound_groups_containing(&app.id, member)?);
            }
            Ok(groups)
        };
    let subject = &change.subject_id;
    let this_app = active.iter().find(|app| &app.id == subject);
    // A deleted group is gone from the directory: the change names it.
    let deleted_name = match &change.kind {
        ChangeKind::GroupDeleted { display_name, .. } => Some(display_name.as_str()),
        _ => None,
    };
    let group_named = |group_id: &str| -> Result<DirectoryGroup, StoreError> {
        Ok(match store.get_group(group_id)? {
            Some(group) => directory_group(&group),
            None => DirectoryGroup {
                id: group_id.to_string(),
                name: deleted_name.unwrap_or(group_id).to_string(),
                description: None,
            },
        })
    };
    let mut work = Vec::new();
    match &change.kind {
        ChangeKind::UserCreated { .. }
        | ChangeKind::UserUpdated { .. }
        | ChangeKind::UserDeleted { .. } => {
            // A deleted user's groups are in the change: its memberships
            // are gone from the directory.
            let mut holders = match &change.kind {
                ChangeKind::UserDeleted { groups, .. } => groups.clone(),
                _ => Vec::new(),
            };
            holders.push(subject.clone());
            for app in active {
                let mut item = Work::new(app);
                item.users.insert(subject.clone());
                // Only when the account appears or goes does its
                // groups' membership change: an attribute change
                // leaves the groups alone.
                item.groups_on_link = bound_holding(app, &holders)?;
                work.push(item);
            }
        }
        // A member may be a group: its users (nested included) are the
        // ones whose scope may have changed.
        ChangeKind::MembersChanged { added, removed } => {
            let mut members = added.clone();
            members.extend(removed.iter().cloned());
            let users = store.users_of(&members)?;
            let removed_users = store.users_of(removed)?;
            for app in active {
                let mut item = Work::new(app);
                item.users.extend(users.iter().cloned());
                item.groups = bound_holding(app, std::slice::from_ref(subject))?;
                if !item.groups.is_empty() && !removed_users.is_empty() {
                    item.events.push((
                        GroupEvent::UserRemovedFromGroup,
                        group_named(subject)?,
                        removed_users.clone(),
                    ));
                }
                work.push(item);
            }
        }
        ChangeKind::GroupCreated { .. }
        | ChangeKind::GroupUpdated { .. }
        | ChangeKind::GroupRenamed { .. } => {
            for app in active {
                let mut item = Work::new(app);
                item.groups = bound_holding(app, std::slice::from_ref(subject))?;
                work.push(item);
            }
        }
        ChangeKind::GroupDeleted {
            members,
            bound_apps,
            parents,
            ..
        } => {
            let users = store.users_of(members)?;
            for app in active {
                let mut item = Work::new(app);
                item.users.extend(users.iter().cloned());
                item.groups = bound_holding(app, parents)?;
                if bound_apps.contains(&app.id) {
                    item.events.push((
                        GroupEvent::GroupDeleted,
                        group_named(subject)?,
                        users.clone(),
                    ));
                }
                work.push(item);
            }
        }
        ChangeKind::Bound { group } => {
            if let Some(app) = this_app {
                let mut item = Work::new(app);
                item.users
                    .extend(store.users_of(std::slice::from_ref(group))?);
                item.groups.insert(group.clone());
                work.push(item);
            }
        }
        ChangeKind::Assigned { user } | ChangeKind::Unassigned { user } => {
            if let Some(app) = this_app {
                let mut item = Work::new(app);
                item.users.insert(user.clone());
                item.groups_on_link = bound_holding(app, std::slice::from_ref(user))?;
                work.push(item);
            }
        }
        ChangeKind::Unbound { group, members } => {
            if let Some(app) = this_app {
                let users = store.users_of(members)?;
                let mut item = Work::new(app);
                item.users.extend(users.iter().cloned());
                item.events
                    .push((GroupEvent::GroupUnbound, group_named(group)?, users));
                work.push(item);
            }
        }
        ChangeKind::AppActivated { .. } => {
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
        ChangeKind::GroupManagementEnabled { .. } => {
            if let Some(app) = this_app {
                let mut item = Work::new(app);
                item.groups
                    .extend(store.bindings(&app.id)?.into_iter().map(|group| group.id));
                work.push(item);
            }
        }
        ChangeKind::Replay { users, groups } => {
            if let Some(app) = this_app {
                let mut item = Work::new(app);
                item.users.extend(users.iter().cloned());
                item.groups.extend(groups.iter().cloned());
                work.push(item);
            }
        }
        // An operator approved a hold: its users are synced again, and
        // the guard lets their held offboardings through. (A hold of an
        // older scimlink held a whole change: it is replayed.)
        ChangeKind::HoldApproved {
            users,
            change: original,
            ..
        } => {
            if let Some(app) = this_app {
                let mut item = Work::new(app);
                item.users.extend(users.iter().cloned());
                work.push(item);
                if let Some(original) = original {
                    work.extend(affected(store, original, std::slice::from_ref(app))?);
                }
            }
        }
        ChangeKind::GroupManagementDisabled { .. } => {
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
        ChangeKind::Unrecognized { entity, action, .. } => {
            tracing::warn!(
                seq = change.seq,
                "change {entity}/{action} is not known to this scimlink: nothing to do for it"
            );
        }
        // Nothing an application holds depends on these.
        ChangeKind::AppCreated { .. }
        | ChangeKind::AppUpdated { .. }
        | ChangeKind::AppTested { .. }
        | ChangeKind::AppTokenRotated { .. }
        | ChangeKind::AppDeactivated { .. }
        | ChangeKind::AppQuarantined { .. }
        | ChangeKind::AppDeleted { .. } => {}
    }
    Ok(work)
}

/// Records how a reconcile ended, as one event about the application.
pub async fn record_reconcile(
    target: &Target<'_>,
    result: Result<Reconciled, SyncError>,
) -> Result<Reconciled, StoreError> {
    let (outcome, summary, done) = match result {
        Ok(done) => (Outcome::Success, done.summary(), done),
        Err(error) => (
            Outcome::Failure,
            format!("stopped without repairing: {error}"),
            Reconciled::default(),
        ),
    };
    target
        .store
        .record_event(super::lifecycle::event(
            target.app, RECONCILE, outcome, None, summary,
        ))
        .await?;
    Ok(done)
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
}

impl Work {
    fn new(app: &AppRecord) -> Self {
        Work {
            app: app.clone(),
            events: Vec::new(),
            users: BTreeSet::new(),
            groups: BTreeSet::new(),
            groups_on_link: BTreeSet::new(),
        }
    }
}

/// Applies one change's work in one application: the connector's rules for
/// its group events, then every user it touches, in parallel up to the
/// application's concurrency (each user once, so one object's work stays in
/// order). What failed, and the groups to sync once the batch's users are
/// done.
async fn apply_work(target: &Target<'_>, work: Work) -> (Vec<Failure>, BTreeSet<String>) {
    let mut failures = Vec::new();
    for (event, group, users) in &work.events {
        match apply_group_event(target, *event, group, users).await {
            Ok(()) => {}
            // Failed for good: the event and the dead letter say so.
            Err(SyncError::Application(error)) if error.is_permanent() => {}
            Err(error) => failures.push(Failure::of("group", &group.id, &error)),
        }
    }
    let in_flight = usize::try_from(work.app.pacing.concurrency)
        .unwrap_or(1)
        .max(1);
    let results: Vec<(&String, Result<Synced, SyncError>)> = futures_util::stream::iter(
        work.users
            .iter()
            .map(|user| async move { (user, sync_user(target, user).await) }),
    )
    .buffer_unordered(in_flight)
    .collect()
    .await;
    let mut linked_or_unlinked = false;
    for (user, result) in results {
        match result {
            Ok(Synced::Created | Synced::TakenOver | Synced::Deactivated | Synced::Deleted) => {
                linked_or_unlinked = true;
            }
            Ok(_) => {}
            // Failed for good: the event and the dead letter say so;
            // another try would fail the same way.
            Err(SyncError::Application(error)) if error.is_permanent() => {}
            Err(error) => failures.push(Failure::of("user", user, &error)),
        }
    }
    let mut groups = work.groups;
    if linked_or_unlinked {
        groups.extend(work.groups_on_link);
    }
    (failures, groups)
}

/// Renews `consumer`'s leases on `seqs` `every` so often (the engine:
/// [`RENEW_EVERY`]) until `stop` fires, then returns `None` once no renewal
/// is under way (a store call cannot be called back: dropping this future
/// mid-renewal would let that renewal land later). It returns why when a
/// renewal finds a claim taken (or cannot be written), which is when the
/// work on them must stop.
async fn keep_claims(
    store: StoreHandle,
    consumer: String,
    turn: Arc<super::turn::Turn>,
    seqs: Vec<i64>,
    every: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Option<String> {
    let mut ticks = tokio::time::interval(every);
    // The first tick is immediate; the claim was just made.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => return None,
        }
        let asked_at = std::time::Instant::now();
        match store.take_engine_turn(&consumer, TURN_SECONDS).await {
            Ok(held) if held.holder == consumer => {
                turn.renewed(asked_at, Duration::from_secs(u64::from(TURN_SECONDS)))
            }
            Ok(held) => {
                turn.lost();
                return Some(format!(
                    "the engine's turn ran out and engine {} took it over",
                    held.holder
                ));
            }
            Err(error) => {
                return Some(format!("the engine's turn cannot be renewed: {error}"));
            }
        }
        match store.renew_claims(&consumer, &seqs, LEASE_SECONDS).await {
            Ok(held) if held.len() == seqs.len() => {}
            Ok(held) => {
                let lost: Vec<i64> = seqs
                    .iter()
                    .filter(|seq| !held.contains(seq))
                    .copied()
                    .collect();
                return Some(format!(
                    "the lease on changes {lost:?} ran out and another consumer took them"
                ));
            }
            Err(error) => {
                return Some(format!("the lease on the batch cannot be renewed: {error}"));
            }
        }
    }
}

/// Runs `work`, renewing the engine's turn every [`RENEW_EVERY`] meanwhile.
/// A renewal that finds the turn taken marks it lost, so that `work` sends
/// nothing more and ends.
async fn keeping_turn<T>(
    store: StoreHandle,
    consumer: String,
    turn: Arc<super::turn::Turn>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    // The first tick is immediate; the turn was just held.
    ticks.tick().await;
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => {
                let asked_at = std::time::Instant::now();
                match store.take_engine_turn(&consumer, TURN_SECONDS).await {
                    Ok(held) if held.holder == consumer => {
                        turn.renewed(asked_at, Duration::from_secs(u64::from(TURN_SECONDS)));
                    }
                    Ok(held) => {
                        tracing::warn!(
                            "provisioning engine: engine {} took the turn over; this one stops",
                            held.holder
                        );
                        turn.lost();
                    }
                    // The turn runs out by itself if renewals keep failing.
                    Err(error) => {
                        tracing::warn!("provisioning engine: cannot renew its turn: {error}");
                    }
                }
            }
        }
    }
}

/// An event about one object of an application, from the engine itself.
fn object_event(
    app: &AppRecord,
    failure: &Failure,
    operation: &str,
    summary: String,
) -> crate::store::Event {
    crate::store::Event {
        id: String::new(),
        at: Timestamp::now(),
        app_id: Some(app.id.clone()),
        app_name: Some(app.name.clone()),
        object_kind: Some(failure.object_kind.to_string()),
        object_id: Some(failure.object_id.clone()),
        operation: operation.to_string(),
        outcome: Outcome::Failure,
        rule: None,
        http_status: failure.http_status,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, TokenCipher, UserWrite};

    #[tokio::test]
    async fn renewals_go_on_until_a_claim_is_taken() {
        let folder = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[1; 32])).unwrap());
        store
            .create_user(UserWrite {
                user_name: "ada".into(),
                external_id: None,
                active: true,
                attributes: serde_json::Map::new(),
            })
            .unwrap();
        let seqs: Vec<i64> = store
            .claim_changes("paused", 10, 0)
            .unwrap()
            .iter()
            .map(|change| change.seq)
            .collect();
        // Held: renewals keep the claim, and the work goes on.
        let every = Duration::from_millis(20);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let renewing = keep_claims(
            StoreHandle::new(Arc::clone(&store)),
            "paused".into(),
            Arc::default(),
            seqs.clone(),
            every,
            stopped,
        );
        tokio::pin!(renewing);
        let kept = tokio::time::timeout(every * 5, &mut renewing).await;
        assert!(kept.is_err(), "renewals stop only when a claim is lost");
        stop.send(()).unwrap();
        assert_eq!(renewing.await, None, "stopped, having lost nothing");
        assert!(
            store.claim_changes("other", 10, 60).unwrap().is_empty(),
            "the renewed lease holds"
        );
        // Taken after a pause past the lease: the next renewal says so.
        store.renew_claims("paused", &seqs, 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(store.claim_changes("other", 10, 60).unwrap().len(), 1);
        let (_stop, stopped) = tokio::sync::oneshot::channel();
        let lost = keep_claims(
            StoreHandle::new(Arc::clone(&store)),
            "paused".into(),
            Arc::default(),
            seqs,
            every,
            stopped,
        )
        .await
        .unwrap_or_default();
        assert!(lost.contains("another consumer took them"), "{lost}");
    }
}
