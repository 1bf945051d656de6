//! The embedded store: one SQLite file in WAL mode under the data folder.
//!
//! One connection writes, behind a mutex, because SQLite admits one writer
//! at a time anyway and a single writer never sees `SQLITE_BUSY` from
//! itself. Readers take connections from a small pool and, thanks to WAL,
//! never wait for the writer.
//!
//! Writes commit in groups. Most of a small write's cost is its commit, and
//! while one write runs others queue for the writer; so a write that finds
//! others queued behind it leaves its transaction open for them, and the
//! last of the group commits for all. The guarantees are a lone write's:
//! - a write that fails undoes only its own changes: each write after the
//!   first runs in a savepoint of the group's transaction, and the first,
//!   should it fail, rolls back the transaction, which holds nothing else
//!   yet (a savepoint costs a copy of every page the write touches);
//! - a write sees the changes of the writes before it, as it would after
//!   their commits;
//! - no write returns success before the commit that holds it: a caller
//!   that has heard `Ok` has its changes committed (the process killed
//!   after loses nothing it was told of), and a commit that fails fails
//!   every write of its group (nothing is half kept);
//! - a group is never left open: the write that finds nobody queued, or
//!   fills the group, commits it, and every write that queued is in it.
//!
//! Migrations are numbered SQL files compiled into the binary and applied
//! in order inside a transaction each; a database written by a newer
//! scimlink is refused rather than guessed at.
//!
//! `synchronous = NORMAL` with WAL: a committed transaction survives the
//! process being killed at any instant; a power cut may lose the last
//! commits but never corrupts the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};
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

/// Writes one group holds at most: a bound on how long the first write of
/// a group waits for its commit.
const GROUP_WRITES: usize = 64;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    /// Writes waiting for the writer: while there are any, the write that
    /// holds it leaves the commit to them.
    queued_writes: AtomicUsize,
    /// How the groups ended, for the writes that wait for their commit.
    settled: Mutex<Settled>,
    commit_settled: Condvar,
    readers: Mutex<Vec<Connection>>,
    cipher: TokenCipher,
    /// Woken after a commit that appended to the outbox.
    appended: Arc<tokio::sync::Notify>,
    /// Runs the write-ahead log's checkpoints, which the writer would.
    checkpointer: checkpoint::Checkpointer,
}

/// The writing connection and the group its open transaction holds.
struct Writer {
    connection: Connection,
    group: Option<Group>,
    next_group: u64,
}

/// The writes in the writer's open transaction.
struct Group {
    number: u64,
    writes: usize,
    /// Its writes that wait for its commit.
    waiting: usize,
    /// One of its writes appended to the outbox.
    appended: bool,
}

/// Groups numbered below `through` are committed or failed. A failed group
/// is kept, with why, until each of its waiting writes has heard of it.
/// Groups settle in order, each before the next can begin: the writer is
/// held until its group is settled.
struct Settled {
    through: u64,
    failed: std::collections::HashMap<u64, (String, usize)>,
}

