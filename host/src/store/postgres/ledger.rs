//! [`LedgerStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl LedgerStore for PostgresStore {
    fn ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        todo!()
    }

    fn ledger_entries(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<LedgerEntry>> {
        todo!()
    }

    fn remote_ids(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        todo!()
    }

    fn ledger_holder(
        &self,
        app_id: &str,
        object_kind: &str,
        remote_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        todo!()
    }

    fn count_ledger_entries(
        &self,
        app_id: &str,
        object_kind: &str,
        excluding_hash: &str,
    ) -> StoreResult<u64> {
        todo!()
    }

    fn put_ledger_entry(&self, entry: &LedgerEntry) -> StoreResult<()> {
        todo!()
    }

    fn remove_ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<()> {
        todo!()
    }

    fn put_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        todo!()
    }

    fn dead_letters(&self, app_id: &str) -> StoreResult<Vec<DeadLetter>> {
        todo!()
    }

    fn replay_dead_letters(&self, app_id: &str, object_ids: Option<&[String]>) -> StoreResult<u64> {
        todo!()
    }

    fn record_with_ledger(&self, change: LedgerChange<'_>, event: Event) -> StoreResult<()> {
        todo!()
    }
}
