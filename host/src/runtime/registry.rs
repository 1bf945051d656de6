//! Which version of each connector serves, kept in step with the plugins
//! folder.
//!
//! Invariants:
//! - the serving set is an immutable map behind an `ArcSwap`: a reader
//!   takes an `Arc` of one version and keeps it for its whole call, so a
//!   swap never interrupts a call in flight, and every call is answered by
//!   exactly one version;
//! - a file becomes a serving version only after the loader validated it;
//!   a file that fails leaves the version it would have replaced serving
//!   and emits [`RuntimeEvent::PluginRejected`];
//! - writers (folder syncs, rollbacks) are serialized by one mutex; readers
//!   never take it;
//! - a connector name is served from one file at a time: a second file
//!   claiming a served name is rejected;
//! - the version a swap (or a removal) replaced is kept as the previous
//!   version, so an operator can roll back to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

use super::events::{EventSink, RuntimeEvent};
use super::history::History;
use super::loader::Loader;
use super::plugin::LoadedPlugin;

type Serving = BTreeMap<String, Arc<LoadedPlugin>>;

/// What one folder sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Versions that now serve (new plugins and replacements).
    pub loaded: Vec<String>,
    /// Files refused, with the reason.
    pub rejected: Vec<String>,
    /// Plugins whose file is gone.
    pub removed: Vec<String>,
}

/// Why a rollback did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RollbackError {
    #[error("there is no previous version of connector `{0}` to roll back to")]
    NoPrevious(String),
}

#[derive(Default)]
struct FileRecord {
    sha256: String,
    /// The connector this file serves, when it does.
    serves: Option<String>,
}

#[derive(Default)]
struct WriterState {
    files: BTreeMap<String, FileRecord>,
    previous: BTreeMap<String, Arc<LoadedPlugin>>,
}

/// The serving versions of every connector.
pub struct PluginRegistry {
    loader: Loader,
    folder: PathBuf,
    serving: ArcSwap<Serving>,
    writer: Mutex<WriterState>,
    events: EventSink,
    history: Option<History>,
}

impl PluginRegistry {
    /// A registry for the `*.wasm` files of `folder`, reporting to the
    /// loader's event sink. Nothing is loaded until [`sync`](Self::sync).
    pub fn new(loader: Loader, folder: impl Into<PathBuf>) -> Self {
        PluginRegistry {
            events: loader.events().clone(),
            loader,
            folder: folder.into(),
            serving: ArcSwap::from_pointee(BTreeMap::new()),
            writer: Mutex::new(WriterState::default()),
            history: None,
        }
    }

    /// Records every version that starts serving in `history`, so it can
    /// be rolled back to later (`scimlink plugin rollback`).
    pub fn with_history(mut self, history: History) -> Self {
        self.history = Some(history);
        self
    }

    fn record_history(&self, plugin: &LoadedPlugin, bytes: Option<&[u8]>) {
        let Some(history) = &self.history else { return };
        let identity = plugin.identity();
        if let Err(e) = history.record(&identity.name, &identity.version, &identity.sha256, bytes) {
            tracing::warn!(
                "cannot record {identity} in the serving history {}: {e}",
                history.folder().display()
            );
        }
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn events(&self) -> &EventSink {
        &self.events
    }

    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The serving version of a connector.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.serving.load().get(name).cloned()
    }

    /// Every serving version, by name.
    pub fn list(&self) -> Vec<Arc<LoadedPlugin>> {
        self.serving.load().values().cloned().collect()
    }

