//! What one plugin may consume, and the per-store state that enforces it.
//!
//! Invariants:
//! - a store's linear memory never grows past [`PluginLimits::memory_bytes`]:
//!   a grow past it traps (`trap_on_grow_failure`), it does not return -1 to
//!   a guest that might ignore it;
//! - a store holds one connector component, and that component at most
//!   [`ComponentLimits`]: one linear memory, a few tables and core
//!   instances. The store refuses to instantiate past them, and the pooling
//!   allocator (`wasm.rs`) refuses to compile a component that declares
//!   more, so the memory cap is the whole of a connector's memory, and
//!   `max_instances` connectors always fit in the pool;
//! - every call runs under an epoch deadline of [`PluginLimits::call_deadline`]
//!   (see `wasm.rs` for the ticker), so a looping guest traps;
//! - the WASI context grants nothing: no preopened directories, no
//!   environment, no arguments, no sockets, no name lookups; standard input
//!   is empty, standard output is discarded and standard error is kept
//!   (bounded) to explain a trap;
//! - a connector is deterministic given its inputs: both clocks read zero
//!   and stand still, and both random sources are seeded with a constant.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

/// Limits of one plugin. Defaults: 64 MiB of memory, 100 ms per call,
/// 1 MiB per output document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// CPU deadline per call.
    #[serde(with = "millis")]
    pub call_deadline: Duration,
    /// Largest output (one JSON document, or a whole batch) in bytes.
    pub output_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: 64 << 20,
            call_deadline: Duration::from_millis(100),
            output_bytes: 1 << 20,
        }
    }
}

/// What one connector component may hold, in the store it runs in and in
/// the pool every connector shares. A connector built from one Rust crate
/// (`wasm32-wasip2`, every bundled one) holds one memory, two tables and
/// three core instances (the program, the WASI adapter, a glue module); the
/// defaults leave room for other toolchains, not for a second memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentLimits {
    /// Linear memories: each may grow to the memory cap, so more than one
    /// would multiply it.
    pub memories: u32,
    /// Tables.
    pub tables: u32,
    /// Core module instances (each takes a slot of the shared pool).
    pub core_instances: u32,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        ComponentLimits {
            memories: 1,
            tables: 4,
            core_instances: 8,
        }
    }
}

impl std::fmt::Display for ComponentLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let memories = if self.memories == 1 {
            "memory"
        } else {
            "memories"
        };
        write!(
            f,
            "at most {} linear {memories}, {} tables and {} core instances per connector",
            self.memories, self.tables, self.core_instances
        )
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// The data of one plugin store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryGuard,
    /// Which plugin logs through this store (for log lines).
    pub(crate) plugin: String,
}

impl PluginState {
    /// A store's state; what the guest writes to standard error goes to
    /// `stderr` (bounded), to explain a trap.
    pub fn new(
        plugin: &str,
        limits: &PluginLimits,
        component: &ComponentLimits,
        stderr: MemoryOutputPipe,
    ) -> Self {
        // A connector holds no secret, so it needs no entropy, and a fixed
        // seed keeps its output (std's hash maps included) the same on
        // every run: what a plan shows is what the engine sends.
        let wasi = WasiCtx::builder()
            .secure_random(StdRng::seed_from_u64(0))
            .insecure_random(StdRng::seed_from_u64(1))
            .insecure_random_seed(0)
            .wall_clock(StoppedClock)
            .monotonic_clock(StoppedClock)
            .stderr(stderr)
            .build();
        PluginState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryGuard::new(limits.memory_bytes, component),
            plugin: plugin.to_owned(),
        }
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.memory
    }

    pub fn memory(&self) -> &MemoryGuard {
        &self.memory
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A clock that reads zero and never advances.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// Enforces the memory cap and the component limits, and remembers the
/// memory high-water mark.
pub struct MemoryGuard {
    limits: StoreLimits,
    cap: usize,
    peak: usize,
    hit_cap: bool,
}

impl MemoryGuard {
    fn new(cap: usize, component: &ComponentLimits) -> Self {
        let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        MemoryGuard {
            limits: StoreLimitsBuilder::new()
                .memory_size(cap)
                // A store holds one component: its limits are the store's.
                .memories(count(component.memories))
                .tables(count(component.tables))
                .instances(count(component.core_instances))
                .trap_on_grow_failure(true)
                .build(),
            cap,
            peak: 0,
            hit_cap: false,
        }
    }

    /// The most linear memory the instance has held, in bytes.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Whether a grow was refused for passing the cap.
    pub fn hit_cap(&self) -> bool {
        self.hit_cap
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit_cap = true;
        }
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak = self.peak.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
