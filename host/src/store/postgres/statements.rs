//! The statements each pooled connection keeps prepared.
//!
//! PostgreSQL parses and plans a statement sent as text every time it
//! comes, and a sync sends the same few dozen statements for every object:
//! without a cache, parsing and planning were the largest part of the
//! database's work. So each connection of the pool prepares a statement
//! the first time one of its transactions sends it and keeps it, under its
//! text, for the connection's life; every later transaction on that
//! connection binds and executes it (one round trip, and after a few runs a
//! plan kept for it).
//!
//! Invariants:
//! - a statement is only ever executed on the connection that prepared it:
//!   the cache lives beside its client in the pool's [`Connection`] and a
//!   [`Session`] borrows both together.
//! - prepared statements are the one piece of session state the store
//!   keeps. A pooler in transaction mode must carry them (PgBouncer does
//!   since 1.21 with `max_prepared_statements` set); behind one that does
//!   not, `statement_cache_size=0` in the database URL turns the cache
//!   off, and every statement is sent as text within its transaction, as
//!   a connection without a cache always did.
//! - a connection keeps at most its cache's capacity of statements. The
//!   store's statements are a fixed set; text built per call (a list of
//!   `n` placeholders) could fill the cache, so once full it is emptied
//!   and fills again with what is sent next.
//! - a statement the server no longer knows (a pooler that lost it, a
//!   `DISCARD ALL`) or whose plan no longer fits (a schema changed under
//!   it) empties the cache of its connection; a write meeting it runs again
//!   from the start, a read fails once.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use ::postgres::error::SqlState;
use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Config, Error, GenericClient, NoTls, Row, Statement, Transaction};

/// The statements a connection keeps unless its URL says otherwise: the
/// store sends about a hundred and fifty different ones, and a connection
/// only those of the work it was given.
pub(super) const DEFAULT_CAPACITY: usize = 256;

/// The database URL's parameter that sets [`Statements`]' capacity, as
/// asyncpg names it; scimlink takes it out of the URL before connecting.
const CAPACITY_PARAMETER: &str = "statement_cache_size";

/// A connection of the pool: the client and what it has prepared.
pub(super) struct Connection {
    client: Client,
    statements: Statements,
}

impl Connection {
    /// The client and its statements, borrowed together.
    pub(super) fn session(&mut self) -> Session<'_, Client> {
        Session {
            client: &mut self.client,
            statements: &mut self.statements,
        }
    }

    /// The client and its statements, borrowed apart: to begin a
    /// transaction on the one and hand the other to its [`Session`].
    pub(super) fn parts(&mut self) -> (&mut Client, &mut Statements) {
        (&mut self.client, &mut self.statements)
    }
}

/// Statements outside a transaction of the store's own (the listener, the
/// statistics keeper, migrations) go to the client as they are.
impl Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Makes the pool's connections, each with a cache of `capacity`.
#[derive(Debug)]
pub(super) struct Manager {
    config: Config,
    capacity: usize,
}

impl Manager {
    pub(super) fn new(config: Config, capacity: usize) -> Self {
        Manager { config, capacity }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = Error;

    fn connect(&self) -> Result<Connection, Error> {
        Ok(Connection {
            client: self.config.connect(NoTls)?,
            statements: Statements::with_capacity(self.capacity),
        })
    }

    fn is_valid(&self, connection: &mut Connection) -> Result<(), Error> {
        connection.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        connection.client.is_closed()
    }
}

/// A connection's prepared statements, by their text.
pub(in crate::store) struct Statements {
    prepared: HashMap<Box<str>, Statement>,
    capacity: usize,
}

impl Statements {
    fn with_capacity(capacity: usize) -> Self {
        Statements {
            prepared: HashMap::new(),
            capacity,
        }
    }

    /// How many statements the connection keeps prepared.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.prepared.len()
    }

    /// `sql` prepared on `client` (with its parameters' `types`, when
    /// given), from the cache or now; `None` when the cache is off.
    fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
        types: Option<&[Type]>,
    ) -> Result<Option<Statement>, Error> {
        if self.capacity == 0 {
            return Ok(None);
        }
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(Some(statement.clone()));
        }
        let statement = match types {
            Some(types) => client.prepare_typed(sql, types)?,
            None => client.prepare(sql)?,
        };
        if self.prepared.len() >= self.capacity {
            self.prepared.clear();
        }
        self.prepared.insert(sql.into(), statement.clone());
        Ok(Some(statement))
    }

    /// Forgets every statement after `error`, when it says the server no
    /// longer has them or their plans no longer fit.
    fn forget_if_stale<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(error) = &result
            && is_stale_statement(error)
        {
            self.prepared.clear();
        }
        result
    }
}

