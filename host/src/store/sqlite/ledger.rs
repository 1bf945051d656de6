//! [`LedgerStore`] in SQLite: `ledger` (unique on application, kind and
//! remote id) and `dead_letters`.

use super::*;

pub(super) fn upsert_ledger_entry(
    transaction: &Connection,
    entry: &LedgerEntry,
) -> StoreResult<()> {
    // The unique index on (app, kind, remote id) refuses a link to an
    // account another object holds; the caller hears which account.
    let holder: Option<String> = transaction
        .prepare_cached(
            "SELECT object_id FROM ledger
             WHERE app_id = ?1 AND object_kind = ?2 AND remote_id = ?3 AND object_id != ?4",
        )?
        .query_row(
            params![
                entry.app_id,
                entry.object_kind,
                entry.remote_id,
                entry.object_id
            ],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(holder) = holder {
        return Err(StoreError::LinkedElsewhere {
            remote_id: entry.remote_id.clone(),
            holder,
        });
    }
    transaction
        .prepare_cached(
            "INSERT INTO ledger (app_id, object_kind, object_id, remote_id, doc_hash, updated, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (app_id, object_kind, object_id)
             DO UPDATE SET remote_id = excluded.remote_id, doc_hash = excluded.doc_hash,
                           updated = excluded.updated, doc = excluded.doc",
        )?
        .execute(params![
            entry.app_id,
            entry.object_kind,
            entry.object_id,
            entry.remote_id,
            entry.doc_hash,
            Timestamp::now(),
            entry.document
        ])?;
    clear_dead_letter(
        transaction,
        &entry.app_id,
        &entry.object_kind,
        &entry.object_id,
    )
}

pub(super) fn delete_ledger_entry(
    transaction: &Connection,
    app_id: &str,
    object_kind: &str,
    object_id: &str,
) -> StoreResult<()> {
    transaction.execute(
        "DELETE FROM ledger WHERE app_id = ?1 AND object_kind = ?2 AND object_id = ?3",
        params![app_id, object_kind, object_id],
    )?;
    clear_dead_letter(transaction, app_id, object_kind, object_id)
}

pub(super) fn clear_dead_letter(
    transaction: &Connection,
    app_id: &str,
    object_kind: &str,
    object_id: &str,
) -> StoreResult<()> {
    transaction
        .prepare_cached(
            "DELETE FROM dead_letters WHERE app_id = ?1 AND object_kind = ?2 AND object_id = ?3",
        )?
        .execute(params![app_id, object_kind, object_id])?;
    Ok(())
}

/// The remote ids of many objects in one statement (a group's members run
/// to thousands): the ids go in as one JSON array (`?3`). CROSS JOIN keeps
/// the ids the outer loop, each a look-up of the primary key; left to
/// itself the planner walks the application's whole ledger and scans the
/// array for each entry, which a 100,000-user ledger makes seconds a call.
const REMOTE_IDS: &str = "SELECT ledger.object_id, ledger.remote_id
     FROM json_each(?3) AS wanted
     CROSS JOIN ledger ON ledger.app_id = ?1 AND ledger.object_kind = ?2
                      AND ledger.object_id = wanted.value";

/// An entry of `app_id`'s `object_kind` from a row of `object_id,
/// remote_id, doc_hash, updated, doc`.
fn entry_of(
    app_id: &str,
    object_kind: &str,
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        app_id: app_id.to_string(),
        object_kind: object_kind.to_string(),
        object_id: row.get(0)?,
        remote_id: row.get(1)?,
        doc_hash: row.get(2)?,
        updated: row.get(3)?,
        document: row.get(4)?,
    })
}

/// The entries of many objects in one statement, each looked up by the
/// primary key as [`REMOTE_IDS`] does, and each once however often asked.
const ENTRIES_AMONG: &str = "SELECT ledger.object_id, ledger.remote_id, ledger.doc_hash,
            ledger.updated, ledger.doc
     FROM (SELECT DISTINCT value FROM json_each(?3)) AS wanted
     CROSS JOIN ledger ON ledger.app_id = ?1 AND ledger.object_kind = ?2
                      AND ledger.object_id = wanted.value";

