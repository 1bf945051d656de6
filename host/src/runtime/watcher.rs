//! Watches the plugins folder and syncs the registry when it changes.
//!
//! Invariants:
//! - bursts of file events are debounced: the registry syncs once the
//!   folder has been quiet for the debounce interval, so a file copied in
//!   several writes is validated once, complete;
//! - a sync compares contents (sha256), not events, so a missed or
//!   duplicated event never leaves the registry out of step for longer
//!   than the next event or poll;
//! - a folder that is missing, or removed while watched, is polled for
//!   until it is back; what was loaded keeps serving meanwhile.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::registry::PluginRegistry;

/// How long the folder must be quiet before a sync.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(25);

/// How often a folder that cannot be watched is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);

enum Signal {
    Changed,
    Lost,
    Stop,
}

/// A running watch; dropping it stops the watch thread.
pub struct FolderWatcher {
    signals: mpsc::Sender<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl FolderWatcher {
    /// Syncs `registry` now and then after every change of its folder.
    pub fn start(registry: Arc<PluginRegistry>, debounce: Duration) -> std::io::Result<Self> {
        let (signals, receiver) = mpsc::channel();
        let events = signals.clone();
        let thread = std::thread::Builder::new()
            .name("scimlink-plugins-watch".into())
            .spawn(move || watch_loop(&registry, debounce, &events, &receiver))?;
        Ok(FolderWatcher {
            signals,
            thread: Some(thread),
        })
    }
}

impl Drop for FolderWatcher {
    fn drop(&mut self) {
        let _ = self.signals.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch_loop(
    registry: &PluginRegistry,
    debounce: Duration,
    sender: &mpsc::Sender<Signal>,
    signals: &mpsc::Receiver<Signal>,
) {
    let mut watcher: Option<RecommendedWatcher> = None;
    let mut last_attempt: Option<Instant> = None;
    let mut reported_missing = false;
    loop {
        if watcher.is_none() && last_attempt.is_none_or(|at| at.elapsed() >= RETRY_INTERVAL) {
            last_attempt = Some(Instant::now());
            watcher = start_watch(registry.folder(), sender.clone());
            // The folder's state now is what serves. A missing folder is
            // reported once, not at every retry.
            let present = registry.folder().is_dir();
            if present || !reported_missing {
                registry.sync();
            }
            reported_missing = !present;
        }
        let wait = if watcher.is_some() {
            Duration::from_secs(3600)
        } else {
            RETRY_INTERVAL
        };
        match signals.recv_timeout(wait) {
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Signal::Lost) => {
                watcher = None;
                last_attempt = None;
            }
            Ok(Signal::Changed) => {
                // Debounce: wait until the folder has been quiet.
                loop {
                    match signals.recv_timeout(debounce) {
                        Ok(Signal::Changed) => continue,
                        Ok(Signal::Lost) => {
                            watcher = None;
                            break;
                        }
                        Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => break,
                    }
                }
                registry.sync();
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// What a file event means for the watch. A file opened or read changes
/// nothing, and the registry's own sync reads every file: were reads
/// changes, each sync would set off the next, for ever.
fn signal_of(event: notify::Result<notify::Event>, watched: &Path) -> Option<Signal> {
    match event {
        Ok(event) if event.kind.is_remove() && event.paths.iter().any(|p| p == watched) => {
            Some(Signal::Lost)
        }
        // Closing a file written to is the end of a change; every other
        // access is a read.
        Ok(notify::Event {
            kind: EventKind::Access(access),
            ..
        }) if access != AccessKind::Close(AccessMode::Write) => None,
        Ok(_) => Some(Signal::Changed),
        Err(_) => Some(Signal::Lost),
    }
}

fn start_watch(folder: &Path, sender: mpsc::Sender<Signal>) -> Option<RecommendedWatcher> {
    let watched = folder.to_path_buf();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Some(signal) = signal_of(event, &watched) {
            let _ = sender.send(signal);
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::error!("{}: cannot watch for changes: {e}", folder.display());
            return None;
        }
    };
    match watcher.watch(folder, RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(e) => {
            tracing::debug!("{}: cannot watch for changes yet: {e}", folder.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_signal(signals: &mpsc::Receiver<Signal>, within: Duration) -> Option<&'static str> {
        signals
            .recv_timeout(within)
            .ok()
            .map(|signal| match signal {
                Signal::Changed => "changed",
                Signal::Lost => "lost",
                Signal::Stop => "stop",
            })
    }

    /// The registry reads every file of the folder at each sync: reading
    /// must not count as a change, or an idle host syncs without end.
    #[test]
    fn reading_the_folder_is_no_change_and_writing_to_it_is() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("connector.wasm");
        std::fs::write(&file, b"first").unwrap();
        let (sender, signals) = mpsc::channel();
        let _watch = start_watch(folder.path(), sender).unwrap();

        for _ in 0..3 {
            assert_eq!(std::fs::read(&file).unwrap(), b"first");
            let _ = std::fs::read_dir(folder.path()).unwrap().count();
        }
        assert_eq!(next_signal(&signals, Duration::from_millis(300)), None);

        std::fs::write(&file, b"second").unwrap();
        assert_eq!(
            next_signal(&signals, Duration::from_secs(5)),
            Some("changed")
        );
    }
}
