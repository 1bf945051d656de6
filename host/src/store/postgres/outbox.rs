//! [`OutboxStore`] in PostgreSQL: the `outbox` table and `change_progress`,
//! one row per (change, application) pair.
//!
//! - Handing out runs under a transaction-scoped advisory lock taken
//!   without waiting: one host hands out at a time, in order, and another
//!   asking meanwhile hands out nothing (the holder is doing it).
//! - Claims run at `READ COMMITTED` and take their rows with `FOR UPDATE
//!   SKIP LOCKED`, so two consumers claiming at once never wait on each
//!   other nor claim one pair twice; leases are set and compared by the
//!   database's clock.
//! - Settling is serializable: two hosts settling the last two pairs of
//!   one change at once cannot both miss that the change is done.

use super::*;

/// The advisory lock key handing out takes ("dispatch" in ASCII).
const DISPATCH_LOCK: i64 = 0x6469_7370_6174_6368;

const CHANGE_COLUMNS: &str = "seq, at, entity, entity_id, action, detail";

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

fn progress_from_row(row: &Row) -> StoreResult<ChangeProgress> {
    Ok(ChangeProgress {
        seq: row.get(0),
        app_id: row.get(1),
        done: row.get(2),
        attempts: u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX),
        retry_at: row.get(4),
        last_error: row.get(5),
    })
}

/// Completes each change among `seqs` that was handed out and has no
/// pending pair left, and forgets its pairs.
fn complete_settled(transaction: &mut Tx<'_, '_>, seqs: &[i64]) -> Step<()> {
    let rows = transaction.query(
        "UPDATE outbox o SET done_at = $2
         WHERE o.seq = ANY($1) AND o.done_at IS NULL AND o.dispatched_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM change_progress p WHERE p.seq = o.seq AND NOT p.done)
         RETURNING o.seq",
        &[&seqs, &Timestamp::now()],
    )?;
    let done: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    if !done.is_empty() {
        transaction.execute("DELETE FROM change_progress WHERE seq = ANY($1)", &[&done])?;
    }
    Ok(())
}

impl OutboxStore for PostgresStore {
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.signal())
    }

    fn dispatch_changes(&self, limit: u32) -> StoreResult<u32> {
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            let ours: bool = transaction
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&DISPATCH_LOCK])?
                .get(0);
            if !ours {
                return Ok(0);
            }
            let rows = transaction.query(
                &format!(
                    "SELECT {CHANGE_COLUMNS} FROM outbox
                     WHERE dispatched_at IS NULL AND done_at IS NULL ORDER BY seq LIMIT $1"
                ),
                &[&i64::from(limit)],
            )?;
            let now = Timestamp::now();
            let changes: Vec<Change> = collect(rows, change_from_row)?
                .into_iter()
                .take_while(|change| rules::may_hand_out(change, now))
                .collect();
            if changes.is_empty() {
                return Ok(0);
            }
            let active: Vec<String> = transaction
                .query(
                    "SELECT id FROM applications WHERE state = $1 ORDER BY id",
                    &[&AppState::Active.as_str()],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let (mut pair_seqs, mut pair_apps) = (Vec::new(), Vec::new());
            for change in &changes {
                for app_id in rules::concerned_apps(&change.kind, &change.subject_id, &active) {
                    pair_seqs.push(change.seq);
                    pair_apps.push(app_id);
                }
            }
            transaction.execute(
                "INSERT INTO change_progress (seq, app_id, done, attempts)
                 SELECT seq, app_id, false, 0 FROM unnest($1::BIGINT[], $2::TEXT[]) AS p(seq, app_id)
                 ON CONFLICT (seq, app_id) DO NOTHING",
                &[&pair_seqs, &pair_apps],
            )?;
            let seqs: Vec<i64> = changes.iter().map(|change| change.seq).collect();
            transaction.execute(
                "UPDATE outbox SET dispatched_at = $2 WHERE seq = ANY($1)",
                &[&seqs, &Timestamp::now()],
            )?;
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
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            let rows = transaction.query(
                "UPDATE change_progress SET claimed_by = $1,
                     claimed_until = clock_timestamp() + make_interval(secs => $2)
                 WHERE app_id = $3 AND seq IN (
                     SELECT seq FROM change_progress
                     WHERE app_id = $3 AND NOT done
                       AND (retry_at IS NULL OR retry_at <= clock_timestamp())
                       AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
                     ORDER BY seq LIMIT $4
                     FOR UPDATE SKIP LOCKED
                 )
                 RETURNING seq, app_id, done, attempts, retry_at, last_error",
                &[
                    &consumer,
                    &f64::from(lease_seconds),
                    &app_id,
                    &i64::from(limit),
                ],
            )?;
            let mut claimed = collect(rows, progress_from_row)?;
            claimed.sort_by_key(|pair| pair.seq);
            let seqs: Vec<i64> = claimed.iter().map(|pair| pair.seq).collect();
            let rows = transaction.query(
                &format!("SELECT {CHANGE_COLUMNS} FROM outbox WHERE seq = ANY($1)"),
                &[&seqs],
            )?;
            let mut changes: std::collections::HashMap<i64, Change> =
                collect(rows, change_from_row)?
                    .into_iter()
                    .map(|change| (change.seq, change))
                    .collect();
            Ok(claimed
                .into_iter()
                .filter_map(|pair| changes.remove(&pair.seq).map(|change| (change, pair)))
                .collect())
        })
    }

    fn renew_pairs(
        &self,
        consumer: &str,
        app_id: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>> {
        self.write_at(IsolationLevel::ReadCommitted, |transaction| {
            let rows = transaction.query(
                "UPDATE change_progress
                 SET claimed_until = clock_timestamp() + make_interval(secs => $4)
                 WHERE seq = ANY($1) AND app_id = $2 AND claimed_by = $3 AND NOT done
                 RETURNING seq",
                &[&seqs, &app_id, &consumer, &f64::from(lease_seconds)],
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

    fn settle_pairs(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()> {
        self.write(|transaction| {
            let mut settled = Vec::with_capacity(progress.len());
            for pair in progress {
                let changed = transaction.execute(
                    "UPDATE change_progress SET done = $3, attempts = $4, retry_at = $5,
                         last_error = $6, claimed_by = NULL, claimed_until = NULL
                     WHERE seq = $1 AND app_id = $2 AND claimed_by = $7 AND NOT done",
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
                "UPDATE change_progress SET done = true, claimed_by = NULL, claimed_until = NULL
                 WHERE NOT done
                   AND app_id NOT IN (SELECT id FROM applications WHERE state = $1)",
                &[&AppState::Active.as_str()],
            )?;
            let open: Vec<i64> = transaction
                .query(
                    "SELECT seq FROM outbox o
                     WHERE done_at IS NULL AND dispatched_at IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM change_progress p
                                       WHERE p.seq = o.seq AND NOT p.done)",
                    &[],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            complete_settled(transaction, &open)?;
            Ok(let_go)
        })
    }

    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT seq, app_id, done, attempts, retry_at, last_error FROM change_progress
                 WHERE seq = ANY($1)",
                &[&seqs],
            )?;
            let mut progress = collect(rows, progress_from_row)?;
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

    fn changes_after(&self, seq: i64, limit: u32) -> StoreResult<Vec<Change>> {
        self.read(|transaction| {
            let rows = transaction.query(
                &format!(
                    "SELECT {CHANGE_COLUMNS} FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&seq, &i64::from(limit)],
            )?;
            collect(rows, change_from_row)
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
