//! [`MetaStore`] in PostgreSQL: the `meta` key-value table.

use super::*;

impl MetaStore for PostgresStore {
    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.read(|transaction| {
            Ok(transaction
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
                .map(|row| row.get(0)))
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        self.write(|transaction| {
            transaction.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }

    fn set_meta_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        self.write(|transaction| {
            transaction.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )?;
            Ok(transaction
                .query_one("SELECT value FROM meta WHERE key = $1", &[&key])?
                .get(0))
        })
    }
}
