//! The retry policy: what follows when one change fails in one application.
//!
//! The engine keeps progress per (change, application) pair (see
//! [`super::worker`]). When objects of a pair fail:
//! - the pair is tried again after a wait that starts at the policy's
//!   backoff (`scimlink serve --retry-backoff-seconds`, 5 s) and doubles
//!   with each failed attempt, up to [`MAX_RETRY_BACKOFF`]; its change
//!   stays open for it meanwhile, and every other pair goes on;
//! - after the policy's attempts (`--retry-attempts`, 8) the objects that
//!   still fail are dead-lettered with the reason (`sync_gave_up`) and the
//!   pair is done with; an operator's replay sends them again.
//!
//! This counts attempts at a whole pair. A request that meets a 429, a 503
//! or a reset connection within one attempt is retried by the SCIM client
//! first (`Pacing::max_attempts`), and an application that fails request
//! after request is quarantined by its circuit breaker: neither counts here.

use std::time::Duration;

/// The longest wait between two attempts at one change in one application.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(600);

/// How often, and how patiently, a failed pair is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at one change in one application, the first included,
    /// before the objects that still fail are dead-lettered.
    pub attempts: u32,
    /// The wait after the first failed attempt.
    pub backoff: Duration,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try the pair again once this much time has passed.
    RetryIn(Duration),
    /// Dead-letter what still fails; the pair is done with.
    GiveUp,
}

impl RetryPolicy {
    /// What follows the `failed_attempts`th failed attempt (counting from 1).
    pub fn after_failure(&self, failed_attempts: u32) -> AfterFailure {
        // At least one attempt is made, whatever the setting says.
        if failed_attempts >= self.attempts.max(1) {
            AfterFailure::GiveUp
        } else {
            AfterFailure::RetryIn(self.backoff_after(failed_attempts))
        }
    }

    /// The wait after the `failed_attempts`th failed attempt.
    pub fn backoff_after(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(16);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(MAX_RETRY_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling() {
        let policy = RetryPolicy {
            attempts: 8,
            backoff: Duration::from_secs(5),
        };
        assert_eq!(policy.backoff_after(1), Duration::from_secs(5));
        assert_eq!(policy.backoff_after(2), Duration::from_secs(10));
        assert_eq!(policy.backoff_after(4), Duration::from_secs(40));
        assert_eq!(policy.backoff_after(30), MAX_RETRY_BACKOFF);
    }

    #[test]
    fn the_last_attempt_gives_up() {
        let policy = RetryPolicy {
            attempts: 3,
            backoff: Duration::from_secs(1),
        };
        assert_eq!(
            policy.after_failure(1),
            AfterFailure::RetryIn(Duration::from_secs(1))
        );
        assert_eq!(
            policy.after_failure(2),
            AfterFailure::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(policy.after_failure(3), AfterFailure::GiveUp);
        let never_retried = RetryPolicy {
            attempts: 0,
            ..policy
        };
        assert_eq!(never_retried.after_failure(1), AfterFailure::GiveUp);
    }
}
