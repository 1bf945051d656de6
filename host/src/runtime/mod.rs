//! The connector runtime: loads connector components, keeps them inside
//! their limits, and swaps versions while the host runs.
//!
//! | file | what it owns |
//! |---|---|
//! | `contract/` | the WIT contract: the supported versions, one file each (bindings, host functions, emulated calls, conversions to the newest types) |
//! | `wasm.rs` | the wasmtime engine, pooling allocator, linker, epoch ticker |
//! | `limits.rs` | memory cap, component limits, CPU deadline, output cap; the capability-free WASI context |
//! | `plugin.rs` | one loaded version: warm instances, calls, cost receipts |
//! | `check.rs` | what `plugin check` reports of a component, for the CLI and the API |
//! | `validate.rs` | checks of every output, and the smoke-call fixtures |
//! | `cache.rs` | the precompile cache |
//! | `loader.rs` | bytes → compiled, linked, validated version |
//! | `registry.rs` | which version of each connector serves; hot swap and rollback |
//! | `watcher.rs` | the plugins folder watched for changes |
//! | `events.rs` | what the runtime reports |
//! | `history.rs` | the versions each connector served, on disk, for rollback |
//!
//! A connector never sees a credential, a file, a socket or the
//! environment; it can only return data, and the host checks that data
//! before anything uses it.

pub mod cache;
pub mod check;
pub mod contract;
pub mod events;
pub mod history;
pub mod limits;
pub mod loader;
pub mod plugin;
pub mod registry;
pub mod validate;
pub mod wasm;
pub mod watcher;

use std::borrow::Cow;

pub use contract::{CURRENT as CURRENT_CONTRACT, ContractVersion};
pub use events::{EventSink, RuntimeEvent};
pub use limits::{ComponentLimits, PluginLimits};
pub use loader::{LoadError, LoadReport, Loader};
pub use plugin::{
    CallReceipt, Called, LoadedPlugin, PluginError, PluginErrorKind, PluginIdentity, ReceiptTap,
};
pub use registry::{PluginRegistry, SyncReport};
pub use wasm::{Runtime, RuntimeConfig};
pub use watcher::FolderWatcher;

/// Longest text from a plugin kept in a log line or an event.
const MAX_LOGGED_BYTES: usize = 2048;

/// `text` cut to [`MAX_LOGGED_BYTES`] on a character boundary.
pub(crate) fn truncate_for_log(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_LOGGED_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_LOGGED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes in all)", &text[..end], text.len()))
}
