//! [`OutboxStore`] in PostgreSQL: the `outbox` table with its lease
//! columns, and `change_progress`.
//!
//! Claims run at `READ COMMITTED` and take their rows with `FOR UPDATE SKIP
//! LOCKED`: hosts claiming at the same instant each take other changes,
//! without waiting for one another and without a serialization failure to
//! retry.

use super::*;

fn change_from_row(row: &Row) -> StoreResult<Change> {
    let entity: String = row.get(2);
    let action: String = row.get(4);
    Ok(Change {
        seq: row.get(0),
        at: row.get(1),
        subject_id: row.get(3),
        kind: ChangeKind::from_row(&entity, &action, row.get(5)),
    })
}

impl OutboxStore for PostgresStore {
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.signal())
    }

    fn claim_changes(
        &self,
        consumer: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<Change>> {
        let lease = Duration::from_secs(u64::from(lease_seconds));
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            let rows = transaction.query(
                "UPDATE outbox SET claimed_by = $1, claimed_until = $2
                 WHERE seq IN (
                     SELECT seq FROM outbox
                     WHERE done_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3)
                     ORDER BY seq LIMIT $4
                     FOR UPDATE SKIP LOCKED
                 )
                 RETURNING seq, at, entity, entity_id, action, detail",
                &[
                    &consumer,
                    &Timestamp::in_future(lease),
                    &Timestamp::now(),
                    &i64::from(limit),
                ],
            )?;
            let mut changes = collect(rows, change_from_row)?;
            changes.sort_by_key(|change| change.seq);
            Ok(changes)
        })
    }

    fn renew_claims(
        &self,
        consumer: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>> {
        let lease = Duration::from_secs(u64::from(lease_seconds));
        self.write(|transaction| {
            let rows = transaction.query(
                "UPDATE outbox SET claimed_until = $3
                 WHERE seq = ANY($1) AND claimed_by = $2 AND done_at IS NULL
                 RETURNING seq",
                &[&seqs, &consumer, &Timestamp::in_future(lease)],
            )?;
            let held: std::collections::HashSet<i64> = rows.iter().map(|row| row.get(0)).collect();
            // In the order asked.
            Ok(seqs
                .iter()
                .copied()
                .filter(|seq| held.contains(seq))
                .collect())
        })
    }

    fn complete_changes(&self, consumer: &str, seqs: &[i64]) -> StoreResult<()> {
        self.write(|transaction| {
            let rows = transaction.query(
                "UPDATE outbox SET done_at = $3
                 WHERE seq = ANY($1) AND claimed_by = $2 AND done_at IS NULL
                 RETURNING seq",
                &[&seqs, &consumer, &Timestamp::now()],
            )?;
            let done: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
            transaction.execute("DELETE FROM change_progress WHERE seq = ANY($1)", &[&done])?;
            Ok(())
        })
    }

    fn defer_changes(&self, consumer: &str, until: &[(i64, Timestamp)]) -> StoreResult<()> {
        self.write(|transaction| {
            for (seq, at) in until {
                transaction.execute(
                    "UPDATE outbox SET claimed_until = $3
                     WHERE seq = $1 AND claimed_by = $2 AND done_at IS NULL",
                    &[seq, &consumer, at],
                )?;
            }
            Ok(())
        })
    }

    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT seq, app_id, done, attempts, retry_at, last_error FROM change_progress
                 WHERE seq = ANY($1)",
                &[&seqs],
            )?;
            let mut progress: Vec<ChangeProgress> = rows
                .iter()
                .map(|row| ChangeProgress {
                    seq: row.get(0),
                    app_id: row.get(1),
                    done: row.get(2),
                    attempts: u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX),
                    retry_at: row.get(4),
                    last_error: row.get(5),
                })
                .collect();
            // In the order asked, each change's applications by id.
            let order: std::collections::HashMap<i64, usize> = seqs
                .iter()
                .enumerate()
                .map(|(index, seq)| (*seq, index))
                .rev()
                .collect();
            progress.sort_by(|a, b| {
                (order.get(&a.seq), &a.app_id).cmp(&(order.get(&b.seq), &b.app_id))
            });
            Ok(progress)
        })
    }

    fn record_progress(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()> {
        self.write(|transaction| {
            for pair in progress {
                transaction.execute(
                    "INSERT INTO change_progress (seq, app_id, done, attempts, retry_at, last_error)
                     SELECT $1, $2, $3, $4, $5, $6
                     WHERE EXISTS (SELECT 1 FROM outbox
                                   WHERE seq = $1 AND claimed_by = $7 AND done_at IS NULL)
                     ON CONFLICT (seq, app_id) DO UPDATE SET done = EXCLUDED.done,
                         attempts = EXCLUDED.attempts, retry_at = EXCLUDED.retry_at,
                         last_error = EXCLUDED.last_error",
                    &[
                        &pair.seq,
                        &pair.app_id,
                        &pair.done,
                        &i64::from(pair.attempts),
                        &pair.retry_at,
                        &pair.last_error,
                        &consumer,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn take_engine_turn(&self, engine: &str, lease_seconds: u32) -> StoreResult<EngineTurn> {
        // The database's clock sets and compares every turn, so hosts whose
        // clocks differ still agree on when one ran out.
        self.write(|transaction| {
            transaction.execute(
                "INSERT INTO engine_turn (id, holder, until)
                 VALUES (1, $1, clock_timestamp() + make_interval(secs => $2))
                 ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
                 WHERE engine_turn.holder = EXCLUDED.holder
                    OR engine_turn.until < clock_timestamp()",
                &[&engine, &f64::from(lease_seconds)],
            )?;
            let row =
                transaction.query_one("SELECT holder, until FROM engine_turn WHERE id = 1", &[])?;
            Ok(EngineTurn {
                holder: row.get(0),
                until: row.get(1),
            })
        })
    }

    fn release_engine_turn(&self, engine: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let released =
                transaction.execute("DELETE FROM engine_turn WHERE holder = $1", &[&engine])?;
            if released > 0 {
                // Standing-by engines wake and take the turn at once.
                transaction.execute("SELECT pg_notify($1, '')", &[&OUTBOX_CHANNEL])?;
            }
            Ok(())
        })
    }

    fn engine_turn(&self) -> StoreResult<Option<EngineTurn>> {
        self.read(|transaction| {
            let row = transaction.query_opt(
                "SELECT holder, until FROM engine_turn
                 WHERE id = 1 AND until > clock_timestamp()",
                &[],
            )?;
            Ok(row.map(|row| EngineTurn {
                holder: row.get(0),
                until: row.get(1),
            }))
        })
    }

    fn pending_changes(&self) -> StoreResult<u64> {
        self.read(|transaction| {
            let pending: i64 = transaction
                .query_one("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL", &[])?
                .get(0);
            Ok(to_u64(pending))
        })
    }
}
