//! [`OutboxStore`] in SQLite: the `outbox` table with its lease columns,
//! and `change_progress`.

use super::*;

impl OutboxStore for SqliteStore {
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(Arc::clone(&self.appended))
    }

    fn claim_changes(
        &self,
        consumer: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<Change>> {
        self.write(|transaction| {
            let mut statement = transaction.prepare_cached(
                "UPDATE outbox SET claimed_by = ?1, claimed_until = ?2
                 WHERE seq IN (
                     SELECT seq FROM outbox
                     WHERE done_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?3)
                     ORDER BY seq LIMIT ?4
                 )
                 RETURNING seq, at, entity, entity_id, action, detail",
            )?;
            let mut changes: Vec<Change> = statement
                .query_map(
                    params![
                        consumer,
                        Timestamp::in_future(std::time::Duration::from_secs(u64::from(
                            lease_seconds
                        ))),
                        Timestamp::now(),
                        limit
                    ],
                    |row| {
                        let detail: String = row.get(5)?;
                        let entity: String = row.get(2)?;
                        let action: String = row.get(4)?;
                        Ok(Change {
                            seq: row.get(0)?,
                            at: row.get(1)?,
                            subject_id: row.get(3)?,
                            kind: ChangeKind::from_row(
                                &entity,
                                &action,
                                serde_json::from_str(&detail).unwrap_or(Value::Null),
                            ),
                        })
                    },
                )?
                .collect::<Result<_, _>>()?;
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
        self.write(|transaction| {
            let until =
                Timestamp::in_future(std::time::Duration::from_secs(u64::from(lease_seconds)));
            let mut statement = transaction.prepare_cached(
                "UPDATE outbox SET claimed_until = ?3
                 WHERE seq = ?1 AND claimed_by = ?2 AND done_at IS NULL",
            )?;
            let mut held = Vec::with_capacity(seqs.len());
            for seq in seqs {
                if statement.execute(params![seq, consumer, until])? == 1 {
                    held.push(*seq);
                }
            }
            Ok(held)
        })
    }

    fn complete_changes(&self, consumer: &str, seqs: &[i64]) -> StoreResult<()> {
        self.write(|transaction| {
            let at = Timestamp::now();
            let mut statement = transaction.prepare_cached(
                "UPDATE outbox SET done_at = ?3 WHERE seq = ?1 AND claimed_by = ?2 AND done_at IS NULL",
            )?;
            let mut forget = transaction.prepare_cached(
                "DELETE FROM change_progress WHERE seq = ?1",
            )?;
            for seq in seqs {
                if statement.execute(params![seq, consumer, at])? == 1 {
                    forget.execute(params![seq])?;
                }
            }
            Ok(())
        })
    }

    fn defer_changes(&self, consumer: &str, until: &[(i64, Timestamp)]) -> StoreResult<()> {
        self.write(|transaction| {
            let mut statement = transaction.prepare_cached(
                "UPDATE outbox SET claimed_until = ?3
                 WHERE seq = ?1 AND claimed_by = ?2 AND done_at IS NULL",
            )?;
            for (seq, at) in until {
                statement.execute(params![seq, consumer, at])?;
            }
            Ok(())
        })
    }

    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT app_id, done, attempts, retry_at, last_error FROM change_progress
                 WHERE seq = ?1 ORDER BY app_id",
            )?;
            let mut progress = Vec::new();
            for seq in seqs {
                let rows = statement.query_map(params![seq], |row| {
                    Ok(ChangeProgress {
                        seq: *seq,
                        app_id: row.get(0)?,
                        done: row.get(1)?,
                        attempts: row.get(2)?,
                        retry_at: row.get(3)?,
                        last_error: row.get(4)?,
                    })
                })?;
                for row in rows {
                    progress.push(row?);
                }
            }
            Ok(progress)
        })
    }

    fn record_progress(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()> {
        self.write(|transaction| {
            let mut statement = transaction.prepare_cached(
                "INSERT INTO change_progress (seq, app_id, done, attempts, retry_at, last_error)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE EXISTS (SELECT 1 FROM outbox
                               WHERE seq = ?1 AND claimed_by = ?7 AND done_at IS NULL)
                 ON CONFLICT (seq, app_id) DO UPDATE SET done = excluded.done,
                     attempts = excluded.attempts, retry_at = excluded.retry_at,
                     last_error = excluded.last_error",
            )?;
            for pair in progress {
                statement.execute(params![
                    pair.seq,
                    pair.app_id,
                    pair.done,
                    pair.attempts,
                    pair.retry_at,
                    pair.last_error,
                    consumer
                ])?;
            }
            Ok(())
        })
    }

    fn take_engine_turn(&self, engine: &str, lease_seconds: u32) -> StoreResult<EngineTurn> {
        self.write(|transaction| {
            let now = Timestamp::now();
            let until = now.plus(std::time::Duration::from_secs(u64::from(lease_seconds)));
            transaction.execute(
                "INSERT INTO engine_turn (id, holder, until) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE engine_turn.holder = excluded.holder OR engine_turn.until < ?3",
                params![engine, until, now],
            )?;
            Ok(transaction.query_row(
                "SELECT holder, until FROM engine_turn WHERE id = 1",
                [],
                |row| {
                    Ok(EngineTurn {
                        holder: row.get(0)?,
                        until: row.get(1)?,
                    })
                },
            )?)
        })
    }

    fn release_engine_turn(&self, engine: &str) -> StoreResult<()> {
        self.write(|transaction| {
            transaction.execute("DELETE FROM engine_turn WHERE holder = ?1", [engine])?;
            Ok(())
        })
    }

    fn engine_turn(&self) -> StoreResult<Option<EngineTurn>> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT holder, until FROM engine_turn WHERE id = 1 AND until > ?1",
                    [Timestamp::now()],
                    |row| {
                        Ok(EngineTurn {
                            holder: row.get(0)?,
                            until: row.get(1)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn pending_changes(&self) -> StoreResult<u64> {
        self.read(|connection| {
            Ok(connection.query_row(
                "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL",
                [],
                |row| row.get(0),
            )?)
        })
    }
}
