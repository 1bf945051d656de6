//! The engine's loop: it consumes the outbox and syncs every user and group
//! a change touches in every active application.
//!
//! The outbox is the durable queue. Each change is handed out once as one
//! pending pair per application it concerns
//! ([`crate::store::OutboxStore::dispatch_changes`]), and every
//! application's work is run by one engine at a time:
//! - every host that runs an engine announces itself and the connectors it
//!   serves ([`crate::store::HostsStore::announce_host`]);
//! - each active or quarantined application is run by one of the present
//!   hosts that serve its connector at the newest version
//!   ([`super::hosts::runner`]: rendezvous hashing, so the applications
//!   spread evenly, and a host that comes or goes moves only its share). The
//!   runner holds the application's lease, renewed while it runs; a host
//!   that is no longer an application's runner lets it go, and a host that
//!   died loses it once it runs out;
//! - the runner claims the application's pairs in change order under a
//!   lease of their own, renewed on a timer for as long as they are in
//!   hand; a renewal that finds a pair taken by another consumer (this one
//!   was paused past its lease) stops the work at once, and nothing more of
//!   it is written. A host killed in between leaves the leases to expire
//!   and the pairs to be claimed again;
//! - every request to an application first asks whether this engine still
//!   holds the application's lease ([`super::turn::Turn`], on this
//!   process's monotonic clock): an engine paused past its lease sends
//!   nothing more once it resumes.
//!
//! So an application's pacing, concurrency and circuit breaker are one
//! host's, as on a single host, and its changes are applied in order.
//! Because a sync is level-triggered ([`super::provision`],
//! [`super::groups`]), running a change twice, or a host taking over in the
//! middle of one, converges on the same state; hosts hold an object for one
//! another ([`super::locks`]) against an operator's provisioning on another
//! host meanwhile. An engine that stops gives its leases up.
//!
//! Progress is kept per (change, application) pair, so that one
//! application never holds the others back:
//! - an application that cannot be served at all — its connector is not
//!   loaded anywhere, a setting its base URL needs is missing, its token no
//!   longer opens — or whose circuit opened is quarantined with the reason
//!   (shown by `status` and `app list`, and in an event); its pending pairs
//!   are let go, since the full sync that resumes it brings it up to date.
//!   A probe resumes it by itself once the cause is gone;
//! - an object that fails in one application (a 5xx for one user, a
//!   connector that traps on one user's data) fails only that pair, which is
//!   tried again after a backoff that doubles each time; after the last
//!   attempt the objects that still fail are dead-lettered with the reason,
//!   and the pair is done with (the policy: [`super::retry`]);
//! - a change completes when every application it concerns is done with it.
//!
//! For each application's claimed pairs, in change order:
//! 1. the connector's group-management rules, for the group events a change
//!    carries;
//! 2. the users it touches, in parallel (the application's client caps the
//!    requests in flight at its concurrency);
//! 3. the groups they touched, once per batch, after every user (a group
//!    pushes the accounts its users now have).
//!
//! Every offboarding on the way asks the deprovisioning guard
//! ([`super::guard`]) first, which counts them per application across
//! changes and hosts; a held one is not sent and its sync reports `Held`.
//!
//! Between batches the loop probes the quarantined applications it runs (a
//! probe that passes resumes the application and syncs it whole) and
//! reconciles those whose interval has passed, counted from the last
//! reconcile any engine made.
//!
//! The loop runs on a thread of its own with a single-threaded runtime: the
//! store is synchronous, and its short calls then block nothing else. Each
//! application's batch runs as a task of that thread, one batch per
//! application at a time, so its changes keep their order while a long
//! batch of one application (a first sync of many users) holds no other
//! back; the engine's own reconciles and probes of an application wait
//! for its batch to end.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::connections::Clients;
use super::groups::{apply_group_event, directory_group, sync_groups};
use super::provision::{SyncError, Synced, Target, sync_users};
use super::reconcile::{RECONCILE, Reconciled, reconcile_app};
use super::retry::{AfterFailure, RetryPolicy};
use super::turn::Turn;
use crate::runtime::contract::{DirectoryGroup, GroupEvent};
use crate::runtime::{LoadedPlugin, PluginRegistry};
use crate::scim_client::ScimClient;
use crate::store::{
    AppRecord, AppState, AppUpdate, Change, ChangeKind, ChangeProgress, HostPresence, Outcome,
    Page, Store, StoreError, StoreHandle, Timestamp,
};

