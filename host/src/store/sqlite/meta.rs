//! [`MetaStore`] in SQLite: the `meta` key-value table.

use super::*;

impl MetaStore for SqliteStore {
    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()?)
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        self.write(|transaction| {
            transaction.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    fn set_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        self.write(|transaction| {
            transaction.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )?;
            Ok(
                transaction.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })?,
            )
        })
    }
}
