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
use serde_json::{Map, Value, json};

use super::secrets::{Secret, TokenCipher};
use super::{
    AppRecord, AppState, AppUpdate, AppWrite, Change, ChangeProgress, DeadLetter, Event,
    EventQuery, GroupKey, GroupRecord, GroupRef, GroupWrite, GuardFacts, GuardRecorded, GuardStep,
    HeldChange, HeldObject, HeldState, ImportBatch, ImportOutcome, LedgerChange, LedgerEntry,
    Listing, Member, MemberKind, MemberView, OffboardAction, Outcome, Page, Store, StoreError,
    StoreResult, UserKey, UserRecord, UserWrite,
};

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
];

const READER_POOL: usize = 4;

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
const APP_COLUMNS: &str = "id, name, label, connector, base_url, manage_groups, state, settings, version, created, modified, capabilities, pacing, state_reason, guard";
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

// --- Database file permissions.

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
        if super::secrets::tighten(&file).map_err(|error| failed(&file, error))? {
            tracing::warn!(
                "{} was readable by other users: now only its owner can read it",
                file.display()
            );
        }
    }
    Ok(())
}
// --- end of database file permissions.

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
            params![version, now()],
        )?;
        transaction.commit()?;
    }
    Ok(())
}

/// The current time as fixed-width RFC 3339 UTC text, so that text order is
/// time order.
pub fn now() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

/// The time `after` from now, as [`now`] writes times.
pub fn later(after: std::time::Duration) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let after = time::Duration::try_from(after).unwrap_or(time::Duration::DAY);
    (time::OffsetDateTime::now_utc() + after)
        .format(&format)
        .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".to_string())
}

/// `seconds` before now, as [`now`] writes it.
fn earlier_by(seconds: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let back = time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
    time::OffsetDateTime::now_utc()
        .checked_sub(back)
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| "0000-01-01T00:00:00.000Z".to_string())
}

fn later_by(seconds: u32) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(i64::from(seconds)))
        .format(&format)
        .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".to_string())
}

/// The form names are unique in and looked up by: Unicode lower case, the
/// same folding the SCIM filter evaluator applies.
fn fold(name: &str) -> String {
    name.to_lowercase()
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

fn user_from_row(row: &Row<'_>) -> RowResult<UserRecord> {
    let doc: String = row.get(4)?;
    Ok(parse_doc(&doc).map(|attributes| UserRecord {
        id: row.get(0).unwrap_or_default(),
        user_name: row.get(1).unwrap_or_default(),
        external_id: row.get(2).unwrap_or_default(),
        active: row.get(3).unwrap_or(false),
        attributes,
        version: row.get(5).unwrap_or_default(),
        created: row.get(6).unwrap_or_default(),
        modified: row.get(7).unwrap_or_default(),
    }))
}

fn group_from_row(row: &Row<'_>) -> RowResult<GroupRecord> {
    let doc: String = row.get(3)?;
    Ok(parse_doc(&doc).map(|attributes| GroupRecord {
        id: row.get(0).unwrap_or_default(),
        display_name: row.get(1).unwrap_or_default(),
        external_id: row.get(2).unwrap_or_default(),
        attributes,
        members: Vec::new(),
        version: row.get(4).unwrap_or_default(),
        created: row.get(5).unwrap_or_default(),
        modified: row.get(6).unwrap_or_default(),
    }))
}

fn app_from_row(row: &Row<'_>) -> RowResult<AppRecord> {
    let state: String = row.get(6)?;
    let settings: String = row.get(7)?;
    let Some(state) = AppState::parse(&state) else {
        return Ok(Err(StoreError::Backend(format!(
            "unknown application state {state:?}"
        ))));
    };
    let settings: Vec<(String, String)> = match serde_json::from_str(&settings) {
        Ok(settings) => settings,
        Err(error) => return Ok(Err(StoreError::Backend(error.to_string()))),
    };
    Ok(Ok(AppRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        label: row.get(2)?,
        connector: row.get(3)?,
        base_url: row.get(4)?,
        manage_groups: row.get(5)?,
        state,
        settings,
        version: row.get(8)?,
        created: row.get(9)?,
        modified: row.get(10)?,
        capabilities: serde_json::from_str(&row.get::<_, String>(11)?).unwrap_or(Value::Null),
        pacing: serde_json::from_str(&row.get::<_, String>(12)?).unwrap_or_default(),
        state_reason: row.get(13)?,
        guard: serde_json::from_str(&row.get::<_, String>(14)?).unwrap_or_default(),
    }))
}

fn event_from_row(row: &Row<'_>) -> RowResult<Event> {
    let outcome: String = row.get(7)?;
    let Some(outcome) = Outcome::parse(&outcome) else {
        return Ok(Err(StoreError::Backend(format!(
            "unknown outcome {outcome:?}"
        ))));
    };
    Ok(Ok(Event {
        id: row.get(0)?,
        at: row.get(1)?,
        app_id: row.get(2)?,
        app_name: row.get(3)?,
        object_kind: row.get(4)?,
        object_id: row.get(5)?,
        operation: row.get(6)?,
        outcome,
        rule: row.get(8)?,
        http_status: row.get(9)?,
        summary: row.get(10)?,
    }))
}

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

fn with_members(connection: &Connection, mut group: GroupRecord) -> StoreResult<GroupRecord> {
    let mut statement = connection.prepare_cached(
        "SELECT m.member_id, m.member_kind, COALESCE(u.user_name, g.display_name, '')
         FROM memberships m
         LEFT JOIN users u ON m.member_kind = 'User' AND u.id = m.member_id
         LEFT JOIN groups g ON m.member_kind = 'Group' AND g.id = m.member_id
         WHERE m.group_id = ?1 ORDER BY m.member_kind DESC, 3",
    )?;
    let rows = statement.query_map([&group.id], |row| {
        let kind: String = row.get(1)?;
        Ok(MemberView {
            id: row.get(0)?,
            kind: MemberKind::parse(&kind).unwrap_or(MemberKind::User),
            display: row.get(2)?,
        })
    })?;
    group.members = rows.collect::<Result<_, _>>()?;
    Ok(group)
}

fn append_change(
    transaction: &Transaction<'_>,
    entity: &str,
    entity_id: &str,
    action: &str,
    detail: Value,
) -> StoreResult<()> {
    transaction
        .prepare_cached(
            "INSERT INTO outbox (at, entity, entity_id, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![now(), entity, entity_id, action, detail.to_string()])?;
    APPENDED.with(|appended| appended.set(true));
    Ok(())
}

fn upsert_ledger_entry(transaction: &Transaction<'_>, entry: &LedgerEntry) -> StoreResult<()> {
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
            now(),
            entry.document
        ])?;
    clear_dead_letter(
        transaction,
        &entry.app_id,
        &entry.object_kind,
        &entry.object_id,
    )
}

