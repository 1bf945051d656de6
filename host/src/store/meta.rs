//! Host metadata: small named values the host keeps beside its data (the
//! admin token's hash, host-wide defaults).

use super::*;

pub trait MetaStore: Send + Sync {
    // Host metadata.
    fn meta(&self, key: &str) -> StoreResult<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()>;
    /// Sets `key` to `value` unless it holds a value already; the value it
    /// holds afterwards. Of hosts setting one key at once, one wins and
    /// every one of them learns which.
    fn set_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String>;
}
