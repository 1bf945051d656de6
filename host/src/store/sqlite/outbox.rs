//! [`OutboxStore`] in SQLite: the `outbox` table and `change_progress`,
//! one row per (change, application) pair. SQLite has one writer at a
//! time, so handing out and settling need no lock of their own.

use std::time::Duration;

use super::*;

const CHANGE_COLUMNS: &str = "seq, at, entity, entity_id, action, detail";

fn change_from_row(row: &Row<'_>) -> rusqlite::Result<Change> {
    let entity: String = row.get(2)?;
    let action: String = row.get(4)?;
    let detail: String = row.get(5)?;
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
}

fn progress_from_row(row: &Row<'_>) -> rusqlite::Result<ChangeProgress> {
    Ok(ChangeProgress {
        seq: row.get(0)?,
        app_id: row.get(1)?,
        done: row.get(2)?,
        attempts: row.get(3)?,
        retry_at: row.get(4)?,
        last_error: row.get(5)?,
    })
}

/// Completes each change among `seqs` that was handed out and has no
/// pending pair left, and forgets its pairs.
fn complete_settled(transaction: &Connection, seqs: &[i64]) -> StoreResult<()> {
    let now = Timestamp::now();
    let mut complete = transaction.prepare_cached(
        "UPDATE outbox SET done_at = ?2
         WHERE seq = ?1 AND done_at IS NULL AND dispatched_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM change_progress WHERE seq = ?1 AND NOT done)",
    )?;
    let mut forget = transaction.prepare_cached("DELETE FROM change_progress WHERE seq = ?1")?;
    for seq in seqs {
        if complete.execute(params![seq, now])? == 1 {
            forget.execute(params![seq])?;
        }
    }
    Ok(())
}

impl OutboxStore for SqliteStore {
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(Arc::clone(&self.appended))
    }

    fn dispatch_changes(&self, limit: u32) -> StoreResult<u32> {
        self.write(|transaction| {
            let now = Timestamp::now();
            let changes: Vec<Change> = transaction
                .prepare_cached(&format!(
                    "SELECT {CHANGE_COLUMNS} FROM outbox
                     WHERE dispatched_at IS NULL AND done_at IS NULL ORDER BY seq LIMIT ?1"
                ))?
                .query_map([limit], change_from_row)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .take_while(|change| rules::may_hand_out(change, now))
                .collect();
            if changes.is_empty() {
                return Ok(0);
            }
            let active: Vec<String> = transaction
                .prepare_cached("SELECT id FROM applications WHERE state = ?1 ORDER BY id")?
                .query_map([AppState::Active.as_str()], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let mut pair = transaction.prepare_cached(
                "INSERT INTO change_progress (seq, app_id, done, attempts)
                 VALUES (?1, ?2, 0, 0) ON CONFLICT (seq, app_id) DO NOTHING",
            )?;
            let mut dispatched = transaction
                .prepare_cached("UPDATE outbox SET dispatched_at = ?2 WHERE seq = ?1")?;
            let mut seqs = Vec::with_capacity(changes.len());
            for change in &changes {
                for app_id in rules::concerned_apps(&change.kind, &change.subject_id, &active) {
                    pair.execute(params![change.seq, app_id])?;
                }
                dispatched.execute(params![change.seq, now])?;
                seqs.push(change.seq);
            }
            complete_settled(transaction, &seqs)?;
            Ok(u32::try_from(changes.len()).unwrap_or(u32::MAX))
        })
    }

    fn claim_pairs(
        &self,
        consumer: &str,
        app_id: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<(Change, ChangeProgress)>> {
        self.write(|transaction| {
            let now = Timestamp::now();
            let until = now.plus(Duration::from_secs(u64::from(lease_seconds)));
            let mut claimed: Vec<ChangeProgress> = transaction
                .prepare_cached(
                    "UPDATE change_progress SET claimed_by = ?1, claimed_until = ?2
                     WHERE app_id = ?3 AND seq IN (
                         SELECT seq FROM change_progress
                         WHERE app_id = ?3 AND NOT done
                           AND (retry_at IS NULL OR retry_at <= ?4)
                           AND (claimed_until IS NULL OR claimed_until < ?4)
                         ORDER BY seq LIMIT ?5
                     )
                     RETURNING seq, app_id, done, attempts, retry_at, last_error",
                )?
                .query_map(
                    params![consumer, until, app_id, now, limit],
                    progress_from_row,
                )?
                .collect::<Result<_, _>>()?;
            claimed.sort_by_key(|pair| pair.seq);
            let mut change = transaction.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM outbox WHERE seq = ?1"
            ))?;
            let mut pairs = Vec::with_capacity(claimed.len());
            for progress in claimed {
                let found = change.query_row([progress.seq], change_from_row)?;
                pairs.push((found, progress));
            }
            Ok(pairs)
        })
    }

    fn renew_pairs(
        &self,
        consumer: &str,
        app_id: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>> {
        self.write(|transaction| {
            let until = Timestamp::in_future(Duration::from_secs(u64::from(lease_seconds)));
            let mut statement = transaction.prepare_cached(
                "UPDATE change_progress SET claimed_until = ?4
                 WHERE seq = ?1 AND app_id = ?2 AND claimed_by = ?3 AND NOT done",
            )?;
            let mut held = Vec::with_capacity(seqs.len());
            for seq in seqs {
                if statement.execute(params![seq, app_id, consumer, until])? == 1 {
                    held.push(*seq);
                }
            }
            Ok(held)
        })
    }

    fn settle_pairs(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()> {
        self.write(|transaction| {
            let mut statement = transaction.prepare_cached(
                "UPDATE change_progress SET done = ?3, attempts = ?4, retry_at = ?5,
                     last_error = ?6, claimed_by = NULL, claimed_until = NULL
                 WHERE seq = ?1 AND app_id = ?2 AND claimed_by = ?7 AND NOT done",
            )?;
            let mut settled = Vec::with_capacity(progress.len());
            for pair in progress {
                let changed = statement.execute(params![
                    pair.seq,
                    pair.app_id,
                    pair.done,
                    pair.attempts,
                    pair.retry_at,
                    pair.last_error,
                    consumer
                ])?;
                if changed == 1 && pair.done {
                    settled.push(pair.seq);
                }
            }
            complete_settled(transaction, &settled)
        })
    }

    fn sweep_pairs(&self) -> StoreResult<u64> {
        self.write(|transaction| {
            let let_go = transaction.execute(
                "UPDATE change_progress SET done = 1, claimed_by = NULL, claimed_until = NULL
                 WHERE NOT done AND app_id NOT IN (SELECT id FROM applications WHERE state = ?1)",
                [AppState::Active.as_str()],
            )?;
            let open: Vec<i64> = transaction
                .prepare_cached(
                    "SELECT seq FROM outbox o
                     WHERE done_at IS NULL AND dispatched_at IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM change_progress p
                                       WHERE p.seq = o.seq AND NOT p.done)",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            complete_settled(transaction, &open)?;
            Ok(let_go as u64)
        })
    }

    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT seq, app_id, done, attempts, retry_at, last_error FROM change_progress
                 WHERE seq = ?1 ORDER BY app_id",
            )?;
            let mut progress = Vec::new();
            for seq in seqs {
                for row in statement.query_map(params![seq], progress_from_row)? {
                    progress.push(row?);
                }
            }
            Ok(progress)
        })
    }

    fn changes_after(&self, seq: i64, limit: u32) -> StoreResult<Vec<Change>> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {CHANGE_COLUMNS} FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))?
                .query_map(params![seq, limit], change_from_row)?
                .collect::<Result<_, _>>()?)
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