thread_local! {
    /// The read transaction [`SnapshotStore::in_one_read`] keeps open on
    /// this thread, with the address of the store it belongs to.
    static SHARED_READ: std::cell::RefCell<Option<(usize, Connection)>> =
        const { std::cell::RefCell::new(None) };
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
        // The writer's savepoints (`write_each`) copy each page they change
        // into a sub-journal, which SQLite moves to a temporary file once it
        // passes 64 KiB: every group commit of synced accounts opened,
        // wrote and unlinked a file of its own. In memory it stays as large
        // as the pages one group changes. Set after the migrations, whose
        // index builds may sort more than is worth holding in memory.
        writer.pragma_update(None, "temp_store", "MEMORY")?;
        let checkpointer = checkpoint::Checkpointer::start(path, &writer)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(Writer {
                connection: writer,
                group: None,
                next_group: 0,
            }),
            queued_writes: AtomicUsize::new(0),
            settled: Mutex::new(Settled {
                through: 0,
                failed: std::collections::HashMap::new(),
            }),
            commit_settled: Condvar::new(),
            readers: Mutex::new(Vec::new()),
            cipher,
            appended: Arc::new(tokio::sync::Notify::new()),
            checkpointer,
        })
    }

    /// Runs `work` in a write transaction and returns once it is
    /// committed, with the writes queued behind it (see the module's
    /// documentation).
    fn write<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.queued_writes.fetch_add(1, Ordering::SeqCst);
        // A panic in an earlier write failed its group and rolled it back
        // before it unwound; the connection itself is sound.
        let mut guard = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.queued_writes.fetch_sub(1, Ordering::SeqCst);
        let writer = &mut *guard;
        let opens_group = writer.group.is_none();
        let mut open = match writer.group.take() {
            Some(open) => open,
            None => {
                // IMMEDIATE takes the write lock up front: a transaction that
                // reads before it writes cannot be invalidated by another
                // process's commit.
                writer
                    .connection
                    .prepare_cached("BEGIN IMMEDIATE")?
                    .execute([])?;
                writer.next_group += 1;
                Group {
                    number: writer.next_group - 1,
                    writes: 0,
                    waiting: 0,
                    appended: false,
                }
            }
        };

        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if opens_group {
                alone_in_transaction(&writer.connection, work)
            } else {
                in_savepoint(&writer.connection, work)
            }
        }));
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(panic) => {
                let _ = writer.connection.execute_batch("ROLLBACK");
                self.settle(
                    &open,
                    Some("a write of its group failed unexpectedly".into()),
                );
                std::panic::resume_unwind(panic);
            }
        };
        if let Ok((_, appended)) = &outcome {
            open.writes += 1;
            open.appended |= appended;
        }
        if opens_group && outcome.is_err() {
            // Its transaction, which held nothing else, is rolled back: the
            // group ends with no write, and the next write opens another.
            self.settle(&open, None);
            return outcome.map(|(value, _)| value);
        }

        // A statement that failed badly enough (a full disk, an I/O error)
        // makes SQLite roll the whole transaction back: the group is gone.
        let lost = writer.connection.is_autocommit();
        let commit_now =
            lost || open.writes >= GROUP_WRITES || self.queued_writes.load(Ordering::SeqCst) == 0;
        if !commit_now {
            let (value, _) = match outcome {
                Ok(done) => done,
                Err(error) => {
                    writer.group = Some(open);
                    return Err(error);
                }
            };
            let number = open.number;
            open.waiting += 1;
            writer.group = Some(open);
            drop(guard);
            return self.committed(number).map(|()| value);
        }

        let failure = if lost {
            Some(match &outcome {
                Err(error) => format!("its transaction was rolled back: {error}"),
                Ok(_) => "its transaction was rolled back".to_owned(),
            })
        } else {
            let commit = writer
                .connection
                .prepare_cached("COMMIT")
                .and_then(|mut commit| commit.execute([]));
            match commit {
                Ok(_) => None,
                Err(error) => {
                    let _ = writer.connection.execute_batch("ROLLBACK");
                    Some(error.to_string())
                }
            }
        };
        // Settled before the writer is let go, so that no later group can
        // settle first.
        self.settle(&open, failure.clone());
        if failure.is_none() {
            // Its writes are settled: the callers waiting for them go on
            // whatever the checkpoint takes.
            self.checkpointer.after_commit(&writer.connection);
        }
        drop(guard);
        if open.appended && failure.is_none() {
            self.appended.notify_one();
        }
        match failure {
            Some(reason) => Err(StoreError::Backend(format!(
                "the write was not committed: {reason}"
            ))),
            None => outcome.map(|(value, _)| value),
        }
    }

    /// Runs each of `works` as a write of its own, all in one write: one
    /// that fails undoes only itself and leaves the others be. The
    /// outcomes, one per work and in order, are reported once the
    /// transaction holding them is committed; should it be lost or fail to
    /// commit, every work fails.
    ///
    /// The works run first together in one savepoint, which copies each
    /// page they touch once. Should one fail, that savepoint is undone and
    /// each work runs again in a savepoint of its own: so a work may run
    /// twice, and must do the same the second time.
    fn write_each<T, W>(&self, mut works: Vec<W>) -> Vec<StoreResult<T>>
    where
        W: FnMut(&Connection) -> StoreResult<T>,
    {
        let count = works.len();
        let written = self.write(|connection| {
            if let Some(values) = all_or_none(connection, &mut works)? {
                return Ok(values.into_iter().map(Ok).collect());
            }
            let mut outcomes = Vec::with_capacity(count);
            for work in &mut works {
                outcomes.push(in_named_savepoint(connection, &WORK_SAVEPOINT, work));
                // A statement that failed badly enough rolled the whole
                // transaction back: the works before are gone, and those
                // after would each commit on their own.
                if connection.is_autocommit() {
                    return Err(lost_transaction());
                }
            }
            Ok(outcomes)
        });
        match written {
            Ok(outcomes) => outcomes,
            Err(error) => {
                let reason = error.to_string();
                (0..count)
                    .map(|_| Err(StoreError::Backend(reason.clone())))
                    .collect()
            }
        }
    }

    /// Records how `group` ended and wakes the writes waiting for it.
    fn settle(&self, group: &Group, failure: Option<String>) {
        let mut settled = self
            .settled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        settled.through = group.number + 1;
        if let Some(reason) = failure
            && group.waiting > 0
        {
            settled.failed.insert(group.number, (reason, group.waiting));
        }
        self.commit_settled.notify_all();
    }

    /// Waits for group `number` to be settled: `Ok` once it is committed.
    fn committed(&self, number: u64) -> StoreResult<()> {
        let mut settled = self
            .settled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while settled.through <= number {
            settled = self
                .commit_settled
                .wait(settled)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let Some((reason, waiting)) = settled.failed.get_mut(&number) else {
            return Ok(());
        };
        let error = StoreError::Backend(format!("the write was not committed: {reason}"));
        *waiting -= 1;
        if *waiting == 0 {
            settled.failed.remove(&number);
        }
        Err(error)
    }

    fn read<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        if self.holds_shared_read() {
            return SHARED_READ.with(|shared| match &*shared.borrow() {
                Some((_, connection)) => work(connection),
                None => Err(StoreError::Backend(
                    "the shared read ended while in use".into(),
                )),
            });
        }
        let connection = self.reader()?;
        // One read transaction: counts, rows and members are one snapshot.
        let value = match connection.unchecked_transaction() {
            Ok(snapshot) => {
                let value = work(&snapshot);
                let _ = snapshot.finish();
                value
            }
            Err(error) => Err(error.into()),
        };
        self.keep_reader(connection);
        value
    }

    /// A read connection: a kept one, else a new one.
    fn reader(&self) -> StoreResult<Connection> {
        match self.readers.lock().ok().and_then(|mut pool| pool.pop()) {
            Some(connection) => Ok(connection),
            None => connect(&self.path),
        }
    }

    fn keep_reader(&self, connection: Connection) {
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < READER_POOL
        {
            pool.push(connection);
        }
    }

    /// Whether this thread is inside [`SnapshotStore::in_one_read`] of this
    /// store.
    fn holds_shared_read(&self) -> bool {
        let this = std::ptr::from_ref(self) as usize;
        SHARED_READ.with(|shared| matches!(&*shared.borrow(), Some((store, _)) if *store == this))
    }

    fn load_group(&self, connection: &Connection, id: &str) -> StoreResult<Option<GroupRecord>> {
        match group_row(connection, id)? {
            Some(group) => Ok(Some(with_members(connection, group)?)),
            None => Ok(None),
        }
    }

    fn app_in(&self, connection: &Connection, name_or_id: &str) -> StoreResult<AppRecord> {
        connection
            .prepare_cached(&format!(
                "SELECT {APP_COLUMNS} FROM applications WHERE id = ?1 OR name = ?1"
            ))?
            .query_row([name_or_id], app_from_row)
            .optional()?
            .ok_or_else(|| not_found("application", name_or_id))?
    }
}

