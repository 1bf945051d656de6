//! When to try again: exponential backoff with full jitter, and the
//! application's own `Retry-After`.
//!
//! Full jitter (a wait drawn uniformly from zero to the exponential bound)
//! keeps many workers that failed together from retrying together.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, RETRY_AFTER};

/// The waits between attempts of one request.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    retries: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            retries: 0,
        }
    }

    /// The bound of the next wait: base × 2^retries, at most `max`.
    pub fn bound(&self) -> Duration {
        let factor = 1u32.checked_shl(self.retries.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next wait: uniform in [0, bound].
    pub fn next_wait(&mut self) -> Duration {
        let bound = self.bound();
        self.retries = self.retries.saturating_add(1);
        bound.mul_f64(unit_random())
    }
}

/// A number in [0, 1) from the operating system's randomness; 0.5 if it
/// is unavailable (the backoff then merely loses its jitter).
fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date
/// (RFC 9110 §10.2.3). A date in the past asks for no wait.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    #[test]
    fn waits_grow_to_the_cap_and_stay_within_the_bound() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for expected in [100, 200, 400, 800, 1000, 1000] {
            assert_eq!(backoff.bound(), Duration::from_millis(expected));
            assert!(backoff.next_wait() <= Duration::from_millis(expected));
        }
        let mut many = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            assert!(many.next_wait() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }
}
