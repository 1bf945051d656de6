//! Moving a SQLite deployment into PostgreSQL (`scimlink migrate`): the
//! directory, applications with their sealed tokens, scope, the outbox with
//! its progress, the ledger, dead letters, the guard's holds and
//! admissions, events, host metadata and the passwords still on their way,
//! row for row.
//!
//! Invariants:
//! - the SQLite database is brought to the current schema first and then
//!   only read; the host that used it must be stopped;
//! - the target must hold no data (its schema, nothing else): otherwise
//!   the move is refused and nothing is written;
//! - everything moves in one transaction, and each table's row count is
//!   compared before it commits: an interrupted or short move leaves the
//!   target empty;
//! - rows keep their ids, versions, times and outbox sequence numbers, so
//!   the engine carries on where it stopped: the ledger says what each
//!   application holds (nothing is created again), the outbox and its
//!   progress what is left to do (nothing done is done again);
//! - tokens and passwords move sealed, never opened: the target's hosts
//!   need the same host key, and the key's fingerprint moves with the
//!   metadata;
//! - hosts and leases do not move: they belonged to the stopped host.

use std::path::Path;

use ::postgres::types::ToSql;
use ::postgres::{IsolationLevel, Transaction};
use rusqlite::types::ValueRef;

use super::postgres::{Failure, PostgresStore, Step};
use super::*;

/// How a column is read from SQLite and written to PostgreSQL.
#[derive(Clone, Copy)]
enum Column {
    Text,
    OptionalText,
    Integer,
    /// An HTTP status: SQLite INTEGER, PostgreSQL INTEGER.
    OptionalSmall,
    /// SQLite 0/1, PostgreSQL BOOLEAN.
    Boolean,
    /// SQLite JSON text, PostgreSQL JSONB.
    Json,
    Blob,
    /// SQLite RFC 3339 text, PostgreSQL TIMESTAMPTZ.
    Time,
    OptionalTime,
}

use Column::*;

