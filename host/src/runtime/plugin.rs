//! One loaded, validated version of a connector, and the calls into it.
//!
//! Invariants:
//! - a [`LoadedPlugin`] is immutable once built; a new version is a new
//!   `LoadedPlugin`, so a call that started on a version finishes on it;
//! - instances come from an `InstancePre` (pooled allocation) and are kept
//!   warm between calls; an instance that trapped, timed out or hit its
//!   memory cap is dropped, never reused (its state is suspect), and so is
//!   one that served [`RETIRE_AFTER_CALLS`] calls (bounding slow leaks);
//! - a call reaches the component through its contract version's
//!   bindings (`contract/`), in the newest contract's types: nothing here
//!   depends on the version a connector was built against;
//! - every call runs under the plugin's epoch deadline and memory cap, and
//!   its output is checked (`validate.rs`) before it is returned;
//! - the host copies at most a call's budget out of the guest (see
//!   [`Budget`]): wasmtime counts every string's and list's length against
//!   the store's hostcall fuel *before* copying it, so a result whose
//!   strings all point at one buffer is refused after the first copies that
//!   pass the budget, not after the host allocated each of them. The
//!   budget follows the output cap, so what a connector may make the host
//!   hold is what it may legitimately return;
//! - a failure is a [`PluginError`] for the caller, never a panic of the
//!   host.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::contract::{
    ConnectorInstance, ConnectorPre, ContractVersion, DirectoryGroup, DirectoryUser, GroupDecision,
    GroupEventFacts, Manifest, MappingError, Setting,
};
use super::events::{EventSink, RuntimeEvent};
use super::limits::{PluginLimits, PluginState};
use super::validate::{self, OutputError, ResourceKind, ScimDocument};
use super::wasm::Runtime;

/// An instance is dropped after this many calls and a fresh one takes its
/// place: a guest that leaks a little per call cannot grow without bound.
pub const RETIRE_AFTER_CALLS: u64 = 10_000;

/// How much of a guest's standard error is kept to explain a trap. An
/// instance that wrote half of it is replaced, so the pipe never fills (a
/// full pipe would make the guest's next write fail).
const STDERR_CAPTURE_BYTES: usize = 64 << 10;

/// Room, beyond the output cap, for the host's own form of a result: list
/// entries and the small fields around the documents.
const LIFT_ALLOWANCE: usize = 64 << 10;

/// Most bytes the decision about one member may take: the member's id
/// echoed back (ids are short) and an action.
const MEMBER_DECISION_BYTES: usize = 1 << 10;

/// How wasmtime words a transfer that ran out of hostcall fuel (the error
/// type is private). The tests of the hostile fixtures pin it.
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// How many bytes the host may copy out of the guest in one call (and, as
/// wasmtime applies the same fuel to them, in one call of the guest to the
/// host): the output cap for each document or decision the call may
/// legitimately return, plus [`LIFT_ALLOWANCE`].
#[derive(Debug, Clone, Copy)]
struct Budget(usize);

impl Budget {
    /// A call that returns one document (or a manifest, a user, filters).
    fn single(limits: &PluginLimits) -> Self {
        Budget::documents(limits, 1)
    }

    /// A call that returns one document per input.
    fn documents(limits: &PluginLimits, count: usize) -> Self {
        Budget(
            limits
                .output_bytes
                .saturating_mul(count.max(1))
                .saturating_add(LIFT_ALLOWANCE),
        )
    }

    /// A group decision: one small entry per member asked about.
    fn decision(limits: &PluginLimits, members: usize) -> Self {
        let budget = Budget::single(limits).0;
        Budget(budget.saturating_add(members.saturating_mul(MEMBER_DECISION_BYTES)))
    }
}

/// Who a loaded plugin is.
#[derive(Debug, Clone, Serialize)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    /// The contract version the component exports.
    pub contract: String,
    /// sha256 of the component file, hex.
    pub sha256: String,
    /// The file it was loaded from, if any.
    pub file: Option<PathBuf>,
}

impl fmt::Display for PluginIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// What one call cost.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CallReceipt {
    pub call: &'static str,
    #[serde(serialize_with = "micros")]
    pub wall_time: Duration,
    /// WebAssembly fuel consumed, when the runtime meters.
    pub fuel: Option<u64>,
    /// The instance's linear memory high-water mark, in bytes.
    pub peak_memory_bytes: usize,
    /// Bytes of output returned.
    pub output_bytes: usize,
}