impl SnapshotStore for SqliteStore {
    /// Each read would otherwise start a transaction of its own, and a
    /// read transaction that starts after a commit finds its connection's
    /// page cache stale and reads its pages again.
    fn in_one_read(&self, reads: &mut dyn FnMut()) {
        if SHARED_READ.with(|shared| shared.borrow().is_some()) {
            // Already inside one (of this store or another): its reads go
            // on as they are.
            return reads();
        }
        let connection = match self.reader() {
            Ok(connection) => connection,
            // Each read then opens what it needs and reports what fails.
            Err(_) => return reads(),
        };
        if connection.execute_batch("BEGIN").is_err() {
            self.keep_reader(connection);
            return reads();
        }
        let this = std::ptr::from_ref(self) as usize;
        SHARED_READ.with(|shared| *shared.borrow_mut() = Some((this, connection)));
        // Ends the read even if `reads` panics: the thread goes back to
        // its pool and must not carry the transaction to its next task.
        struct EndRead<'s>(&'s SqliteStore);
        impl Drop for EndRead<'_> {
            fn drop(&mut self) {
                if let Some((_, connection)) = SHARED_READ.with(|shared| shared.borrow_mut().take())
                {
                    let _ = connection.execute_batch("COMMIT");
                    self.0.keep_reader(connection);
                }
            }
        }
        let _end = EndRead(self);
        reads();
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