/// How long claimed pairs are held before another consumer may take them:
/// after a crash, how long they wait. The lease is renewed every
/// [`RENEW_EVERY`] while they are in hand.
const LEASE_SECONDS: u32 = 20;
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long an application's lease lasts unrenewed: after a host dies, how
/// long its applications wait before another host runs them. It is renewed
/// with every share-out and with the pairs' leases, so it runs out only for
/// an engine that stopped (or was paused) for that long.
pub const APP_LEASE_SECONDS: u32 = 20;
/// The lease kind an application's runner holds
/// ([`crate::store::ObjectKey`]).
pub const RUNNER: &str = "application";
/// How long a host counts as present after it announced itself, and how
/// often it does (and weighs which applications it should run).
const PRESENCE_SECONDS: u32 = 20;
const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// How soon an engine asks again for an application it should run that
/// another host still held.
const AWAITING_EVERY: Duration = Duration::from_secs(1);
/// How often pairs of applications no longer active are let go.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How long a change waits, for an application whose connector another
/// host serves, before it is looked at again.
const SERVED_ELSEWHERE_WAIT: Duration = Duration::from_secs(10);
/// Pairs of one application claimed at once.
const BATCH: u32 = 100;
/// Changes handed out at once. A change that concerns no active
/// application is done with as it is handed out, so an import of many
/// users before any application is active is cleared at this pace, not
/// left for the application activated next to take change by change.
const DISPATCH: u32 = 1000;
/// How soon the loop goes round again after a round it was woken for (a
/// change, a batch that ended): what nothing tells it of (pairs another
/// host handed out, a lease run out) is found this soon after.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// The longest the loop waits for work: each round nothing woke it for
/// doubles the wait, up to this, so that an idle engine costs next to
/// nothing however many applications it runs. What the engine knows is due
/// sooner (a retry, a probe, a reconcile, a lease to renew) wakes it then.
const IDLE_POLL_LONGEST: Duration = Duration::from_secs(1);

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
    /// How long a user's password waits for the applications owed it, and
    /// a temporary password for an operator to read it, before it is wiped
    /// ([`super::passwords::sweep`]).
    pub password_retention: Duration,
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
            password_retention: Duration::from_secs(7 * 24 * 3600),
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

/// The engine's loop and what it alone changes; what its applications'
/// batches share is the [`Core`].
pub struct Engine {
    core: Arc<Core>,
    /// When each quarantined application was last probed.
    probed: HashMap<String, Instant>,
    /// When each active application was last reconciled (or first seen).
    reconciled: HashMap<String, Instant>,
    /// The batch each application has under way, on a task of its own, so
    /// that a long one (a first sync of many users) holds no other
    /// application back.
    batches: HashMap<String, tokio::task::JoinHandle<Result<usize, StoreError>>>,
    /// Applications whose last batch failed, and when to try them again.
    failed_batches: HashMap<String, Instant>,
    /// Applications let go while a batch of theirs was under way: their
    /// lease is given up once it ends, so that nothing of it lands after.
    leaving: BTreeSet<String>,
    /// Told when the loop should go round at once: a batch that claimed
    /// pairs ended (its application may have more waiting), or changes are
    /// left to hand out.
    again: Arc<tokio::sync::Notify>,
    /// The applications this engine runs, each with its lease as last
    /// renewed: their requests ask it first.
    running: BTreeMap<String, Arc<Turn>>,
    /// When this engine last weighed which applications it should run.
    shared_out: Option<Instant>,
    /// Whether another host still held an application this one should run
    /// when it last weighed: it asks again sooner, to take it over as soon
    /// as the other lets go.
    awaiting: bool,
    /// The active and quarantined applications as this engine last
    /// weighed them: one it has not weighed yet (just activated) is weighed
    /// at once, not at the next announcement.
    weighed: BTreeSet<String>,
    /// When pairs of applications no longer active were last let go.
    swept: Option<Instant>,
    /// How long the loop waits for work after this round, unless something
    /// it knows of is due sooner ([`Engine::next_due`]).
    idle: IdleWait,
}

/// What every batch of the engine works with, whichever application it is
/// for.
pub struct Core {
    store: StoreHandle,
    plugins: Arc<PluginRegistry>,
    clients: Arc<Clients>,
    settings: EngineSettings,
    consumer: String,
    /// This host as people read it (`status`, the log).
    host_name: String,
    /// The hosts present as this engine last announced itself, itself
    /// among them ([`super::hosts`]); kept by [`announce`] on a timer.
    hosts: Arc<std::sync::Mutex<Vec<HostPresence>>>,
    /// When pairs this engine settled for another try come due: the loop
    /// wakes for each, rather than finding it on a poll.
    retries_due: std::sync::Mutex<BTreeSet<Instant>>,
}