/// Whether `error` says a prepared statement is gone from the server or
/// can no longer run as prepared: running the transaction again, with the
/// statements prepared anew, can succeed.
pub(super) fn is_stale_statement(error: &Error) -> bool {
    match error.as_db_error() {
        Some(db) => {
            *db.code() == SqlState::INVALID_SQL_STATEMENT_NAME
                || (*db.code() == SqlState::FEATURE_NOT_SUPPORTED
                    && db.message().starts_with("cached plan must not change"))
        }
        None => false,
    }
}

/// A transaction or a read of the store, with the statements of its
/// connection: its `query`, `execute` and their kin take the statement's
/// text and send it prepared. Everything else is the client's.
pub(in crate::store) struct Session<'s, C> {
    client: &'s mut C,
    statements: &'s mut Statements,
}

/// A write's transaction, with its connection's statements.
pub(in crate::store) type Tx<'s, 't> = Session<'s, Transaction<'t>>;

/// A read's snapshot (a transaction the read began), with its
/// connection's statements.
pub(in crate::store) type Snapshot<'s> = Session<'s, Client>;

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];
type TypedParams<'p> = &'p [(&'p (dyn ToSql + Sync), Type)];

impl<'s, C: GenericClient> Session<'s, C> {
    pub(super) fn new(client: &'s mut C, statements: &'s mut Statements) -> Self {
        Session { client, statements }
    }

    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        self.send(
            sql,
            None,
            |client, statement| client.query(statement, params),
            |client| client.query(sql, params),
        )
    }

    pub(super) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        self.send(
            sql,
            None,
            |client, statement| client.query_one(statement, params),
            |client| client.query_one(sql, params),
        )
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        self.send(
            sql,
            None,
            |client, statement| client.query_opt(statement, params),
            |client| client.query_opt(sql, params),
        )
    }

    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        self.send(
            sql,
            None,
            |client, statement| client.execute(statement, params),
            |client| client.execute(sql, params),
        )
    }

    /// A statement with its parameters' types given rather than asked of
    /// the server: uncached, it goes in one round trip.
    pub(super) fn execute_typed(
        &mut self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<u64, Error> {
        self.send(
            sql,
            Some(params),
            |client, statement| client.execute(statement, &values(params)),
            |client| client.execute_typed(sql, params),
        )
    }

    pub(super) fn query_typed_one(
        &mut self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Row, Error> {
        self.send(
            sql,
            Some(params),
            |client, statement| client.query_one(statement, &values(params)),
            |client| client.query_typed_one(sql, params),
        )
    }

    pub(super) fn query_typed_opt(
        &mut self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Option<Row>, Error> {
        self.send(
            sql,
            Some(params),
            |client, statement| client.query_opt(statement, &values(params)),
            |client| client.query_typed_opt(sql, params),
        )
    }

    /// Runs `sql` prepared (`prepared`, with the parameters' types when
    /// `typed` gives them) or, with the cache off, as text (`as_text`); a
    /// failure saying the server no longer has the connection's
    /// statements empties the cache.
    fn send<T>(
        &mut self,
        sql: &str,
        typed: Option<TypedParams<'_>>,
        prepared: impl FnOnce(&mut C, &Statement) -> Result<T, Error>,
        as_text: impl FnOnce(&mut C) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let statement = match typed {
            Some(params) => self.typed(sql, params),
            None => self.statements.get(self.client, sql, None),
        };
        let result = match statement {
            Ok(Some(statement)) => prepared(self.client, &statement),
            Ok(None) => as_text(self.client),
            Err(error) => Err(error),
        };
        self.statements.forget_if_stale(result)
    }

    /// The statement of `sql` for parameters of these types; the types
    /// are gathered only when it is prepared.
    fn typed(&mut self, sql: &str, params: TypedParams<'_>) -> Result<Option<Statement>, Error> {
        if let Some(statement) = self.statements.prepared.get(sql) {
            return Ok(Some(statement.clone()));
        }
        let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
        self.statements.get(self.client, sql, Some(&types))
    }
}

impl<'t> Session<'_, Transaction<'t>> {
    /// A savepoint within this transaction, with the same statements.
    pub(super) fn savepoint(&mut self, name: &str) -> Result<Savepoint<'_>, Error> {
        Ok(Savepoint {
            transaction: self.client.savepoint(name)?,
            statements: self.statements,
        })
    }
}

fn values<'p>(params: TypedParams<'p>) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|(value, _)| *value).collect()
}

impl<C> Deref for Session<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.client
    }
}

impl<C> DerefMut for Session<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.client
    }
}

/// A savepoint of a write: [`Savepoint::session`] to work in it, then
/// [`Savepoint::commit`] or [`Savepoint::rollback`] (dropped, it rolls
/// back).
pub(super) struct Savepoint<'s> {
    transaction: Transaction<'s>,
    statements: &'s mut Statements,
}

