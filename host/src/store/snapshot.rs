//! Reads that belong together: several store calls answered from one
//! snapshot.

/// Runs a run of reads as one.
pub trait SnapshotStore: Send + Sync {
    /// Runs `reads`, in which every read of this store made on this thread
    /// sees the same snapshot, taken at the first of them, and shares its
    /// read transaction. A write made meanwhile is not seen by the reads
    /// after it. A read that fails in the database itself (PostgreSQL lets
    /// a transaction do nothing more after that) ends the snapshot: the
    /// reads after it share a newer one. A backend whose reads cost little
    /// each runs them as they come, which is what this does unless a
    /// backend says otherwise.
    fn in_one_read(&self, reads: &mut dyn FnMut()) {
        reads()
    }
}
