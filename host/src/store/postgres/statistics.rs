//! The planner's statistics, kept current while the host writes.
//!
//! PostgreSQL plans every statement from the statistics `ANALYZE` gathers,
//! and autovacuum gathers them for a table only once it has changed by a
//! tenth, looking once a minute. A database that a first sync or an import
//! fills runs on no statistics, or on those of a table a fraction of its
//! size, for that long: the planner then cannot tell the ledger's primary
//! key from its `ledger_remote` index (both begin with the application and
//! the kind) and may find a ledger entry by reading every entry of its
//! application, and it walks every membership for each user's scope. A
//! first sync of 10,000 users took twice as long on a fresh database as
//! with its statistics current. So while this host writes, a thread of the
//! store looks every [`LOOK_EVERY`] at how much the tables the engine looks
//! things up in ([`KEPT`]) have changed since they were last analyzed, and
//! analyzes those that changed by a fifth and by [`CHANGED_AT_LEAST`] rows.
//!
//! Invariants:
//! - it reads the catalog and analyzes; nothing it does changes what any
//!   statement returns, only how the planner finds it.
//! - hosts sharing the database analyze one table at a time: an analysis
//!   takes a transaction-scoped advisory lock, and a host that finds it
//!   taken leaves the table for the next look.
//! - an idle host does nothing: the thread looks only while this host
//!   writes, and for [`LOOKS_AFTER`] looks after its last write (a
//!   server counts a connection's changes up to seconds after they were
//!   made). A dropped store ends the thread at its next look.
//! - a role that does not own the tables (`ANALYZE` would skip them) is
//!   said once in the log, and the thread ends: autovacuum keeps them.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Pool, database_message};

/// The tables the engine's reads look things up in by key, whose plans go
/// wrong without statistics.
pub(super) const KEPT: [&str; 5] = ["ledger", "memberships", "users", "groups", "bindings"];

/// How often the thread looks, while the host writes.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(2);

/// How many looks the thread takes after the host's last write.
pub(super) const LOOKS_AFTER: u32 = 6;

/// The fewest changed rows that make a table worth analyzing again.
pub(super) const CHANGED_AT_LEAST: i64 = 500;

/// The advisory lock an analysis takes ("scimanlz" in ASCII).
const ANALYZE_LOCK: i64 = 0x7363_696d_616e_6c7a;

/// How many writes this host has committed: what tells the thread there
/// may be something to analyze.
#[derive(Debug, Default)]
pub(super) struct Writes(AtomicU64);

impl Writes {
    pub(super) fn committed(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The thread's loop, until the store that owns `pool` and `writes` is
/// dropped.
pub(super) fn keep(pool: &Weak<Pool>, writes: &Weak<Writes>, shown: &str) {
    let mut written_before = 0;
    let mut looks_since_written = LOOKS_AFTER;
    loop {
        std::thread::sleep(LOOK_EVERY);
        let (Some(pool), Some(writes)) = (pool.upgrade(), writes.upgrade()) else {
            return;
        };
        let written = writes.count();
        if written != written_before {
            written_before = written;
            looks_since_written = 0;
        } else if looks_since_written >= LOOKS_AFTER {
            continue;
        }
        looks_since_written += 1;
        match analyze_changed(&pool) {
            Ok(Look::Kept) => {}
            Ok(Look::NotOwned) => {
                tracing::info!(
                    "the role scimlink connects to {shown} as does not own its tables, so \
                     their statistics are left to autovacuum"
                );
                return;
            }
            // The next look tries again; a store that has lost its database
            // says so in the calls that need it.
            Err(error) => tracing::debug!("cannot keep the tables' statistics: {error}"),
        }
    }
}

/// What a look found.
enum Look {
    Kept,
    NotOwned,
}

/// Analyzes each table of [`KEPT`] that changed enough since it was last
/// analyzed (by anyone, autovacuum included).
fn analyze_changed(pool: &Pool) -> Result<Look, String> {
    let mut connection = pool.get().map_err(|error| error.to_string())?;
    let failed = |error: ::postgres::Error| database_message(&error);
    let kept: Vec<&str> = KEPT.to_vec();
    let owned: bool = connection
        .query_one(
            "SELECT COALESCE(bool_and(pg_has_role(c.relowner, 'USAGE')), FALSE)
             FROM unnest($1::TEXT[]) AS kept(name)
             JOIN pg_class c ON c.oid = to_regclass(kept.name)",
            &[&kept],
        )
        .map_err(failed)?
        .get(0);
    if !owned {
        return Ok(Look::NotOwned);
    }
    let changed: Vec<String> = connection
        .query(
            "SELECT kept.name
             FROM unnest($1::TEXT[]) AS kept(name)
             JOIN pg_stat_user_tables s ON s.relid = to_regclass(kept.name)
             WHERE s.n_mod_since_analyze >= $2
               AND s.n_mod_since_analyze >= s.n_live_tup / 5",
            &[&kept, &CHANGED_AT_LEAST],
        )
        .map_err(failed)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Only names of `KEPT` reach the statement.
    for table in KEPT
        .iter()
        .filter(|table| changed.iter().any(|name| name == *table))
    {
        let mut transaction = connection.transaction().map_err(failed)?;
        let ours: bool = transaction
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&ANALYZE_LOCK])
            .map_err(failed)?
            .get(0);
        if ours {
            transaction
                .batch_execute(&format!("ANALYZE {table}"))
                .map_err(failed)?;
        }
        transaction.commit().map_err(failed)?;
    }
    Ok(Look::Kept)
}
