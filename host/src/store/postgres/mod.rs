//! The shared store: PostgreSQL, for several hosts on one database.
//!
//! The store's traits are synchronous and every async caller reaches them
//! through [`StoreHandle`] on the blocking pool, so this backend uses the
//! synchronous `postgres` client (tokio-postgres underneath) with an `r2d2`
//! pool: a store call holds one pooled connection for exactly one
//! transaction, on a thread that may block.
//!
//! Invariants:
//! - every write is one transaction at `SERIALIZABLE` isolation, retried
//!   whole when PostgreSQL reports a serialization failure or a deadlock.
//!   The rules the store keeps were written for one writer at a time (read,
//!   decide, write: a name still free, an application's one open hold, the
//!   guard's count); serializable transactions behave as if they ran one
//!   after the other, so those rules hold across hosts without a lock of
//!   their own. A write's closure may therefore run more than once: it
//!   must decide only from what it reads in its transaction.
//! - every read is one `REPEATABLE READ, READ ONLY` transaction: counts,
//!   rows and members come from one snapshot. Reads made together
//!   ([`SnapshotStore::in_one_read`]) share one, on a connection the
//!   thread keeps for them until they end; a read that fails in the
//!   database ends it, and the reads after it share a new one.
//! - apart from prepared statements, only transaction-scoped state is
//!   used (no session settings, no session advisory locks). Each pooled
//!   connection keeps the statements it has sent prepared ([`statements`]):
//!   a pooler in transaction mode must carry them (PgBouncer 1.21 and
//!   later with `max_prepared_statements`), and behind one that does not,
//!   `statement_cache_size=0` in the URL prepares nothing beyond each
//!   statement's own run. The statements of a record, which a sync makes
//!   for every object, are prepared with their parameter types, so that
//!   even uncached they go in one round trip (`query_typed`).
//! - while the host writes, a thread of the store keeps the planner's
//!   statistics of the tables the engine looks things up in current
//!   ([`statistics`]), as autovacuum would a minute or more later.
//! - migrations are numbered SQL files compiled into the binary, applied in
//!   order, each in a transaction that first takes a transaction-scoped
//!   advisory lock, so hosts starting together migrate once; a database
//!   written by a newer scimlink is refused rather than guessed at.
//! - a write that appends to the outbox also sends `NOTIFY scimlink_outbox`
//!   (delivered at commit, and only then). Once an engine asks for [`OutboxStore::outbox_signal`], a
//!   thread of the store listens on a connection of its own (outside the
//!   pool, since `LISTEN` is session state) and wakes the engine on every
//!   notification, from any host. Behind a pooler in transaction mode, or
//!   while the listening connection is down, nothing is lost: the engine
//!   polls all the same.

use std::sync::Arc;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::{FromSql, IsNull, ToSql, Type};
use ::postgres::{GenericClient, IsolationLevel, NoTls, Row};
use serde_json::{Map, Value};
use statements::{Connection, Manager, Session, Snapshot, Tx};

use super::*;

/// Schema migrations, in order. A released migration is never edited: a
/// change to the schema is a new file.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_schema.sql")),
    (
        2,
        include_str!("migrations/0002_hosts_and_object_leases.sql"),
    ),
    (3, include_str!("migrations/0003_work_per_application.sql")),
    (4, include_str!("migrations/0004_passwords.sql")),
];

/// The advisory lock key migrations take ("scimlink" in ASCII).
const MIGRATION_LOCK: i64 = 0x7363_696d_6c69_6e6b;

/// The channel a write that appended to the outbox notifies.
pub const OUTBOX_CHANNEL: &str = "scimlink_outbox";

/// Connections a host keeps at most.
const POOL_SIZE: u32 = 16;

/// Attempts at a write that keeps meeting serialization failures.
const WRITE_ATTEMPTS: u32 = 12;

const USER_COLUMNS: &str = "id, user_name, external_id, active, doc, version, created, modified";

const GROUP_COLUMNS: &str = "id, display_name, external_id, doc, version, created, modified";

const APP_COLUMNS: &str = "id, name, label, connector, base_url, manage_groups, state, settings, version, created, modified, capabilities, pacing, state_reason, guard, password_policy";

