//! [`AuditStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl AuditStore for PostgresStore {
    fn record_event(&self, event: Event) -> StoreResult<Event> {
        todo!()
    }

    fn events(&self, query: &EventQuery, page: Page) -> StoreResult<Listing<Event>> {
        todo!()
    }

    fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        todo!()
    }
}
