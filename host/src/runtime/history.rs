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
//!   stops a version from serving;
//! - a name becomes a path only when it is `[a-z0-9-]{1,64}` and a sha256
//!   only when it is 64 lowercase hex digits, whoever supplied it (an API
//!   request, a command line, a line of `served.log`): neither can then
//!   hold a separator or `..`, so no path built here leaves its folder.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One version that served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub sha256: String,
    pub version: String,
}

/// Whether `name` may name a connector in the history: 1 to 64 of
/// `a-z`, `0-9` and `-` (what a manifest name may be, and nothing that can
/// leave a folder).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `sha256` is a sha256 as this history writes it: 64 lowercase hex
/// digits.
pub fn valid_sha256(sha256: &str) -> bool {
    sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a rollback target could not be found.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0:?} is not a connector name: 1 to 64 characters of a-z, 0-9 and -")]
    BadName(String),
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

    /// `name`'s folder, once `name` is known to stay inside the history.
    fn folder_of(&self, name: &str) -> Result<PathBuf, HistoryError> {
        if valid_name(name) {
            Ok(self.folder.join(name))
        } else {
            Err(HistoryError::BadName(name.to_owned()))
        }
    }

    fn log_path(&self, name: &str) -> Result<PathBuf, HistoryError> {
        Ok(self.folder_of(name)?.join("served.log"))
    }

    /// The stored bytes of a version; `None` when the name or the sha256
    /// is not one this history could have written.
    pub fn component_path(&self, name: &str, sha256: &str) -> Option<PathBuf> {
        let folder = self.folder_of(name).ok()?;
        valid_sha256(sha256).then(|| folder.join(format!("{sha256}.wasm")))
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
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        let folder = self
            .folder_of(name)
            .map_err(|error| invalid(error.to_string()))?;
        let component = self
            .component_path(name, sha256)
            .ok_or_else(|| invalid(format!("{sha256:?} is not a sha256")))?;
        std::fs::create_dir_all(&folder)?;
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
            .open(folder.join("served.log"))?;
        writeln!(log, "{sha256} {version}")
    }

    /// The versions that served as `name`, oldest first.
    pub fn served(&self, name: &str) -> Result<Vec<Served>, HistoryError> {
        let path = self.log_path(name)?;
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
                if !valid_sha256(sha256) {
                    // Only this history writes the log; a line it could not
                    // have written is never trusted with a path.
                    tracing::warn!(
                        "skipping a line of {} that does not start with a sha256: {:?}",
                        path.display(),
                        line.chars().take(100).collect::<String>()
                    );
                    return None;
                }
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
        // `served` let only valid names and sha256s through.
        let source = self
            .component_path(name, &previous.sha256)
            .ok_or_else(|| HistoryError::BadName(name.to_owned()))?;
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
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let folder = tempfile::tempdir().unwrap();
        let history = History::new(folder.path());
        assert!(matches!(
            history.rollback_target("x"),
            Err(HistoryError::NoHistory { .. })
        ));
        history.record("x", "1.0.0", &a, Some(b"one")).unwrap();
        assert!(matches!(
            history.rollback_target("x"),
            Err(HistoryError::NothingBefore(_))
        ));
        history.record("x", "2.0.0", &b, Some(b"two")).unwrap();
        history.record("x", "2.0.0", &b, Some(b"two")).unwrap();
        let (current, previous) = history.rollback_target("x").unwrap();
        assert_eq!(
            (current.version.as_str(), previous.version.as_str()),
            ("2.0.0", "1.0.0")
        );
        assert_eq!(
            std::fs::read(history.component_path("x", &a).unwrap()).unwrap(),
            b"one"
        );
        // Rolling back serves 1.0.0 again; rolling back once more undoes it.
        history.record("x", "1.0.0", &a, Some(b"one")).unwrap();
        let (_, previous) = history.rollback_target("x").unwrap();
        assert_eq!(previous.version, "2.0.0");
        assert_eq!(history.served("x").unwrap().len(), 3);
    }

    #[test]
    fn a_name_that_could_leave_the_folder_is_refused_everywhere() {
        let root = tempfile::tempdir().unwrap();
        let history = History::new(root.path().join("plugin-history"));
        let plugins = root.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        // A log planted beside the history, where `../x` would find it.
        std::fs::create_dir_all(root.path().join("x")).unwrap();
        std::fs::write(
            root.path().join("x/served.log"),
            format!("{} 1.0.0\n{} 2.0.0\n", "a".repeat(64), "b".repeat(64)),
        )
        .unwrap();
        for name in ["../x", "..", "x/y", "X", "", "x.y", &"a".repeat(65), "é"] {
            assert!(!valid_name(name), "{name:?}");
            assert!(
                matches!(history.served(name), Err(HistoryError::BadName(_))),
                "{name:?}"
            );
            assert!(
                matches!(
                    history.restore_previous(name, &plugins),
                    Err(RestoreError::History(HistoryError::BadName(_)))
                ),
                "{name:?}"
            );
            assert!(
                history
                    .record(name, "1.0.0", &"a".repeat(64), Some(b"x"))
                    .is_err()
            );
            assert!(history.component_path(name, &"a".repeat(64)).is_none());
        }
        assert!(valid_name("custom-scim") && valid_name(&"a".repeat(64)));
        assert_eq!(std::fs::read_dir(&plugins).unwrap().count(), 0);
    }

    #[test]
    fn a_log_line_without_a_sha256_is_skipped() {
        let folder = tempfile::tempdir().unwrap();
        let history = History::new(folder.path());
        let good = "c".repeat(64);
        history.record("x", "1.0.0", &good, Some(b"one")).unwrap();
        let log = folder.path().join("x/served.log");
        let mut text = std::fs::read_to_string(&log).unwrap();
        for bad in [
            "../../../etc/passwd 6.6.6".to_string(),
            format!("{} 7.0.0", "C".repeat(64)),
            format!("{} 8.0.0", "c".repeat(63)),
            format!("{}/ 9.0.0", "c".repeat(63)),
        ] {
            text.push_str(&bad);
            text.push('\n');
        }
        std::fs::write(&log, text).unwrap();
        let served = history.served("x").unwrap();
        assert_eq!(
            served,
            vec![Served {
                sha256: good,
                version: "1.0.0".into()
            }]
        );
        assert!(history.record("x", "1.0.0", "../evil", Some(b"x")).is_err());
        assert!(!valid_sha256(&"C".repeat(64)) && valid_sha256(&"0".repeat(64)));
    }
}