    /// Brings the serving set in step with the folder: loads new and
    /// changed files, unloads removed ones. Unchanged files (same sha256)
    /// cost one read.
    pub fn sync(&self) -> SyncReport {
        let mut writer = match self.writer.lock() {
            Ok(writer) => writer,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut report = SyncReport::default();
        let folder = match Dir::open_ambient_dir(&self.folder, ambient_authority()) {
            Ok(folder) => folder,
            Err(e) => {
                self.events.emit(RuntimeEvent::PluginsFolderUnreadable {
                    folder: self.folder.display().to_string(),
                    reason: format!("cannot open the plugins folder: {e}"),
                });
                return report;
            }
        };
        let on_disk = match component_files(&folder) {
            Ok(names) => names,
            Err(e) => {
                self.events.emit(RuntimeEvent::PluginsFolderUnreadable {
                    folder: self.folder.display().to_string(),
                    reason: format!("cannot list the plugins folder: {e}"),
                });
                return report;
            }
        };

        for file_name in &on_disk {
            self.sync_file(&mut writer, &folder, file_name, &on_disk, &mut report);
        }
        let gone: Vec<String> = writer
            .files
            .keys()
            .filter(|name| !on_disk.contains(*name))
            .cloned()
            .collect();
        for file_name in gone {
            let Some(record) = writer.files.remove(&file_name) else {
                continue;
            };
            let Some(name) = record.serves else { continue };
            let path = self.folder.join(&file_name);
            let mut serving = Serving::clone(&self.serving.load());
            // The connector may be served from another file by now (the
            // file was renamed): then nothing is unloaded.
            let from_this_file = serving
                .get(&name)
                .is_some_and(|p| p.identity().file.as_deref() == Some(path.as_path()));
            if from_this_file && let Some(old) = serving.remove(&name) {
                self.serving.store(Arc::new(serving));
                old.retire();
                self.events.emit(RuntimeEvent::PluginRemoved {
                    plugin: name.clone(),
                    version: old.identity().version.clone(),
                    file: path.display().to_string(),
                });
                writer.previous.insert(name.clone(), old);
                report.removed.push(name);
            }
        }
        report
    }

    fn sync_file(
        &self,
        writer: &mut WriterState,
        folder: &Dir,
        file_name: &str,
        on_disk: &[String],
        report: &mut SyncReport,
    ) {
        let path = self.folder.join(file_name);
        let bytes = match folder.read(file_name) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.reject(
                    writer,
                    &path,
                    file_name,
                    format!("cannot read it: {e}"),
                    report,
                );
                return;
            }
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if writer
            .files
            .get(file_name)
            .is_some_and(|record| record.sha256 == sha256)
        {
            return;
        }
        let (plugin, load) = match self.loader.load_bytes(&bytes, &path) {
            Ok(loaded) => loaded,
            Err(e) => {
                let record = writer.files.entry(file_name.to_owned()).or_default();
                record.sha256 = sha256;
                self.reject(writer, &path, file_name, e.reason, report);
                return;
            }
        };
        let name = plugin.name().to_owned();
        let serving_now = self.serving.load();
        // Another file serving the same connector is a conflict, unless
        // that file is gone (a rename): then this one takes over.
        let still_on_disk = |file: &Path| {
            file.file_name()
                .is_some_and(|f| on_disk.iter().any(|n| f.to_string_lossy() == n.as_str()))
        };
        if let Some(current) = serving_now.get(&name)
            && let Some(other_file) = current.identity().file.as_deref()
            && other_file != path
            && still_on_disk(other_file)
        {
            let other = other_file.display().to_string();
            let record = writer.files.entry(file_name.to_owned()).or_default();
            record.sha256 = sha256;
            self.reject(
                writer,
                &path,
                file_name,
                format!("connector `{name}` is already served from {other}"),
                report,
            );
            return;
        }
        // The file may have served another connector name before.
        let previous_name = writer.files.get(file_name).and_then(|r| r.serves.clone());
        let mut serving = Serving::clone(&serving_now);
        if let Some(previous_name) = previous_name.filter(|n| *n != name)
            && let Some(old) = serving.remove(&previous_name)
        {
            old.retire();
            writer.previous.insert(previous_name, old);
        }
        self.record_history(&plugin, Some(&bytes));
        let plugin = Arc::new(plugin);
        let replaced = serving.insert(name.clone(), Arc::clone(&plugin));
        self.serving.store(Arc::new(serving));
        self.events.emit(RuntimeEvent::PluginLoaded {
            plugin: name.clone(),
            version: plugin.identity().version.clone(),
            contract: plugin.identity().contract.clone(),
            file: path.display().to_string(),
            replaced: replaced.as_ref().map(|old| old.identity().version.clone()),
            from_cache: load.from_cache,
            elapsed_ms: u64::try_from(load.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(old) = replaced {
            old.retire();
            writer.previous.insert(name.clone(), old);
        }
        writer.files.insert(
            file_name.to_owned(),
            FileRecord {
                sha256,
                serves: Some(name),
            },
        );
        report.loaded.push(plugin.identity().to_string());
    }

    fn reject(
        &self,
        writer: &WriterState,
        path: &Path,
        file_name: &str,
        reason: String,
        report: &mut SyncReport,
    ) {
        let still_serving = writer
            .files
            .get(file_name)
            .and_then(|record| record.serves.as_deref())
            .and_then(|name| self.get(name))
            .map(|plugin| plugin.identity().to_string());
        report
            .rejected
            .push(format!("{}: {reason}", path.display()));
        self.events.emit(RuntimeEvent::PluginRejected {
            file: path.display().to_string(),
            reason,
            still_serving,
        });
    }

    /// Serves the previous version of `name` again; the version it replaces
    /// becomes the previous one (so a second rollback undoes the first).
    pub fn rollback(&self, name: &str) -> Result<Arc<LoadedPlugin>, RollbackError> {
        let mut writer = match self.writer.lock() {
            Ok(writer) => writer,
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = writer
            .previous
            .remove(name)
            .ok_or_else(|| RollbackError::NoPrevious(name.to_owned()))?;
        previous.activate();
        self.record_history(&previous, None);
        let mut serving = Serving::clone(&self.serving.load());
        let current = serving.insert(name.to_owned(), Arc::clone(&previous));
        self.serving.store(Arc::new(serving));
        if let Some(file) = previous
            .identity()
            .file
            .as_ref()
            .and_then(|f| f.file_name())
            && let Some(record) = writer.files.get_mut(&*file.to_string_lossy())
        {
            record.serves = Some(name.to_owned());
        }
        self.events.emit(RuntimeEvent::PluginRolledBack {
            plugin: name.to_owned(),
            from_version: current
                .as_ref()
                .map(|c| c.identity().version.clone())
                .unwrap_or_else(|| "(none)".to_owned()),
            to_version: previous.identity().version.clone(),
        });
        if let Some(current) = current {
            current.retire();
            writer.previous.insert(name.to_owned(), current);
        }
        Ok(previous)
    }
}

/// The `*.wasm` regular files of a folder, by name. Hidden files and
/// anything else are ignored (a deploy that writes `.name.wasm.tmp` and
/// renames it is picked up once, complete).
fn component_files(folder: &Dir) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in folder.entries()? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".wasm") {
            continue;
        }
        if entry.file_type()?.is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
