//! [`OutboxStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl OutboxStore for PostgresStore {
    fn claim_changes(
        &self,
        consumer: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<Change>> {
        todo!()
    }

    fn renew_claims(
        &self,
        consumer: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>> {
        todo!()
    }

    fn complete_changes(&self, consumer: &str, seqs: &[i64]) -> StoreResult<()> {
        todo!()
    }

    fn defer_changes(&self, consumer: &str, until: &[(i64, Timestamp)]) -> StoreResult<()> {
        todo!()
    }

    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>> {
        todo!()
    }

    fn record_progress(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()> {
        todo!()
    }

    fn pending_changes(&self) -> StoreResult<u64> {
        todo!()
    }
}