impl std::ops::Deref for Engine {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
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
                    core: Arc::new(Core {
                        store: StoreHandle::new(store),
                        plugins,
                        clients,
                        settings,
                        consumer: format!("engine-{}", uuid::Uuid::new_v4()),
                        host_name: super::hosts::this_host_name(),
                        hosts: Arc::default(),
                        retries_due: std::sync::Mutex::default(),
                    }),
                    probed: HashMap::new(),
                    reconciled: HashMap::new(),
                    batches: HashMap::new(),
                    failed_batches: HashMap::new(),
                    leaving: BTreeSet::new(),
                    again: Arc::default(),
                    running: BTreeMap::new(),
                    shared_out: None,
                    awaiting: false,
                    weighed: BTreeSet::new(),
                    swept: None,
                    idle: IdleWait::default(),
                };
                // Batches run as local tasks of this one thread.
                tokio::task::LocalSet::new().block_on(&runtime, engine.run(&stop));
            })
    }

    async fn run(&mut self, stop: &std::sync::atomic::AtomicBool) {
        // Announced once before anything else, so that this engine weighs
        // its share knowing the hosts present; then on a timer.
        announce_once(
            &self.store,
            &self.consumer,
            &self.host_name,
            &self.plugins,
            &self.hosts,
        )
        .await;
        let presence = tokio::spawn(announce(
            self.store.clone(),
            self.consumer.clone(),
            self.host_name.clone(),
            Arc::clone(&self.plugins),
            Arc::clone(&self.hosts),
        ));
        // Passwords are looked over beside the engine's loop, never in it.
        let passwords = tokio::spawn(super::passwords::keep_swept(
            self.store.clone(),
            Arc::clone(&self.plugins),
            Arc::clone(&self.hosts),
            self.settings.password_retention,
        ));
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            if let Err(error) = self.share_out().await {
                tracing::warn!("provisioning engine: cannot weigh its applications: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if let Err(error) = self.probe_quarantined().await {
                tracing::warn!("provisioning engine: {error}");
            }
            if let Err(error) = self.reconcile_due().await {
                tracing::warn!("provisioning engine: {error}");
            }
            if let Err(error) = self.step().await {
                tracing::warn!("provisioning engine: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Until a batch that claimed pairs ends, a change comes, or
            // something is due.
            let wait = self.idle.wait(Instant::now(), self.next_due());
            let again = Arc::clone(&self.again);
            let change = async {
                match self.store.outbox_signal() {
                    Some(signal) => signal.notified().await,
                    None => std::future::pending().await,
                }
            };
            let woken = tokio::select! {
                () = again.notified() => true,
                () = change => true,
                () = tokio::time::sleep(wait) => false,
            };
            self.idle.went_round(woken);
        }
        // The batches under way end first: a batch stops only between two
        // of its pieces of work, and its leases are given up after it.
        for (app_id, batch) in std::mem::take(&mut self.batches) {
            report_batch(&app_id, batch.await);
        }
        for app_id in std::mem::take(&mut self.leaving) {
            self.let_go(&app_id).await;
        }
        presence.abort();
        passwords.abort();
        // The other hosts take this one's applications over at once rather
        // than when the leases run out.
        for app_id in std::mem::take(&mut self.running).into_keys() {
            self.let_go(&app_id).await;
        }
        if let Err(error) = self.store.withdraw_host(&self.consumer).await {
            tracing::warn!("provisioning engine: cannot withdraw this host: {error}");
        }
    }
}

impl Engine {
    /// The soonest thing after now this engine knows is due: a pair it set
    /// to be tried again, an application whose failed batch has waited, a
    /// quarantined application's probe, a reconcile, its next weighing of
    /// the applications (which renews their leases). Times already past
    /// are left out: a round found them due, or found them no longer so.
    fn next_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let soonest_retry = {
            let mut retries = self
                .retries_due
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Only the retries still ahead are kept.
            *retries = retries.split_off(&now);
            retries.first().copied()
        };
        let weighing_every = if self.awaiting {
            AWAITING_EVERY
        } else {
            ANNOUNCE_EVERY
        };
        let (probe, reconcile) = (
            self.settings.quarantine_probe,
            self.settings.reconcile_every,
        );
        soonest_retry
            .into_iter()
            .chain(self.failed_batches.values().copied())
            .chain(self.probed.values().filter_map(|at| at.checked_add(probe)))
            .chain(
                self.reconciled
                    .values()
                    .filter_map(|at| at.checked_add(reconcile)),
            )
            .chain(
                self.shared_out
                    .and_then(|at| at.checked_add(weighing_every)),
            )
            .filter(|due| *due > now)
            .min()
    }
}

/// How long the engine's loop waits for work between two rounds.
///
/// Invariants: the wait is never longer than [`IDLE_POLL_LONGEST`] nor
/// than what is due soonest; it is [`IDLE_POLL`] after a round the loop
/// was woken for, and doubles with each round in a row it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IdleWait {
    wait: Duration,
}

impl Default for IdleWait {
    fn default() -> Self {
        IdleWait { wait: IDLE_POLL }
    }
}

impl IdleWait {
    /// How long to wait from `now`, given what is due soonest.
    fn wait(&self, now: Instant, due: Option<Instant>) -> Duration {
        due.map_or(self.wait, |due| {
            due.saturating_duration_since(now).min(self.wait)
        })
    }

    /// After a wait that a change or a batch's end cut short (`woken`), or
    /// one that ran its time.
    fn went_round(&mut self, woken: bool) {
        self.wait = if woken {
            IDLE_POLL
        } else {
            self.wait.saturating_mul(2).min(IDLE_POLL_LONGEST)
        };
    }
}

impl Core {
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
}

