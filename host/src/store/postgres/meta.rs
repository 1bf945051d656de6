//! [`MetaStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl MetaStore for PostgresStore {
    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        todo!()
    }

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        todo!()
    }
}
