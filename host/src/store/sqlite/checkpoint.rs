//! Checkpoints of the write-ahead log, off the writer's path.
//!
//! SQLite copies the log's pages back into the database file (a
//! checkpoint) from the connection that commits, once the log passes a
//! thousand pages: the writer then holds every write queued behind it
//! while it copies and syncs. A first sync of 10,000 users commits more
//! than ten thousand pages: the writer would stop ten times for about 5 ms,
//! and every sync in flight with it, waiting for its record. Here the
//! writer only notes the log's length at each commit (a hook of its
//! connection), and a thread of the store with a connection of its own
//! checkpoints once it passes [`IN_BACKGROUND_PAST`], while the writer
//! goes on.
//!
//! Invariants:
//! - a checkpoint changes where committed pages live, never what any read
//!   returns; it runs in SQLite's passive mode, which waits for no reader
//!   and no writer.
//! - the log stays bounded: a passive checkpoint copies only what was
//!   committed before it began, and the log starts again from its head only
//!   once all of it is copied, which a writer that never pauses would never
//!   let happen. Past [`BY_THE_WRITER_PAST`] pages the writer checkpoints
//!   itself after its commit, as SQLite would have, copying what the thread
//!   has not yet.
//! - the thread holds nothing of the store's but its connection: a dropped
//!   store ends it.
//! - durability is SQLite's own with `synchronous = NORMAL` (see the
//!   store's module): commits do not wait for a checkpoint either way.

use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use rusqlite::Connection;

use super::connect;
use crate::store::StoreResult;

/// The log's length, in pages, past which the thread checkpoints:
/// SQLite's own default for a committing connection.
pub(super) const IN_BACKGROUND_PAST: i32 = 1_000;

/// The log's length, in pages, past which the writer checkpoints after its
/// commit (the thread has not kept up, or never finds the log still).
pub(super) const BY_THE_WRITER_PAST: i32 = 8 * IN_BACKGROUND_PAST;

thread_local! {
    /// The log's length after the last commit on this thread's connection,
    /// set by [`note_log_length`] within the commit.
    static LOG_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// The writer connection's commit hook: it replaces SQLite's own, which
/// would checkpoint there and then.
fn note_log_length(_log: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_PAGES.with(|length| length.set(pages));
    Ok(())
}

/// What a commit that left the log `pages` long calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checkpoint {
    None,
    InBackground,
    ByTheWriter,
}

pub(super) fn called_for(pages: i32) -> Checkpoint {
    if pages >= BY_THE_WRITER_PAST {
        Checkpoint::ByTheWriter
    } else if pages >= IN_BACKGROUND_PAST {
        Checkpoint::InBackground
    } else {
        Checkpoint::None
    }
}

/// The store's checkpointing thread, as the writer sees it.
pub(super) struct Checkpointer {
    /// One waiting wake-up at most: commits while a checkpoint runs ask for
    /// one more, not one each.
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Takes over `writer`'s checkpoints and starts the thread that runs
    /// them, on a connection of its own to the database at `path`.
    pub(super) fn start(path: &Path, writer: &Connection) -> StoreResult<Self> {
        let connection = connect(path)?;
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("scimlink-wal".into())
            .spawn(move || checkpoint_when_woken(&connection, &woken))
            .map_err(|error| {
                crate::store::StoreError::Backend(format!(
                    "cannot start the store's checkpoint thread: {error}"
                ))
            })?;
        writer.wal_hook(Some(note_log_length));
        Ok(Checkpointer { wake })
    }

    /// After the writer's commit, on the thread that committed: wakes the
    /// thread, or checkpoints on `writer`, as the log's length calls for.
    pub(super) fn after_commit(&self, writer: &Connection) {
        let pages = LOG_PAGES.with(|length| length.replace(0));
        match called_for(pages) {
            Checkpoint::None => {}
            Checkpoint::InBackground => match self.wake.try_send(()) {
                // Already woken: the checkpoint it runs covers this commit
                // or the next one does.
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => checkpoint(writer),
            },
            Checkpoint::ByTheWriter => checkpoint(writer),
        }
    }
}

/// The thread: a checkpoint each time it is woken, until the store is
/// dropped.
fn checkpoint_when_woken(connection: &Connection, woken: &Receiver<()>) {
    while woken.recv().is_ok() {
        checkpoint(connection);
    }
}

