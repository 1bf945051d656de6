//! [`DirectoryStore`] in PostgreSQL.
#![allow(unused_variables)] // ported in progress

use super::*;

impl DirectoryStore for PostgresStore {
    fn create_user(&self, user: UserWrite) -> StoreResult<UserRecord> {
        todo!()
    }

    fn replace_user(
        &self,
        id: &str,
        user: UserWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<UserRecord> {
        todo!()
    }

    fn delete_user(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        todo!()
    }

    fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        todo!()
    }

    fn find_users(&self, key: UserKey, value: &str) -> StoreResult<Vec<UserRecord>> {
        todo!()
    }

    fn list_users(&self, page: Page) -> StoreResult<Listing<UserRecord>> {
        todo!()
    }

    fn scan_users(&self, visit: &mut dyn FnMut(UserRecord) -> bool) -> StoreResult<()> {
        todo!()
    }

    fn user_groups(&self, id: &str) -> StoreResult<Vec<GroupRef>> {
        todo!()
    }

    fn create_group(&self, group: GroupWrite) -> StoreResult<GroupRecord> {
        todo!()
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<GroupRecord> {
        todo!()
    }

    fn delete_group(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        todo!()
    }

    fn get_group(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        todo!()
    }

    fn find_groups(&self, key: GroupKey, value: &str) -> StoreResult<Vec<GroupRecord>> {
        todo!()
    }

    fn list_groups(&self, page: Page) -> StoreResult<Listing<GroupRecord>> {
        todo!()
    }

    fn scan_groups(&self, visit: &mut dyn FnMut(GroupRecord) -> bool) -> StoreResult<()> {
        todo!()
    }

    fn change_members(
        &self,
        group_id: &str,
        add: &[Member],
        remove: &[String],
    ) -> StoreResult<GroupRecord> {
        todo!()
    }

    fn import(&self, batch: ImportBatch) -> StoreResult<ImportOutcome> {
        todo!()
    }

    fn users_of(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        todo!()
    }
}