impl Engine {
    /// The lease of `app_id` this engine holds, if it runs it and the lease
    /// still has time to send.
    fn lease_of(&self, app_id: &str) -> Option<Arc<Turn>> {
        self.running
            .get(app_id)
            .filter(|turn| turn.is_held())
            .cloned()
    }

    /// Weighs which applications this engine should run
    /// ([`super::hosts::runner`]) every [`ANNOUNCE_EVERY`], or sooner when
    /// a lease needs renewing: takes or renews the lease of each it should
    /// run, and lets go of the others.
    async fn share_out(&mut self) -> Result<(), StoreError> {
        let half_lease = Duration::from_secs(u64::from(APP_LEASE_SECONDS) / 2);
        let every = if self.awaiting {
            AWAITING_EVERY
        } else {
            ANNOUNCE_EVERY
        };
        let due = self.shared_out.is_none_or(|at| at.elapsed() >= every)
            || self
                .running
                .values()
                .any(|turn| turn.needs_renewal(half_lease));
        if !due {
            return Ok(());
        }
        self.shared_out = Some(Instant::now());
        let hosts = self.present_hosts();
        let apps = self.all_apps().await?;
        self.weighed = apps
            .iter()
            .filter(|app| matches!(app.state, AppState::Active | AppState::Quarantined))
            .map(|app| app.id.clone())
            .collect();
        let mut should_run = BTreeSet::new();
        for app in &apps {
            if matches!(app.state, AppState::Active | AppState::Quarantined)
                && super::hosts::runner(app, &hosts).map(|host| host.engine.as_str())
                    == Some(self.consumer.as_str())
            {
                should_run.insert(app.id.clone());
            }
        }
        let let_go: Vec<String> = self
            .running
            .keys()
            .filter(|app_id| !should_run.contains(*app_id))
            .cloned()
            .collect();
        for app_id in let_go {
            if let Some(app) = apps.iter().find(|app| app.id == app_id) {
                tracing::info!(
                    "provisioning engine: {} is another host's to run now",
                    app.name
                );
            }
            if let Some(turn) = self.running.remove(&app_id) {
                // A batch under way sends and records nothing more, and
                // stops at its next user.
                turn.give_up();
            }
            if self.batch_under_way(&app_id) {
                self.leaving.insert(app_id);
                continue;
            }
            self.let_go(&app_id).await;
        }
        self.awaiting = false;
        for app_id in should_run {
            // Still this engine's after all: its lease is kept.
            self.leaving.remove(&app_id);
            let asked_at = Instant::now();
            let held = self
                .store
                .take_object_lease(&self.consumer, &app_id, RUNNER, &app_id, APP_LEASE_SECONDS)
                .await?;
            let lease = Duration::from_secs(u64::from(APP_LEASE_SECONDS));
            match (held, self.running.get(&app_id)) {
                (true, Some(turn)) => turn.renewed(asked_at, lease),
                (true, None) => {
                    let turn = Arc::new(Turn::new());
                    turn.renewed(asked_at, lease);
                    self.running.insert(app_id.clone(), turn);
                    if let Some(app) = apps.iter().find(|app| app.id == app_id) {
                        tracing::info!("provisioning engine: this host runs {}", app.name);
                    }
                }
                // Another host still holds it: it lets go once it sees it
                // is not the runner, or its lease runs out.
                (false, Some(turn)) => {
                    turn.lost();
                    self.running.remove(&app_id);
                    self.awaiting = true;
                }
                (false, None) => self.awaiting = true,
            }
        }
        Ok(())
    }

    /// Gives up this engine's lease on `app_id`.
    async fn let_go(&self, app_id: &str) {
        if let Err(error) = self
            .store
            .release_object_lease(&self.consumer, app_id, RUNNER, app_id)
            .await
        {
            tracing::warn!("provisioning engine: cannot let {app_id} go: {error}");
        }
    }

    /// Hands out new changes, then starts a batch of every application
    /// this engine runs that has none under way. Each runs as a task of
    /// its own: an application's batches follow one another, in change
    /// order, while the applications go beside one another.
    async fn step(&mut self) -> Result<(), StoreError> {
        if self.store.dispatch_changes(DISPATCH).await? == DISPATCH {
            self.again.notify_one();
        }
        if self.swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            self.swept = Some(Instant::now());
            self.store.sweep_pairs().await?;
        }
        self.reap_batches().await;
        let now = Instant::now();
        self.failed_batches.retain(|_, until| *until > now);
        for app in self.active_apps().await? {
            if !self.weighed.contains(&app.id) {
                // Activated since the last weighing: weighed on the next
                // round, at once, rather than at the next announcement.
                self.shared_out = None;
                self.again.notify_one();
                continue;
            }
            if self.batches.contains_key(&app.id) || self.failed_batches.contains_key(&app.id) {
                continue;
            }
            let Some(lease) = self.lease_of(&app.id) else {
                continue;
            };
            let (core, ended) = (Arc::clone(&self.core), Arc::clone(&self.again));
            let app_id = app.id.clone();
            let batch = tokio::task::spawn_local(async move {
                let claimed = core.run_batch(app, lease).await;
                if !matches!(claimed, Ok(0)) {
                    ended.notify_one();
                }
                claimed
            });
            self.batches.insert(app_id, batch);
        }
        Ok(())
    }

    /// Whether a batch of `app_id` is under way: nothing else of the
    /// engine's reaches the application meanwhile.
    fn batch_under_way(&self, app_id: &str) -> bool {
        self.batches
            .get(app_id)
            .is_some_and(|batch| !batch.is_finished())
    }

    /// Takes in the batches that have ended; one that failed waits a
    /// second before its application's next.
    async fn reap_batches(&mut self) {
        let ended: Vec<String> = self
            .batches
            .iter()
            .filter(|(_, batch)| batch.is_finished())
            .map(|(app_id, _)| app_id.clone())
            .collect();
        for app_id in ended {
            let Some(batch) = self.batches.remove(&app_id) else {
                continue;
            };
            if !report_batch(&app_id, batch.await) {
                self.failed_batches
                    .insert(app_id.clone(), Instant::now() + Duration::from_secs(1));
            }
            if self.leaving.remove(&app_id) {
                self.let_go(&app_id).await;
            }
        }
    }
}

