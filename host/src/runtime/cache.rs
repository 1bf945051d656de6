//! The precompile cache: compiled components on disk, so a restart or a
//! re-deploy of a known component skips Cranelift.
//!
//! A cache entry is native code the host runs outside WebAssembly's isolation, so it is
//! only ever deserialized once it is known to be the host's own work:
//!
//! ```text
//! entry = "scimlink-cwasm-v1\n" ‖ MAC (32 bytes) ‖ compiled component
//! MAC   = HMAC-SHA256(cache key, entry file name ‖ 0 ‖ compiled component)
//! ```
//!
//! Invariants:
//! - the cache key is derived from the host key (`TokenCipher::derive_key`
//!   with [`CACHE_KEY_LABEL`]), which never leaves the host; whoever can
//!   write the cache folder (a restored backup, a shared volume) but does
//!   not hold the host key cannot make an entry this host will load;
//! - the MAC covers the entry's file name, which names the component's
//!   sha256 and the engine's compatibility hash: a genuine entry moved onto
//!   another component's name does not verify either;
//! - the MAC is checked, in constant time, before `Component::deserialize`
//!   sees a byte; an entry without a valid MAC is a miss (recompiled and
//!   rewritten), never an error;
//! - an entry's key is sha256(component bytes) plus a hash of the engine's
//!   compatibility settings (`Engine::precompile_compatibility_hash`), so an
//!   entry is only ever read by an engine that can run it;
//! - an entry is written to a temporary file in the cache folder and renamed
//!   into place, so a reader never sees half an entry; the folder is the
//!   owner's only (0700).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use subtle::ConstantTimeEq;
use wasmtime::Engine;
use wasmtime::component::Component;
use zeroize::Zeroizing;

use crate::secrets::{hmac_sha256, private_folder};

/// The label the cache key is derived from the host key under.
pub const CACHE_KEY_LABEL: &str = "scimlink precompile-cache v1";

/// What every authenticated entry starts with.
const MAGIC: &[u8] = b"scimlink-cwasm-v1\n";
const MAC_BYTES: usize = 32;

/// Where the component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    Compiled,
    Cached,
}

/// A folder of precompiled components, authenticated with a host key.
#[derive(Clone)]
pub struct PrecompileCache {
    folder: PathBuf,
    key: Arc<Zeroizing<[u8; 32]>>,
    /// Whether an entry without a valid MAC has been reported: after an
    /// upgrade every old entry lacks one, and one warning says it all.
    reported: Arc<AtomicBool>,
}

impl std::fmt::Debug for PrecompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrecompileCache")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl PrecompileCache {
    /// A cache in `folder`, created (0700) if missing and tightened to
    /// the owner if not, whose entries are authenticated with `key` (in
    /// the host, `TokenCipher::derive_key(CACHE_KEY_LABEL)`).
    pub fn open(folder: impl Into<PathBuf>, key: &[u8; 32]) -> std::io::Result<Self> {
        let folder = folder.into();
        if private_folder(&folder)? {
            tracing::warn!(
                "the precompile cache {} was open to other users: now only its owner can use it",
                folder.display()
            );
        }
        Ok(PrecompileCache {
            folder,
            key: Arc::new(Zeroizing::new(*key)),
            reported: Arc::new(AtomicBool::new(false)),
        })
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

    fn mac(&self, entry: &Path, compiled: &[u8]) -> [u8; MAC_BYTES] {
        let name = entry
            .file_name()
            .map(|name| name.as_encoded_bytes())
            .unwrap_or_default();
        hmac_sha256(self.key.as_slice(), &[name, &[0], compiled])
    }

    /// The compiled component of an entry's bytes, if they carry this
    /// host's MAC for this entry.
    fn authenticated<'a>(&self, entry: &Path, serialized: &'a [u8]) -> Option<&'a [u8]> {
        let rest = serialized.strip_prefix(MAGIC)?;
        let (mac, compiled) = rest.split_at_checked(MAC_BYTES)?;
        bool::from(self.mac(entry, compiled).ct_eq(mac)).then_some(compiled)
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
            match self.authenticated(&entry, &serialized) {
                Some(compiled) => {
                    // SAFETY: `compiled` carries this host's MAC over the
                    // entry's name and contents, and only this host (holder
                    // of the host key) computes it, over the output of
                    // `precompile_component` of an engine with the same
                    // compatibility hash (it is in the name). Wasmtime's
                    // own header checks are no defence against a well-formed
                    // foreign file; the MAC is.
                    match unsafe { Component::deserialize(engine, compiled) } {
                        Ok(component) => return Ok((component, CompileSource::Cached)),
                        Err(e) => tracing::warn!(
                            "precompile cache entry {} unusable ({e}); recompiling",
                            entry.display()
                        ),
                    }
                }
                None => self.report_unauthenticated(&entry),
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

    fn report_unauthenticated(&self, entry: &Path) {
        if !self.reported.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "precompile cache entry {} is not authenticated by this host's key \
                 (written by an older scimlink, under another key, or by someone else); \
                 recompiling it and any other such entry",
                entry.display()
            );
        } else {
            tracing::debug!(
                "precompile cache entry {} is not authenticated; recompiling",
                entry.display()
            );
        }
    }

    fn write(&self, entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
        let mut temporary = tempfile::NamedTempFile::new_in(&self.folder)?;
        temporary.write_all(MAGIC)?;
        temporary.write_all(&self.mac(entry, compiled))?;
        temporary.write_all(compiled)?;
        temporary.as_file().sync_all()?;
        temporary.persist(entry).map_err(|e| e.error)?;
        Ok(())
    }
}