impl LedgerStore for SqliteStore {
    fn ledger_entries_among(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<LedgerEntry>> {
        let wanted = serde_json::to_string(object_ids)
            .map_err(|error| StoreError::Backend(format!("object ids: {error}")))?;
        self.read(|connection| {
            let mut statement = connection.prepare_cached(ENTRIES_AMONG)?;
            let entries = statement
                .query_map(params![app_id, object_kind, wanted], |row| {
                    entry_of(app_id, object_kind, row)
                })?
                .collect::<Result<_, _>>()?;
            Ok(entries)
        })
    }

    fn remote_ids(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let wanted = serde_json::to_string(object_ids)
            .map_err(|error| StoreError::Backend(format!("object ids: {error}")))?;
        self.read(|connection| {
            let mut statement = connection.prepare_cached(REMOTE_IDS)?;
            let held: std::collections::HashMap<String, String> = statement
                .query_map(params![app_id, object_kind, wanted], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            // In the order asked.
            Ok(object_ids
                .iter()
                .filter_map(|id| held.get(id).map(|remote| (id.clone(), remote.clone())))
                .collect())
        })
    }

    fn ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT remote_id, doc_hash, updated, doc FROM ledger
                     WHERE app_id = ?1 AND object_kind = ?2 AND object_id = ?3",
                )?
                .query_row(params![app_id, object_kind, object_id], |row| {
                    Ok(LedgerEntry {
                        app_id: app_id.to_string(),
                        object_kind: object_kind.to_string(),
                        object_id: object_id.to_string(),
                        remote_id: row.get(0)?,
                        doc_hash: row.get(1)?,
                        updated: row.get(2)?,
                        document: row.get(3)?,
                    })
                })
                .optional()?)
        })
    }

    fn ledger_entries(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<LedgerEntry>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT object_id, remote_id, doc_hash, updated, doc FROM ledger
                 WHERE app_id = ?1 AND object_kind = ?2 ORDER BY object_id",
            )?;
            let entries = statement
                .query_map(params![app_id, object_kind], |row| {
                    entry_of(app_id, object_kind, row)
                })?
                .collect::<Result<_, _>>()?;
            Ok(entries)
        })
    }

    fn ledger_links(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<(String, String)>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT object_id, remote_id FROM ledger
                 WHERE app_id = ?1 AND object_kind = ?2 ORDER BY object_id",
            )?;
            let links = statement
                .query_map(params![app_id, object_kind], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(links)
        })
    }

    fn ledger_holder(
        &self,
        app_id: &str,
        object_kind: &str,
        remote_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT object_id, doc_hash, updated, doc FROM ledger
                     WHERE app_id = ?1 AND object_kind = ?2 AND remote_id = ?3",
                )?
                .query_row(params![app_id, object_kind, remote_id], |row| {
                    Ok(LedgerEntry {
                        app_id: app_id.to_string(),
                        object_kind: object_kind.to_string(),
                        object_id: row.get(0)?,
                        remote_id: remote_id.to_string(),
                        doc_hash: row.get(1)?,
                        updated: row.get(2)?,
                        document: row.get(3)?,
                    })
                })
                .optional()?)
        })
    }

    fn put_ledger_entry(&self, entry: &LedgerEntry) -> StoreResult<()> {
        self.write(|transaction| upsert_ledger_entry(transaction, entry))
    }

    fn remove_ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<()> {
        self.write(|transaction| delete_ledger_entry(transaction, app_id, object_kind, object_id))
    }

    fn count_ledger_entries(
        &self,
        app_id: &str,
        object_kind: &str,
        excluding_hash: &str,
    ) -> StoreResult<u64> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached(
                    "SELECT COUNT(*) FROM ledger
                     WHERE app_id = ?1 AND object_kind = ?2 AND doc_hash != ?3",
                )?
                .query_row(params![app_id, object_kind, excluding_hash], |row| {
                    row.get(0)
                })?)
        })
    }

    fn put_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        self.write(|transaction| {
            let at = Timestamp::now();
            transaction
                .prepare_cached(
                    "INSERT INTO dead_letters (app_id, object_kind, object_id, operation, reason,
                         http_status, first_failed, last_failed, failures)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)
                     ON CONFLICT (app_id, object_kind, object_id)
                     DO UPDATE SET operation = excluded.operation, reason = excluded.reason,
                         http_status = excluded.http_status, last_failed = excluded.last_failed,
                         failures = failures + 1",
                )?
                .execute(params![
                    letter.app_id,
                    letter.object_kind,
                    letter.object_id,
                    letter.operation,
                    letter.reason,
                    letter.http_status,
                    at
                ])?;
            Ok(())
        })
    }

    fn dead_letters(&self, app_id: &str) -> StoreResult<Vec<DeadLetter>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT object_kind, object_id, operation, reason, http_status, first_failed,
                     last_failed, failures
                 FROM dead_letters WHERE app_id = ?1 ORDER BY first_failed, object_id",
            )?;
            let letters = statement
                .query_map([app_id], |row| {
                    Ok(DeadLetter {
                        app_id: app_id.to_string(),
                        object_kind: row.get(0)?,
                        object_id: row.get(1)?,
                        operation: row.get(2)?,
                        reason: row.get(3)?,
                        http_status: row.get(4)?,
                        first_failed: row.get(5)?,
                        last_failed: row.get(6)?,
                        failures: row.get(7)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(letters)
        })
    }

    fn replay_dead_letters(&self, app_id: &str, object_ids: Option<&[String]>) -> StoreResult<u64> {
        self.write(|transaction| {
            let mut statement = transaction.prepare_cached(
                "SELECT object_kind, object_id FROM dead_letters WHERE app_id = ?1",
            )?;
            let listed: Vec<(String, String)> = statement
                .query_map([app_id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let chosen: Vec<(String, String)> = listed
                .into_iter()
                .filter(|(_, id)| object_ids.is_none_or(|ids| ids.contains(id)))
                .collect();
            if chosen.is_empty() {
                return Ok(0);
            }
            let mut users = Vec::new();
            let mut groups = Vec::new();
            for (kind, id) in &chosen {
                clear_dead_letter(transaction, app_id, kind, id)?;
                match kind.as_str() {
                    "group" => groups.push(id.clone()),
                    _ => users.push(id.clone()),
                }
            }
            append_change(transaction, app_id, ChangeKind::Replay { users, groups })?;
            Ok(chosen.len() as u64)
        })
    }

    fn record_with_ledger_holding(
        &self,
        holder: &str,
        change: LedgerChange<'_>,
        event: Option<Event>,
    ) -> StoreResult<()> {
        self.write(|transaction| {
            check_lease(transaction, holder, change.object())?;
            apply_ledger_change(transaction, &self.cipher, change, event)
        })
    }

    fn record_with_ledger(&self, change: LedgerChange<'_>, event: Event) -> StoreResult<()> {
        self.write(|transaction| {
            apply_ledger_change(transaction, &self.cipher, change, Some(event))
        })
    }

    fn record_each_with_ledger(&self, records: Vec<LedgerRecord<'_>>) -> Vec<StoreResult<()>> {
        let works = records
            .into_iter()
            .map(|record| {
                move |connection: &Connection| {
                    if let Some(holder) = record.holder {
                        check_lease(connection, holder, record.change.object())?;
                    }
                    apply_ledger_change(
                        connection,
                        &self.cipher,
                        record.change,
                        Some(record.event.clone()),
                    )
                }
            })
            .collect();
        self.write_each(works)
    }
}

/// Refuses with [`StoreError::LeaseLost`] unless `holder`'s lease on
/// `object` holds now, in the caller's transaction.
fn check_lease(transaction: &Connection, holder: &str, object: ObjectKey<'_>) -> StoreResult<()> {
    let held: Option<i64> = transaction
        .query_row(
            "SELECT 1 FROM object_leases
             WHERE app_id = ?1 AND object_kind = ?2 AND object_id = ?3
               AND holder = ?4 AND until > ?5",
            params![
                object.app_id,
                object.object_kind,
                object.object_id,
                holder,
                Timestamp::now()
            ],
            |row| row.get(0),
        )
        .optional()?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost(format!(
            "{} {} of application {}",
            object.object_kind, object.object_id, object.app_id
        ))),
    }
}