/// Every table that moves, parents before children, with its columns.
const TABLES: &[(&str, &[(&str, Column)])] = &[
    (
        "users",
        &[
            ("id", Text),
            ("user_name", Text),
            ("user_name_key", Text),
            ("external_id", OptionalText),
            ("active", Boolean),
            ("doc", Json),
            ("version", Integer),
            ("created", Time),
            ("modified", Time),
        ],
    ),
    (
        "groups",
        &[
            ("id", Text),
            ("display_name", Text),
            ("display_name_key", Text),
            ("external_id", OptionalText),
            ("doc", Json),
            ("version", Integer),
            ("created", Time),
            ("modified", Time),
        ],
    ),
    (
        "memberships",
        &[
            ("group_id", Text),
            ("member_id", Text),
            ("member_kind", Text),
        ],
    ),
    (
        "applications",
        &[
            ("id", Text),
            ("name", Text),
            ("label", Text),
            ("connector", Text),
            ("base_url", Text),
            ("token_nonce", Blob),
            ("token_sealed", Blob),
            ("manage_groups", Boolean),
            ("state", Text),
            ("state_reason", OptionalText),
            ("settings", Json),
            ("capabilities", Json),
            ("pacing", Json),
            ("guard", Json),
            ("password_policy", Json),
            ("version", Integer),
            ("created", Time),
            ("modified", Time),
        ],
    ),
    (
        "bindings",
        &[("app_id", Text), ("group_id", Text), ("created", Time)],
    ),
    (
        "assignments",
        &[("app_id", Text), ("user_id", Text), ("created", Time)],
    ),
    (
        "ledger",
        &[
            ("app_id", Text),
            ("object_kind", Text),
            ("object_id", Text),
            ("remote_id", Text),
            ("doc_hash", Text),
            ("doc", OptionalText),
            ("updated", Time),
        ],
    ),
    (
        "outbox",
        &[
            ("seq", Integer),
            ("at", Time),
            ("entity", Text),
            ("entity_id", Text),
            ("action", Text),
            ("detail", Json),
            ("claimed_by", OptionalText),
            ("claimed_until", OptionalTime),
            ("done_at", OptionalTime),
            ("dispatched_at", OptionalTime),
        ],
    ),
    (
        "change_progress",
        &[
            ("seq", Integer),
            ("app_id", Text),
            ("done", Boolean),
            ("attempts", Integer),
            ("retry_at", OptionalTime),
            ("last_error", OptionalText),
            ("claimed_by", OptionalText),
            ("claimed_until", OptionalTime),
        ],
    ),
    (
        "dead_letters",
        &[
            ("app_id", Text),
            ("object_kind", Text),
            ("object_id", Text),
            ("operation", Text),
            ("reason", Text),
            ("http_status", OptionalSmall),
            ("first_failed", Time),
            ("last_failed", Time),
            ("failures", Integer),
        ],
    ),
    (
        "held_changes",
        &[
            ("id", Text),
            ("app_id", Text),
            ("change", Json),
            ("offboarding", Integer),
            ("active_accounts", Integer),
            ("threshold", Integer),
            ("state", Text),
            ("held_at", Time),
            ("decided_at", OptionalTime),
        ],
    ),
    (
        "held_offboardings",
        &[
            ("held_id", Text),
            ("object_kind", Text),
            ("object_id", Text),
            ("user_name", OptionalText),
            ("remote_id", Text),
            ("action", Text),
            ("reason", Text),
            ("held_at", Time),
            ("carried_out", OptionalTime),
        ],
    ),
    (
        "guard_admissions",
        &[
            ("app_id", Text),
            ("object_id", Text),
            ("entry_state", Text),
            ("kind", Text),
            ("counted", Boolean),
            ("at", Time),
        ],
    ),
    (
        "events",
        &[
            ("id", Text),
            ("at", Time),
            ("app_id", OptionalText),
            ("app_name", OptionalText),
            ("object_kind", OptionalText),
            ("object_id", OptionalText),
            ("operation", Text),
            ("outcome", Text),
            ("rule", OptionalText),
            ("http_status", OptionalSmall),
            ("summary", Text),
        ],
    ),
    ("meta", &[("key", Text), ("value", Text)]),
    (
        "user_passwords",
        &[
            ("user_id", Text),
            ("generation", Text),
            ("nonce", Blob),
            ("sealed", Blob),
            ("set_at", Time),
        ],
    ),
    (
        "password_deliveries",
        &[
            ("user_id", Text),
            ("app_id", Text),
            ("generation", Text),
            ("delivered_at", Time),
        ],
    ),
    (
        "temporary_passwords",
        &[
            ("app_id", Text),
            ("user_id", Text),
            ("nonce", Blob),
            ("sealed", Blob),
            ("created", Time),
        ],
    ),
];

/// What was moved: each table with its rows, in the order moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub tables: Vec<(&'static str, u64)>,
}

/// Moves the SQLite database `DATA/scimlink.db` under `data` into `target`,
/// calling `progress` with each table's name and rows once it is copied
/// (again from the first table if PostgreSQL had the move start over).
pub fn sqlite_to_postgres(
    data: &Path,
    cipher: TokenCipher,
    target: &PostgresStore,
    progress: &mut dyn FnMut(&str, u64),
) -> StoreResult<Moved> {
    let path = data.join(sqlite::DATABASE_FILE);
    if !path.exists() {
        return Err(StoreError::Backend(format!(
            "there is no scimlink database at {}",
            path.display()
        )));
    }
    // Brings an older database to the current schema, so that its tables
    // are the ones listed here.
    drop(SqliteStore::open(&path, cipher)?);
    let source = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // One snapshot of the source for the whole move.
    source.execute_batch("BEGIN")?;
    let moved = target.write_at(IsolationLevel::Serializable, |transaction| {
        refuse_unless_empty(transaction)?;
        let mut moved = Moved::default();
        for (table, columns) in TABLES {
            let rows = copy_table(&source, transaction, table, columns)?;
            progress(table, rows);
            moved.tables.push((table, rows));
        }
        // New changes are numbered after every number SQLite ever gave,
        // those of changes since pruned included.
        let last_given: i64 = source
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM (
                     SELECT seq FROM sqlite_sequence WHERE name = 'outbox'
                     UNION ALL SELECT MAX(seq) FROM outbox)",
                [],
                |row| row.get(0),
            )
            .map_err(StoreError::from)?;
        transaction.execute(
            "SELECT setval(pg_get_serial_sequence('outbox', 'seq'), GREATEST($1::bigint, 1), $1::bigint > 0)",
            &[&last_given],
        )?;
        Ok(moved)
    });
    let _ = source.execute_batch("COMMIT");
    moved
}

