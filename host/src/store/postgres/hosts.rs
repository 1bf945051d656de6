//! [`HostsStore`] in PostgreSQL: the `hosts` and `object_leases` tables.
//!
//! Leases are single upserts at `READ COMMITTED`: the row lock the upsert
//! takes decides between hosts asking at once, without a serialization
//! failure to retry, and the database's clock sets every deadline.

use std::collections::{BTreeMap, HashSet};

use super::*;

/// How long after it ran out a host is forgotten, in seconds.
const FORGET_AFTER_SECONDS: f64 = 3600.0;

fn present(transaction: &mut Session<'_, impl GenericClient>) -> Step<Vec<HostPresence>> {
    let rows = transaction.query(
        "SELECT engine, name, connectors, seen, until FROM hosts
         WHERE until > clock_timestamp() ORDER BY engine",
        &[],
    )?;
    let mut hosts = Vec::with_capacity(rows.len());
    for row in rows {
        let connectors: Value = row.get(2);
        hosts.push(HostPresence {
            engine: row.get(0),
            name: row.get(1),
            connectors: serde_json::from_value(connectors).map_err(|error| {
                Failure::Store(StoreError::Backend(format!("hosts.connectors: {error}")))
            })?,
            seen: row.get(3),
            until: row.get(4),
        });
    }
    Ok(hosts)
}

impl HostsStore for PostgresStore {
    fn announce_host(
        &self,
        engine: &str,
        name: &str,
        connectors: &BTreeMap<String, String>,
        lease_seconds: u32,
    ) -> StoreResult<Vec<HostPresence>> {
        let connectors = serde_json::to_value(connectors)
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            transaction.execute(
                "INSERT INTO hosts (engine, name, connectors, seen, until)
                 VALUES ($1, $2, $3, clock_timestamp(),
                         clock_timestamp() + make_interval(secs => $4))
                 ON CONFLICT (engine) DO UPDATE SET name = EXCLUDED.name,
                     connectors = EXCLUDED.connectors, seen = EXCLUDED.seen,
                     until = EXCLUDED.until",
                &[&engine, &name, &connectors, &f64::from(lease_seconds)],
            )?;
            transaction.execute(
                "DELETE FROM hosts
                 WHERE until < clock_timestamp() - make_interval(secs => $1)",
                &[&FORGET_AFTER_SECONDS],
            )?;
            transaction.execute(
                "DELETE FROM object_leases WHERE until < clock_timestamp()",
                &[],
            )?;
            present(transaction)
        })
    }

    fn withdraw_host(&self, engine: &str) -> StoreResult<()> {
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            transaction.execute("DELETE FROM hosts WHERE engine = $1", &[&engine])?;
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
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            let taken = transaction.execute(
                "INSERT INTO object_leases (app_id, object_kind, object_id, holder, until)
                 VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5))
                 ON CONFLICT (app_id, object_kind, object_id)
                 DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
                 WHERE object_leases.holder = EXCLUDED.holder
                    OR object_leases.until < clock_timestamp()",
                &[
                    &object.app_id,
                    &object.object_kind,
                    &object.object_id,
                    &holder,
                    &f64::from(lease_seconds),
                ],
            )?;
            Ok(taken == 1)
        })
    }

    fn take_object_leases(
        &self,
        holder: &str,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
        lease_seconds: u32,
    ) -> StoreResult<Vec<bool>> {
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            // One statement for all: rows are locked in the order given,
            // as two hosts taking overlapping sets both give them sorted.
            let taken: HashSet<String> = transaction
                .query(
                    "INSERT INTO object_leases (app_id, object_kind, object_id, holder, until)
                     SELECT $1, $2, wanted.id, $4, clock_timestamp() + make_interval(secs => $5)
                     FROM unnest($3::TEXT[]) WITH ORDINALITY AS wanted(id, at)
                     ORDER BY wanted.at
                     ON CONFLICT (app_id, object_kind, object_id)
                     DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
                     WHERE object_leases.holder = EXCLUDED.holder
                        OR object_leases.until < clock_timestamp()
                     RETURNING object_id",
                    &[
                        &app_id,
                        &object_kind,
                        &object_ids,
                        &holder,
                        &f64::from(lease_seconds),
                    ],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            Ok(object_ids.iter().map(|id| taken.contains(id)).collect())
        })
    }

    fn object_leases(&self, object_kind: &str) -> StoreResult<Vec<ObjectLease>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT app_id, object_id, holder, until FROM object_leases
                 WHERE object_kind = $1 AND until > clock_timestamp()
                 ORDER BY app_id, object_id",
                &[&object_kind],
            )?;
            Ok(rows
                .iter()
                .map(|row| ObjectLease {
                    app_id: row.get(0),
                    object_id: row.get(1),
                    holder: row.get(2),
                    until: row.get(3),
                })
                .collect())
        })
    }

    fn renew_object_lease(
        &self,
        holder: &str,
        object: ObjectKey<'_>,
        lease_seconds: u32,
    ) -> StoreResult<bool> {
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            let renewed = transaction.execute(
                "UPDATE object_leases
                 SET until = clock_timestamp() + make_interval(secs => $5)
                 WHERE app_id = $1 AND object_kind = $2 AND object_id = $3 AND holder = $4
                   AND until > clock_timestamp()",
                &[
                    &object.app_id,
                    &object.object_kind,
                    &object.object_id,
                    &holder,
                    &f64::from(lease_seconds),
                ],
            )?;
            Ok(renewed == 1)
        })
    }

    fn release_object_lease(&self, holder: &str, object: ObjectKey<'_>) -> StoreResult<()> {
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            transaction.execute(
                "DELETE FROM object_leases
                 WHERE app_id = $1 AND object_kind = $2 AND object_id = $3 AND holder = $4",
                &[
                    &object.app_id,
                    &object.object_kind,
                    &object.object_id,
                    &holder,
                ],
            )?;
            Ok(())
        })
    }

    fn release_object_leases(&self, leases: &[(&str, ObjectKey<'_>)]) -> StoreResult<()> {
        let holders: Vec<&str> = leases.iter().map(|(holder, _)| *holder).collect();
        let app_ids: Vec<&str> = leases.iter().map(|(_, object)| object.app_id).collect();
        let kinds: Vec<&str> = leases
            .iter()
            .map(|(_, object)| object.object_kind)
            .collect();
        let object_ids: Vec<&str> = leases.iter().map(|(_, object)| object.object_id).collect();
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            transaction.execute(
                "DELETE FROM object_leases AS lease
                 USING unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[])
                     AS gone(holder, app_id, object_kind, object_id)
                 WHERE lease.app_id = gone.app_id AND lease.object_kind = gone.object_kind
                   AND lease.object_id = gone.object_id AND lease.holder = gone.holder",
                &[&holders, &app_ids, &kinds, &object_ids],
            )?;
            Ok(())
        })
    }

    fn shared_by_hosts(&self) -> bool {
        true
    }
}
