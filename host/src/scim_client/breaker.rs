//! The circuit breaker of one application.
//!
//! Closed: requests flow; consecutive failures are counted and a success
//! resets the count. At `threshold` failures the circuit opens: nothing is
//! sent (the engine holds the work; nothing is lost) until `cooldown` has
//! passed, when exactly one request is let through as a probe. The probe's
//! success closes the circuit; its failure opens it for another cool-down.
//! An operator may close it at once ([`CircuitBreaker::reset`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the breaker says to a request that wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Closed,
    /// Go, as the one probe of a half-open circuit.
    Probe,
    /// Do not send.
    Open {
        failures: u32,
        last: String,
    },
}

/// The breaker's state, for events and the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        failures: u32,
        last: String,
        since: Instant,
    },
    HalfOpen {
        failures: u32,
        last: String,
    },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn with_state<T>(&self, change: impl FnOnce(&mut BreakerState) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut state)
    }

    pub fn state(&self) -> BreakerState {
        self.with_state(|state| state.clone())
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state(), BreakerState::Closed { .. })
    }

    pub fn admit(&self) -> Admission {
        let cooldown = self.cooldown;
        self.with_state(|state| match state {
            BreakerState::Closed { .. } => Admission::Closed,
            BreakerState::Open {
                failures,
                last,
                since,
            } => {
                if since.elapsed() >= cooldown {
                    let admission = Admission::Probe;
                    *state = BreakerState::HalfOpen {
                        failures: *failures,
                        last: last.clone(),
                    };
                    admission
                } else {
                    Admission::Open {
                        failures: *failures,
                        last: last.clone(),
                    }
                }
            }
            // One probe at a time: the others wait for its verdict.
            BreakerState::HalfOpen { failures, last } => Admission::Open {
                failures: *failures,
                last: last.clone(),
            },
        })
    }

    pub fn record_success(&self) {
        self.with_state(|state| *state = BreakerState::Closed { failures: 0 });
    }

    /// Counts a failure; returns true when this failure opened the circuit.
    pub fn record_failure(&self, reason: &str) -> bool {
        let threshold = self.threshold;
        self.with_state(|state| {
            let failures = match state {
                BreakerState::Closed { failures }
                | BreakerState::Open { failures, .. }
                | BreakerState::HalfOpen { failures, .. } => failures.saturating_add(1),
            };
            let was_closed = matches!(state, BreakerState::Closed { .. });
            if failures >= threshold || !was_closed {
                *state = BreakerState::Open {
                    failures,
                    last: reason.to_string(),
                    since: Instant::now(),
                };
                was_closed
            } else {
                *state = BreakerState::Closed { failures };
                false
            }
        })
    }

    /// An operator resumes the application.
    pub fn reset(&self) {
        self.record_success();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_circuit_opens_at_the_threshold_and_a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        assert!(!breaker.record_failure("a"));
        assert!(!breaker.record_failure("b"));
        breaker.record_success();
        assert!(!breaker.record_failure("c"));
        assert!(!breaker.record_failure("d"));
        assert!(breaker.record_failure("e"), "the third in a row opens it");
        assert_eq!(
            breaker.admit(),
            Admission::Open {
                failures: 3,
                last: "e".into()
            }
        );
        breaker.reset();
        assert_eq!(breaker.admit(), Admission::Closed);
    }

    #[test]
    fn after_the_cooldown_one_probe_decides() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.record_failure("down");
        assert_eq!(breaker.admit(), Admission::Probe);
        assert!(
            matches!(breaker.admit(), Admission::Open { .. }),
            "one probe at a time"
        );
        breaker.record_failure("still down");
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.record_success();
        assert_eq!(breaker.admit(), Admission::Closed);
    }
}
