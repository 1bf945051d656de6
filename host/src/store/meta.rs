//! Host metadata: small named values the host keeps beside its data (the
//! admin token's hash, host-wide defaults).

use super::*;

pub trait MetaStore: Send + Sync {
    // Host metadata.
    fn meta(&self, key: &str) -> StoreResult<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()>;
}
