//! [`ApplicationStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl ApplicationStore for PostgresStore {
    fn create_app(&self, app: AppWrite) -> StoreResult<AppRecord> {
        todo!()
    }

    fn get_app(&self, name_or_id: &str) -> StoreResult<Option<AppRecord>> {
        todo!()
    }

    fn list_apps(&self, page: Page) -> StoreResult<Listing<AppRecord>> {
        todo!()
    }

    fn update_app(&self, name_or_id: &str, update: AppUpdate) -> StoreResult<AppRecord> {
        todo!()
    }

    fn delete_app(&self, name_or_id: &str) -> StoreResult<()> {
        todo!()
    }

    fn app_token(&self, name_or_id: &str) -> StoreResult<Secret> {
        todo!()
    }
}
