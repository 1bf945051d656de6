//! From component bytes to a validated [`LoadedPlugin`].
//!
//! A version is accepted only when every step passes, in this order:
//! 1. the bytes are a WebAssembly component (not a core module, not junk);
//! 2. it compiles (or is found in the precompile cache) and holds no more
//!    linear memories, tables and core instances than a connector may
//!    (`ComponentLimits`);
//! 3. its connector export names a contract version the host accepts;
//! 4. its imports type-check against the host's linker and its exports
//!    against that contract version's bindings;
//! 5. its manifest is well-formed and agrees with the exported version;
//! 6. smoke calls on fixture inputs succeed within its limits and return
//!    output that passes the host's checks.
//!
//! Nothing is swapped in or written anywhere but the precompile cache
//! before all of this has passed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::cache::{CompileSource, PrecompileCache};
use super::contract;
use super::events::EventSink;
use super::limits::PluginLimits;
use super::plugin::{LoadedPlugin, PluginIdentity, ReceiptTap};
use super::validate;
use super::wasm::Runtime;

/// Why a file did not become a serving version: one line naming the file
/// and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct LoadError {
    pub file: String,
    pub reason: String,
}

/// How a successful load went.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub from_cache: bool,
    pub elapsed: Duration,
}

/// Compiles, links and validates components.
#[derive(Clone)]
pub struct Loader {
    runtime: Arc<Runtime>,
    cache: Option<PrecompileCache>,
    limits: BTreeMap<String, PluginLimits>,
    events: EventSink,
    receipts: Option<ReceiptTap>,
}

impl Loader {
    /// A loader without a precompile cache, every plugin under the
    /// runtime's default limits, reporting to a new event sink.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Loader {
            runtime,
            cache: None,
            limits: BTreeMap::new(),
            events: EventSink::default(),
            receipts: None,
        }
    }

    /// Copies the receipt of every successful call of the plugins it loads
    /// to `tap`.
    pub fn with_receipt_tap(mut self, tap: ReceiptTap) -> Self {
        self.receipts = Some(tap);
        self
    }

    /// Reports loads and failed calls of the plugins it loads to `events`.
    pub fn with_events(mut self, events: EventSink) -> Self {
        self.events = events;
        self
    }

    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// Keeps compiled components in `cache`.
    pub fn with_cache(mut self, cache: PrecompileCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Limits for plugins by manifest name; the others keep the defaults.
    pub fn with_limits(mut self, limits: BTreeMap<String, PluginLimits>) -> Self {
        self.limits = limits;
        self
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The limits a plugin of this name runs under.
    pub fn limits_for(&self, name: &str) -> PluginLimits {
        self.limits
            .get(name)
            .copied()
            .unwrap_or(self.runtime.config().default_limits)
    }

    /// Loads a component file (read with ambient authority: for the CLI and
    /// tests; the host reads its plugins folder through `registry.rs`).
    pub fn load_path(&self, path: &Path) -> Result<(LoadedPlugin, LoadReport), LoadError> {
        let bytes = std::fs::read(path).map_err(|e| LoadError {
            file: path.display().to_string(),
            reason: format!("cannot read it: {e}"),
        })?;
        self.load_bytes(&bytes, path)
    }

    /// Validates `bytes` as a connector version; `file` names it in errors
    /// and in the plugin's identity.
    pub fn load_bytes(
        &self,
        bytes: &[u8],
        file: &Path,
    ) -> Result<(LoadedPlugin, LoadReport), LoadError> {
        let started = Instant::now();
        let fail = |reason: String| LoadError {
            file: file.display().to_string(),
            reason,
        };
        check_component_header(bytes).map_err(fail)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let engine = self.runtime.engine();
        let (component, source) = match &self.cache {
            Some(cache) => cache.load_or_compile(engine, bytes, &sha256),
            None => Component::new(engine, bytes)
                .map(|c| (c, CompileSource::Compiled))
                .map_err(|e| format!("it does not compile: {e:#}")),
        }
        .map_err(|reason| fail(self.explain_compile_error(reason)))?;

        let component_type = component.component_type();
        let exports: Vec<&str> = component_type
            .exports(engine)
            .map(|(name, _)| name)
            .collect();
        let (exported, contract) =
            contract::detect(exports.iter().copied()).map_err(|e| fail(e.to_string()))?;

        let identity = PluginIdentity {
            name: file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            version: String::new(),
            contract: exported.to_string(),
            sha256,
            file: Some(file.to_path_buf()),
        };
        let mut plugin = LoadedPlugin::link(
            Arc::clone(&self.runtime),
            &component,
            contract,
            identity,
            |name| self.limits_for(name),
        )
        .map_err(fail)?;
        validate::manifest(plugin.manifest(), &exported).map_err(fail)?;
        smoke_test(&plugin).map_err(fail)?;
        plugin.report_to(self.events.clone());
        if let Some(tap) = &self.receipts {
            plugin.tap_receipts(tap.clone());
        }
        Ok((
            plugin,
            LoadReport {
                from_cache: source == CompileSource::Cached,
                elapsed: started.elapsed(),
            },
        ))
    }
}

impl Loader {
    /// A compile error, said as a refusal when the component holds more
    /// than a connector may: the pool checks the component limits when it
    /// compiles (`wasm.rs`), and says so in words of its own.
    fn explain_compile_error(&self, reason: String) -> String {
        const OVER_POOL_LIMITS: &str = "in the pooling allocator";
        if !reason.contains(OVER_POOL_LIMITS) {
            return reason;
        }
        let detail = reason
            .strip_prefix("it does not compile: ")
            .unwrap_or(&reason);
        format!(
            "it holds more than a connector may ({}): {detail}",
            self.runtime.config().component_limits
        )
    }
}

/// Refuses what is plainly not a component, with a message that says what
/// it is instead.
fn check_component_header(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.is_empty() {
        return Err("the file is empty".to_owned());
    }
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("not a WebAssembly file (no \\0asm header)".to_owned());
    }
    // Bytes 4..8: a core module has version 1, layer 0; a component has
    // layer 1.
    match bytes[6..8] {
        [1, 0] => Ok(()),
        [0, 0] => Err(
            "a core WebAssembly module, not a component: build the connector for \
             wasm32-wasip2 (or wrap the module with `wasm-tools component new`)"
                .to_owned(),
        ),
        _ => Err("an unknown WebAssembly encoding (neither module nor component)".to_owned()),
    }
}

/// The calls a version must answer before it serves.
fn smoke_test(plugin: &LoadedPlugin) -> Result<(), String> {
    let failed =
        |e: super::plugin::PluginError| format!("smoke call failed: {}: {}", e.call, e.kind);
    let settings = [];
    let user = validate::fixture_user();
    plugin.map_user(&user, &settings).map_err(failed)?;
    for result in plugin
        .map_users(std::slice::from_ref(&user), &settings)
        .map_err(failed)?
        .value
    {
        result.map_err(failed)?;
    }
    plugin.lookup_filters(&user, &settings).map_err(failed)?;
    if plugin.manifest().capabilities.groups {
        plugin
            .map_group(&validate::fixture_group(), &settings)
            .map_err(failed)?;
    }
    plugin
        .on_group_event(&validate::fixture_group_event(), &settings)
        .map_err(failed)?;
    Ok(())
}
