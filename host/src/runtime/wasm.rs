//! The wasmtime engine every connector runs in, its linker, and the epoch
//! ticker that bounds the CPU time of a call.
//!
//! Invariants:
//! - one [`Runtime`] per process (`plugin test` makes its own): its engine, linker and
//!   pooling allocator are shared by every plugin and every version;
//! - the pool refuses a component that holds more than
//!   [`ComponentLimits`] (when it is compiled, so it never loads), and holds
//!   `max_instances` components at those limits: a connector cannot take
//!   more than its share of memories, tables or core instances;
//! - the epoch advances every [`EPOCH_TICK`] on a dedicated OS thread, not
//!   on an async runtime, so a looping guest cannot starve its own deadline;
//!   the thread stops when the runtime is dropped;
//! - guest code runs only under a [`GuestRunning`] guard (a call, an
//!   instantiation), and the epoch advances whenever one is held: the
//!   ticker rests only while no guest code can run (after a tenth of a
//!   second without any), so an idle host does not wake every tick, and no
//!   deadline is ever left without its clock;
//! - the linker provides the WASI 0.2 interfaces (granting nothing, see
//!   `limits.rs`) and the imports of every supported contract version
//!   (each version's file adds its own: `contract/`); nothing else, so a
//!   component importing anything more is refused when it is linked.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::contract;
use super::limits::{ComponentLimits, PluginLimits, PluginState};

/// How often the epoch advances; a call's deadline is rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// How the runtime is built.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Limits for plugins without their own.
    pub default_limits: PluginLimits,
    /// The largest memory cap any plugin may be given (sizes the pool).
    pub memory_ceiling: usize,
    /// Component instances the pool holds across all plugins and versions.
    pub max_instances: u32,
    /// What one component may hold (memories, tables, core instances).
    pub component_limits: ComponentLimits,
    /// Count WebAssembly instructions (fuel) per call, for cost receipts.
    /// Costs some speed; `plugin test` turns it on, a production host off.
    pub metering: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            default_limits: PluginLimits::default(),
            memory_ceiling: 1 << 30,
            max_instances: 512,
            component_limits: ComponentLimits::default(),
            metering: false,
        }
    }
}

/// Why the runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[from] std::io::Error),
}

/// The shared engine, linker and epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    config: RuntimeConfig,
    ticker: Ticker,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Arc<Self>, RuntimeError> {
        let engine_error = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        let each = config.component_limits;
        let mut pool = PoolingAllocationConfig::default();
        // Every component is held to `each`, so `max_instances` of them fit
        // whatever they hold: no connector can exhaust the slots the others
        // need. (The store limits say the same per store: `limits.rs`.)
        pool.total_component_instances(config.max_instances)
            .max_memories_per_component(each.memories)
            .max_tables_per_component(each.tables)
            .max_core_instances_per_component(each.core_instances)
            .total_memories(config.max_instances.saturating_mul(each.memories))
            .total_tables(config.max_instances.saturating_mul(each.tables))
            .total_core_instances(config.max_instances.saturating_mul(each.core_instances))
            .max_memory_size(config.memory_ceiling);

        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .consume_fuel(config.metering)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(engine_error)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        contract::add_to_linker(&mut linker).map_err(engine_error)?;

        let ticker = Ticker::start(engine.clone())?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            config,
            ticker,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Holds the epoch ticker awake until the guard is dropped: taken
    /// before any guest code runs (a call, an instantiation).
    pub(crate) fn guest_running(&self) -> GuestRunning<'_> {
        self.ticker.shared.enter();
        GuestRunning {
            ticker: &self.ticker.shared,
        }
    }

    /// How many times the epoch has advanced since the runtime started.
    pub fn epoch_ticks(&self) -> u64 {
        self.ticker.shared.ticks.load(Ordering::Relaxed)
    }

    /// The epoch deadline, in ticks, that bounds a call to `deadline`.
    pub fn deadline_ticks(&self, deadline: Duration) -> u64 {
        let ticks = deadline.as_micros().div_ceil(EPOCH_TICK.as_micros());
        // One more tick: the current one may be about to end.
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Guest code may be running while this is held: the epoch advances.
pub(crate) struct GuestRunning<'a> {
    ticker: &'a TickerShared,
}

impl Drop for GuestRunning<'_> {
    fn drop(&mut self) {
        self.ticker.leave();
    }
}

struct Ticker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

/// What the ticker thread and the guards share.
///
/// A guard costs two atomic operations while the ticker is awake; only a
/// guard that finds it resting takes the lock to wake it. The ticker rests
/// after [`REST_AFTER_TICKS`] ticks without guest code, so a busy host
/// never pays for waking it.
#[derive(Default)]
struct TickerShared {
    /// Guards held now.
    running: AtomicUsize,
    /// The ticker is resting, or about to: a guard must wake it.
    resting: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
    ticks: AtomicU64,
}

/// Ticks without guest code after which the ticker rests (0.1 s).
const REST_AFTER_TICKS: u32 = 50;

impl TickerShared {
    fn stop_flag(&self) -> MutexGuard<'_, bool> {
        // Nothing panics while holding the lock.
        self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self) {
        // Sequentially consistent, with `rest`: either this guard sees
        // the ticker resting and wakes it, or the ticker sees the guard
        // and does not rest.
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.resting.load(Ordering::SeqCst) {
            // Under the lock: the ticker checks `running` and waits
            // under it too, so the wake-up cannot fall between the two.
            let _stop = self.stop_flag();
            self.wake.notify_one();
        }
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Rests until a guard is taken; false once the ticker stops.
    fn rest(&self) -> bool {
        let mut stop = self.stop_flag();
        self.resting.store(true, Ordering::SeqCst);
        while self.running.load(Ordering::SeqCst) == 0 && !*stop {
            stop = self.wake.wait(stop).unwrap_or_else(PoisonError::into_inner);
        }
        self.resting.store(false, Ordering::SeqCst);
        !*stop
    }

    fn stopped(&self) -> bool {
        *self.stop_flag()
    }
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let shared = Arc::new(TickerShared::default());
        let ticker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("scimlink-epoch".into())
            .spawn(move || {
                let mut idle_ticks = 0;
                loop {
                    if ticker.running.load(Ordering::SeqCst) == 0 {
                        idle_ticks += 1;
                    } else {
                        idle_ticks = 0;
                    }
                    if idle_ticks > REST_AFTER_TICKS {
                        if !ticker.rest() {
                            return;
                        }
                        idle_ticks = 0;
                    } else if ticker.stopped() {
                        return;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                    ticker.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        *self.shared.stop_flag() = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
