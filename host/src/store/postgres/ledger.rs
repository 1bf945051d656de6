//! [`LedgerStore`] in PostgreSQL: `ledger` (unique on application, kind and
//! remote id) and `dead_letters`.

use std::sync::LazyLock;

use super::*;

/// Writes an entry, within a transaction: refused with
/// [`StoreError::LinkedElsewhere`] when another object holds its remote
/// account. Takes the object's dead letter off the list.
pub(super) fn upsert_ledger_entry(transaction: &mut Tx<'_, '_>, entry: &LedgerEntry) -> Step<()> {
    // The unique index on (app, kind, remote id) refuses a link to an
    // account another object holds; the caller hears which account. The
    // look comes first, in the serializable transaction, so that two hosts
    // linking the account at once are serialized rather than one of them
    // meeting the index.
    let holder = transaction.query_typed_opt(
        "SELECT object_id FROM ledger
         WHERE app_id = $1 AND object_kind = $2 AND remote_id = $3 AND object_id != $4",
        &[
            (&entry.app_id, Type::TEXT),
            (&entry.object_kind, Type::TEXT),
            (&entry.remote_id, Type::TEXT),
            (&entry.object_id, Type::TEXT),
        ],
    )?;
    if let Some(holder) = holder {
        return Err(StoreError::LinkedElsewhere {
            remote_id: entry.remote_id.clone(),
            holder: holder.get(0),
        }
        .into());
    }
    transaction.execute_typed(
        "INSERT INTO ledger (app_id, object_kind, object_id, remote_id, doc_hash, updated, doc)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (app_id, object_kind, object_id)
         DO UPDATE SET remote_id = EXCLUDED.remote_id, doc_hash = EXCLUDED.doc_hash,
                       updated = EXCLUDED.updated, doc = EXCLUDED.doc",
        &[
            (&entry.app_id, Type::TEXT),
            (&entry.object_kind, Type::TEXT),
            (&entry.object_id, Type::TEXT),
            (&entry.remote_id, Type::TEXT),
            (&entry.doc_hash, Type::TEXT),
            (&Timestamp::now(), Type::TIMESTAMPTZ),
            (&entry.document, Type::TEXT),
        ],
    )?;
    clear_dead_letter(
        transaction,
        &entry.app_id,
        &entry.object_kind,
        &entry.object_id,
    )
}

/// Removes an object's entry, within a transaction, and its dead letter.
pub(super) fn delete_ledger_entry(
    transaction: &mut Tx<'_, '_>,
    app_id: &str,
    object_kind: &str,
    object_id: &str,
) -> Step<()> {
    transaction.execute(
        "DELETE FROM ledger WHERE app_id = $1 AND object_kind = $2 AND object_id = $3",
        &[&app_id, &object_kind, &object_id],
    )?;
    clear_dead_letter(transaction, app_id, object_kind, object_id)
}

pub(super) fn clear_dead_letter(
    transaction: &mut Tx<'_, '_>,
    app_id: &str,
    object_kind: &str,
    object_id: &str,
) -> Step<()> {
    transaction.execute_typed(
        "DELETE FROM dead_letters WHERE app_id = $1 AND object_kind = $2 AND object_id = $3",
        &[
            (&app_id, Type::TEXT),
            (&object_kind, Type::TEXT),
            (&object_id, Type::TEXT),
        ],
    )?;
    Ok(())
}

/// A ledger entry from `app_id, object_kind, object_id, remote_id,
/// doc_hash, updated, doc`.
fn entry_from_row(row: &Row) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        app_id: row.get(0),
        object_kind: row.get(1),
        object_id: row.get(2),
        remote_id: row.get(3),
        doc_hash: row.get(4),
        updated: row.get(5),
        document: row.get(6),
    })
}

const ENTRY_COLUMNS: &str = "app_id, object_kind, object_id, remote_id, doc_hash, updated, doc";