fn refuse_unless_empty(transaction: &mut Transaction<'_>) -> Step<()> {
    for (table, _) in TABLES {
        let holds: bool = transaction
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])?
            .get(0);
        if holds {
            return Err(StoreError::Backend(format!(
                "the target database already holds data (table {table}): scimlink moves \
                 into an empty database only"
            ))
            .into());
        }
    }
    Ok(())
}

/// Copies one table; the rows copied, checked against the source's count.
fn copy_table(
    source: &rusqlite::Connection,
    transaction: &mut Transaction<'_>,
    table: &str,
    columns: &[(&str, Column)],
) -> Step<u64> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|at| format!("${at}")).collect();
    // The outbox keeps its sequence numbers.
    let overriding = if table == "outbox" {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let insert = transaction.prepare(&format!(
        "INSERT INTO {table} ({}){overriding} VALUES ({})",
        names.join(", "),
        placeholders.join(", ")
    ))?;
    let mut select = source
        .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
        .map_err(StoreError::from)?;
    let mut rows = select.query([]).map_err(StoreError::from)?;
    let mut copied = 0u64;
    while let Some(row) = rows.next().map_err(StoreError::from)? {
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
        for (at, (name, column)) in columns.iter().enumerate() {
            let value = row.get_ref(at).map_err(StoreError::from)?;
            values.push(
                convert(value, *column)
                    .map_err(|why| StoreError::Backend(format!("{table}.{name}: {why}")))?,
            );
        }
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| value.as_ref()).collect();
        transaction.execute(&insert, &params)?;
        copied += 1;
    }
    let expected: i64 = source
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .map_err(StoreError::from)?;
    let landed: i64 = transaction
        .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
        .get(0);
    if landed != expected || u64::try_from(landed).ok() != Some(copied) {
        return Err(Failure::Store(StoreError::Backend(format!(
            "{table}: {expected} rows in the source, {landed} in the target"
        ))));
    }
    Ok(copied)
}

/// One SQLite value as what PostgreSQL takes for `column`.
fn convert(value: ValueRef<'_>, column: Column) -> Result<Box<dyn ToSql + Sync>, String> {
    let text = |value: ValueRef<'_>| -> Result<String, String> {
        value
            .as_str()
            .map(str::to_owned)
            .map_err(|error| error.to_string())
    };
    let optional = matches!(value, ValueRef::Null);
    Ok(match column {
        Text => Box::new(text(value)?),
        OptionalText if optional => Box::new(None::<String>),
        OptionalText => Box::new(Some(text(value)?)),
        Integer => Box::new(value.as_i64().map_err(|error| error.to_string())?),
        OptionalSmall if optional => Box::new(None::<i32>),
        OptionalSmall => {
            let number = value.as_i64().map_err(|error| error.to_string())?;
            Box::new(Some(
                i32::try_from(number).map_err(|error| error.to_string())?,
            ))
        }
        Boolean => Box::new(value.as_i64().map_err(|error| error.to_string())? != 0),
        Json => {
            let text = text(value)?;
            let parsed: Value =
                serde_json::from_str(&text).map_err(|error| format!("not JSON: {error}"))?;
            Box::new(parsed)
        }
        Blob => Box::new(
            value
                .as_blob()
                .map(<[u8]>::to_vec)
                .map_err(|error| error.to_string())?,
        ),
        Time => Box::new(
            text(value)?
                .parse::<Timestamp>()
                .map_err(|error| error.to_string())?,
        ),
        OptionalTime if optional => Box::new(None::<Timestamp>),
        OptionalTime => Box::new(Some(
            text(value)?
                .parse::<Timestamp>()
                .map_err(|error| error.to_string())?,
        )),
    })
}