const EVENT_COLUMNS: &str = "id, at, app_id, app_name, object_kind, object_id, operation, outcome, rule, http_status, summary";

/// How a step of a transaction failed: the database itself (which a write
/// may retry), or a rule of the store (which it returns as it is).
#[derive(Debug)]
pub(super) enum Failure {
    Database(::postgres::Error),
    Store(StoreError),
}

impl From<::postgres::Error> for Failure {
    fn from(error: ::postgres::Error) -> Self {
        Failure::Database(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl Failure {
    /// Whether running the transaction again may succeed.
    fn is_transient(&self) -> bool {
        match self {
            Failure::Database(error) => {
                matches!(
                    error.code(),
                    Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
                ) || statements::is_stale_statement(error)
            }
            Failure::Store(_) => false,
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            Failure::Store(error) => error,
            Failure::Database(error) => StoreError::Backend(database_message(&error)),
        }
    }
}

/// A database error in words, with the server's own message when it sent
/// one.
fn database_message(error: &::postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) if *db.code() == SqlState::INVALID_SQL_STATEMENT_NAME => format!(
            "PostgreSQL: {} ({}); behind a pooler that does not keep prepared statements, \
             add statement_cache_size=0 to the database URL",
            db.message(),
            db.code().code()
        ),
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {error}"),
    }
}

pub(super) type Step<T> = Result<T, Failure>;

type Pool = r2d2::Pool<Manager>;
type PooledConnection = r2d2::PooledConnection<Manager>;

pub struct PostgresStore {
    pool: Arc<Pool>,
    /// The database as the operator named it, without its password.
    shown: String,
    cipher: TokenCipher,
    /// Woken after a commit of this host that appended to the outbox, and
    /// by the listener on any host's notification.
    appended: Arc<tokio::sync::Notify>,
    /// Where the listener connects.
    config: ::postgres::Config,
    listening: std::sync::Once,
    /// This host's committed writes, which the thread keeping the planner's
    /// statistics looks at ([`statistics`]).
    writes: Arc<statistics::Writes>,
}

thread_local! {
    /// Set by [`append_change`] within the write running on this thread.
    static APPENDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/database`, or key=value
    /// pairs; `?host=/path` for a Unix socket; `statement_cache_size=0` to
    /// prepare nothing, see [`statements`]) and brings its schema up to
    /// date.
    pub fn open(url: &str, cipher: TokenCipher) -> StoreResult<Self> {
        let (url, capacity) = statements::split_capacity(url)
            .map_err(|error| StoreError::Backend(format!("{}: {error}", shown(url))))?;
        let url = url.as_str();
        let config: ::postgres::Config = url.parse().map_err(|error| {
            StoreError::Backend(format!("{} is not a PostgreSQL URL: {error}", shown(url)))
        })?;
        let manager = Manager::new(config.clone(), capacity);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(15))
            .build(manager)
            .map_err(|error| {
                StoreError::Backend(format!("cannot connect to {}: {error}", shown(url)))
            })?;
        let store = PostgresStore {
            pool: Arc::new(pool),
            shown: shown(url),
            cipher,
            appended: Arc::new(tokio::sync::Notify::new()),
            config,
            listening: std::sync::Once::new(),
            writes: Arc::default(),
        };
        store.migrate()?;
        let (pool, writes) = (Arc::downgrade(&store.pool), Arc::downgrade(&store.writes));
        let shown = store.shown.clone();
        let started = std::thread::Builder::new()
            .name("scimlink-analyze".into())
            .spawn(move || statistics::keep(&pool, &writes, &shown));
        if let Err(error) = started {
            tracing::warn!("cannot keep the tables' statistics ({error}); autovacuum keeps them");
        }
        Ok(store)
    }

    /// The signal [`OutboxStore::outbox_signal`] hands out, with the
    /// listener started on first use.
    pub(super) fn signal(&self) -> Arc<tokio::sync::Notify> {
        self.listening.call_once(|| {
            let (config, woken) = (self.config.clone(), Arc::downgrade(&self.appended));
            let shown = self.shown.clone();
            let started = std::thread::Builder::new()
                .name("scimlink-listen".into())
                .spawn(move || listen(&config, &woken, &shown));
            if let Err(error) = started {
                tracing::warn!("cannot listen for other hosts' changes ({error}); polling");
            }
        });
        Arc::clone(&self.appended)
    }

    fn connection(&self) -> StoreResult<PooledConnection> {
        self.pool.get().map_err(|error| {
            StoreError::Backend(format!("no connection to {}: {error}", self.shown))
        })
    }

    fn migrate(&self) -> StoreResult<()> {
        let mut connection = self.connection()?;
        let mut transaction = connection
            .transaction()
            .map_err(|error| Failure::from(error).into_store())?;
        let migrated: Step<()> = (|| {
            transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            let fresh: bool = transaction
                .query_one("SELECT to_regclass('schema_migrations') IS NULL", &[])?
                .get(0);
            if fresh {
                transaction.batch_execute(
                    "CREATE TABLE schema_migrations (
                         version BIGINT PRIMARY KEY, applied TIMESTAMPTZ NOT NULL)",
                )?;
            }
            let current: i64 = transaction
                .query_one(
                    "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                    &[],
                )?
                .get(0);
            let newest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
            if current > newest {
                return Err(StoreError::Backend(format!(
                    "the database is at schema version {current}, newer than this scimlink \
                     knows ({newest}); run a newer scimlink"
                ))
                .into());
            }
            for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
                transaction.batch_execute(sql)?;
                transaction.execute(
                    "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                    &[version, &Timestamp::now()],
                )?;
            }
            Ok(())
        })();
        migrated.map_err(Failure::into_store)?;
        transaction
            .commit()
            .map_err(|error| Failure::from(error).into_store())
    }

    /// Runs `work` in one serializable transaction, again from the start
    /// when PostgreSQL could not serialize it.
    pub(super) fn write<T>(&self, work: impl FnMut(&mut Tx<'_, '_>) -> Step<T>) -> StoreResult<T> {
        self.write_at(IsolationLevel::Serializable, work)
    }

    /// [`PostgresStore::write`] at another isolation level, for a write
    /// whose rows are locked explicitly.
    pub(super) fn write_at<T>(
        &self,
        isolation: IsolationLevel,
        work: impl FnMut(&mut Tx<'_, '_>) -> Step<T>,
    ) -> StoreResult<T> {
        let mut connection = self.connection()?;
        self.write_on(&mut connection, isolation, work)
    }

    /// [`PostgresStore::write_at`] on a connection the caller holds, for
    /// writes made one after another that should not each wait for the
    /// pool (a database gone fails them all at once, not each after the
    /// pool's timeout).
    fn write_on<T>(
        &self,
        connection: &mut Connection,
        isolation: IsolationLevel,
        mut work: impl FnMut(&mut Tx<'_, '_>) -> Step<T>,
    ) -> StoreResult<T> {
        let (client, statements) = connection.parts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            APPENDED.with(|appended| appended.set(false));
            let result: Step<T> = (|| {
                let mut transaction = client
                    .build_transaction()
                    .isolation_level(isolation)
                    .start()?;
                let value = work(&mut Session::new(&mut transaction, statements))?;
                transaction.commit()?;
                Ok(value)
            })();
            match result {
                Ok(value) => {
                    self.writes.committed();
                    if APPENDED.with(|appended| appended.replace(false)) {
                        self.appended.notify_one();
                    }
                    return Ok(value);
                }
                Err(failure) if failure.is_transient() && attempt < WRITE_ATTEMPTS => {
                    // Back off a little, longer each time, so that the
                    // transactions that collided do not collide again.
                    std::thread::sleep(Duration::from_millis(
                        u64::from(attempt) * 3 + fastrand_jitter(),
                    ));
                }
                Err(failure) => return Err(failure.into_store()),
            }
        }
    }

    /// Runs `work` in one read-only snapshot: its own, or the one
    /// [`SnapshotStore::in_one_read`] keeps open on this thread for this
    /// store.
    pub(super) fn read<T>(
        &self,
        work: impl FnOnce(&mut Snapshot<'_>) -> Step<T>,
    ) -> StoreResult<T> {
        let mut work = Some(work);
        let shared = SHARED_READ.with(|shared| {
            // Borrowed only while a read runs: a read made from inside
            // another's work finds it borrowed and opens its own.
            let mut shared = shared.try_borrow_mut().ok()?;
            let read = shared
                .as_mut()
                .filter(|read| read.store == self.address())?;
            let value = work.take()?(&mut read.connection.session());
            // A statement that failed in the database leaves the
            // transaction able only to end: the reads after it start a
            // snapshot of their own.
            if matches!(value, Err(Failure::Database(_))) && !read.begin_again() {
                *shared = None;
            }
            Some(value)
        });
        if let Some(value) = shared {
            return value.map_err(Failure::into_store);
        }
        let Some(work) = work else {
            return Err(StoreError::Backend("a read ran twice".into()));
        };
        let mut connection = self.connection()?;
        let result: Step<T> = (|| {
            let mut snapshot = ReadTransaction::begin(&mut connection)?;
            let value = work(&mut snapshot.session())?;
            snapshot.commit()?;
            Ok(value)
        })();
        result.map_err(Failure::into_store)
    }

    /// This store, as the shared read names the store it belongs to.
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

/// How a read-only snapshot starts.
const BEGIN_READ: &str = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A read-only transaction on a connection, ended when dropped: rolled
/// back unless committed, so that a connection goes back to the pool with
/// no transaction open even when the read failed or panicked.
struct ReadTransaction<'c> {
    connection: &'c mut Connection,
    open: bool,
}

impl<'c> ReadTransaction<'c> {
    fn begin(connection: &'c mut Connection) -> Result<Self, ::postgres::Error> {
        connection.batch_execute(BEGIN_READ)?;
        Ok(ReadTransaction {
            connection,
            open: true,
        })
    }

    fn session(&mut self) -> Snapshot<'_> {
        self.connection.session()
    }

    fn commit(mut self) -> Result<(), ::postgres::Error> {
        self.open = false;
        self.connection.batch_execute("COMMIT")
    }
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.connection.batch_execute("ROLLBACK");
        }
    }
}

/// The read transaction [`SnapshotStore::in_one_read`] keeps open on a
/// thread.
struct SharedRead {
    /// The store it belongs to ([`PostgresStore::address`]).
    store: usize,
    connection: PooledConnection,
}

impl SharedRead {
    /// Ends the transaction and starts another; whether it could.
    fn begin_again(&mut self) -> bool {
        self.connection
            .batch_execute(&format!("ROLLBACK; {BEGIN_READ}"))
            .is_ok()
    }
}

impl Drop for SharedRead {
    fn drop(&mut self) {
        let _ = self.connection.batch_execute("COMMIT");
    }
}

thread_local! {
    static SHARED_READ: std::cell::RefCell<Option<SharedRead>> =
        const { std::cell::RefCell::new(None) };
}

impl SnapshotStore for PostgresStore {
    /// Each read would otherwise be a transaction of its own: two round
    /// trips to the server more for each.
    fn in_one_read(&self, reads: &mut dyn FnMut()) {
        let inside =
            SHARED_READ.with(|shared| shared.try_borrow().map_or(true, |shared| shared.is_some()));
        if inside {
            // Already inside one (of this store or another): its reads go
            // on as they are.
            return reads();
        }
        let Ok(mut connection) = self.connection() else {
            // Each read then opens what it needs and reports what fails.
            return reads();
        };
        if connection.batch_execute(BEGIN_READ).is_err() {
            return reads();
        }
        let read = SharedRead {
            store: self.address(),
            connection,
        };
        SHARED_READ.with(|shared| *shared.borrow_mut() = Some(read));
        // Ends the read even if `reads` panics: the thread goes back to
        // its pool and must not carry the transaction to its next task.
        struct EndRead;
        impl Drop for EndRead {
            fn drop(&mut self) {
                let read = SHARED_READ.with(|shared| shared.borrow_mut().take());
                drop(read);
            }
        }
        let _end = EndRead;
        reads();
    }
}

/// How often the listener looks whether its store is gone.
const LISTEN_CHECK: Duration = Duration::from_secs(5);
/// The longest pause between two attempts at the listening connection.
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(30);

/// Listens on [`OUTBOX_CHANNEL`] and wakes `woken` on every notification,
/// until the store that owns `woken` is dropped. A lost connection is made
/// again, after a pause that grows to [`LISTEN_RETRY_MAX`].
fn listen(config: &::postgres::Config, woken: &std::sync::Weak<tokio::sync::Notify>, shown: &str) {
    use ::postgres::fallible_iterator::FallibleIterator;

    let mut pause = Duration::from_secs(1);
    let mut said = false;
    while woken.strong_count() > 0 {
        let listening = config.connect(NoTls).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {OUTBOX_CHANNEL}"))?;
            Ok(client)
        });
        match listening {
            Ok(mut client) => {
                if said {
                    tracing::info!("listening for other hosts' changes on {shown} again");
                    said = false;
                }
                pause = Duration::from_secs(1);
                while !client.is_closed() {
                    let mut notifications = client.notifications();
                    let mut arrived = notifications.timeout_iter(LISTEN_CHECK);
                    loop {
                        match arrived.next() {
                            Ok(Some(_)) => match woken.upgrade() {
                                Some(signal) => signal.notify_one(),
                                None => return,
                            },
                            Ok(None) => break,
                            Err(_) => break,
                        }
                    }
                    if woken.strong_count() == 0 {
                        return;
                    }
                }
            }
            Err(error) => {
                if !said {
                    tracing::warn!(
                        "cannot listen for other hosts' changes on {shown} ({}); polling \
                         meanwhile",
                        database_message(&error)
                    );
                    said = true;
                }
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(LISTEN_RETRY_MAX);
    }
}

/// A few milliseconds of jitter, from the clock: enough to part two
/// transactions that retried at the same instant.
fn fastrand_jitter() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    u64::from(nanos % 5)
}

/// `url` without its password, for messages and logs.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        // key=value form: drop any password pair.
        Err(_) => url
            .split_whitespace()
            .filter(|pair| !pair.starts_with("password="))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl ToSql for Timestamp {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut ::postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.as_datetime().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <time::OffsetDateTime as ToSql>::accepts(ty)
    }

    ::postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Timestamp {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Timestamp::from_datetime(time::OffsetDateTime::from_sql(
            ty, raw,
        )?))
    }

    fn accepts(ty: &Type) -> bool {
        <time::OffsetDateTime as FromSql>::accepts(ty)
    }
}

fn not_found(entity: &'static str, key: &str) -> StoreError {
    StoreError::NotFound {
        entity,
        key: key.to_string(),
    }
}

/// A stored document as the object it must be.
fn doc_object(value: Value) -> StoreResult<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(StoreError::Backend(
            "a stored document is not a JSON object".into(),
        )),
    }
}

/// A count or size the API holds as `u64`, as PostgreSQL's `BIGINT`.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `BIGINT` that counts something, as the API's `u64`.
fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn append_change(transaction: &mut Tx<'_, '_>, subject_id: &str, change: ChangeKind) -> Step<()> {
    let (entity, action, detail) = change.to_row();
    transaction.execute(
        "INSERT INTO outbox (at, entity, entity_id, action, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&Timestamp::now(), &entity, &subject_id, &action, &detail],
    )?;
    transaction.execute("SELECT pg_notify($1, '')", &[&OUTBOX_CHANNEL])?;
    APPENDED.with(|appended| appended.set(true));
    Ok(())
}

/// The version of a row, checked against what the caller expects.
fn current_version(
    transaction: &mut Tx<'_, '_>,
    table: &'static str,
    entity: &'static str,
    id: &str,
    expected: Option<i64>,
) -> Step<i64> {
    let current: i64 = transaction
        .query_opt(
            &format!("SELECT version FROM {table} WHERE id = $1"),
            &[&id],
        )?
        .ok_or_else(|| not_found(entity, id))?
        .get(0);
    Ok(rules::expect_version(entity, id, expected, current)?)
}

/// `(limit, offset)` of a page, as PostgreSQL takes them.
fn page_clause(page: Page) -> (i64, i64) {
    (to_i64(page.limit), to_i64(page.offset))
}

/// The rows of a query, each made into a record by `map`.
fn collect<T>(rows: Vec<Row>, map: fn(&Row) -> StoreResult<T>) -> Step<Vec<T>> {
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(map(row)?);
    }
    Ok(items)
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
mod statements;
mod statistics;

use applications::*;
use audit::*;
use directory::*;