fn dead_letter_from_row(row: &Row) -> StoreResult<DeadLetter> {
    let http_status: Option<i32> = row.get(5);
    let failures: i64 = row.get(8);
    Ok(DeadLetter {
        app_id: row.get(0),
        object_kind: row.get(1),
        object_id: row.get(2),
        operation: row.get(3),
        reason: row.get(4),
        http_status: http_status.and_then(|status| u16::try_from(status).ok()),
        first_failed: row.get(6),
        last_failed: row.get(7),
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
    })
}

impl LedgerStore for PostgresStore {
    fn remote_ids(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT object_id, remote_id FROM ledger
                 WHERE app_id = $1 AND object_kind = $2 AND object_id = ANY($3)",
                &[&app_id, &object_kind, &object_ids],
            )?;
            let held: std::collections::HashMap<String, String> =
                rows.iter().map(|row| (row.get(0), row.get(1))).collect();
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
        self.read(|transaction| {
            let row = transaction.query_opt(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger
                     WHERE app_id = $1 AND object_kind = $2 AND object_id = $3"
                ),
                &[&app_id, &object_kind, &object_id],
            )?;
            Ok(row.as_ref().map(entry_from_row).transpose()?)
        })
    }

    fn ledger_entries_among(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<LedgerEntry>> {
        self.read(|transaction| {
            let rows = transaction.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger
                     WHERE app_id = $1 AND object_kind = $2 AND object_id = ANY($3)"
                ),
                &[&app_id, &object_kind, &object_ids],
            )?;
            collect(rows, entry_from_row)
        })
    }

    fn ledger_entries(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<LedgerEntry>> {
        self.read(|transaction| {
            let rows = transaction.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger
                     WHERE app_id = $1 AND object_kind = $2 ORDER BY object_id"
                ),
                &[&app_id, &object_kind],
            )?;
            collect(rows, entry_from_row)
        })
    }

    fn ledger_links(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<(String, String)>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT object_id, remote_id FROM ledger
                 WHERE app_id = $1 AND object_kind = $2 ORDER BY object_id",
                &[&app_id, &object_kind],
            )?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    fn ledger_holder(
        &self,
        app_id: &str,
        object_kind: &str,
        remote_id: &str,
    ) -> StoreResult<Option<LedgerEntry>> {
        self.read(|transaction| {
            let row = transaction.query_opt(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger
                     WHERE app_id = $1 AND object_kind = $2 AND remote_id = $3"
                ),
                &[&app_id, &object_kind, &remote_id],
            )?;
            Ok(row.as_ref().map(entry_from_row).transpose()?)
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
        self.read(|transaction| {
            let count: i64 = transaction
                .query_one(
                    "SELECT COUNT(*) FROM ledger
                     WHERE app_id = $1 AND object_kind = $2 AND doc_hash != $3",
                    &[&app_id, &object_kind, &excluding_hash],
                )?
                .get(0);
            Ok(to_u64(count))
        })
    }

    fn put_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        self.write(|transaction| {
            let at = Timestamp::now();
            transaction.execute(
                "INSERT INTO dead_letters (app_id, object_kind, object_id, operation, reason,
                     http_status, first_failed, last_failed, failures)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1)
                 ON CONFLICT (app_id, object_kind, object_id)
                 DO UPDATE SET operation = EXCLUDED.operation, reason = EXCLUDED.reason,
                     http_status = EXCLUDED.http_status, last_failed = EXCLUDED.last_failed,
                     failures = dead_letters.failures + 1",
                &[
                    &letter.app_id,
                    &letter.object_kind,
                    &letter.object_id,
                    &letter.operation,
                    &letter.reason,
                    &letter.http_status.map(i32::from),
                    &at,
                ],
            )?;
            Ok(())
        })
    }

    fn dead_letters(&self, app_id: &str) -> StoreResult<Vec<DeadLetter>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT app_id, object_kind, object_id, operation, reason, http_status,
                     first_failed, last_failed, failures
                 FROM dead_letters WHERE app_id = $1 ORDER BY first_failed, object_id",
                &[&app_id],
            )?;
            collect(rows, dead_letter_from_row)
        })
    }

    fn replay_dead_letters(&self, app_id: &str, object_ids: Option<&[String]>) -> StoreResult<u64> {
        self.write(|transaction| {
            let listed: Vec<(String, String)> = transaction
                .query(
                    "SELECT object_kind, object_id FROM dead_letters WHERE app_id = $1
                     ORDER BY first_failed, object_id",
                    &[&app_id],
                )?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
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
            apply_ledger_change(transaction, &self.cipher, change, event.clone())
        })
    }

    fn record_with_ledger(&self, change: LedgerChange<'_>, event: Event) -> StoreResult<()> {
        self.write(|transaction| {
            apply_ledger_change(transaction, &self.cipher, change, Some(event.clone()))
        })
    }

    /// One transaction for all. A plain change ([`PlainChange`]: a put, a
    /// removal) is one statement ([`write_in_one_statement`]), whose
    /// refusals (a lease lost, an account linked elsewhere) write nothing
    /// of it; any other record goes in a savepoint of its own, rolled back
    /// should it fail. A serialization failure runs the transaction again,
    /// as any write's does. Should the transaction fail all the same (the
    /// database refused one of the plain changes' statements, which ends
    /// the transaction, or hosts writing at once kept colliding with it
    /// through every attempt), each record is written again in a
    /// transaction of its own: what fails fails alone, and a transaction
    /// of one record reads few enough rows that another host's writes
    /// seldom collide with it.
    fn record_each_with_ledger(&self, records: Vec<LedgerRecord<'_>>) -> Vec<StoreResult<()>> {
        let together = self.write(|transaction| write_records(transaction, &self.cipher, &records));
        match together {
            Ok(outcomes) => return outcomes,
            Err(error) if records.len() == 1 => return vec![Err(error)],
            Err(_) => {}
        }
        // One connection for them all: without the database, each would
        // otherwise wait out the pool's timeout in turn.
        let mut connection = match self.connection() {
            Ok(connection) => connection,
            Err(error) => {
                let reason = error.to_string();
                return records
                    .iter()
                    .map(|_| Err(StoreError::Backend(reason.clone())))
                    .collect();
            }
        };
        records
            .iter()
            .map(|record| {
                let alone = std::slice::from_ref(record);
                self.write_on(
                    &mut connection,
                    IsolationLevel::Serializable,
                    |transaction| write_records(transaction, &self.cipher, alone),
                )
                .and_then(|mut outcomes| {
                    outcomes.pop().unwrap_or_else(|| {
                        Err(StoreError::Backend("a record was not written".into()))
                    })
                })
            })
            .collect()
    }
}

