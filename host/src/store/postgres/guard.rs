//! [`GuardStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl GuardStore for PostgresStore {
    fn guard_offboarding(
        &self,
        app_id: &str,
        object: &HeldObject,
        entry_state: &str,
        window_seconds: u64,
        decide: &dyn Fn(&GuardFacts) -> GuardStep,
    ) -> StoreResult<GuardRecorded> {
        todo!()
    }

    fn held_changes(&self, app_id: Option<&str>) -> StoreResult<Vec<HeldChange>> {
        todo!()
    }

    fn decide_held_change(&self, id: &str, approve: bool) -> StoreResult<HeldChange> {
        todo!()
    }
}