/// A savepoint's statements, by name.
struct Savepoint {
    begin: &'static str,
    release: &'static str,
    undo: &'static str,
}

/// The savepoint each write runs in.
const WRITE_SAVEPOINT: Savepoint = Savepoint {
    begin: "SAVEPOINT write",
    release: "RELEASE write",
    undo: "ROLLBACK TO write; RELEASE write",
};

/// The savepoint the works of [`SqliteStore::write_each`] run in together.
const WORKS_SAVEPOINT: Savepoint = Savepoint {
    begin: "SAVEPOINT works",
    release: "RELEASE works",
    undo: "ROLLBACK TO works; RELEASE works",
};

/// The savepoint each work of [`SqliteStore::write_each`] runs in, once
/// one of them failed.
const WORK_SAVEPOINT: Savepoint = Savepoint {
    begin: "SAVEPOINT work",
    release: "RELEASE work",
    undo: "ROLLBACK TO work; RELEASE work",
};

/// Runs one write in a savepoint of the open transaction: its changes are
/// undone if it fails. With the value, whether it appended to the outbox.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<(T, bool)> {
    APPENDED.with(|appended| appended.set(false));
    let value = in_named_savepoint(connection, &WRITE_SAVEPOINT, work)?;
    Ok((value, APPENDED.with(|appended| appended.replace(false))))
}

/// Runs `works` in one savepoint: their values if every one succeeds, or
/// `None`, with nothing of any kept, if one fails.
fn all_or_none<T, W>(connection: &Connection, works: &mut [W]) -> StoreResult<Option<Vec<T>>>
where
    W: FnMut(&Connection) -> StoreResult<T>,
{
    connection
        .prepare_cached(WORKS_SAVEPOINT.begin)?
        .execute([])?;
    let mut values = Vec::with_capacity(works.len());
    for work in works.iter_mut() {
        let outcome = work(connection);
        // A statement that failed badly enough rolled the whole transaction
        // back: the works before are gone, and those after would each
        // commit on their own.
        if connection.is_autocommit() {
            return Err(lost_transaction());
        }
        match outcome {
            Ok(value) => values.push(value),
            Err(_) => {
                if connection.execute_batch(WORKS_SAVEPOINT.undo).is_err() {
                    let _ = connection.execute_batch("ROLLBACK");
                    return Err(lost_transaction());
                }
                return Ok(None);
            }
        }
    }
    connection
        .prepare_cached(WORKS_SAVEPOINT.release)?
        .execute([])?;
    Ok(Some(values))
}

fn lost_transaction() -> StoreError {
    StoreError::Backend("its transaction was rolled back".into())
}

/// Runs the first write of a group, in the transaction just begun and with
/// no savepoint: should it fail, the transaction is rolled back, since it
/// holds nothing of any other write. With the value, whether it appended
/// to the outbox.
fn alone_in_transaction<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<(T, bool)> {
    APPENDED.with(|appended| appended.set(false));
    match work(connection) {
        Ok(value) => Ok((value, APPENDED.with(|appended| appended.replace(false)))),
        Err(error) => {
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            Err(error)
        }
    }
}

