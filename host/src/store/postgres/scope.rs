//! [`ScopeStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl ScopeStore for PostgresStore {
    fn bind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        todo!()
    }

    fn unbind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        todo!()
    }

    fn bindings(&self, app: &str) -> StoreResult<Vec<GroupRef>> {
        todo!()
    }

    fn assign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        todo!()
    }

    fn unassign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        todo!()
    }

    fn assignments(&self, app: &str) -> StoreResult<Vec<String>> {
        todo!()
    }

    fn users_in_scope(&self, app: &str) -> StoreResult<Vec<String>> {
        todo!()
    }

    fn user_in_scope(&self, app_id: &str, user_id: &str) -> StoreResult<bool> {
        todo!()
    }

    fn bound_groups_containing(&self, app_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        todo!()
    }
}
