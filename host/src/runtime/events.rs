//! What the runtime reports: loads, rejections, swaps, rollbacks and failed
//! calls. Every event is also a log line; subscribers (the audit trail, the
//! tests) receive them through a broadcast channel.

use serde::Serialize;
use tokio::sync::broadcast;

/// One thing that happened to a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RuntimeEvent {
    /// A version was validated and now serves.
    PluginLoaded {
        plugin: String,
        version: String,
        contract: String,
        file: String,
        /// It replaced this version, if another one served before.
        replaced: Option<String>,
        from_cache: bool,
        elapsed_ms: u64,
    },
    /// A file could not become a serving version.
    PluginRejected {
        file: String,
        reason: String,
        /// The version of the file's plugin that keeps serving, if any.
        still_serving: Option<String>,
    },
    /// A file was removed and its plugin no longer serves.
    PluginRemoved {
        plugin: String,
        version: String,
        file: String,
    },
    /// An operator rolled a plugin back to its previous version.
    PluginRolledBack {
        plugin: String,
        from_version: String,
        to_version: String,
    },
    /// A call into a plugin failed through the plugin's fault.
    PluginCallFailed {
        plugin: String,
        call: String,
        reason: String,
    },
    /// The plugins folder could not be read; what was loaded keeps serving.
    PluginsFolderUnreadable { folder: String, reason: String },
}

/// Fans runtime events out to logs and subscribers.
#[derive(Debug, Clone)]
pub struct EventSink {
    sender: broadcast::Sender<RuntimeEvent>,
}

impl Default for EventSink {
    fn default() -> Self {
        EventSink {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl EventSink {
    /// Receives every event emitted from now on. A subscriber that falls
    /// more than 1,024 events behind loses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.sender.subscribe()
    }

    pub fn emit(&self, event: RuntimeEvent) {
        match &event {
            RuntimeEvent::PluginLoaded {
                plugin,
                version,
                file,
                replaced,
                from_cache,
                elapsed_ms,
                ..
            } => match replaced {
                Some(old) => tracing::info!(
                    "plugin {plugin} {old} → {version} from {file} ({elapsed_ms} ms{})",
                    if *from_cache { ", cached" } else { "" }
                ),
                None => tracing::info!(
                    "plugin {plugin} {version} loaded from {file} ({elapsed_ms} ms{})",
                    if *from_cache { ", cached" } else { "" }
                ),
            },
            RuntimeEvent::PluginRejected {
                file,
                reason,
                still_serving,
            } => match still_serving {
                Some(version) => tracing::error!("{file}: {reason} (still serving {version})"),
                None => tracing::error!("{file}: {reason}"),
            },
            RuntimeEvent::PluginRemoved {
                plugin,
                version,
                file,
            } => tracing::info!("plugin {plugin} {version} removed ({file} is gone)"),
            RuntimeEvent::PluginRolledBack {
                plugin,
                from_version,
                to_version,
            } => tracing::warn!("plugin {plugin} rolled back from {from_version} to {to_version}"),
            RuntimeEvent::PluginCallFailed {
                plugin,
                call,
                reason,
            } => tracing::warn!("plugin {plugin}, {call}: {reason}"),
            RuntimeEvent::PluginsFolderUnreadable { folder, reason } => {
                tracing::error!("{folder}: {reason} (serving what was loaded)")
            }
        }
        // No subscriber is not an error: the log line above is the record.
        let _ = self.sender.send(event);
    }
}