impl<'s> Savepoint<'s> {
    pub(super) fn session(&mut self) -> Tx<'_, 's> {
        Session {
            client: &mut self.transaction,
            statements: self.statements,
        }
    }

    pub(super) fn commit(self) -> Result<(), Error> {
        self.transaction.commit()
    }

    pub(super) fn rollback(self) -> Result<(), Error> {
        self.transaction.rollback()
    }
}

/// The database URL without scimlink's own parameter, and the capacity of
/// each connection's statement cache it asked for (`statement_cache_size`,
/// in a URL's query or among key=value pairs; [`DEFAULT_CAPACITY`] when
/// absent).
pub(super) fn split_capacity(url: &str) -> Result<(String, usize), String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let found = url.match_indices(CAPACITY_PARAMETER).find(|(at, _)| {
        let before = url[..*at].chars().next_back();
        let after = url[at + CAPACITY_PARAMETER.len()..].chars().next();
        let starts = if is_url {
            matches!(before, Some('?' | '&'))
        } else {
            before.is_none_or(char::is_whitespace)
        };
        starts && after == Some('=')
    });
    let Some((at, _)) = found else {
        return Ok((url.to_owned(), DEFAULT_CAPACITY));
    };
    let value_at = at + CAPACITY_PARAMETER.len() + 1;
    let value_end = url[value_at..]
        .find(|c: char| {
            if is_url {
                c == '&' || c == '#'
            } else {
                c.is_whitespace()
            }
        })
        .map_or(url.len(), |end| value_at + end);
    let value = &url[value_at..value_end];
    let capacity = value.parse::<usize>().map_err(|_| {
        format!("{CAPACITY_PARAMETER} takes a count of statements (0 turns the cache off), not {value:?}")
    })?;
    // The parameter goes with the separator on one side of it, so that
    // what is left reads as the operator wrote it.
    let (cut_from, cut_to) = if is_url {
        match url[value_end..].strip_prefix('&') {
            Some(_) => (at, value_end + 1),
            None => (at - 1, value_end),
        }
    } else {
        let spaces = url[value_end..].len() - url[value_end..].trim_start().len();
        (at, value_end + spaces)
    };
    let rest = format!("{}{}", &url[..cut_from], &url[cut_to..]);
    Ok((rest.trim_end().to_owned(), capacity))
}

#[cfg(test)]
mod tests {
    use super::super::{Failure, PostgresStore};
    use super::*;
    use crate::store::prelude::*;
    use crate::store::{TokenCipher, fixtures};

    /// A database of the test's own on the cluster
    /// `SCIMLINK_TEST_DATABASE_URL` names (`scripts/test.sh` starts one),
    /// dropped with it.
    struct Database {
        admin_url: String,
        name: String,
    }

