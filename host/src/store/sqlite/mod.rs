//! The embedded store: one SQLite file in WAL mode under the data folder.
//!
//! One connection writes, behind a mutex, because SQLite admits one writer
//! at a time anyway and a single writer never sees `SQLITE_BUSY` from
//! itself. Readers take connections from a small pool and, thanks to WAL,
//! never wait for the writer. Migrations are numbered SQL files compiled into
//! the binary and applied in order inside a transaction each; a database
//! written by a newer scimlink is refused rather than guessed at.
//!
//! `synchronous = NORMAL` with WAL: a committed transaction survives the
//! process being killed at any instant; a power cut may lose the last
//! commits but never corrupts the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde_json::{Map, Value};

use super::*;

/// The database file's name inside the data folder.
pub const DATABASE_FILE: &str = "scimlink.db";

/// Schema migrations, in order. A released migration is never edited: a
/// change to the schema is a new file.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_directory.sql")),
    (
        2,
        include_str!("migrations/0002_engine_safety_and_assignments.sql"),
    ),
    (
        3,
        include_str!("migrations/0003_account_links_and_change_progress.sql"),
    ),
    (4, include_str!("migrations/0004_guard_across_changes.sql")),
    (5, include_str!("migrations/0005_engine_turn.sql")),
    (
        6,
        include_str!("migrations/0006_hosts_and_object_leases.sql"),
    ),
    (7, include_str!("migrations/0007_work_per_application.sql")),
    (8, include_str!("migrations/0008_passwords.sql")),
];

/// Read connections kept open. Enough for the engine's syncs and the API
/// at once: a read that finds none free opens one, which costs a fresh
/// parse of the schema at its first statement, and a connection not kept
/// pays it again and again.
const READER_POOL: usize = 16;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    cipher: TokenCipher,
    /// Woken after a commit that appended to the outbox.
    appended: Arc<tokio::sync::Notify>,
}

thread_local! {
    /// Set by [`append_change`] within the write running on this thread.
    static APPENDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const USER_COLUMNS: &str = "id, user_name, external_id, active, doc, version, created, modified";

const GROUP_COLUMNS: &str = "id, display_name, external_id, doc, version, created, modified";

const APP_COLUMNS: &str = "id, name, label, connector, base_url, manage_groups, state, settings, version, created, modified, capabilities, pacing, state_reason, guard, password_policy";

const EVENT_COLUMNS: &str = "id, at, app_id, app_name, object_kind, object_id, operation, outcome, rule, http_status, summary";

impl SqliteStore {
    /// Opens (creating if needed) `DATA/scimlink.db` and brings its schema
    /// up to date.
    pub fn open_in(data: &Path, cipher: TokenCipher) -> StoreResult<Self> {
        Self::open(&data.join(DATABASE_FILE), cipher)
    }

    pub fn open(path: &Path, cipher: TokenCipher) -> StoreResult<Self> {
        private_database_files(path)?;
        let mut writer = connect(path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            cipher,
            appended: Arc::new(tokio::sync::Notify::new()),
        })
    }

    fn write<T>(&self, work: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        // A panic in an earlier write rolled its transaction back when it
        // unwound; the connection itself is sound.
        let mut connection = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // IMMEDIATE takes the write lock up front: a transaction that reads
        // before it writes cannot be invalidated by another process's commit.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        APPENDED.with(|appended| appended.set(false));
        let value = work(&transaction)?;
        transaction.commit()?;
        if APPENDED.with(|appended| appended.replace(false)) {
            self.appended.notify_one();
        }
        Ok(value)
    }

    fn read<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let connection = match pooled {
            Some(connection) => connection,
            None => connect(&self.path)?,
        };
        // One read transaction: counts, rows and members are one snapshot.
        let value = match connection.unchecked_transaction() {
            Ok(snapshot) => {
                let value = work(&snapshot);
                let _ = snapshot.finish();
                value
            }
            Err(error) => Err(error.into()),
        };
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < READER_POOL
        {
            pool.push(connection);
        }
        value
    }

    fn load_group(&self, connection: &Connection, id: &str) -> StoreResult<Option<GroupRecord>> {
        let group = connection
            .query_row(
                &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1"),
                [id],
                group_from_row,
            )
            .optional()?;
        match group {
            Some(group) => Ok(Some(with_members(connection, group?)?)),
            None => Ok(None),
        }
    }

    fn app_in(&self, connection: &Connection, name_or_id: &str) -> StoreResult<AppRecord> {
        connection
            .query_row(
                &format!("SELECT {APP_COLUMNS} FROM applications WHERE id = ?1 OR name = ?1"),
                [name_or_id],
                app_from_row,
            )
            .optional()?
            .ok_or_else(|| not_found("application", name_or_id))?
    }
}

