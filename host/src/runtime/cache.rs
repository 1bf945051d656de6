//! The precompile cache: compiled components on disk, so a restart or a
//! re-deploy of a known component skips Cranelift.
//!
//! Invariants:
//! - an entry's key is sha256(component bytes) plus a hash of the engine's
//!   compatibility settings (`Engine::precompile_compatibility_hash`), so an
//!   entry is only ever read by an engine that can run it;
//! - an entry is written to a temporary file in the cache folder and renamed
//!   into place, so a reader never sees half an entry;
//! - an entry that fails to deserialize is a miss: it is recompiled and
//!   rewritten, never an error.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where the component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    Compiled,
    Cached,
}

/// A folder of precompiled components.
#[derive(Debug, Clone)]
pub struct PrecompileCache {
    folder: PathBuf,
}

impl PrecompileCache {
    /// A cache in `folder`, created if missing.
    pub fn open(folder: impl Into<PathBuf>) -> std::io::Result<Self> {
        let folder = folder.into();
        std::fs::create_dir_all(&folder)?;
        Ok(PrecompileCache { folder })
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The file an entry for these bytes lives in, for this engine.
    pub fn entry_path(&self, engine: &Engine, sha256_hex: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.folder
            .join(format!("{sha256_hex}-{:016x}.cwasm", hasher.finish()))
    }

    /// The component for `bytes`, from the cache or compiled (and cached).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256_hex: &str,
    ) -> Result<(Component, CompileSource), String> {
        let entry = self.entry_path(engine, sha256_hex);
        // Read into memory rather than mapped: a mapped entry truncated by
        // anyone while in use would take the host down (SIGBUS).
        if let Ok(serialized) = std::fs::read(&entry) {
            // SAFETY: the entry was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the key),
            // into a folder only this host writes; a corrupt or foreign file
            // fails to deserialize and is handled as a miss below.
            match unsafe { Component::deserialize(engine, &serialized) } {
                Ok(component) => return Ok((component, CompileSource::Cached)),
                Err(e) => tracing::warn!(
                    "precompile cache entry {} unusable ({e}); recompiling",
                    entry.display()
                ),
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| format!("it does not compile: {e:#}"))?;
        if let Err(e) = self.write(&entry, &compiled) {
            // A cache that cannot be written costs speed, not correctness.
            tracing::warn!(
                "cannot write precompile cache entry {}: {e}",
                entry.display()
            );
        }
        // SAFETY: `compiled` was produced just above by this engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }
            .map_err(|e| format!("its compiled form does not load: {e:#}"))?;
        Ok((component, CompileSource::Compiled))
    }

    fn write(&self, entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
        let mut temporary = tempfile::NamedTempFile::new_in(&self.folder)?;
        temporary.write_all(compiled)?;
        temporary.as_file().sync_all()?;
        temporary.persist(entry).map_err(|e| e.error)?;
        Ok(())
    }
}