/// Writes `records` in the caller's transaction, each standing on its own:
/// the outcome of each, in order. A plain change ([`PlainChange`]) is one
/// statement; every other record is in a savepoint of its own.
fn write_records(
    transaction: &mut Tx<'_, '_>,
    cipher: &TokenCipher,
    records: &[LedgerRecord<'_>],
) -> Step<Vec<StoreResult<()>>> {
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        if let Some(change) = PlainChange::of(record.change) {
            outcomes.push(write_in_one_statement(
                transaction,
                change,
                record.holder,
                &record.event,
            )?);
            continue;
        }
        let mut savepoint = transaction.savepoint("record")?;
        let applied = (|| {
            if let Some(holder) = record.holder {
                check_lease(&mut savepoint.session(), holder, record.change.object())?;
            }
            apply_ledger_change(
                &mut savepoint.session(),
                cipher,
                record.change,
                Some(record.event.clone()),
            )
        })();
        match applied {
            Ok(()) => {
                savepoint.commit()?;
                outcomes.push(Ok(()));
            }
            Err(failure) if failure.is_transient() => return Err(failure),
            Err(failure) => {
                savepoint.rollback()?;
                outcomes.push(Err(failure.into_store()));
            }
        }
    }
    Ok(outcomes)
}

/// A ledger change that writes nothing beyond the ledger, its dead letter
/// and its event, and so goes in one statement with them.
#[derive(Clone, Copy)]
enum PlainChange<'a> {
    /// A put, or one whose temporary password the policy does not keep.
    Put(&'a LedgerEntry),
    Remove(ObjectKey<'a>),
}

impl<'a> PlainChange<'a> {
    fn of(change: LedgerChange<'a>) -> Option<Self> {
        match change {
            LedgerChange::Put(entry)
            | LedgerChange::PutWithPassword(entry, PasswordSent::Temporary { reveal: None }) => {
                Some(PlainChange::Put(entry))
            }
            LedgerChange::Remove {
                app_id,
                object_kind,
                object_id,
            } => Some(PlainChange::Remove(ObjectKey {
                app_id,
                object_kind,
                object_id,
            })),
            LedgerChange::PutWithPassword(..) => None,
        }
    }
}

/// The lease check both one-statement writes begin with (`$1`–`$3` the
/// object, `$4` the holder or NULL). Each then has an `allowed` CTE that
/// holds a row only when the write may go ahead, and every write takes its
/// rows from it, so a refused change writes nothing.
const LEASED: &str = "leased AS (
         SELECT FROM object_leases
         WHERE app_id = $1 AND object_kind = $2 AND object_id = $3
           AND holder = $4 AND until > clock_timestamp()
         FOR SHARE
     )";