/// A passive checkpoint: copies what it can without waiting. One that
/// cannot run now (another is under way) leaves it to that one; one that
/// fails leaves the log to the next.
fn checkpoint(connection: &Connection) {
    let ran = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        row.get::<_, i64>(0)
    });
    if let Err(error) = ran {
        tracing::debug!("the write-ahead log's checkpoint did not run: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::TokenCipher;
    use crate::store::MetaStore;
    use crate::store::sqlite::SqliteStore;

    /// The database file's length, which grows only as a checkpoint copies
    /// pages into it (every write goes to the log first).
    fn file_length(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |file| file.len())
    }

    /// A value of about `pages` pages, different for each `seed`.
    fn value_of_pages(pages: usize, seed: usize) -> String {
        format!("{seed:08}").repeat(pages * 4096 / 8)
    }

    #[test]
    fn a_short_log_waits_a_long_one_goes_to_the_thread_and_a_runaway_one_to_the_writer() {
        assert_eq!(called_for(0), Checkpoint::None);
        assert_eq!(called_for(IN_BACKGROUND_PAST - 1), Checkpoint::None);
        assert_eq!(called_for(IN_BACKGROUND_PAST), Checkpoint::InBackground);
        assert_eq!(called_for(BY_THE_WRITER_PAST - 1), Checkpoint::InBackground);
        assert_eq!(called_for(BY_THE_WRITER_PAST), Checkpoint::ByTheWriter);
    }

    #[test]
    fn the_store_checkpoints_its_log_on_a_thread_of_its_own() {
        let folder = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[7; 32])).unwrap();
        let database = folder.path().join(super::super::DATABASE_FILE);
        {
            // The writer no longer checkpoints when its commit passes
            // SQLite's threshold: its hook replaced SQLite's.
            let writer = store.writer.lock().unwrap();
            let itself: i64 = writer
                .connection
                .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
                .unwrap();
            assert_eq!(itself, 0);
        }
        let before = file_length(&database);
        // Past the thread's threshold, short of the writer's: only the
        // thread copies anything into the file.
        let writes = usize::try_from(IN_BACKGROUND_PAST).unwrap() / 4 + 10;
        for seed in 0..writes {
            store
                .set_meta(&format!("key-{seed}"), &value_of_pages(4, seed))
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while file_length(&database) <= before + 4 * 4096 * writes as u64 / 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing was checkpointed: the file is {} bytes, {before} before",
                file_length(&database)
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// A writer on a new database at `path`, with a table to fill.
    fn writer_at(path: &Path) -> Connection {
        let writer = connect(path).unwrap();
        writer
            .execute_batch("CREATE TABLE pages (value TEXT NOT NULL)")
            .unwrap();
        writer
    }

    /// Commits about `pages` pages on `writer`, whose hook is set, and
    /// hands the commit to `checkpointer`: the pages must be in the file by
    /// the time it returns, copied by the writer itself.
    fn assert_the_writer_checkpoints(
        checkpointer: &Checkpointer,
        writer: &Connection,
        path: &Path,
        pages: usize,
    ) {
        let before = file_length(path);
        writer
            .execute(
                "INSERT INTO pages (value) VALUES (?1)",
                [value_of_pages(pages, pages)],
            )
            .unwrap();
        assert_eq!(file_length(path), before, "written to the log only");
        checkpointer.after_commit(writer);
        assert!(
            file_length(path) > before + 4096 * pages as u64 / 2,
            "the writer checkpointed: the file is {} bytes, {before} before",
            file_length(path)
        );
    }

    #[test]
    fn a_writer_whose_checkpoint_thread_is_gone_checkpoints_itself() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("log.db");
        let writer = writer_at(&path);
        writer.wal_hook(Some(note_log_length));
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        drop(woken);
        let checkpointer = Checkpointer { wake };
        let pages = usize::try_from(IN_BACKGROUND_PAST).unwrap() + 100;
        assert_the_writer_checkpoints(&checkpointer, &writer, &path, pages);
    }

    #[test]
    fn a_log_past_the_writers_threshold_is_checkpointed_before_the_writer_goes_on() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("log.db");
        let writer = writer_at(&path);
        // The thread is there, but a runaway log is not left to it.
        let checkpointer = Checkpointer::start(&path, &writer).unwrap();
        let pages = usize::try_from(BY_THE_WRITER_PAST).unwrap() + 100;
        assert_the_writer_checkpoints(&checkpointer, &writer, &path, pages);
    }
}