fn micros<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(value.as_micros().try_into().unwrap_or(u64::MAX))
}

/// Where the receipt of every successful call of a plugin is copied (a
/// failed call has an error, not a receipt), for a
/// tool that reports what each step of its work cost (the sandbox test).
/// The serving host does not use one: the copy costs a lock per call.
#[derive(Debug, Clone, Default)]
pub struct ReceiptTap(Arc<Mutex<Vec<CallReceipt>>>);

impl ReceiptTap {
    fn push(&self, receipt: CallReceipt) {
        if let Ok(mut receipts) = self.0.lock() {
            receipts.push(receipt);
        }
    }

    /// Puts receipts taken earlier back in front of those copied since.
    pub fn restore(&self, mut earlier: Vec<CallReceipt>) {
        if let Ok(mut receipts) = self.0.lock() {
            earlier.append(&mut receipts);
            *receipts = earlier;
        }
    }

    /// The receipts copied since the last take, oldest first.
    pub fn take(&self) -> Vec<CallReceipt> {
        self.0
            .lock()
            .map(|mut receipts| std::mem::take(&mut *receipts))
            .unwrap_or_default()
    }
}

/// A call's result with what it cost.
#[derive(Debug, Clone)]
pub struct Called<T> {
    pub value: T,
    pub receipt: CallReceipt,
}

/// A failed call into a plugin.
#[derive(Debug, Clone, thiserror::Error)]
#[error("connector {plugin}, {call}: {kind}")]
pub struct PluginError {
    pub plugin: String,
    pub call: &'static str,
    pub kind: PluginErrorKind,
}