/// A put and its event in one statement, one round trip: what
/// [`check_lease`] (when a holder is given), [`upsert_ledger_entry`] and
/// [`insert_event`] do one after the other. The put is allowed when the
/// lease holds and no other object links the account; the last select
/// says which refusal it was. `$5`–`$8` the entry's remote id, hash,
/// time and document; `$9`–`$19` the event.
fn put_with_event() -> String {
    format!(
        "WITH {LEASED}, linked AS (
             SELECT object_id FROM ledger
             WHERE app_id = $1 AND object_kind = $2 AND remote_id = $5 AND object_id != $3
             LIMIT 1
         ), allowed AS (
             SELECT WHERE ($4 IS NULL OR EXISTS (SELECT FROM leased))
                      AND NOT EXISTS (SELECT FROM linked)
         ), put AS (
             INSERT INTO ledger (app_id, object_kind, object_id, remote_id, doc_hash, updated, doc)
             SELECT $1, $2, $3, $5, $6, $7, $8 FROM allowed
             ON CONFLICT (app_id, object_kind, object_id)
             DO UPDATE SET remote_id = EXCLUDED.remote_id, doc_hash = EXCLUDED.doc_hash,
                           updated = EXCLUDED.updated, doc = EXCLUDED.doc
         ), {CLEARED}, recorded AS (
             INSERT INTO events ({EVENT_COLUMNS})
             SELECT $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 FROM allowed
         )
         SELECT $4 IS NULL OR EXISTS (SELECT FROM leased), (SELECT object_id FROM linked)"
    )
}

/// A removal and its event in one statement: what [`check_lease`] (when a
/// holder is given), [`delete_ledger_entry`] and [`insert_event`] do one
/// after the other. `$5`–`$15` the event.
fn remove_with_event() -> String {
    format!(
        "WITH {LEASED}, allowed AS (
             SELECT WHERE $4 IS NULL OR EXISTS (SELECT FROM leased)
         ), removed AS (
             DELETE FROM ledger
             WHERE app_id = $1 AND object_kind = $2 AND object_id = $3
               AND EXISTS (SELECT FROM allowed)
         ), {CLEARED}, recorded AS (
             INSERT INTO events ({EVENT_COLUMNS})
             SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 FROM allowed
         )
         SELECT $4 IS NULL OR EXISTS (SELECT FROM leased), NULL::text"
    )
}

/// The object's dead letter taken off the list when the write is allowed.
const CLEARED: &str = "cleared AS (
         DELETE FROM dead_letters
         WHERE app_id = $1 AND object_kind = $2 AND object_id = $3
           AND EXISTS (SELECT FROM allowed)
     )";