/// Writes a ledger change and, when there is one, the event that records
/// it, in the caller's transaction.
fn apply_ledger_change(
    transaction: &Connection,
    cipher: &TokenCipher,
    change: LedgerChange<'_>,
    event: Option<Event>,
) -> StoreResult<()> {
    match change {
        LedgerChange::Put(entry) => upsert_ledger_entry(transaction, entry)?,
        LedgerChange::PutWithPassword(entry, sent) => {
            upsert_ledger_entry(transaction, entry)?;
            super::passwords::record_password_sent(transaction, cipher, entry, sent)?;
        }
        LedgerChange::Remove {
            app_id,
            object_kind,
            object_id,
        } => delete_ledger_entry(transaction, app_id, object_kind, object_id)?,
    }
    match event {
        Some(event) => insert_event(transaction, event).map(|_| ()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_ids_and_entries_look_each_id_up_by_the_primary_key() {
        let folder = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[7; 32])).unwrap();
        let writer = store.writer.lock().unwrap();
        let connection = &writer.connection;
        for query in [REMOTE_IDS, ENTRIES_AMONG] {
            let plan: Vec<String> = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap()
                .query_map(params!["app", "user", "[]"], |row| row.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let ledger: Vec<&String> = plan.iter().filter(|step| step.contains("ledger")).collect();
            assert_eq!(ledger.len(), 1, "{plan:?}");
            assert!(
                ledger[0].starts_with("SEARCH ledger USING") && ledger[0].contains("object_id=?"),
                "{plan:?}"
            );
            // The ids asked for are the outer loop.
            let wanted = plan.iter().position(|step| step.starts_with("SCAN wanted"));
            let searched = plan.iter().position(|step| step == ledger[0]);
            assert!(wanted < searched && wanted.is_some(), "{plan:?}");
        }
    }
}
