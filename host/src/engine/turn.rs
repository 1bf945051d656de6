//! The engine's turn as this process last renewed it, for the sends it
//! makes: an engine that no longer holds its turn sends nothing more.
//!
//! The store says who holds the turn ([`crate::store::OutboxStore::take_engine_turn`])
//! and the engine renews it every few seconds. A process paused past its
//! turn (SIGSTOP, a frozen machine) learns at its next renewal that a
//! standby took over, but until then it would carry on the sync it was in.
//! [`Turn`] closes that gap without a round trip: every request of the
//! engine asks it first, and it answers from the clock whether the turn
//! this process last renewed still has [`MARGIN`] left. The margin covers
//! the request itself and the difference between the hosts' clocks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::store::Timestamp;

/// How much of the turn must be left for a request to go out.
pub const MARGIN: Duration = Duration::from_secs(3);

/// Until when this process holds the engine's turn.
#[derive(Debug, Default)]
pub struct Turn {
    /// Milliseconds since the Unix epoch; 0 while the turn was never held.
    until_ms: AtomicI64,
}

impl Turn {
    /// A turn not held yet.
    pub fn new() -> Self {
        Turn::default()
    }

    /// The store granted or renewed the turn until `until`.
    pub fn held_until(&self, until: Timestamp) {
        self.until_ms.store(millis(until), Ordering::Release);
    }

    /// The turn was taken over or given up.
    pub fn lost(&self) {
        self.until_ms.store(0, Ordering::Release);
    }

    /// Whether the turn should be renewed now: less than `half` of it is
    /// left (or it is not held).
    pub fn needs_renewal(&self, half: Duration) -> bool {
        let half = i64::try_from(half.as_millis()).unwrap_or(i64::MAX);
        millis(Timestamp::now()).saturating_add(half) >= self.until_ms.load(Ordering::Acquire)
    }

    /// Whether a request may still go out: the turn has at least [`MARGIN`]
    /// left.
    pub fn is_held(&self) -> bool {
        let margin = i64::try_from(MARGIN.as_millis()).unwrap_or(i64::MAX);
        millis(Timestamp::now()).saturating_add(margin) < self.until_ms.load(Ordering::Acquire)
    }
}

fn millis(at: Timestamp) -> i64 {
    i64::try_from(at.as_datetime().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_held_until_its_margin() {
        let turn = Turn::new();
        assert!(!turn.is_held(), "never granted");
        turn.held_until(Timestamp::in_future(Duration::from_secs(20)));
        assert!(turn.is_held());
        turn.held_until(Timestamp::in_future(MARGIN / 2));
        assert!(!turn.is_held(), "too little left to send");
        turn.held_until(Timestamp::in_future(Duration::from_secs(20)));
        turn.lost();
        assert!(!turn.is_held());
    }
}
