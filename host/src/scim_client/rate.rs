//! The pace of requests to one application: a token bucket whose rate
//! adapts to the application.
//!
//! The bucket holds up to `burst` tokens and refills at the current rate;
//! a request takes one token, waiting for it if need be. The rate starts at
//! the configured maximum, halves at every 429 (down to a floor) and climbs
//! back by a fiftieth of the maximum per success: an application that keeps
//! throttling is asked less and less, one that recovers gets its pace back
//! within a few dozen requests. A `Retry-After` pauses the whole bucket:
//! the application asked for quiet, not only the request it refused.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The slowest pace a throttled application is ever asked at.
pub const MIN_RATE: f64 = 0.1;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    rate: f64,
    /// No request leaves before this (a Retry-After).
    paused_until: Option<Instant>,
}

#[derive(Debug)]
pub struct AdaptiveRate {
    max_rate: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

impl AdaptiveRate {
    pub fn new(requests_per_second: f64, burst: u32) -> Self {
        let max_rate = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second.max(MIN_RATE)
        } else {
            MIN_RATE
        };
        let burst = f64::from(burst.max(1));
        AdaptiveRate {
            max_rate,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                refilled: Instant::now(),
                rate: max_rate,
                paused_until: None,
            }),
        }
    }

    fn with_bucket<T>(&self, change: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut bucket)
    }

    /// The current rate, in requests per second.
    pub fn current(&self) -> f64 {
        self.with_bucket(|bucket| bucket.rate)
    }

    /// Takes a token now, or says how long until one is there.
    fn try_take(&self) -> Option<Duration> {
        let burst = self.burst;
        self.with_bucket(|bucket| {
            let now = Instant::now();
            if let Some(until) = bucket.paused_until {
                if until > now {
                    return Some(until - now);
                }
                bucket.paused_until = None;
            }
            let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(burst);
            bucket.refilled = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                None
            } else {
                Some(Duration::from_secs_f64((1.0 - bucket.tokens) / bucket.rate))
            }
        })
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        while let Some(wait) = self.try_take() {
            tokio::time::sleep(wait).await;
        }
    }

    /// The application answered 429: halve the pace and drop the burst.
    pub fn on_throttled(&self) {
        self.with_bucket(|bucket| {
            bucket.rate = (bucket.rate / 2.0).max(MIN_RATE);
            bucket.tokens = bucket.tokens.min(0.0);
        });
    }

    /// The application asked for `wait` of quiet: nothing leaves until then.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        self.with_bucket(|bucket| {
            bucket.paused_until = Some(
                bucket
                    .paused_until
                    .map_or(until, |current| current.max(until)),
            );
        });
    }

    /// A request succeeded: climb back towards the maximum.
    pub fn on_success(&self) {
        let (step, max) = (self.max_rate / 50.0, self.max_rate);
        self.with_bucket(|bucket| bucket.rate = (bucket.rate + step).min(max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_holds_every_request() {
        let rate = AdaptiveRate::new(1000.0, 100);
        assert_eq!(rate.try_take(), None);
        rate.pause_for(Duration::from_secs(2));
        let wait = rate.try_take().expect("paused");
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
    }

    #[test]
    fn throttling_halves_the_rate_and_successes_restore_it() {
        let rate = AdaptiveRate::new(10.0, 5);
        rate.on_throttled();
        rate.on_throttled();
        assert!((rate.current() - 2.5).abs() < 1e-9);
        for _ in 0..100 {
            rate.on_throttled();
        }
        assert!((rate.current() - MIN_RATE).abs() < 1e-9);
        for _ in 0..60 {
            rate.on_success();
        }
        assert!((rate.current() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_burst_is_served_at_once_then_the_bucket_makes_callers_wait() {
        let rate = AdaptiveRate::new(2.0, 3);
        for _ in 0..3 {
            assert_eq!(rate.try_take(), None);
        }
        let wait = rate.try_take().expect("the bucket is empty");
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }

    #[test]
    fn nonsense_settings_fall_back_to_the_floor() {
        assert_eq!(AdaptiveRate::new(f64::NAN, 0).current(), MIN_RATE);
        assert_eq!(AdaptiveRate::new(-3.0, 1).current(), MIN_RATE);
    }
}