    impl Database {
        fn new() -> Self {
            let admin_url = std::env::var("SCIMLINK_TEST_DATABASE_URL").expect(
                "SCIMLINK_TEST_DATABASE_URL names a PostgreSQL cluster (scripts/test.sh starts one)",
            );
            let name = format!("scimlink_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = Client::connect(&admin_url, NoTls).expect("the test cluster answers");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("a test database can be created");
            Database { admin_url, name }
        }

        /// The store on this database, with `parameter` added to its URL.
        fn open(&self, parameter: Option<&str>) -> PostgresStore {
            let mut url = reqwest::Url::parse(&self.admin_url).expect("the cluster's URL");
            url.set_path(&format!("/{}", self.name));
            let url = match parameter {
                Some(parameter) if url.query().is_some() => format!("{url}&{parameter}"),
                Some(parameter) => format!("{url}?{parameter}"),
                None => url.to_string(),
            };
            PostgresStore::open(&url, TokenCipher::from_key(&[5; 32])).expect("the store opens")
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }

    /// What a directory's everyday work sends: users created and read, an
    /// application and its links.
    fn some_work(store: &PostgresStore) {
        for round in 0..3 {
            let app = fixtures::app(store, &format!("app-{round}"));
            let user = fixtures::user(store, &format!("user-{round}@example.com"));
            store.get_user(&user).expect("the user is read back");
            store
                .put_ledger_entry(&fixtures::link(&app, &user, "remote"))
                .expect("the user is linked");
        }
    }

    /// The statements the server holds prepared on the session's
    /// connection, beside those its cache knows of. The client prepares
    /// even what it sends uncached, for the statement's run: the one
    /// counting is left out.
    fn prepared_on_the_server_and_known(
        session: &mut Session<'_, impl GenericClient>,
    ) -> Result<(i64, usize), Failure> {
        let held: i64 = session
            .client
            .query_one(
                "SELECT count(*) FROM pg_prepared_statements
                 WHERE statement NOT LIKE '%pg_prepared_statements%'",
                &[],
            )?
            .get(0);
        Ok((held, session.statements.len()))
    }

    #[test]
    fn a_connection_prepares_each_statement_once_and_keeps_it() {
        let database = Database::new();
        let store = database.open(None);
        some_work(&store);
        // The same statement, sent three times on one connection, is
        // prepared there once, and the server holds what the cache knows.
        let lookup = "SELECT count(*) FROM users WHERE user_name = $1";
        let seen = store.write(|transaction| {
            for _ in 0..3 {
                transaction.query_one(lookup, &[&"nobody"])?;
            }
            let copies: i64 = transaction
                .client
                .query_one(
                    "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                    &[&lookup],
                )?
                .get(0);
            Ok((copies, prepared_on_the_server_and_known(transaction)?))
        });
        let (copies, (held, known)) = seen.expect("the write runs");
        assert_eq!(copies, 1, "prepared once");
        assert!(known > 0, "the statements are kept");
        assert_eq!(
            usize::try_from(held).ok(),
            Some(known),
            "the server holds what the cache knows"
        );
    }

    #[test]
    fn with_the_cache_off_nothing_is_prepared_on_the_connection() {
        let database = Database::new();
        let store = database.open(Some("statement_cache_size=0"));
        some_work(&store);
        let seen = store.read(prepared_on_the_server_and_known);
        assert_eq!(seen.ok(), Some((0, 0)));
    }

    #[test]
    fn a_statement_the_server_forgot_is_prepared_again() {
        let database = Database::new();
        let store = database.open(None);
        let lookup = "SELECT count(*) FROM users WHERE user_name = $1";
        // A write whose first attempt finds its statement gone (as behind
        // a pooler that lost it) runs again, and prepares it anew.
        let mut attempts = 0;
        let counted = store.write(|transaction| {
            attempts += 1;
            let count: i64 = transaction.query_one(lookup, &[&"nobody"])?.get(0);
            if attempts == 1 {
                transaction.batch_execute("DEALLOCATE ALL")?;
                transaction.query_one(lookup, &[&"nobody"])?;
            }
            Ok(count)
        });
        assert_eq!(counted.ok(), Some(0));
        assert_eq!(attempts, 2, "the write ran again once");
        // A read meeting it fails, and the next read prepares it anew.
        let failed = store.read(|snapshot| {
            snapshot.query_one(lookup, &[&"nobody"])?;
            snapshot.batch_execute("DEALLOCATE ALL")?;
            snapshot.query_one(lookup, &[&"nobody"])?;
            Ok(())
        });
        let message = failed
            .expect_err("the forgotten statement fails the read")
            .to_string();
        assert!(message.contains("statement_cache_size=0"), "{message}");
        let again =
            store.read(|snapshot| Ok::<i64, Failure>(snapshot.query_one(lookup, &[&"x"])?.get(0)));
        assert_eq!(again.ok(), Some(0));
    }

    #[test]
    fn the_cache_parameter_leaves_the_url_as_it_was_written() {
        let cases = [
            ("postgres://u@h/db", "postgres://u@h/db", DEFAULT_CAPACITY),
            (
                "postgres://u@h/db?statement_cache_size=0",
                "postgres://u@h/db",
                0,
            ),
            (
                "postgres://u@h/db?statement_cache_size=0&host=/run/pg",
                "postgres://u@h/db?host=/run/pg",
                0,
            ),
            (
                "postgresql://u@h/db?host=/run/pg&statement_cache_size=64",
                "postgresql://u@h/db?host=/run/pg",
                64,
            ),
            (
                "postgres://u@h/db?host=/a&statement_cache_size=0&user=x",
                "postgres://u@h/db?host=/a&user=x",
                0,
            ),
            (
                "host=/run/pg statement_cache_size=0 dbname=x",
                "host=/run/pg dbname=x",
                0,
            ),
            ("statement_cache_size=8 host=/run/pg", "host=/run/pg", 8),
            ("host=/run/pg statement_cache_size=0", "host=/run/pg", 0),
            // A password or a name that merely contains the word is left.
            (
                "postgres://u:my_statement_cache_size=1@h/db",
                "postgres://u:my_statement_cache_size=1@h/db",
                DEFAULT_CAPACITY,
            ),
        ];
        for (url, rest, capacity) in cases {
            assert_eq!(
                split_capacity(url),
                Ok((rest.to_owned(), capacity)),
                "{url}"
            );
        }
    }

    #[test]
    fn a_cache_size_that_is_not_a_count_is_refused() {
        let refused = split_capacity("postgres://u@h/db?statement_cache_size=off");
        assert!(
            refused.is_err_and(|message| message.contains("0 turns the cache off")),
            "a size of \"off\" must be refused with what the parameter takes"
        );
    }
}
