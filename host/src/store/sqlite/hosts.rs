//! [`HostsStore`] in SQLite: the `hosts` and `object_leases` tables.
//!
//! A SQLite database has one host, but the tables are kept all the same,
//! so that `status` shows the host as a shared database does and the
//! conformance suite holds here too.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// How long after it ran out a host is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

fn presence(row: &Row<'_>) -> rusqlite::Result<(HostPresence, String)> {
    Ok((
        HostPresence {
            engine: row.get(0)?,
            name: row.get(1)?,
            connectors: BTreeMap::new(),
            seen: row.get(3)?,
            until: row.get(4)?,
        },
        row.get(2)?,
    ))
}

fn present(connection: &Connection) -> StoreResult<Vec<HostPresence>> {
    let mut statement = connection.prepare_cached(
        "SELECT engine, name, connectors, seen, until FROM hosts
         WHERE until > ?1 ORDER BY engine",
    )?;
    let rows = statement.query_map([Timestamp::now()], presence)?;
    let mut hosts = Vec::new();
    for row in rows {
        let (mut host, connectors) = row?;
        host.connectors = serde_json::from_str(&connectors)
            .map_err(|error| StoreError::Backend(format!("hosts.connectors: {error}")))?;
        hosts.push(host);
    }
    Ok(hosts)
}

impl HostsStore for SqliteStore {
    fn announce_host(
        &self,
        engine: &str,
        name: &str,
        connectors: &BTreeMap<String, String>,
        lease_seconds: u32,
    ) -> StoreResult<Vec<HostPresence>> {
        let connectors = serde_json::to_string(connectors)
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        self.write(|transaction| {
            let now = Timestamp::now();
            transaction.execute(
                "INSERT INTO hosts (engine, name, connectors, seen, until)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (engine) DO UPDATE SET name = excluded.name,
                     connectors = excluded.connectors, seen = excluded.seen,
                     until = excluded.until",
                params![
                    engine,
                    name,
                    connectors,
                    now,
                    now.plus(Duration::from_secs(u64::from(lease_seconds)))
                ],
            )?;
            transaction.execute(
                "DELETE FROM hosts WHERE until < ?1",
                [now.minus(FORGET_AFTER)],
            )?;
            transaction.execute("DELETE FROM object_leases WHERE until < ?1", [now])?;
            present(transaction)
        })
    }

    fn withdraw_host(&self, engine: &str) -> StoreResult<()> {
        self.write(|transaction| {
            transaction.execute("DELETE FROM hosts WHERE engine = ?1", [engine])?;
            Ok(())
        })
    }

    fn hosts(&self) -> StoreResult<Vec<HostPresence>> {
        self.read(present)
    }

    fn take_object_lease(
        &self,
        holder: &str,
        object: ObjectKey<'_>,
        lease_seconds: u32,
    ) -> StoreResult<bool> {
        self.write(|transaction| {
            let now = Timestamp::now();
            let until = now.plus(Duration::from_secs(u64::from(lease_seconds)));
            let taken = transaction.execute(
                "INSERT INTO object_leases (app_id, object_kind, object_id, holder, until)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (app_id, object_kind, object_id)
                 DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE object_leases.holder = excluded.holder OR object_leases.until < ?6",
                params![
                    object.app_id,
                    object.object_kind,
                    object.object_id,
                    holder,
                    until,
                    now
                ],
            )?;
            Ok(taken == 1)
        })
    }

    fn object_leases(&self, object_kind: &str) -> StoreResult<Vec<ObjectLease>> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT app_id, object_id, holder, until FROM object_leases
                     WHERE object_kind = ?1 AND until > ?2 ORDER BY app_id, object_id",
                )?
                .query_map(params![object_kind, Timestamp::now()], |row| {
                    Ok(ObjectLease {
                        app_id: row.get(0)?,
                        object_id: row.get(1)?,
                        holder: row.get(2)?,
                        until: row.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?)
        })
    }

    fn renew_object_lease(
        &self,
        holder: &str,
        object: ObjectKey<'_>,
        lease_seconds: u32,
    ) -> StoreResult<bool> {
        self.write(|transaction| {
            let now = Timestamp::now();
            let renewed = transaction.execute(
                "UPDATE object_leases SET until = ?5
                 WHERE app_id = ?1 AND object_kind = ?2 AND object_id = ?3 AND holder = ?4
                   AND until > ?6",
                params![
                    object.app_id,
                    object.object_kind,
                    object.object_id,
                    holder,
                    now.plus(Duration::from_secs(u64::from(lease_seconds))),
                    now
                ],
            )?;
            Ok(renewed == 1)
        })
    }

    fn release_object_lease(&self, holder: &str, object: ObjectKey<'_>) -> StoreResult<()> {
        self.write(|transaction| {
            transaction.execute(
                "DELETE FROM object_leases
                 WHERE app_id = ?1 AND object_kind = ?2 AND object_id = ?3 AND holder = ?4",
                params![object.app_id, object.object_kind, object.object_id, holder],
            )?;
            Ok(())
        })
    }
}