impl Core {
    /// Claims a batch of one application's pairs and applies it; how many
    /// it claimed.
    ///
    /// The pairs' leases (and the application's) are renewed on a timer
    /// while the batch is applied; if a renewal finds a pair taken, the
    /// work stops where it is and records nothing more (the consumer that
    /// took the pair does it again).
    async fn run_batch(&self, app: AppRecord, lease: Arc<Turn>) -> Result<usize, StoreError> {
        let pairs = self
            .store
            .claim_pairs(&self.consumer, &app.id, BATCH, LEASE_SECONDS)
            .await?;
        if pairs.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = pairs.iter().map(|(change, _)| change.seq).collect();
        let (stop_renewing, stopped) = tokio::sync::oneshot::channel();
        let renewal = keep_pairs(
            self.store.clone(),
            self.consumer.clone(),
            app.id.clone(),
            Arc::clone(&lease),
            seqs,
            RENEW_EVERY,
            stopped,
        );
        tokio::pin!(renewal);
        let applied = tokio::select! {
            Some(lost) = &mut renewal => {
                tracing::warn!(
                    "provisioning engine: {}: {lost}; the batch stops here and is left to the \
                     engine that holds it now",
                    app.name
                );
                return Ok(pairs.len());
            }
            applied = self.apply_pairs(&app, &pairs, &lease) => applied,
        };
        // A renewal already on its way lands before the batch is settled:
        // landing after, it would overwrite the retry time settling records.
        let _ = stop_renewing.send(());
        let _ = renewal.await;
        let outcomes = applied?;
        // Requests the lost lease kept from going out are not failures of
        // the application: nothing is settled, and the engine that runs the
        // application now does the batch again.
        if !lease.is_held() {
            tracing::warn!(
                "provisioning engine: {}: this host's lease ran out during the batch; the \
                 batch is left to the engine that runs it now",
                app.name
            );
            return Ok(pairs.len());
        }
        let mut progress = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            progress.push(self.pair_progress(outcome).await?);
        }
        self.store.settle_pairs(&self.consumer, progress).await?;
        Ok(pairs.len())
    }

    /// Applies one application's claimed pairs, in change order: what each
    /// came to.
    async fn apply_pairs(
        &self,
        app: &AppRecord,
        pairs: &[(Change, ChangeProgress)],
        lease: &Turn,
    ) -> Result<Vec<PairOutcome>, StoreError> {
        let works = {
            let changes: Vec<Change> = pairs.iter().map(|(change, _)| change.clone()).collect();
            let app = app.clone();
            self.store
                .run(move |store| {
                    changes
                        .iter()
                        .map(|change| affected(store, change, std::slice::from_ref(&app)))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?
        };
        let mut share = Vec::new();
        for ((change, progress), works) in pairs.iter().zip(works) {
            for work in works {
                share.push((change, progress.attempts, work));
            }
        }
        let mut outcomes = self.apply_share(app, share, lease).await?;
        // A pair whose change asks nothing of the application is done; one
        // that came to several pieces of work is one outcome.
        let mut merged: BTreeMap<i64, PairOutcome> = BTreeMap::new();
        for outcome in outcomes.drain(..) {
            match merged.get_mut(&outcome.seq) {
                Some(known) => {
                    known.failures.extend(outcome.failures);
                    known.quarantined |= outcome.quarantined;
                    if known.served_elsewhere.is_none() {
                        known.served_elsewhere = outcome.served_elsewhere;
                    }
                }
                None => {
                    merged.insert(outcome.seq, outcome);
                }
            }
        }
        for (change, progress) in pairs {
            merged.entry(change.seq).or_insert_with(|| PairOutcome {
                seq: change.seq,
                app: app.clone(),
                attempts: progress.attempts,
                failures: Vec::new(),
                quarantined: false,
                served_elsewhere: None,
            });
        }
        Ok(merged.into_values().collect())
    }

    /// Applies one application's share of a batch, its changes in order,
    /// then the groups they touched, once each.
    async fn apply_share(
        &self,
        app: &AppRecord,
        share: Vec<(&Change, u32, Work)>,
        lease: &Turn,
    ) -> Result<Vec<PairOutcome>, StoreError> {
        if share.is_empty() {
            return Ok(Vec::new());
        }
        let app = app.clone();
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
            turn: Some(lease),
        };
        let mut touched: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, (_, _, work)) in share.into_iter().enumerate() {
            let (failures, groups) = apply_work(&target, work).await;
            outcomes[index].failures.extend(failures);
            for group in groups {
                touched.entry(group).or_default().push(index);
            }
        }
        // Each group on its own lock, several for each request the
        // application takes at once: groups share no state the engine
        // writes.
        let in_flight = usize::try_from(app.pacing.concurrency)
            .unwrap_or(1)
            .max(1)
            .saturating_mul(GROUPS_PER_REQUEST_SLOT);
        let group_ids: Vec<String> = touched.keys().cloned().collect();
        for (group_id, synced) in sync_groups(&target, &group_ids, in_flight).await {
            match synced {
                Ok(_) => {}
                Err(SyncError::Application(error)) if error.is_permanent() => {}
                Err(error) => {
                    for &index in touched.get(group_id).into_iter().flatten() {
                        outcomes[index]
                            .failures
                            .push(Failure::of("group", group_id, &error));
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
            let retry_at = Timestamp::in_future(SERVED_ELSEWHERE_WAIT);
            self.due_again_in(SERVED_ELSEWHERE_WAIT);
            return Ok(ChangeProgress {
                seq,
                app_id: app.id.clone(),
                done: false,
                attempts,
                retry_at: Some(retry_at),
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
        let retry_at = Timestamp::in_future(wait);
        self.due_again_in(wait);
        Ok(ChangeProgress {
            seq,
            app_id: app.id.clone(),
            done: false,
            attempts,
            retry_at: Some(retry_at),
            last_error: Some(last_error),
        })
    }

    /// Notes that a pair this engine is settling comes due again `wait`
    /// from now, so that the loop wakes for it. Called after its time is
    /// written, and a millisecond is added since times are written to the
    /// millisecond: the loop wakes once the store counts the pair due. A
    /// pair whose settling then fails only costs a round.
    fn due_again_in(&self, wait: Duration) {
        let after_written = wait.saturating_add(Duration::from_millis(1));
        if let Some(due) = Instant::now().checked_add(after_written) {
            self.retries_due
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(due);
        }
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
}

impl Engine {
    /// Reconciles each active application whose interval has passed since
    /// it was last reconciled, by whichever engine did it (the time is kept
    /// in the store, so an engine taking over neither reconciles everything
    /// at once nor puts it off for another interval), or since an engine
    /// first saw it.
    async fn reconcile_due(&mut self) -> Result<(), StoreError> {
        let every = self.settings.reconcile_every;
        for app in self.active_apps().await? {
            let Some(lease) = self.lease_of(&app.id) else {
                continue;
            };
            if self.batch_under_way(&app.id) {
                continue;
            }
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
            self.reconciled.insert(app.id.clone(), Instant::now());
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
                turn: Some(&lease),
            };
            // A reconcile can outlast the application's lease: it is
            // renewed meanwhile, as a batch's is.
            let reconciled = keeping_lease(
                self.store.clone(),
                self.consumer.clone(),
                app.id.clone(),
                Arc::clone(&lease),
                reconcile_app(&target),
            )
            .await;
            record_reconcile(&target, reconciled).await?;
        }
        Ok(())
    }
}

impl Core {
    /// When `app_id` was last reconciled, as the store says, on this
    /// process's clock; an application never reconciled counts from now,
    /// which is recorded.
    async fn last_reconciled(&self, app_id: &str) -> Result<Instant, StoreError> {
        let key = reconciled_key(app_id);
        let now = Timestamp::now();
        let recorded = match self.store.meta(&key).await? {
            Some(text) => text.parse::<Timestamp>().ok(),
            None => None,
        };
        let Some(recorded) = recorded else {
            self.store.set_meta(&key, &now.to_string()).await?;
            return Ok(Instant::now());
        };
        // A time ahead of this host's clock counts as now.
        let ago = now.since(recorded);
        let at = Instant::now();
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
}

impl Engine {
    /// Probes each quarantined application this engine runs once every
    /// probe interval: it
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
            .filter(|app| self.lease_of(&app.id).is_some() && !self.batch_under_way(&app.id))
            .collect();
        for app in due {
            self.probed.insert(app.id.clone(), Instant::now());
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
}

impl Core {
    async fn active_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        Ok(self
            .all_apps()
            .await?
            .into_iter()
            .filter(|app| app.state == AppState::Active)
            .collect())
    }

    async fn all_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        all_apps(&self.store).await
    }
}

/// Logs how a batch of `app_id` ended, if it failed; whether it did not.
fn report_batch(
    app_id: &str,
    ended: Result<Result<usize, StoreError>, tokio::task::JoinError>,
) -> bool {
    let error = match ended {
        Ok(Ok(_)) => return true,
        Ok(Err(error)) => error.to_string(),
        Err(join) => format!("a batch task failed: {join}"),
    };
    tracing::warn!("provisioning engine: a batch of application {app_id}: {error}");
    false
}

/// Every application, read a page at a time.
pub(crate) async fn all_apps(store: &StoreHandle) -> Result<Vec<AppRecord>, StoreError> {
    let mut apps = Vec::new();
    let mut offset = 0;
    loop {
        let page = store
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

/// Announces this host and the connectors it serves, and keeps the hosts
/// present in `hosts`.
async fn announce_once(
    store: &StoreHandle,
    engine: &str,
    name: &str,
    plugins: &PluginRegistry,
    hosts: &std::sync::Mutex<Vec<HostPresence>>,
) {
    let served = served_connectors(plugins);
    match store
        .announce_host(engine, name, served, PRESENCE_SECONDS)
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
}

/// [`announce_once`] every [`ANNOUNCE_EVERY`], whatever the engine is
/// doing.
async fn announce(
    store: StoreHandle,
    engine: String,
    name: String,
    plugins: Arc<PluginRegistry>,
    hosts: Arc<std::sync::Mutex<Vec<HostPresence>>>,
) {
    loop {
        tokio::time::sleep(ANNOUNCE_EVERY).await;
        announce_once(&store, &engine, &name, &plugins, &hosts).await;
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
        Ok(match store.get_group_without_members(group_id)? {
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
                        .ledger_links(&app.id, "user")?
                        .into_iter()
                        .map(|(object_id, _)| object_id),
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

/// Users synced at once for each request the application takes at once.
/// A user's sync is more than its requests (its connector calls, its store
/// reads and the commit of its record), and the application's client caps
/// the requests in flight at the application's concurrency whatever the
/// number of users: so while some users wait on the store, others keep the
/// application's slots busy, and the records of users that finish together
/// are committed together.
const USERS_PER_REQUEST_SLOT: usize = 8;

/// Groups synced at once for each request the application takes at once,
/// for the reason users are ([`USERS_PER_REQUEST_SLOT`]): a group's sync
/// reads the store and records between its requests. Fewer than users,
/// since a group in flight holds its members' accounts in memory.
const GROUPS_PER_REQUEST_SLOT: usize = 4;

/// Applies one change's work in one application: the connector's rules for
/// its group events, then every user it touches, [`USERS_PER_REQUEST_SLOT`]
/// for each of the application's concurrent requests (each user once, so
/// one object's work stays in order). What failed, and the groups to sync
/// once the batch's users are done.
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
        .max(1)
        .saturating_mul(USERS_PER_REQUEST_SLOT);
    let users: Vec<String> = work.users.iter().cloned().collect();
    let results = sync_users(target, &users, in_flight).await;
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

/// Renews `consumer`'s leases on the pairs `seqs` of `app_id`, and its
/// lease on the application, `every` so often (the engine: [`RENEW_EVERY`])
/// until `stop` fires, then returns `None` once no renewal is under way (a
/// store call cannot be called back: dropping this future mid-renewal would
/// let that renewal land later). It returns why when a renewal finds a
/// pair or the application taken (or cannot be written), which is when the
/// work on them must stop.
async fn keep_pairs(
    store: StoreHandle,
    consumer: String,
    app_id: String,
    lease: Arc<Turn>,
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
        if let Err(why) = renew_app_lease(&store, &consumer, &app_id, &lease).await {
            return Some(why);
        }
        match store
            .renew_pairs(&consumer, &app_id, &seqs, LEASE_SECONDS)
            .await
        {
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

/// Renews this engine's lease on an application; why not when another
/// engine took it over (this one was paused past it) or it cannot be
/// written, the lease then marked lost so that nothing more is sent.
async fn renew_app_lease(
    store: &StoreHandle,
    consumer: &str,
    app_id: &str,
    lease: &Turn,
) -> Result<(), String> {
    let asked_at = Instant::now();
    match store
        .renew_object_lease(consumer, app_id, RUNNER, app_id, APP_LEASE_SECONDS)
        .await
    {
        Ok(true) => {
            lease.renewed(asked_at, Duration::from_secs(u64::from(APP_LEASE_SECONDS)));
            Ok(())
        }
        Ok(false) => {
            lease.lost();
            Err("the application's lease ran out and another host runs it now".to_string())
        }
        // The lease runs out by itself if renewals keep failing.
        Err(error) => Err(format!(
            "the application's lease cannot be renewed: {error}"
        )),
    }
}

/// Runs `work`, renewing this engine's lease on `app_id` every
/// [`RENEW_EVERY`] meanwhile. A renewal that finds the lease taken marks it
/// lost, so that `work` sends nothing more and ends.
async fn keeping_lease<T>(
    store: StoreHandle,
    consumer: String,
    app_id: String,
    lease: Arc<Turn>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    // The first tick is immediate; the lease was just held.
    ticks.tick().await;
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => {
                if let Err(why) = renew_app_lease(&store, &consumer, &app_id, &lease).await {
                    tracing::warn!("provisioning engine: {app_id}: {why}");
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
    use crate::store::{AppWrite, Secret, SqliteStore, TokenCipher, UserWrite};

    #[test]
    fn an_idle_loop_waits_twice_as_long_each_round_up_to_the_longest() {
        let mut idle = IdleWait::default();
        let now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..7 {
            waits.push(idle.wait(now, None).as_millis());
            idle.went_round(false);
        }
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000]);
        idle.went_round(true);
        assert_eq!(idle.wait(now, None), IDLE_POLL, "woken: quick again");
    }

    #[test]
    fn what_is_due_sooner_than_the_wait_cuts_it_short() {
        let mut idle = IdleWait::default();
        for _ in 0..10 {
            idle.went_round(false);
        }
        let now = Instant::now();
        let in_ms = |ms| Some(now + Duration::from_millis(ms));
        assert_eq!(idle.wait(now, in_ms(300)), Duration::from_millis(300));
        assert_eq!(idle.wait(now, in_ms(5000)), IDLE_POLL_LONGEST);
        assert_eq!(idle.wait(now, Some(now)), Duration::ZERO);
        let quick = IdleWait::default();
        assert_eq!(quick.wait(now, in_ms(300)), IDLE_POLL, "never longer");
    }

    #[tokio::test]
    async fn renewals_go_on_until_a_pair_or_the_application_is_taken() {
        let folder = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[1; 32])).unwrap());
        let app = store
            .create_app(AppWrite {
                name: "crm".into(),
                label: "crm".into(),
                connector: "custom-scim".into(),
                base_url: "https://crm.example/scim/v2".into(),
                token: Secret::new("token".to_string()),
                manage_groups: false,
                settings: vec![],
                pacing: Default::default(),
                guard: Default::default(),
                passwords: Default::default(),
            })
            .unwrap();
        let active = AppUpdate {
            state: Some(AppState::Active),
            ..AppUpdate::default()
        };
        store.update_app(&app.id, active).unwrap();
        store
            .create_user(UserWrite {
                password: None,
                user_name: "ada".into(),
                external_id: None,
                active: true,
                attributes: serde_json::Map::new(),
            })
            .unwrap();
        while store.dispatch_changes(100).unwrap() > 0 {}
        let handle = StoreHandle::new(Arc::clone(&store));
        assert!(
            handle
                .take_object_lease("paused", &app.id, RUNNER, &app.id, APP_LEASE_SECONDS)
                .await
                .unwrap()
        );
        let seqs: Vec<i64> = store
            .claim_pairs("paused", &app.id, 10, 0)
            .unwrap()
            .iter()
            .map(|(change, _)| change.seq)
            .collect();
        assert_eq!(seqs.len(), 2, "the activation and the user");
        let lease = Arc::new(Turn::new());
        let keep = |seqs: Vec<i64>, stopped| {
            keep_pairs(
                handle.clone(),
                "paused".into(),
                app.id.clone(),
                Arc::clone(&lease),
                seqs,
                Duration::from_millis(20),
                stopped,
            )
        };
        // Held: renewals keep the pairs and the application, and the work
        // goes on.
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let renewing = keep(seqs.clone(), stopped);
        tokio::pin!(renewing);
        let kept = tokio::time::timeout(Duration::from_millis(100), &mut renewing).await;
        assert!(kept.is_err(), "renewals stop only when something is lost");
        stop.send(()).unwrap();
        assert_eq!(renewing.await, None, "stopped, having lost nothing");
        assert!(lease.is_held(), "the application's lease was renewed");
        assert!(
            store
                .claim_pairs("other", &app.id, 10, 60)
                .unwrap()
                .is_empty(),
            "the renewed lease holds"
        );

        // A pair taken after a pause past its lease: the next renewal says so.
        store.renew_pairs("paused", &app.id, &seqs, 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            store.claim_pairs("other", &app.id, 10, 60).unwrap().len(),
            2
        );
        let (_stop, stopped) = tokio::sync::oneshot::channel();
        let lost = keep(seqs.clone(), stopped).await.unwrap_or_default();
        assert!(lost.contains("another consumer took them"), "{lost}");

        // The application taken by another host: the lease is lost, and
        // nothing more is sent.
        handle
            .release_object_lease("paused", &app.id, RUNNER, &app.id)
            .await
            .unwrap();
        assert!(
            handle
                .take_object_lease("elsewhere", &app.id, RUNNER, &app.id, APP_LEASE_SECONDS)
                .await
                .unwrap()
        );
        let (_stop, stopped) = tokio::sync::oneshot::channel();
        let lost = keep(seqs, stopped).await.unwrap_or_default();
        assert!(lost.contains("another host runs it now"), "{lost}");
        assert!(!lease.is_held());
    }
}