fn delete_ledger_entry(
    transaction: &Transaction<'_>,
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

fn insert_event(transaction: &Transaction<'_>, mut event: Event) -> StoreResult<Event> {
    if event.id.is_empty() {
        event.id = new_id();
    }
    if event.at.is_empty() {
        event.at = now();
    }
    transaction
        .prepare_cached(&format!(
            "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?
        .execute(params![
            event.id,
            event.at,
            event.app_id,
            event.app_name,
            event.object_kind,
            event.object_id,
            event.operation,
            event.outcome.as_str(),
            event.rule,
            event.http_status,
            event.summary
        ])?;
    Ok(event)
}

fn clear_dead_letter(
    transaction: &Transaction<'_>,
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

const HELD_COLUMNS: &str =
    "id, app_id, change, offboarding, active_accounts, state, held_at, decided_at, threshold";
const HELD_OBJECT_COLUMNS: &str =
    "object_kind, object_id, user_name, remote_id, action, reason, held_at, carried_out";

/// A hold without its objects (see [`with_objects`]).
fn held_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<HeldChange>> {
    let change: String = row.get(2)?;
    let state: String = row.get(5)?;
    // 'null' for a per-application hold; a whole change for an older one.
    let change = match serde_json::from_str::<Option<Change>>(&change) {
        Ok(change) => change,
        Err(error) => {
            return Ok(Err(StoreError::Backend(format!(
                "a held change is unreadable: {error}"
            ))));
        }
    };
    let Some(state) = HeldState::parse(&state) else {
        return Ok(Err(StoreError::Backend(format!(
            "a held change has the unknown state {state:?}"
        ))));
    };
    Ok(Ok(HeldChange {
        id: row.get(0)?,
        app_id: row.get(1)?,
        change,
        offboarding: row.get(3)?,
        active_accounts: row.get(4)?,
        threshold: row.get(8)?,
        state,
        held_at: row.get(6)?,
        decided_at: row.get(7)?,
        objects: Vec::new(),
    }))
}

fn held_object_from_row(row: &Row<'_>) -> RowResult<HeldObject> {
    let action: String = row.get(4)?;
    let Some(action) = OffboardAction::parse(&action) else {
        return Ok(Err(StoreError::Backend(format!(
            "a held offboarding has the unknown action {action:?}"
        ))));
    };
    Ok(Ok(HeldObject {
        object_kind: row.get(0)?,
        object_id: row.get(1)?,
        user_name: row.get(2)?,
        remote_id: row.get(3)?,
        action,
        reason: row.get(5)?,
        held_at: row.get(6)?,
        carried_out: row.get(7)?,
    }))
}

/// The hold with the offboardings it lists.
fn with_objects(connection: &Connection, mut held: HeldChange) -> StoreResult<HeldChange> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {HELD_OBJECT_COLUMNS} FROM held_offboardings
         WHERE held_id = ?1 ORDER BY held_at, object_id"
    ))?;
    held.objects = collect(&mut statement, [&held.id], held_object_from_row)?;
    Ok(held)
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
    match expected {
        Some(expected) if expected != current => Err(StoreError::VersionMismatch {
            entity,
            id: id.to_string(),
            expected,
            current,
        }),
        _ => Ok(current),
    }
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

fn insert_user(transaction: &Transaction<'_>, user: &UserWrite) -> StoreResult<UserRecord> {
    ensure_unique(
        transaction,
        "SELECT id FROM users WHERE user_name_key = ?1 AND id != ?2",
        &fold(&user.user_name),
        "",
        "user",
        "userName",
    )?;
    let id = new_id();
    let at = now();
    transaction
        .prepare_cached(
            "INSERT INTO users (id, user_name, user_name_key, external_id, active, doc, version, created, modified)
             VALUES (?1, ?2, ?7, ?3, ?4, ?5, 1, ?6, ?6)",
        )?
        .execute(params![
            id,
            user.user_name,
            user.external_id,
            user.active,
            to_json(&user.attributes),
            at,
            fold(&user.user_name)
        ])?;
    append_change(
        transaction,
        "user",
        &id,
        "created",
        json!({ "userName": user.user_name }),
    )?;
    Ok(UserRecord {
        id,
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        active: user.active,
        attributes: user.attributes.clone(),
        version: 1,
        created: at.clone(),
        modified: at,
    })
}

fn update_user(
    transaction: &Transaction<'_>,
    id: &str,
    user: &UserWrite,
    expected_version: Option<i64>,
) -> StoreResult<UserRecord> {
    let version = current_version(transaction, "users", "user", id, expected_version)? + 1;
    ensure_unique(
        transaction,
        "SELECT id FROM users WHERE user_name_key = ?1 AND id != ?2",
        &fold(&user.user_name),
        id,
        "user",
        "userName",
    )?;
    let at = now();
    let created: String = transaction
        .prepare_cached(
            "UPDATE users SET user_name = ?2, user_name_key = ?8, external_id = ?3, active = ?4, doc = ?5,
                 version = ?6, modified = ?7
             WHERE id = ?1 RETURNING created",
        )?
        .query_row(
            params![
                id,
                user.user_name,
                user.external_id,
                user.active,
                to_json(&user.attributes),
                version,
                at,
                fold(&user.user_name)
            ],
            |row| row.get(0),
        )?;
    append_change(
        transaction,
        "user",
        id,
        "updated",
        json!({ "userName": user.user_name, "active": user.active }),
    )?;
    Ok(UserRecord {
        id: id.to_string(),
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        active: user.active,
        attributes: user.attributes.clone(),
        version,
        created,
        modified: at,
    })
}

/// An imported user laid over the stored one: attributes the import names
/// replace (complex ones sub-attribute by sub-attribute), the rest stay; an
/// import without `active` leaves the user's status as it is.
fn merge_import(
    transaction: &Transaction<'_>,
    id: &str,
    user: &UserWrite,
) -> StoreResult<UserWrite> {
    let (doc, active): (String, bool) =
        transaction.query_row("SELECT doc, active FROM users WHERE id = ?1", [id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let mut attributes = parse_doc(&doc)?;
    for (key, value) in &user.attributes {
        match (attributes.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                for (sub, sub_value) in incoming {
                    existing.insert(sub.clone(), sub_value.clone());
                }
            }
            _ => {
                attributes.insert(key.clone(), value.clone());
            }
        }
    }
    let active = if user.attributes.contains_key("active") {
        user.active
    } else {
        active
    };
    attributes.insert("active".into(), Value::Bool(active));
    Ok(UserWrite {
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone().or_else(|| {
            attributes
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        active,
        attributes,
    })
}

/// Inserts memberships after checking that every member exists and that no
/// group would contain itself; returns the ids actually added.
fn add_members(
    transaction: &Transaction<'_>,
    group_id: &str,
    members: &[Member],
) -> StoreResult<Vec<String>> {
    let mut added = Vec::new();
    for member in members {
        let table = match member.kind {
            MemberKind::User => "users",
            MemberKind::Group => "groups",
        };
        let exists = transaction
            .prepare_cached(&format!("SELECT 1 FROM {table} WHERE id = ?1"))?
            .exists([&member.id])?;
        if !exists {
            return Err(StoreError::InvalidMembership(format!(
                "member {} is not a {} of the directory",
                member.id,
                member.kind.as_str().to_lowercase()
            )));
        }
        if member.kind == MemberKind::Group && contains_group(transaction, &member.id, group_id)? {
            return Err(StoreError::InvalidMembership(format!(
                "group {} cannot be a member of group {group_id}: it would contain itself",
                member.id
            )));
        }
        let inserted = transaction
            .prepare_cached(
                "INSERT OR IGNORE INTO memberships (group_id, member_id, member_kind) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![group_id, member.id, member.kind.as_str()])?;
        if inserted > 0 {
            touch_user(transaction, &member.id)?;
            added.push(member.id.clone());
        }
    }
    Ok(added)
}

/// Whether `outer` is `inner` or contains it through nested groups.
fn contains_group(transaction: &Transaction<'_>, outer: &str, inner: &str) -> StoreResult<bool> {
    if outer == inner {
        return Ok(true);
    }
    Ok(transaction
        .prepare_cached(
            "WITH RECURSIVE nested(id) AS (
                 SELECT member_id FROM memberships WHERE group_id = ?1 AND member_kind = 'Group'
                 UNION
                 SELECT m.member_id FROM memberships m JOIN nested n ON m.group_id = n.id
                 WHERE m.member_kind = 'Group'
             )
             SELECT 1 FROM nested WHERE id = ?2",
        )?
        .exists(params![outer, inner])?)
}

fn remove_members(
    transaction: &Transaction<'_>,
    group_id: &str,
    members: &[String],
) -> StoreResult<Vec<String>> {
    let mut removed = Vec::new();
    for member in members {
        let deleted = transaction
            .prepare_cached("DELETE FROM memberships WHERE group_id = ?1 AND member_id = ?2")?
            .execute(params![group_id, member])?;
        if deleted > 0 {
            touch_user(transaction, member)?;
            removed.push(member.clone());
        }
    }
    Ok(removed)
}

/// A user's `groups` is part of the user: a membership change gives the
/// user a new version (and ETag). A group id matches no user and is a no-op.
fn touch_user(transaction: &Transaction<'_>, id: &str) -> StoreResult<()> {
    transaction
        .prepare_cached("UPDATE users SET version = version + 1, modified = ?2 WHERE id = ?1")?
        .execute(params![id, now()])?;
    Ok(())
}

fn record_membership_change(
    transaction: &Transaction<'_>,
    group_id: &str,
    added: &[String],
    removed: &[String],
) -> StoreResult<()> {
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    append_change(
        transaction,
        "group",
        group_id,
        "members-changed",
        json!({ "added": added, "removed": removed }),
    )
}

fn bump_group(transaction: &Transaction<'_>, group_id: &str) -> StoreResult<()> {
    transaction
        .prepare_cached("UPDATE groups SET version = version + 1, modified = ?2 WHERE id = ?1")?
        .execute(params![group_id, now()])?;
    Ok(())
}

fn member_ids(transaction: &Transaction<'_>, group_id: &str) -> StoreResult<Vec<String>> {
    let mut statement =
        transaction.prepare_cached("SELECT member_id FROM memberships WHERE group_id = ?1")?;
    let ids = statement
        .query_map([group_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

fn find_group_id(transaction: &Transaction<'_>, name: &str) -> StoreResult<Option<String>> {
    Ok(transaction
        .prepare_cached("SELECT id FROM groups WHERE display_name_key = ?1")?
        .query_row([fold(name)], |row| row.get(0))
        .optional()?)
}

fn insert_group(transaction: &Transaction<'_>, group: &GroupWrite) -> StoreResult<String> {
    ensure_unique(
        transaction,
        "SELECT id FROM groups WHERE display_name_key = ?1 AND id != ?2",
        &fold(&group.display_name),
        "",
        "group",
        "displayName",
    )?;
    let id = new_id();
    let at = now();
    transaction
        .prepare_cached(
            "INSERT INTO groups (id, display_name, display_name_key, external_id, doc, version, created, modified)
             VALUES (?1, ?2, ?6, ?3, ?4, 1, ?5, ?5)",
        )?
        .execute(params![
            id,
            group.display_name,
            group.external_id,
            to_json(&group.attributes),
            at,
            fold(&group.display_name)
        ])?;
    append_change(
        transaction,
        "group",
        &id,
        "created",
        json!({ "displayName": group.display_name }),
    )?;
    if let Some(members) = &group.members {
        let added = add_members(transaction, &id, members)?;
        record_membership_change(transaction, &id, &added, &[])?;
    }
    Ok(id)
}

fn page_clause(page: Page) -> (i64, i64) {
    (
        i64::try_from(page.limit).unwrap_or(i64::MAX),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

impl Store for SqliteStore {
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(Arc::clone(&self.appended))
    }

    fn create_user(&self, user: UserWrite) -> StoreResult<UserRecord> {
        self.write(|transaction| insert_user(transaction, &user))
    }

    fn replace_user(
        &self,
        id: &str,
        user: UserWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<UserRecord> {
        self.write(|transaction| update_user(transaction, id, &user, expected_version))
    }

    fn delete_user(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        self.write(|transaction| {
            current_version(transaction, "users", "user", id, expected_version)?;
            let mut statement = transaction
                .prepare_cached("SELECT group_id FROM memberships WHERE member_id = ?1")?;
            let groups: Vec<String> = statement
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let user_name: String = transaction.query_row(
                "SELECT user_name FROM users WHERE id = ?1",
                [id],
                |row| row.get(0),
            )?;
            transaction.execute("DELETE FROM memberships WHERE member_id = ?1", [id])?;
            transaction.execute("DELETE FROM users WHERE id = ?1", [id])?;
            for group in &groups {
                bump_group(transaction, group)?;
            }
            append_change(
                transaction,
                "user",
                id,
                "deleted",
                json!({ "userName": user_name, "groups": groups }),
            )
        })
    }

    fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        self.read(|connection| {
            connection
                .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
                .query_row([id], user_from_row)
                .optional()?
                .transpose()
        })
    }

    fn find_users(&self, key: UserKey, value: &str) -> StoreResult<Vec<UserRecord>> {
        let folded;
        let value = if key == UserKey::UserName {
            folded = fold(value);
            folded.as_str()
        } else {
            value
        };
        let column = match key {
            UserKey::Id => "id",
            UserKey::UserName => "user_name_key",
            UserKey::ExternalId => "external_id",
        };
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {column} = ?1"
            ))?;
            collect(&mut statement, [value], user_from_row)
        })
    }

    fn list_users(&self, page: Page) -> StoreResult<Listing<UserRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|connection| {
            let total: u64 =
                connection.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY user_name, id LIMIT ?1 OFFSET ?2"
            ))?;
            let items = collect(&mut statement, params![limit, offset], user_from_row)?;
            Ok(Listing { items, total })
        })
    }

    fn scan_users(&self, visit: &mut dyn FnMut(UserRecord) -> bool) -> StoreResult<()> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY user_name, id"
            ))?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                if !visit(user_from_row(row)??) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn user_groups(&self, id: &str) -> StoreResult<Vec<GroupRef>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT g.id, g.display_name FROM memberships m JOIN groups g ON g.id = m.group_id
                 WHERE m.member_id = ?1 ORDER BY g.display_name",
            )?;
            let groups = statement
                .query_map([id], |row| {
                    Ok(GroupRef {
                        id: row.get(0)?,
                        display_name: row.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(groups)
        })
    }

    fn create_group(&self, group: GroupWrite) -> StoreResult<GroupRecord> {
        let id = self.write(|transaction| insert_group(transaction, &group))?;
        self.get_group(&id)?.ok_or_else(|| not_found("group", &id))
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<GroupRecord> {
        self.write(|transaction| {
            let version = current_version(transaction, "groups", "group", id, expected_version)?;
            ensure_unique(
                transaction,
                "SELECT id FROM groups WHERE display_name_key = ?1 AND id != ?2",
                &fold(&group.display_name),
                id,
                "group",
                "displayName",
            )?;
            let previous_name: String = transaction.query_row(
                "SELECT display_name FROM groups WHERE id = ?1",
                [id],
                |row| row.get(0),
            )?;
            transaction.execute(
                "UPDATE groups SET display_name = ?2, display_name_key = ?7, external_id = ?3, doc = ?4,
                     version = ?5, modified = ?6 WHERE id = ?1",
                params![
                    id,
                    group.display_name,
                    group.external_id,
                    to_json(&group.attributes),
                    version + 1,
                    now(),
                    fold(&group.display_name)
                ],
            )?;
            let action = if previous_name == group.display_name {
                "updated"
            } else {
                "renamed"
            };
            append_change(
                transaction,
                "group",
                id,
                action,
                json!({ "displayName": group.display_name, "previousDisplayName": previous_name }),
            )?;
            if let Some(members) = &group.members {
                let wanted: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
                let current: HashSet<String> = member_ids(transaction, id)?.into_iter().collect();
                let stale: Vec<String> = current
                    .iter()
                    .filter(|member| !wanted.contains(member.as_str()))
                    .cloned()
                    .collect();
                // Only members new to the group are checked (existence,
                // cycles): a PATCH adding one member to a large group costs
                // one check, not one per member.
                let new: Vec<Member> = members
                    .iter()
                    .filter(|member| !current.contains(&member.id))
                    .cloned()
                    .collect();
                let removed = remove_members(transaction, id, &stale)?;
                let added = add_members(transaction, id, &new)?;
                record_membership_change(transaction, id, &added, &removed)?;
            }
            Ok(())
        })?;
        self.get_group(id)?.ok_or_else(|| not_found("group", id))
    }

    fn delete_group(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        self.write(|transaction| {
            current_version(transaction, "groups", "group", id, expected_version)?;
            let members = member_ids(transaction, id)?;
            let mut statement =
                transaction.prepare_cached("SELECT app_id FROM bindings WHERE group_id = ?1")?;
            let apps: Vec<String> = statement
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let name: String = transaction.query_row(
                "SELECT display_name FROM groups WHERE id = ?1",
                [id],
                |row| row.get(0),
            )?;
            let mut statement = transaction
                .prepare_cached("SELECT group_id FROM memberships WHERE member_id = ?1")?;
            let parents: Vec<String> = statement
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            transaction.execute("DELETE FROM memberships WHERE member_id = ?1", [id])?;
            transaction.execute("DELETE FROM groups WHERE id = ?1", [id])?;
            for member in &members {
                touch_user(transaction, member)?;
            }
            for parent in &parents {
                bump_group(transaction, parent)?;
            }
            append_change(
                transaction,
                "group",
                id,
                "deleted",
                json!({
                    "displayName": name,
                    "members": members,
                    "boundApps": apps,
                    "parents": parents,
                }),
            )
        })
    }

    fn get_group(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        self.read(|connection| self.load_group(connection, id))
    }

    fn find_groups(&self, key: GroupKey, value: &str) -> StoreResult<Vec<GroupRecord>> {
        let folded;
        let value = if key == GroupKey::DisplayName {
            folded = fold(value);
            folded.as_str()
        } else {
            value
        };
        let column = match key {
            GroupKey::Id => "id",
            GroupKey::DisplayName => "display_name_key",
            GroupKey::ExternalId => "external_id",
        };
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups WHERE {column} = ?1"
            ))?;
            collect(&mut statement, [value], group_from_row)?
                .into_iter()
                .map(|group| with_members(connection, group))
                .collect()
        })
    }

    fn list_groups(&self, page: Page) -> StoreResult<Listing<GroupRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|connection| {
            let total: u64 =
                connection.query_row("SELECT COUNT(*) FROM groups", [], |row| row.get(0))?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups ORDER BY display_name, id LIMIT ?1 OFFSET ?2"
            ))?;
            let items = collect(&mut statement, params![limit, offset], group_from_row)?
                .into_iter()
                .map(|group| with_members(connection, group))
                .collect::<StoreResult<_>>()?;
            Ok(Listing { items, total })
        })
    }

    fn scan_groups(&self, visit: &mut dyn FnMut(GroupRecord) -> bool) -> StoreResult<()> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups ORDER BY display_name, id"
            ))?;
            let groups = collect(&mut statement, [], group_from_row)?;
            for group in groups {
                if !visit(with_members(connection, group)?) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn change_members(
        &self,
        group_id: &str,
        add: &[Member],
        remove: &[String],
    ) -> StoreResult<GroupRecord> {
        self.write(|transaction| {
            current_version(transaction, "groups", "group", group_id, None)?;
            let removed = remove_members(transaction, group_id, remove)?;
            let added = add_members(transaction, group_id, add)?;
            if !added.is_empty() || !removed.is_empty() {
                bump_group(transaction, group_id)?;
            }
            record_membership_change(transaction, group_id, &added, &removed)
        })?;
        self.get_group(group_id)?
            .ok_or_else(|| not_found("group", group_id))
    }

    fn create_app(&self, app: AppWrite) -> StoreResult<AppRecord> {
        let id = new_id();
        let (nonce, sealed) = self
            .cipher
            .seal(&id, &app.token)
            .map_err(|error| StoreError::Secret(error.to_string()))?;
        let settings = serde_json::to_string(&app.settings)
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        self.write(|transaction| {
            let taken = transaction
                .prepare_cached("SELECT 1 FROM applications WHERE name = ?1")?
                .exists([&app.name])?;
            if taken {
                return Err(StoreError::Conflict {
                    entity: "application",
                    field: "name",
                    value: app.name.clone(),
                });
            }
            let at = now();
            transaction.execute(
                "INSERT INTO applications (id, name, label, connector, base_url, token_nonce,
                     token_sealed, manage_groups, state, settings, version, created, modified, pacing,
                     guard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'inactive', ?9, 1, ?10, ?10, ?11, ?12)",
                params![
                    id,
                    app.name,
                    app.label,
                    app.connector,
                    app.base_url,
                    nonce,
                    sealed,
                    app.manage_groups,
                    settings,
                    at,
                    serde_json::to_string(&app.pacing).unwrap_or_else(|_| "{}".into()),
                    serde_json::to_string(&app.guard).unwrap_or_else(|_| "{}".into())
                ],
            )?;
            append_change(
                transaction,
                "app",
                &id,
                "created",
                json!({ "name": app.name }),
            )?;
            self.app_in(transaction, &id)
        })
    }

    fn get_app(&self, name_or_id: &str) -> StoreResult<Option<AppRecord>> {
        self.read(|connection| match self.app_in(connection, name_or_id) {
            Ok(app) => Ok(Some(app)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        })
    }

    fn list_apps(&self, page: Page) -> StoreResult<Listing<AppRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|connection| {
            let total: u64 =
                connection.query_row("SELECT COUNT(*) FROM applications", [], |row| row.get(0))?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {APP_COLUMNS} FROM applications ORDER BY name LIMIT ?1 OFFSET ?2"
            ))?;
            let items = collect(&mut statement, params![limit, offset], app_from_row)?;
            Ok(Listing { items, total })
        })
    }

    fn update_app(&self, name_or_id: &str, update: AppUpdate) -> StoreResult<AppRecord> {
        self.write(|transaction| {
            let mut app = self.app_in(transaction, name_or_id)?;
            let mut actions = Vec::new();
            if let Some(label) = update.label {
                app.label = label;
                actions.push("updated");
            }
            if let Some(base_url) = update.base_url {
                app.base_url = base_url;
                actions.push("updated");
            }
            if let Some(settings) = update.settings {
                app.settings = settings;
                actions.push("updated");
            }
            if let Some(manage_groups) = update.manage_groups
                && manage_groups != app.manage_groups
            {
                app.manage_groups = manage_groups;
                actions.push(if manage_groups {
                    "group-management-enabled"
                } else {
                    "group-management-disabled"
                });
            }
            if let Some(state) = update.state
                && state != app.state
            {
                app.state = state;
                actions.push(match state {
                    AppState::Active => "activated",
                    AppState::Inactive => "deactivated",
                    AppState::Quarantined => "quarantined",
                });
            }
            // A reason only ever explains a quarantine.
            let reason = match app.state {
                AppState::Quarantined => update.state_reason.or(app.state_reason.take()),
                _ => None,
            };
            if reason != app.state_reason {
                app.state_reason = reason;
                actions.push("updated");
            }
            if let Some(pacing) = update.pacing
                && pacing != app.pacing
            {
                app.pacing = pacing;
                actions.push("updated");
            }
            if let Some(guard) = update.guard
                && guard != app.guard
            {
                app.guard = guard;
                actions.push("updated");
            }
            if let Some(capabilities) = update.capabilities {
                app.capabilities = capabilities;
                actions.push("tested");
            }
            if let Some(token) = &update.token {
                let (nonce, sealed) = self
                    .cipher
                    .seal(&app.id, token)
                    .map_err(|error| StoreError::Secret(error.to_string()))?;
                transaction.execute(
                    "UPDATE applications SET token_nonce = ?2, token_sealed = ?3 WHERE id = ?1",
                    params![app.id, nonce, sealed],
                )?;
                actions.push("token-rotated");
            }
            if actions.is_empty() {
                return Ok(app);
            }
            actions.dedup();
            let settings = serde_json::to_string(&app.settings)
                .map_err(|error| StoreError::Backend(error.to_string()))?;
            transaction.execute(
                "UPDATE applications SET label = ?2, base_url = ?3, manage_groups = ?4, state = ?5,
                     settings = ?6, version = version + 1, modified = ?7, capabilities = ?8,
                     pacing = ?9, state_reason = ?10, guard = ?11
                 WHERE id = ?1",
                params![
                    app.id,
                    app.label,
                    app.base_url,
                    app.manage_groups,
                    app.state.as_str(),
                    settings,
                    now(),
                    app.capabilities.to_string(),
                    serde_json::to_string(&app.pacing).unwrap_or_else(|_| "{}".into()),
                    app.state_reason,
                    serde_json::to_string(&app.guard).unwrap_or_else(|_| "{}".into())
                ],
            )?;
            for action in actions {
                append_change(
                    transaction,
                    "app",
                    &app.id,
                    action,
                    json!({ "name": app.name }),
                )?;
            }
            self.app_in(transaction, &app.id)
        })
    }

    fn delete_app(&self, name_or_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = self.app_in(transaction, name_or_id)?;
            transaction.execute("DELETE FROM applications WHERE id = ?1", [&app.id])?;
            append_change(
                transaction,
                "app",
                &app.id,
                "deleted",
                json!({ "name": app.name }),
            )
        })
    }

    fn app_token(&self, name_or_id: &str) -> StoreResult<Secret> {
        self.read(|connection| {
            let (id, nonce, sealed): (String, Vec<u8>, Vec<u8>) = connection
                .query_row(
                    "SELECT id, token_nonce, token_sealed FROM applications WHERE id = ?1 OR name = ?1",
                    [name_or_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?
                .ok_or_else(|| not_found("application", name_or_id))?;
            self.cipher.open(&id, &nonce, &sealed).ok_or_else(|| {
                StoreError::Secret(
                    "the host key differs from the one that sealed it; rotate the token".into(),
                )
            })
        })
    }

    fn bind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = self.app_in(transaction, app)?;
            current_version(transaction, "groups", "group", group_id, None)?;
            let inserted = transaction.execute(
                "INSERT OR IGNORE INTO bindings (app_id, group_id, created) VALUES (?1, ?2, ?3)",
                params![app.id, group_id, now()],
            )?;
            if inserted > 0 {
                append_change(
                    transaction,
                    "binding",
                    &app.id,
                    "bound",
                    json!({ "group": group_id }),
                )?;
            }
            Ok(())
        })
    }

    fn unbind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = self.app_in(transaction, app)?;
            let deleted = transaction.execute(
                "DELETE FROM bindings WHERE app_id = ?1 AND group_id = ?2",
                params![app.id, group_id],
            )?;
            if deleted == 0 {
                return Err(not_found("binding", group_id));
            }
            let members = member_ids(transaction, group_id)?;
            append_change(
                transaction,
                "binding",
                &app.id,
                "unbound",
                json!({ "group": group_id, "members": members }),
            )
        })
    }

    fn assign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = self.app_in(transaction, app)?;
            current_version(transaction, "users", "user", user_id, None)?;
            let inserted = transaction.execute(
                "INSERT OR IGNORE INTO assignments (app_id, user_id, created) VALUES (?1, ?2, ?3)",
                params![app.id, user_id, now()],
            )?;
            if inserted > 0 {
                append_change(
                    transaction,
                    "assignment",
                    &app.id,
                    "assigned",
                    json!({ "user": user_id }),
                )?;
            }
            Ok(())
        })
    }

    fn unassign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = self.app_in(transaction, app)?;
            let deleted = transaction.execute(
                "DELETE FROM assignments WHERE app_id = ?1 AND user_id = ?2",
                params![app.id, user_id],
            )?;
            if deleted == 0 {
                return Err(not_found("assignment", user_id));
            }
            append_change(
                transaction,
                "assignment",
                &app.id,
                "unassigned",
                json!({ "user": user_id }),
            )
        })
    }

    fn assignments(&self, app: &str) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let app = self.app_in(connection, app)?;
            let mut statement = connection.prepare_cached(
                "SELECT user_id FROM assignments WHERE app_id = ?1 ORDER BY user_id",
            )?;
            let users = statement
                .query_map([&app.id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(users)
        })
    }

    fn bindings(&self, app: &str) -> StoreResult<Vec<GroupRef>> {
        self.read(|connection| {
            let app = self.app_in(connection, app)?;
            let mut statement = connection.prepare_cached(
                "SELECT g.id, g.display_name FROM bindings b JOIN groups g ON g.id = b.group_id
                 WHERE b.app_id = ?1 ORDER BY g.display_name",
            )?;
            let groups = statement
                .query_map([&app.id], |row| {
                    Ok(GroupRef {
                        id: row.get(0)?,
                        display_name: row.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(groups)
        })
    }

    fn users_in_scope(&self, app: &str) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let app = self.app_in(connection, app)?;
            // CROSS JOIN keeps the bound groups as the outer loop: left to
            // itself the planner walks every membership of the directory.
            let mut statement = connection.prepare_cached(
                "WITH RECURSIVE scope(group_id) AS (
                     SELECT group_id FROM bindings WHERE app_id = ?1
                     UNION
                     SELECT m.member_id FROM scope s CROSS JOIN memberships m ON m.group_id = s.group_id
                     WHERE m.member_kind = 'Group'
                 )
                 SELECT m.member_id FROM scope s CROSS JOIN memberships m ON m.group_id = s.group_id
                 WHERE m.member_kind = 'User'
                 UNION
                 SELECT user_id FROM assignments WHERE app_id = ?1
                 ORDER BY 1",
            )?;
            let users = statement
                .query_map([&app.id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(users)
        })
    }

    fn import(&self, batch: ImportBatch) -> StoreResult<ImportOutcome> {
        self.write(|transaction| {
            let mut outcome = ImportOutcome::default();
            for user in &batch.users {
                let existing: Option<String> = transaction
                    .prepare_cached("SELECT id FROM users WHERE user_name_key = ?1")?
                    .query_row([fold(&user.user_name)], |row| row.get(0))
                    .optional()?;
                match existing {
                    Some(id) => {
                        let merged = merge_import(transaction, &id, user)?;
                        update_user(transaction, &id, &merged, None)?;
                        outcome.users_updated += 1;
                    }
                    None => {
                        insert_user(transaction, user)?;
                        outcome.users_created += 1;
                    }
                }
            }
            for group in &batch.groups {
                let id = match find_group_id(transaction, &group.display_name)? {
                    Some(id) => id,
                    None => {
                        outcome.groups_created += 1;
                        insert_group(
                            transaction,
                            &GroupWrite {
                                display_name: group.display_name.clone(),
                                external_id: None,
                                attributes: Map::new(),
                                members: None,
                            },
                        )?
                    }
                };
                let mut members = Vec::with_capacity(group.member_user_names.len());
                for user_name in &group.member_user_names {
                    let user_id: String = transaction
                        .prepare_cached("SELECT id FROM users WHERE user_name_key = ?1")?
                        .query_row([fold(user_name)], |row| row.get(0))
                        .optional()?
                        .ok_or_else(|| {
                            StoreError::InvalidMembership(format!(
                                "group {:?} names member {user_name:?}, who is not a user of the directory",
                                group.display_name
                            ))
                        })?;
                    members.push(Member {
                        id: user_id,
                        kind: MemberKind::User,
                    });
                }
                let added = add_members(transaction, &id, &members)?;
                if !added.is_empty() {
                    bump_group(transaction, &id)?;
                }
                outcome.memberships_added += added.len() as u64;
                record_membership_change(transaction, &id, &added, &[])?;
            }
            Ok(outcome)
        })
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
                    params![consumer, later_by(lease_seconds), now(), limit],
                    |row| {
                        let detail: String = row.get(5)?;
                        Ok(Change {
                            seq: row.get(0)?,
                            at: row.get(1)?,
                            entity: row.get(2)?,
                            entity_id: row.get(3)?,
                            action: row.get(4)?,
                            detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
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
            let until = later_by(lease_seconds);
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
            let at = now();
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

    fn defer_changes(&self, consumer: &str, until: &[(i64, String)]) -> StoreResult<()> {
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

    fn pending_changes(&self) -> StoreResult<u64> {
        self.read(|connection| {
            Ok(connection.query_row(
                "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL",
                [],
                |row| row.get(0),
            )?)
        })
    }

    fn users_of(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let mut users = std::collections::BTreeSet::new();
            let mut is_user = connection.prepare_cached("SELECT 1 FROM users WHERE id = ?1")?;
            let mut nested = connection.prepare_cached(
                "WITH RECURSIVE down(group_id) AS (
                     SELECT ?1
                     UNION
                     SELECT m.member_id FROM down CROSS JOIN memberships m ON m.group_id = down.group_id
                     WHERE m.member_kind = 'Group'
                 )
                 SELECT DISTINCT m.member_id FROM down CROSS JOIN memberships m ON m.group_id = down.group_id
                 WHERE m.member_kind = 'User'",
            )?;
            for id in ids {
                if is_user.exists([id])? {
                    users.insert(id.clone());
                    continue;
                }
                for user in nested.query_map([id], |row| row.get::<_, String>(0))? {
                    users.insert(user?);
                }
            }
            Ok(users.into_iter().collect())
        })
    }

    fn user_in_scope(&self, app_id: &str, user_id: &str) -> StoreResult<bool> {
        self.read(|connection| {
            let assigned = connection
                .prepare_cached("SELECT 1 FROM assignments WHERE app_id = ?1 AND user_id = ?2")?
                .exists(params![app_id, user_id])?;
            Ok(assigned
                || connection
                .prepare_cached(
                    "WITH RECURSIVE up(group_id) AS (
                         SELECT group_id FROM memberships WHERE member_id = ?2
                         UNION
                         SELECT m.group_id FROM up CROSS JOIN memberships m ON m.member_id = up.group_id
                     )
                     SELECT 1 FROM up JOIN bindings b ON b.group_id = up.group_id WHERE b.app_id = ?1
                     LIMIT 1",
                )?
                .exists(params![app_id, user_id])?)
        })
    }

    fn bound_groups_containing(&self, app_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "WITH RECURSIVE up(group_id) AS (
                     SELECT ?2
                     UNION
                     SELECT m.group_id FROM up CROSS JOIN memberships m ON m.member_id = up.group_id
                 )
                 SELECT b.group_id FROM up JOIN bindings b ON b.group_id = up.group_id
                 WHERE b.app_id = ?1 ORDER BY b.group_id",
            )?;
            let groups = statement
                .query_map(params![app_id, member_id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(groups)
        })
    }

    fn remote_ids(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT remote_id FROM ledger
                 WHERE app_id = ?1 AND object_kind = ?2 AND object_id = ?3",
            )?;
            let mut found = Vec::with_capacity(object_ids.len());
            for id in object_ids {
                if let Some(remote) = statement
                    .query_row(params![app_id, object_kind, id], |row| row.get(0))
                    .optional()?
                {
                    found.push((id.clone(), remote));
                }
            }
            Ok(found)
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
                    Ok(LedgerEntry {
                        app_id: app_id.to_string(),
                        object_kind: object_kind.to_string(),
                        object_id: row.get(0)?,
                        remote_id: row.get(1)?,
                        doc_hash: row.get(2)?,
                        updated: row.get(3)?,
                        document: row.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(entries)
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
            let at = now();
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
            append_change(
                transaction,
                "app",
                app_id,
                "replay",
                json!({ "users": users, "groups": groups }),
            )?;
            Ok(chosen.len() as u64)
        })
    }

    fn guard_offboarding(
        &self,
        app_id: &str,
        object: &HeldObject,
        entry_state: &str,
        window_seconds: u64,
        decide: &dyn Fn(&GuardFacts) -> GuardStep,
    ) -> StoreResult<GuardRecorded> {
        self.write(|transaction| {
            // An operator's decision stopped counting what came before it
            // (see `decide_held_change`), so an approval does not trip again
            // on what it let through.
            let window_start = earlier_by(window_seconds);
            transaction
                .prepare_cached("DELETE FROM guard_admissions WHERE app_id = ?1 AND at < ?2")?
                .execute(params![app_id, window_start])?;
            let admitted_in_window: u64 = transaction
                .prepare_cached(
                    "SELECT COUNT(DISTINCT object_id) FROM guard_admissions
                     WHERE app_id = ?1 AND at >= ?2 AND counted = 1",
                )?
                .query_row(params![app_id, window_start], |row| row.get(0))?;
            let already_admitted = transaction
                .prepare_cached(
                    "SELECT 1 FROM guard_admissions
                     WHERE app_id = ?1 AND object_id = ?2 AND entry_state = ?3 AND at >= ?4",
                )?
                .exists(params![app_id, object.object_id, entry_state, window_start])?;
            let active_accounts: u64 = transaction
                .prepare_cached(
                    // Neither deactivated nor sent `active: false` last.
                    "SELECT COUNT(*) FROM ledger
                     WHERE app_id = ?1 AND object_kind = 'user' AND doc_hash != ?2
                       AND NOT (doc IS NOT NULL AND json_valid(doc)
                                AND json_extract(doc, '$.active') IS 0)",
                )?
                .query_row(
                    params![app_id, crate::engine::provision::DEACTIVATED],
                    |row| row.get(0),
                )?;
            // An approval lets the offboardings it lists through once, for
            // a window after the decision.
            let approved_in: Option<String> = transaction
                .prepare_cached(
                    "SELECT h.id FROM held_changes h
                     JOIN held_offboardings o ON o.held_id = h.id
                     WHERE h.app_id = ?1 AND h.state = 'approved' AND h.decided_at > ?2
                       AND o.object_kind = ?3 AND o.object_id = ?4 AND o.carried_out IS NULL
                     ORDER BY h.decided_at DESC LIMIT 1",
                )?
                .query_row(
                    params![app_id, window_start, object.object_kind, object.object_id],
                    |row| row.get(0),
                )
                .optional()?;
            let open_hold: Option<String> = transaction
                .prepare_cached(
                    "SELECT id FROM held_changes WHERE app_id = ?1 AND state = 'held'
                     ORDER BY held_at DESC LIMIT 1",
                )?
                .query_row([app_id], |row| row.get(0))
                .optional()?;
            let facts = GuardFacts {
                active_accounts,
                admitted_in_window,
                already_admitted,
                approved_in,
                open_hold,
            };
            let step = decide(&facts);
            let at = now();
            let mut recorded = GuardRecorded {
                step,
                hold: None,
                hold_made: false,
                newly_held: false,
                facts: facts.clone(),
            };
            match step {
                GuardStep::AdmitAgain => {}
                GuardStep::Admit | GuardStep::AdmitApproved => {
                    let approved = step == GuardStep::AdmitApproved;
                    transaction
                        .prepare_cached(
                            "INSERT INTO guard_admissions
                                 (app_id, object_id, entry_state, kind, counted, at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                            app_id,
                            object.object_id,
                            entry_state,
                            object.action.as_str(),
                            !approved,
                            at
                        ])?;
                    if approved && let Some(held_id) = &facts.approved_in {
                        transaction
                            .prepare_cached(
                                "UPDATE held_offboardings SET carried_out = ?4
                                 WHERE held_id = ?1 AND object_kind = ?2 AND object_id = ?3",
                            )?
                            .execute(params![held_id, object.object_kind, object.object_id, at])?;
                        recorded.hold = Some(held_id.clone());
                    }
                }
                GuardStep::Hold { threshold } => {
                    let held_id = match &facts.open_hold {
                        Some(held_id) => held_id.clone(),
                        None => {
                            let held_id = new_id();
                            transaction.execute(
                                "INSERT INTO held_changes (id, app_id, change, offboarding,
                                     active_accounts, state, held_at, threshold)
                                 VALUES (?1, ?2, 'null', 0, ?3, 'held', ?4, ?5)",
                                params![held_id, app_id, active_accounts, at, threshold],
                            )?;
                            recorded.hold_made = true;
                            held_id
                        }
                    };
                    let listed = transaction
                        .prepare_cached(
                            "INSERT INTO held_offboardings (held_id, object_kind, object_id,
                                 user_name, remote_id, action, reason, held_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                             ON CONFLICT (held_id, object_kind, object_id) DO NOTHING",
                        )?
                        .execute(params![
                            held_id,
                            object.object_kind,
                            object.object_id,
                            object.user_name,
                            object.remote_id,
                            object.action.as_str(),
                            object.reason,
                            at
                        ])?;
                    recorded.newly_held = listed > 0;
                    transaction.execute(
                        "UPDATE held_changes SET offboarding =
                             (SELECT COUNT(*) FROM held_offboardings WHERE held_id = ?1)
                         WHERE id = ?1",
                        [&held_id],
                    )?;
                    recorded.hold = Some(held_id);
                }
            }
            Ok(recorded)
        })
    }

    fn held_changes(&self, app_id: Option<&str>) -> StoreResult<Vec<HeldChange>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM held_changes
                 WHERE ?1 IS NULL OR app_id = ?1 ORDER BY held_at DESC, id"
            ))?;
            let held = statement
                .query_map([app_id], held_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            held.into_iter()
                .map(|held| with_objects(connection, held?))
                .collect()
        })
    }

    fn decide_held_change(&self, id: &str, approve: bool) -> StoreResult<HeldChange> {
        self.write(|transaction| {
            let held = transaction
                .prepare_cached(&format!(
                    "SELECT {HELD_COLUMNS} FROM held_changes WHERE id = ?1"
                ))?
                .query_row([id], held_from_row)
                .optional()?
                .ok_or_else(|| not_found("held change", id))??;
            let held = with_objects(transaction, held)?;
            if held.state != HeldState::Held {
                return Err(StoreError::Conflict {
                    entity: "held change",
                    field: "state",
                    value: held.state.as_str().to_string(),
                });
            }
            let state = if approve {
                HeldState::Approved
            } else {
                HeldState::Rejected
            };
            let at = now();
            transaction.execute(
                "UPDATE held_changes SET state = ?2, decided_at = ?3 WHERE id = ?1",
                params![id, state.as_str(), at],
            )?;
            // The application's count starts again from the decision.
            transaction.execute(
                "UPDATE guard_admissions SET counted = 0 WHERE app_id = ?1",
                [&held.app_id],
            )?;
            if approve {
                let users: Vec<&str> = held
                    .objects
                    .iter()
                    .filter(|object| object.object_kind == "user")
                    .map(|object| object.object_id.as_str())
                    .collect();
                append_change(
                    transaction,
                    "guard",
                    &held.app_id,
                    "approved",
                    json!({ "held": held.id, "users": users, "change": held.change }),
                )?;
            }
            Ok(HeldChange {
                state,
                decided_at: Some(at),
                ..held
            })
        })
    }

    fn record_event(&self, event: Event) -> StoreResult<Event> {
        self.write(|transaction| insert_event(transaction, event))
    }

    fn record_with_ledger(&self, change: LedgerChange<'_>, event: Event) -> StoreResult<()> {
        self.write(|transaction| {
            match change {
                LedgerChange::Put(entry) => upsert_ledger_entry(transaction, entry)?,
                LedgerChange::Remove {
                    app_id,
                    object_kind,
                    object_id,
                } => delete_ledger_entry(transaction, app_id, object_kind, object_id)?,
            }
            insert_event(transaction, event).map(|_| ())
        })
    }

    fn events(&self, query: &EventQuery, page: Page) -> StoreResult<Listing<Event>> {
        let (limit, offset) = page_clause(page);
        // Each condition is inert when its parameter is NULL.
        let filter = "(?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR operation = ?2)
             AND (?3 IS NULL OR outcome = ?3) AND (?4 IS NULL OR at >= ?4)";
        let outcome = query.outcome.map(Outcome::as_str);
        self.read(|connection| {
            let total: u64 = connection.query_row(
                &format!("SELECT COUNT(*) FROM events WHERE {filter}"),
                params![query.app_id, query.operation, outcome, query.since],
                |row| row.get(0),
            )?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE {filter}
                 ORDER BY at DESC, id LIMIT ?5 OFFSET ?6"
            ))?;
            let items = collect(
                &mut statement,
                params![
                    query.app_id,
                    query.operation,
                    outcome,
                    query.since,
                    limit,
                    offset
                ],
                event_from_row,
            )?;
            Ok(Listing { items, total })
        })
    }

    fn prune_events(&self, before: &str) -> StoreResult<u64> {
        self.write(|transaction| {
            Ok(transaction.execute("DELETE FROM events WHERE at < ?1", [before])? as u64)
        })
    }

    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()?)
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        self.write(|transaction| {
            transaction.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }
}