/// Runs `work` in `savepoint`: undone if it fails.
fn in_named_savepoint<T>(
    connection: &Connection,
    savepoint: &Savepoint,
    work: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    connection.prepare_cached(savepoint.begin)?.execute([])?;
    let outcome = work(connection).and_then(|value| {
        connection.prepare_cached(savepoint.release)?.execute([])?;
        Ok(value)
    });
    if outcome.is_err() {
        // Undone, then let go: the savepoint ends with nothing of it kept.
        // Should that fail, the whole transaction goes, so that nothing of
        // a write that failed is ever committed.
        if !connection.is_autocommit() && connection.execute_batch(savepoint.undo).is_err() {
            let _ = connection.execute_batch("ROLLBACK");
        }
    }
    outcome
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    // Without the query planner's stability guarantee, a statement whose
    // plan could depend on a bound value (any `LIMIT ?`) is compiled again
    // each time it runs, cached or not. The plans do not depend on values
    // here: no statistics are gathered.
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
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
    transaction: &Connection,
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
    transaction: &Connection,
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
    transaction: &Connection,
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
mod checkpoint;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `statement` with each limit and returns how often SQLite had to
    /// compile it again.
    fn recompiled(statement: &mut rusqlite::Statement<'_>, with_offset: bool) -> i32 {
        for limit in 1..=3 {
            let read = |row: &Row<'_>| row.get::<_, String>(0);
            let rows: Vec<_> = if with_offset {
                statement
                    .query_map(params![limit, 0], read)
                    .unwrap()
                    .collect()
            } else {
                statement.query_map(params![limit], read).unwrap().collect()
            };
            drop(rows);
        }
        statement.get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[test]
    fn a_cached_statement_is_compiled_once_whatever_its_limit() {
        let (_folder, store) = store();
        store
            .read(|connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT entity FROM outbox WHERE done_at IS NULL ORDER BY seq LIMIT ?1",
                )?;
                assert_eq!(recompiled(&mut statement, false), 0, "a reader");
                Ok(())
            })
            .unwrap();
        let writer = store.writer.lock().unwrap();
        let mut statement = writer
            .connection
            .prepare_cached("SELECT id FROM applications ORDER BY name LIMIT ?1 OFFSET ?2")
            .unwrap();
        assert_eq!(recompiled(&mut statement, true), 0, "the writer");
    }

    #[test]
    fn the_writers_savepoints_are_journaled_in_memory() {
        let (_folder, store) = store();
        let temp_store = |connection: &Connection| -> i64 {
            connection
                .query_row("PRAGMA temp_store", [], |row| row.get(0))
                .unwrap()
        };
        let writer = store.writer.lock().unwrap();
        assert_eq!(temp_store(&writer.connection), 2, "MEMORY");
        drop(writer);
        // Readers keep SQLite's default: their sorts may spill to a file.
        store
            .read(|connection| {
                assert_eq!(temp_store(connection), 0, "DEFAULT");
                Ok(())
            })
            .unwrap();
    }

    fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let folder = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[7; 32])).unwrap();
        (folder, Arc::new(store))
    }

    fn put(connection: &Connection, key: &str) -> StoreResult<()> {
        connection.execute(
            "INSERT INTO meta (key, value) VALUES (?1, 'v')",
            params![key],
        )?;
        Ok(())
    }

    fn kept(store: &SqliteStore, key: &str) -> bool {
        store
            .read(|connection| {
                Ok(connection
                    .query_row("SELECT 1 FROM meta WHERE key = ?1", [key], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .unwrap()
    }

    /// Writers side by side, every fifth failing after its insert: a write
    /// that returned `Ok` is already visible to another connection, and a
    /// write that failed left nothing behind, whichever group each fell in.
    #[test]
    fn grouped_writes_are_committed_before_they_return_and_failures_keep_nothing() {
        let (_folder, store) = store();
        let threads: Vec<_> = (0..6)
            .map(|thread| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for index in 0..150 {
                        let key = format!("{thread}-{index}");
                        let fails = index % 5 == 0;
                        let result = store.write(|connection| {
                            put(connection, &key)?;
                            if fails {
                                return Err(StoreError::Backend("refused".into()));
                            }
                            Ok(())
                        });
                        assert_eq!(result.is_ok(), !fails, "{key}: {result:?}");
                        assert_eq!(kept(&store, &key), !fails, "{key}");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let rows: i64 = store
            .read(|connection| {
                Ok(connection.query_row("SELECT COUNT(*) FROM meta", [], |row| row.get(0))?)
            })
            .unwrap();
        assert_eq!(rows, 6 * 120);
    }

    /// Writes that queue while the writer is busy are committed together,
    /// in one transaction, and each returns once that is done.
    #[test]
    fn writes_queued_behind_one_another_commit_as_one_group() {
        let (_folder, store) = store();
        let busy = store.writer.lock().unwrap();
        let groups_before = busy.next_group;
        let writers: Vec<_> = (0..5)
            .map(|index| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    store.write(|connection| put(connection, &format!("queued-{index}")))
                })
            })
            .collect();
        while store.queued_writes.load(Ordering::SeqCst) < 5 {
            std::thread::yield_now();
        }
        drop(busy);
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
        assert_eq!(store.writer.lock().unwrap().next_group, groups_before + 1);
        assert!((0..5).all(|index| kept(&store, &format!("queued-{index}"))));
    }

    /// A group whose transaction is lost under one of its writes fails the
    /// writes waiting for its commit: whichever order the writes take, a
    /// write reports `Ok` exactly when its change was kept.
    #[test]
    fn a_lost_group_fails_the_writes_waiting_for_it() {
        let (_folder, store) = store();
        for round in 0..20 {
            let busy = store.writer.lock().unwrap();
            let spawn = |key: String, lose: bool| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    store.write(|connection| {
                        put(connection, &key)?;
                        if lose {
                            connection.execute_batch("ROLLBACK")?;
                        }
                        Ok(())
                    })
                })
            };
            let kept_key = format!("kept-{round}");
            let lost_key = format!("lost-{round}");
            let kept_writer = spawn(kept_key.clone(), false);
            let lost_writer = spawn(lost_key.clone(), true);
            while store.queued_writes.load(Ordering::SeqCst) < 2 {
                std::thread::yield_now();
            }
            drop(busy);
            let kept_result = kept_writer.join().unwrap();
            assert!(lost_writer.join().unwrap().is_err());
            assert!(!kept(&store, &lost_key));
            assert_eq!(
                kept_result.is_ok(),
                kept(&store, &kept_key),
                "{kept_result:?}"
            );
        }
        assert!(store.settled.lock().unwrap().failed.is_empty());
    }

    /// A write sees the writes before it in its group, as it would after
    /// their commits: one that conflicts with an earlier one fails alone.
    #[test]
    fn a_write_sees_the_earlier_writes_of_its_group() {
        let (_folder, store) = store();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|index| {
                            store
                                .write(|connection| put(connection, &index.to_string()))
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let inserted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(inserted, 100, "each key is inserted by exactly one writer");
    }

    /// A write that SQLite's transaction is lost under (what a full disk
    /// or an I/O error does), and one that panics: neither keeps anything,
    /// and the next write starts afresh.
    #[test]
    fn a_write_that_loses_its_transaction_or_panics_keeps_nothing() {
        let (_folder, store) = store();
        let lost = store.write(|connection| {
            put(connection, "lost")?;
            connection.execute_batch("ROLLBACK")?;
            Ok(())
        });
        assert!(lost.is_err(), "{lost:?}");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = store.write(|connection| -> StoreResult<()> {
                put(connection, "half")?;
                panic!("a bug in a write");
            });
        }));
        assert!(panicked.is_err());
        assert!(!kept(&store, "lost") && !kept(&store, "half"));
        store.write(|connection| put(connection, "after")).unwrap();
        assert!(kept(&store, "after"));
    }

    /// A write that opens its group and fails rolls back the transaction,
    /// which held nothing else: it reports its own error, keeps nothing,
    /// and the next write opens a group afresh.
    #[test]
    fn a_failing_write_alone_in_its_group_reports_its_own_error() {
        let (_folder, store) = store();
        put(&store.writer.lock().unwrap().connection, "taken").unwrap();
        let refused = store.write(|connection| {
            put(connection, "first")?;
            put(connection, "taken")
        });
        assert!(
            matches!(&refused, Err(StoreError::Backend(reason)) if reason.contains("UNIQUE")),
            "{refused:?}"
        );
        assert!(!kept(&store, "first"));
        assert!(store.writer.lock().unwrap().connection.is_autocommit());
        store.write(|connection| put(connection, "next")).unwrap();
        assert!(kept(&store, "next"));
    }

    /// Works written together stand on their own: one that fails (here,
    /// one that conflicts with an earlier work of the same call) undoes
    /// only itself, the others are committed, in one transaction, and each
    /// outcome is reported in order.
    #[test]
    fn works_written_together_fail_alone_and_commit_as_one() {
        let (_folder, store) = store();
        let groups_before = store.writer.lock().unwrap().next_group;
        let keys = ["a", "b", "a", "c"];
        let works = keys
            .iter()
            .map(|key| move |connection: &Connection| put(connection, key))
            .collect();
        let outcomes = store.write_each(works);
        let failed: Vec<bool> = outcomes.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, false, true, false], "{outcomes:?}");
        assert!(["a", "b", "c"].iter().all(|key| kept(&store, key)));
        assert_eq!(store.writer.lock().unwrap().next_group, groups_before + 1);
        let rows: i64 = store
            .read(|connection| {
                Ok(connection.query_row(
                    "SELECT COUNT(*) FROM meta WHERE value = 'v'",
                    [],
                    |row| row.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(rows, 3);
    }

    /// A work that loses the transaction fails every work of its call,
    /// those before it included, and nothing of any is kept; the works
    /// after it are not run outside a transaction.
    #[test]
    fn works_written_together_all_fail_when_their_transaction_is_lost() {
        let (_folder, store) = store();
        let ran_after = std::sync::atomic::AtomicBool::new(false);
        type Work<'a> = Box<dyn FnMut(&Connection) -> StoreResult<()> + 'a>;
        let works: Vec<Work> = vec![
            Box::new(|connection| put(connection, "before")),
            Box::new(|connection| {
                put(connection, "losing")?;
                connection.execute_batch("ROLLBACK")?;
                Ok(())
            }),
            Box::new(|connection| {
                ran_after.store(true, Ordering::SeqCst);
                put(connection, "after")
            }),
        ];
        let outcomes = store.write_each(works);
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
        assert!(!ran_after.load(Ordering::SeqCst));
        assert!(
            ["before", "losing", "after"]
                .iter()
                .all(|key| !kept(&store, key))
        );
        store.write(|connection| put(connection, "next")).unwrap();
        assert!(kept(&store, "next"));
    }

    /// Reads inside `in_one_read` answer from one snapshot: a write made
    /// meanwhile shows only once it is over.
    #[test]
    fn reads_in_one_read_share_one_snapshot() {
        let (_folder, store) = store();
        store.write(|connection| put(connection, "before")).unwrap();
        let mut seen = Vec::new();
        store.in_one_read(&mut || {
            seen.push(kept(&store, "before"));
            store.write(|connection| put(connection, "during")).unwrap();
            seen.push(kept(&store, "during"));
            // Nested, it is the same read.
            store.in_one_read(&mut || seen.push(kept(&store, "during")));
        });
        assert_eq!(seen, [true, false, false]);
        assert!(kept(&store, "during"));
    }

    #[test]
    fn a_read_that_panics_ends_its_snapshot() {
        let (_folder, store) = store();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.in_one_read(&mut || {
                let _ = kept(&store, "x");
                panic!("a bug in a read");
            });
        }));
        assert!(panicked.is_err());
        assert!(SHARED_READ.with(|shared| shared.borrow().is_none()));
        store.write(|connection| put(connection, "x")).unwrap();
        assert!(kept(&store, "x"));
    }
}