impl PluginError {
    /// Whether the plugin misbehaved (as opposed to refusing an input it
    /// cannot map, which is the input's fault).
    pub fn is_plugin_fault(&self) -> bool {
        !matches!(self.kind, PluginErrorKind::Refused(_))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginErrorKind {
    #[error("exceeded its CPU deadline of {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("exceeded its memory cap of {} MiB", .0 >> 20)]
    MemoryCap(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned invalid output: {0}")]
    InvalidOutput(#[from] OutputError),
    #[error("no instance available: {0}")]
    Unavailable(String),
    #[error("refused the input: {}", describe_refusal(.0))]
    Refused(MappingError),
}

struct WarmInstance {
    store: Store<PluginState>,
    /// The instance's calls, through its contract version's bindings.
    connector: Box<dyn ConnectorInstance>,
    stderr: MemoryOutputPipe,
    calls: u64,
}

/// A loaded, validated connector version.
pub struct LoadedPlugin {
    pool: InstancePool,
    identity: PluginIdentity,
    manifest: Manifest,
    /// Where a call that fails through the plugin's fault is reported;
    /// none while the loader validates it (a failure then is a rejection).
    events: Option<EventSink>,
    receipts: Option<ReceiptTap>,
}

/// The instances of one version and the machinery of a call.
struct InstancePool {
    runtime: Arc<Runtime>,
    pre: Box<dyn ConnectorPre>,
    limits: PluginLimits,
    /// The name plugin log lines carry.
    log_name: String,
    warm: Mutex<Vec<WarmInstance>>,
    max_warm: usize,
    retired: AtomicBool,
}

impl LoadedPlugin {
    /// Links a compiled component of a known contract version and reads its
    /// manifest (under the default limits: the name that selects the
    /// plugin's own limits is in the manifest).
    pub(crate) fn link(
        runtime: Arc<Runtime>,
        component: &wasmtime::component::Component,
        contract: ContractVersion,
        mut identity: PluginIdentity,
        limits_for: impl Fn(&str) -> PluginLimits,
    ) -> Result<Self, String> {
        let instance_pre = runtime
            .linker()
            .instantiate_pre(component)
            .map_err(|e| format!("its imports do not type-check against the host: {e:#}"))?;
        let pre = contract
            .prepare(instance_pre)
            .map_err(|e| format!("its exports do not match contract {contract}: {e:#}"))?;

        let max_warm = std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4);
        let limits = runtime.config().default_limits;
        let mut pool = InstancePool {
            runtime,
            pre,
            limits,
            log_name: identity.name.clone(),
            warm: Mutex::new(Vec::new()),
            max_warm,
            retired: AtomicBool::new(false),
        };
        let budget = Budget::single(&pool.limits);
        let manifest = pool
            .call("describe", budget, |connector, store| {
                connector.describe(store)
            })
            .map_err(|kind| format!("describe: {kind}"))?
            .value;
        pool.rename(&manifest.name);
        let own_limits = limits_for(&manifest.name);
        if own_limits != pool.limits {
            pool.limits = own_limits;
            // The warm instance was made under the default memory cap.
            if let Ok(warm) = pool.warm.get_mut() {
                warm.clear();
            }
        }
        identity.name.clone_from(&manifest.name);
        identity.version.clone_from(&manifest.version);
        Ok(LoadedPlugin {
            pool,
            identity,
            manifest,
            events: None,
            receipts: None,
        })
    }

    /// Reports failed calls to `events` from now on.
    pub(crate) fn report_to(&mut self, events: EventSink) {
        self.events = Some(events);
    }

    /// Copies the receipt of every successful call to `tap` from now on.
    pub(crate) fn tap_receipts(&mut self, tap: ReceiptTap) {
        self.receipts = Some(tap);
    }

    /// Hands a successful call's result back, its receipt copied to the tap.
    fn tapped<T>(&self, called: Called<T>) -> Called<T> {
        if let Some(tap) = &self.receipts {
            tap.push(called.receipt);
        }
        called
    }

    pub fn identity(&self) -> &PluginIdentity {
        &self.identity
    }

    pub fn name(&self) -> &str {
        &self.identity.name
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.pool.limits
    }

    /// Number of warm instances held now.
    pub fn warm_instances(&self) -> usize {
        self.pool.warm.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Stops keeping instances warm: the version no longer serves. Calls in
    /// flight finish; their instances are dropped afterwards.
    pub(crate) fn retire(&self) {
        self.pool.retired.store(true, Ordering::Release);
        if let Ok(mut warm) = self.pool.warm.lock() {
            warm.clear();
        }
    }

    /// Serves again after a rollback: instances are kept warm again.
    pub(crate) fn activate(&self) {
        self.pool.retired.store(false, Ordering::Release);
    }

    /// Makes a fresh instance and drops it: what a call on a cold plugin
    /// pays before its first call (measured by the benchmarks).
    pub fn instantiate_once(&self) -> Result<(), PluginError> {
        self.pool.instantiate().map(drop).map_err(|e| {
            self.error(
                "instantiate",
                PluginErrorKind::Unavailable(format!("{e:#}")),
            )
        })
    }

    /// Runs a contract call and names this version in its error.
    fn call<T>(
        &self,
        call: &'static str,
        budget: Budget,
        body: impl FnOnce(&dyn ConnectorInstance, &mut Store<PluginState>) -> wasmtime::Result<T>,
    ) -> Result<Called<T>, PluginError> {
        self.pool
            .call(call, budget, body)
            .map_err(|kind| self.error(call, kind))
    }

    fn single(&self) -> Budget {
        Budget::single(&self.pool.limits)
    }

    /// A failed call's error, reported as an event when the plugin is at
    /// fault (a refused input is the input's fault and is not reported).
    fn error(&self, call: &'static str, kind: PluginErrorKind) -> PluginError {
        let error = PluginError {
            plugin: self.identity.to_string(),
            call,
            kind,
        };
        if let Some(events) = self.events.as_ref().filter(|_| error.is_plugin_fault()) {
            events.emit(RuntimeEvent::PluginCallFailed {
                plugin: error.plugin.clone(),
                call: call.to_owned(),
                reason: error.kind.to_string(),
            });
        }
        error
    }

    /// The SCIM User for a directory user.
    pub fn map_user(
        &self,
        user: &DirectoryUser,
        settings: &[Setting],
    ) -> Result<Called<ScimDocument>, PluginError> {
        let called = self.call("map-user", self.single(), |connector, store| {
            connector.map_user(store, user, settings)
        })?;
        self.document(called, "map-user", ResourceKind::User)
    }

    /// The SCIM Users for many directory users, in order. One refused or
    /// invalid document fails only its own entry.
    pub fn map_users(
        &self,
        users: &[DirectoryUser],
        settings: &[Setting],
    ) -> Result<Called<Vec<Result<ScimDocument, PluginError>>>, PluginError> {
        let deadline = self
            .pool
            .runtime
            .deadline_ticks(self.pool.limits.call_deadline);
        let budget = Budget::documents(&self.pool.limits, users.len());
        let called = self.call("map-users", budget, |connector, store| {
            connector.map_users(store, users, settings, deadline)
        })?;
        if called.value.len() != users.len() {
            return Err(self.error(
                "map-users",
                OutputError::Inconsistent(format!(
                    "{} documents for {} users",
                    called.value.len(),
                    users.len()
                ))
                .into(),
            ));
        }
        let mut output_bytes = 0;
        let documents = called
            .value
            .into_iter()
            .map(|result| {
                let text =
                    result.map_err(|e| self.error("map-users", PluginErrorKind::Refused(e)))?;
                output_bytes += text.len();
                validate::scim_document(text, ResourceKind::User, self.pool.limits.output_bytes)
                    .map_err(|e| self.error("map-users", e.into()))
            })
            .collect();
        Ok(self.tapped(Called {
            value: documents,
            receipt: CallReceipt {
                output_bytes,
                ..called.receipt
            },
        }))
    }

    /// The SCIM Group for a directory group.
    pub fn map_group(
        &self,
        group: &DirectoryGroup,
        settings: &[Setting],
    ) -> Result<Called<ScimDocument>, PluginError> {
        let called = self.call("map-group", self.single(), |connector, store| {
            connector.map_group(store, group, settings)
        })?;
        self.document(called, "map-group", ResourceKind::Group)
    }

    /// The filters that find an existing account, in order.
    pub fn lookup_filters(
        &self,
        user: &DirectoryUser,
        settings: &[Setting],
    ) -> Result<Called<Vec<String>>, PluginError> {
        let called = self.call("lookup-filters", self.single(), |connector, store| {
            connector.lookup_filters(store, user, settings)
        })?;
        validate::lookup_filters(&called.value)
            .map_err(|e| self.error("lookup-filters", e.into()))?;
        Ok(self.tapped(called))
    }

    /// The connector's group-management decision for an event.
    pub fn on_group_event(
        &self,
        facts: &GroupEventFacts,
        settings: &[Setting],
    ) -> Result<Called<GroupDecision>, PluginError> {
        let budget = Budget::decision(&self.pool.limits, facts.members.len());
        let called = self.call("on-group-event", budget, |connector, store| {
            connector.on_group_event(store, facts, settings)
        })?;
        validate::group_decision(facts, &called.value)
            .map_err(|e| self.error("on-group-event", e.into()))?;
        Ok(self.tapped(called))
    }

    /// A SCIM User from the application as a directory user.
    pub fn read_user(
        &self,
        scim_user: &str,
        settings: &[Setting],
    ) -> Result<Called<DirectoryUser>, PluginError> {
        let called = self.call("read-user", self.single(), |connector, store| {
            connector.read_user(store, scim_user, settings)
        })?;
        let Called { value, receipt } = called;
        match value {
            Ok(user) if user.username.trim().is_empty() => Err(self.error(
                "read-user",
                OutputError::Inconsistent("the user read back has no username".to_owned()).into(),
            )),
            Ok(user) => Ok(self.tapped(Called {
                value: user,
                receipt,
            })),
            Err(refusal) => Err(self.error("read-user", PluginErrorKind::Refused(refusal))),
        }
    }

    fn document(
        &self,
        called: Called<Result<String, MappingError>>,
        call: &'static str,
        kind: ResourceKind,
    ) -> Result<Called<ScimDocument>, PluginError> {
        let Called { value, receipt } = called;
        let text = value.map_err(|refusal| self.error(call, PluginErrorKind::Refused(refusal)))?;
        let output_bytes = text.len();
        let document = validate::scim_document(text, kind, self.pool.limits.output_bytes)
            .map_err(|e| self.error(call, e.into()))?;
        Ok(self.tapped(Called {
            value: document,
            receipt: CallReceipt {
                output_bytes,
                ..receipt
            },
        }))
    }
}

impl InstancePool {
    /// Runs `body` on a warm (or new) instance under the plugin's limits.
    fn call<T>(
        &self,
        call: &'static str,
        budget: Budget,
        body: impl FnOnce(&dyn ConnectorInstance, &mut Store<PluginState>) -> wasmtime::Result<T>,
    ) -> Result<Called<T>, PluginErrorKind> {
        // Before the checkout, which may instantiate.
        let _running = self.runtime.guest_running();
        let mut instance = self.checkout()?;
        instance.store.set_hostcall_fuel(budget.0);
        // What the guest wrote before this call does not explain its trap.
        let stderr_before = instance.stderr.contents().len();
        let metering = self.runtime.config().metering;
        let store = &mut instance.store;
        store.set_epoch_deadline(self.runtime.deadline_ticks(self.limits.call_deadline));
        if metering {
            // Fuel only measures here; the epoch deadline bounds the call.
            let _ = store.set_fuel(u64::MAX);
        }
        let started = Instant::now();
        let result = body(instance.connector.as_ref(), &mut instance.store);
        let wall_time = started.elapsed();
        match result {
            Ok(value) => {
                let store = &instance.store;
                let receipt = CallReceipt {
                    call,
                    wall_time,
                    fuel: metering.then(|| u64::MAX - store.get_fuel().unwrap_or(0)),
                    peak_memory_bytes: store.data().memory().peak(),
                    output_bytes: 0,
                };
                instance.calls += 1;
                self.checkin(instance);
                Ok(Called { value, receipt })
            }
            Err(error) => Err(self.classify(&error, &instance, stderr_before, budget)),
        }
    }

    fn classify(
        &self,
        error: &wasmtime::Error,
        instance: &WarmInstance,
        stderr_before: usize,
        budget: Budget,
    ) -> PluginErrorKind {
        if instance.store.data().memory().hit_cap() {
            return PluginErrorKind::MemoryCap(self.limits.memory_bytes);
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return PluginErrorKind::Timeout(self.limits.call_deadline);
        }
        if error
            .chain()
            .any(|cause| cause.to_string().contains(HOSTCALL_FUEL_EXHAUSTED))
        {
            return OutputError::OverBudget { budget: budget.0 }.into();
        }
        let mut reason = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => first_line(&format!("{error:#}")).to_owned(),
        };
        // A guest panic prints its message before it aborts: keep the
        // message, it says more than the trap.
        let stderr = instance.stderr.contents();
        let said: Vec<&str> = std::str::from_utf8(stderr.get(stderr_before..).unwrap_or_default())
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        if !said.is_empty() {
            reason = format!("{reason}; the connector wrote: {}", said.join(" "));
        }
        PluginErrorKind::Trap(super::truncate_for_log(&reason).into_owned())
    }

    fn checkout(&self) -> Result<WarmInstance, PluginErrorKind> {
        if let Some(instance) = self.warm.lock().ok().and_then(|mut warm| warm.pop()) {
            return Ok(instance);
        }
        self.instantiate()
            .map_err(|e| PluginErrorKind::Unavailable(format!("{e:#}")))
    }

    /// Gives the pool's instances a new name for their log lines.
    fn rename(&mut self, name: &str) {
        self.log_name = name.to_owned();
        if let Ok(warm) = self.warm.get_mut() {
            for instance in warm {
                instance.store.data_mut().plugin = name.to_owned();
            }
        }
    }

    fn checkin(&self, instance: WarmInstance) {
        if instance.calls >= RETIRE_AFTER_CALLS
            || self.retired.load(Ordering::Acquire)
            || instance.stderr.contents().len() > STDERR_CAPTURE_BYTES / 2
        {
            return;
        }
        if let Ok(mut warm) = self.warm.lock()
            && warm.len() < self.max_warm
        {
            warm.push(instance);
        }
    }

    fn instantiate(&self) -> wasmtime::Result<WarmInstance> {
        // Instantiation runs the guest's start code.
        let _running = self.runtime.guest_running();
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let state = PluginState::new(
            &self.log_name,
            &self.limits,
            &self.runtime.config().component_limits,
            stderr.clone(),
        );
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| state.limiter());
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.runtime.deadline_ticks(self.limits.call_deadline));
        if self.runtime.config().metering {
            store.set_fuel(u64::MAX)?;
        }
        let connector = self.pre.instantiate(&mut store)?;
        Ok(WarmInstance {
            store,
            connector,
            stderr,
            calls: 0,
        })
    }
}

fn describe_refusal(refusal: &MappingError) -> String {
    match &refusal.attribute {
        Some(attribute) => format!("{attribute}: {}", refusal.message),
        None => refusal.message.clone(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