static PUT_WITH_EVENT: LazyLock<String> = LazyLock::new(put_with_event);
static REMOVE_WITH_EVENT: LazyLock<String> = LazyLock::new(remove_with_event);

/// Writes `change` and records `event` in one statement
/// ([`put_with_event`], [`remove_with_event`]): `Ok(Err(_))` when the
/// change was refused, with nothing written.
fn write_in_one_statement(
    transaction: &mut Tx<'_, '_>,
    change: PlainChange<'_>,
    holder: Option<&str>,
    event: &Event,
) -> Step<StoreResult<()>> {
    let event_values = EventValues::of(event);
    let event_params = event_values.params();
    let now = Timestamp::now();
    let (object, row) = match change {
        PlainChange::Put(entry) => {
            let object = ObjectKey {
                app_id: &entry.app_id,
                object_kind: &entry.object_kind,
                object_id: &entry.object_id,
            };
            let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
                (&entry.app_id, Type::TEXT),
                (&entry.object_kind, Type::TEXT),
                (&entry.object_id, Type::TEXT),
                (&holder, Type::TEXT),
                (&entry.remote_id, Type::TEXT),
                (&entry.doc_hash, Type::TEXT),
                (&now, Type::TIMESTAMPTZ),
                (&entry.document, Type::TEXT),
            ];
            params.extend(event_params);
            (
                object,
                transaction.query_typed_one(&PUT_WITH_EVENT, &params)?,
            )
        }
        PlainChange::Remove(object) => {
            let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
                (&object.app_id, Type::TEXT),
                (&object.object_kind, Type::TEXT),
                (&object.object_id, Type::TEXT),
                (&holder, Type::TEXT),
            ];
            params.extend(event_params);
            (
                object,
                transaction.query_typed_one(&REMOVE_WITH_EVENT, &params)?,
            )
        }
    };
    let held: bool = row.get(0);
    let linked: Option<String> = row.get(1);
    Ok(match (held, linked, change) {
        (false, _, _) => Err(lease_lost(object)),
        (true, Some(holder), PlainChange::Put(entry)) => Err(StoreError::LinkedElsewhere {
            remote_id: entry.remote_id.clone(),
            holder,
        }),
        _ => Ok(()),
    })
}

/// Refuses with [`StoreError::LeaseLost`] unless `holder`'s lease on
/// `object` holds now, in the caller's transaction.
fn check_lease(transaction: &mut Tx<'_, '_>, holder: &str, object: ObjectKey<'_>) -> Step<()> {
    // FOR SHARE: a lease taken over meanwhile conflicts with this
    // transaction, which then runs again and sees the new holder.
    let held = transaction.query_typed_opt(
        "SELECT 1 FROM object_leases
         WHERE app_id = $1 AND object_kind = $2 AND object_id = $3
           AND holder = $4 AND until > clock_timestamp()
         FOR SHARE",
        &[
            (&object.app_id, Type::TEXT),
            (&object.object_kind, Type::TEXT),
            (&object.object_id, Type::TEXT),
            (&holder, Type::TEXT),
        ],
    )?;
    match held {
        Some(_) => Ok(()),
        None => Err(Failure::Store(lease_lost(object))),
    }
}

fn lease_lost(object: ObjectKey<'_>) -> StoreError {
    StoreError::LeaseLost(format!(
        "{} {} of application {}",
        object.object_kind, object.object_id, object.app_id
    ))
}

/// Writes a ledger change and, when there is one, the event that records
/// it, in the caller's transaction.
fn apply_ledger_change(
    transaction: &mut Tx<'_, '_>,
    cipher: &TokenCipher,
    change: LedgerChange<'_>,
    event: Option<Event>,
) -> Step<()> {
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
        Some(event) => insert_event(transaction, &event).map(|_| ()),
        None => Ok(()),
    }
}
