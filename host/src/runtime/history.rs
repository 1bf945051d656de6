//! The serving history of each connector, on disk, so that an operator can
//! roll back to the version that served before — also after a restart, and
//! from another process (`scimlink plugin rollback`).
//!
//! Layout, under the history folder:
//!
//! ```text
//! NAME/served.log          one line per version that started serving: "SHA256 VERSION"
//! NAME/SHA256.wasm         the bytes of every version that served
//! ```
//!
//! Invariants:
//! - a version's bytes are written (temporary file + rename) before its
//!   line is appended, so every line names bytes that exist;
//! - consecutive lines never repeat a sha256: the log is the order in which
//!   distinct versions took over;
//! - the history is a convenience: failing to write it is logged, never
//!   stops a version from serving.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One version that served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub sha256: String,
    pub version: String,
}

/// Why a rollback target could not be found.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("no serving history for connector `{name}` in {folder}")]
    NoHistory { name: String, folder: String },
    #[error("connector `{0}` has served only one version: there is nothing to roll back to")]
    NothingBefore(String),
    #[error("cannot read the serving history {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// A history folder (`DATA/plugin-history`).
#[derive(Debug, Clone)]
pub struct History {
    folder: PathBuf,
}

impl History {
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        History {
            folder: folder.into(),
        }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.folder.join(name).join("served.log")
    }

    /// The stored bytes of a version.
    pub fn component_path(&self, name: &str, sha256: &str) -> PathBuf {
        self.folder.join(name).join(format!("{sha256}.wasm"))
    }

    /// Records that version `version` (sha256 `sha256`) now serves as
    /// `name`; `bytes` are stored when the history lacks them.
    pub fn record(
        &self,
        name: &str,
        version: &str,
        sha256: &str,
        bytes: Option<&[u8]>,
    ) -> std::io::Result<()> {
        let folder = self.folder.join(name);
        std::fs::create_dir_all(&folder)?;
        let component = self.component_path(name, sha256);
        if let Some(bytes) = bytes.filter(|_| !component.exists()) {
            let mut temporary = tempfile::NamedTempFile::new_in(&folder)?;
            temporary.write_all(bytes)?;
            temporary.persist(&component).map_err(|e| e.error)?;
        }
        if self
            .served(name)
            .ok()
            .and_then(|log| log.last().cloned())
            .is_some_and(|last| last.sha256 == sha256)
        {
            return Ok(());
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))?;
        writeln!(log, "{sha256} {version}")
    }

    /// The versions that served as `name`, oldest first.
    pub fn served(&self, name: &str) -> Result<Vec<Served>, HistoryError> {
        let path = self.log_path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HistoryError::NoHistory {
                    name: name.to_owned(),
                    folder: self.folder.display().to_string(),
                });
            }
            Err(e) => {
                return Err(HistoryError::Unreadable {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        Ok(text
            .lines()
            .filter_map(|line| {
                let (sha256, version) = line.split_once(' ')?;
                Some(Served {
                    sha256: sha256.to_owned(),
                    version: version.to_owned(),
                })
            })
            .collect())
    }

    /// The version serving now and the one that served before it.
    pub fn rollback_target(&self, name: &str) -> Result<(Served, Served), HistoryError> {
        let served = self.served(name)?;
        let Some(current) = served.last().cloned() else {
            return Err(HistoryError::NothingBefore(name.to_owned()));
        };
        let previous = served
            .iter()
            .rev()
            .find(|entry| entry.sha256 != current.sha256)
            .cloned()
            .ok_or_else(|| HistoryError::NothingBefore(name.to_owned()))?;
        Ok((current, previous))
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Puts the version of `name` that served before the current one back
    /// into the plugins folder, in place of the current one's file. A
    /// running host picks it up like any deploy.
    pub fn restore_previous(&self, name: &str, plugins: &Path) -> Result<Restored, RestoreError> {
        let (current, previous) = self.rollback_target(name)?;
        let target = file_holding(plugins, &current.sha256)
            .unwrap_or_else(|| plugins.join(format!("{name}.wasm")));
        let source = self.component_path(name, &previous.sha256);
        // Copy beside, then rename: the host never reads half a file.
        let temporary = plugins.join(format!(".{name}.rollback"));
        if let Err(error) =
            std::fs::copy(&source, &temporary).and_then(|_| std::fs::rename(&temporary, &target))
        {
            let _ = std::fs::remove_file(&temporary);
            return Err(RestoreError::Io {
                source_file: source.display().to_string(),
                target: target.display().to_string(),
                reason: error.to_string(),
            });
        }
        Ok(Restored {
            name: name.to_owned(),
            from_version: current.version,
            to_version: previous.version,
            file: target,
        })
    }
}

/// What a rollback put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub name: String,
    pub from_version: String,
    pub to_version: String,
    /// The plugins-folder file that now holds the restored version.
    pub file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("cannot put {source_file} in place of {target}: {reason}")]
    Io {
        source_file: String,
        target: String,
        reason: String,
    },
}

/// The `*.wasm` file of `folder` whose contents have this sha256.
fn file_holding(folder: &Path, sha256: &str) -> Option<PathBuf> {
    use sha2::{Digest, Sha256};
    std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .find(|path| {
            std::fs::read(path).is_ok_and(|bytes| hex::encode(Sha256::digest(&bytes)) == sha256)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_version_is_the_last_one_that_differs() {
        let folder = tempfile::tempdir().unwrap();
        let history = History::new(folder.path());
        assert!(matches!(
            history.rollback_target("x"),
            Err(HistoryError::NoHistory { .. })
        ));
        history.record("x", "1.0.0", "aaa", Some(b"one")).unwrap();
        assert!(matches!(
            history.rollback_target("x"),
            Err(HistoryError::NothingBefore(_))
        ));
        history.record("x", "2.0.0", "bbb", Some(b"two")).unwrap();
        history.record("x", "2.0.0", "bbb", Some(b"two")).unwrap();
        let (current, previous) = history.rollback_target("x").unwrap();
        assert_eq!(
            (current.version.as_str(), previous.version.as_str()),
            ("2.0.0", "1.0.0")
        );
        assert_eq!(
            std::fs::read(history.component_path("x", "aaa")).unwrap(),
            b"one"
        );
        // Rolling back serves 1.0.0 again; rolling back once more undoes it.
        history.record("x", "1.0.0", "aaa", Some(b"one")).unwrap();
        let (_, previous) = history.rollback_target("x").unwrap();
        assert_eq!(previous.version, "2.0.0");
        assert_eq!(history.served("x").unwrap().len(), 3);
    }
}