/// Makes the database and its `-wal` and `-shm` files the owner's only
/// (0600): they hold the directory's personal data and the token hashes.
/// A new database is created empty with that mode before SQLite opens it,
/// and SQLite gives the `-wal` and `-shm` files it creates the mode of the
/// database file; files left more open by an earlier version are tightened
/// (and that is logged).
fn private_database_files(path: &Path) -> StoreResult<()> {
    let failed = |what: &Path, error: std::io::Error| {
        StoreError::Backend(format!(
            "cannot make {} private to its owner: {error}",
            what.display()
        ))
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(failed(path, error)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        if crate::secrets::tighten(&file).map_err(|error| failed(&file, error))? {
            tracing::warn!(
                "{} was readable by other users: now only its owner can read it",
                file.display()
            );
        }
    }
    Ok(())
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> StoreResult<()> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)",
    )?;
    let current: i64 = connection.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    let newest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if current > newest {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {current}, newer than this scimlink knows ({newest}); \
             run a newer scimlink"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, Timestamp::now()],
        )?;
        transaction.commit()?;
    }
    Ok(())
}

impl rusqlite::ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        // Fixed-width text: SQL compares and orders it as time.
        Ok(rusqlite::types::ToSqlOutput::from(self.to_string()))
    }
}

impl rusqlite::types::FromSql for Timestamp {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|error| rusqlite::types::FromSqlError::Other(Box::new(error)))
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn not_found(entity: &'static str, key: &str) -> StoreError {
    StoreError::NotFound {
        entity,
        key: key.to_string(),
    }
}

fn parse_doc(text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(StoreError::Backend(
            "a stored document is not a JSON object".into(),
        )),
    }
}

type RowResult<T> = rusqlite::Result<StoreResult<T>>;

fn collect<T>(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    map: fn(&Row<'_>) -> RowResult<T>,
) -> StoreResult<Vec<T>> {
    let rows = statement.query_map(params, map)?;
    let mut items = Vec::new();
    for row in rows {
        items.push(row??);
    }
    Ok(items)
}

fn append_change(
    transaction: &Transaction<'_>,
    subject_id: &str,
    change: ChangeKind,
) -> StoreResult<()> {
    let (entity, action, detail) = change.to_row();
    transaction
        .prepare_cached(
            "INSERT INTO outbox (at, entity, entity_id, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![Timestamp::now(), entity, subject_id, action, detail.to_string()])?;
    APPENDED.with(|appended| appended.set(true));
    Ok(())
}

fn to_json(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

/// The version of a row, checked against what the caller expects.
fn current_version(
    transaction: &Transaction<'_>,
    table: &'static str,
    entity: &'static str,
    id: &str,
    expected: Option<i64>,
) -> StoreResult<i64> {
    let current: i64 = transaction
        .query_row(
            &format!("SELECT version FROM {table} WHERE id = ?1"),
            [id],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| not_found(entity, id))?;
    rules::expect_version(entity, id, expected, current)
}

fn ensure_unique(
    transaction: &Transaction<'_>,
    sql: &str,
    value: &str,
    except_id: &str,
    entity: &'static str,
    field: &'static str,
) -> StoreResult<()> {
    let taken: Option<String> = transaction
        .query_row(sql, params![value, except_id], |row| row.get(0))
        .optional()?;
    match taken {
        Some(_) => Err(StoreError::Conflict {
            entity,
            field,
            value: value.to_string(),
        }),
        None => Ok(()),
    }
}

fn page_clause(page: Page) -> (i64, i64) {
    (
        i64::try_from(page.limit).unwrap_or(i64::MAX),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

mod applications;
mod audit;
mod directory;
mod guard;
mod hosts;
mod ledger;
mod meta;
mod outbox;
mod passwords;
mod scope;

use applications::*;
use audit::*;
use directory::*;
