//! An engine's lease on an application as this process last renewed it,
//! for the sends it makes: an engine that no longer holds an application's
//! lease sends nothing more to it.
//!
//! The store says who runs an application (its lease,
//! [`crate::store::HostsStore::take_object_lease`] with kind
//! [`super::worker::RUNNER`]) and the engine renews it every few seconds. A
//! process paused past its lease (SIGSTOP, a frozen machine) learns at its
//! next renewal that another host took over, but until then it would carry
//! on the sync it was in. [`Turn`] closes that gap without a round trip:
//! every request of the engine asks it first, and it answers whether the
//! lease this process last renewed still has [`MARGIN`] left.
//!
//! The turn is measured on this process's monotonic clock, from the moment
//! it *asked* for the renewal: the store's deadline is set later than that,
//! by the store's own clock, so this process always believes its turn ends
//! before it really does, whatever the hosts' wall clocks say.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How much of the turn must be left for a request to go out.
pub const MARGIN: Duration = Duration::from_secs(3);

/// Until when this process holds an application's lease.
#[derive(Debug)]
pub struct Turn {
    base: Instant,
    /// Milliseconds after `base`; 0 while the turn is not held.
    deadline_ms: AtomicI64,
    /// Given up for good: no renewal brings it back.
    given_up: AtomicBool,
}

impl Default for Turn {
    fn default() -> Self {
        Turn {
            base: Instant::now(),
            deadline_ms: AtomicI64::new(0),
            given_up: AtomicBool::new(false),
        }
    }
}

impl Turn {
    /// A turn not held yet.
    pub fn new() -> Self {
        Turn::default()
    }

    /// The store granted or renewed the turn for `lease`, asked at
    /// `asked_at`.
    pub fn renewed(&self, asked_at: Instant, lease: Duration) {
        if self.given_up.load(Ordering::Acquire) {
            return;
        }
        let deadline = asked_at.saturating_duration_since(self.base) + lease;
        self.deadline_ms.store(millis(deadline), Ordering::Release);
    }

    /// The engine lets the application go: the turn ends now and for good,
    /// whatever renewal of a batch still under way lands after.
    pub fn give_up(&self) {
        self.given_up.store(true, Ordering::Release);
        self.deadline_ms.store(0, Ordering::Release);
    }

    /// The turn was taken over or given up.
    pub fn lost(&self) {
        self.deadline_ms.store(0, Ordering::Release);
    }

    /// Whether the turn should be renewed now: less than `half` of it is
    /// left (or it is not held).
    pub fn needs_renewal(&self, half: Duration) -> bool {
        millis(self.base.elapsed() + half) >= self.deadline_ms.load(Ordering::Acquire)
    }

    /// Whether a request may still go out: the turn has at least [`MARGIN`]
    /// left.
    pub fn is_held(&self) -> bool {
        millis(self.base.elapsed() + MARGIN) < self.deadline_ms.load(Ordering::Acquire)
    }
}

fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_held_until_its_margin() {
        let turn = Turn::new();
        assert!(!turn.is_held(), "never granted");
        assert!(turn.needs_renewal(Duration::from_secs(10)));
        turn.renewed(Instant::now(), Duration::from_secs(20));
        assert!(turn.is_held());
        assert!(!turn.needs_renewal(Duration::from_secs(10)));
        turn.renewed(Instant::now(), MARGIN / 2);
        assert!(!turn.is_held(), "too little left to send");
        turn.renewed(Instant::now(), Duration::from_secs(20));
        turn.lost();
        assert!(!turn.is_held());
        turn.renewed(Instant::now(), Duration::from_secs(20));
        assert!(turn.is_held(), "a lost turn is taken again");
        turn.give_up();
        turn.renewed(Instant::now(), Duration::from_secs(20));
        assert!(!turn.is_held(), "a turn given up stays given up");
    }
}
