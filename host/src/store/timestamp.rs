//! Moments in time as the store keeps them.
//!
//! A [`Timestamp`] is a UTC instant to the millisecond. Its text form is
//! fixed-width RFC 3339 (`2026-12-01T16:56:50.123Z`), so stored text sorts
//! as time does and a backend may compare it as text; it reads any RFC 3339
//! offset and converts it to UTC. Every time the store records or compares
//! is one, so no caller formats or parses times by hand.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A UTC instant, to the millisecond.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// Text that is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 time (like 2026-12-01T16:56:50Z)")]
pub struct TimestampError {
    pub text: String,
}

impl Timestamp {
    /// The earliest time there is: before anything the store records.
    pub const EPOCH: Timestamp = Timestamp(OffsetDateTime::UNIX_EPOCH);

    pub fn now() -> Self {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }

    /// `span` from now (saturating at the end of time the format can write).
    pub fn in_future(span: Duration) -> Self {
        Timestamp::now().plus(span)
    }

    /// `span` before now (saturating at the earliest time).
    pub fn ago(span: Duration) -> Self {
        Timestamp::now().minus(span)
    }

    pub fn plus(self, span: Duration) -> Self {
        time::Duration::try_from(span)
            .ok()
            .and_then(|span| self.0.checked_add(span))
            .filter(|at| at.year() <= 9999)
            .map_or(Timestamp::latest(), Timestamp::from_datetime)
    }

    pub fn minus(self, span: Duration) -> Self {
        time::Duration::try_from(span)
            .ok()
            .and_then(|span| self.0.checked_sub(span))
            .filter(|at| at.year() >= 0)
            .map_or(Timestamp::earliest(), Timestamp::from_datetime)
    }

    /// How long after `earlier` this is (zero when it is not after it).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::try_from(self.0 - earlier.0).unwrap_or(Duration::ZERO)
    }

    /// A time given as RFC 3339 or as an age, a whole number followed by
    /// `s`, `m`, `h` or `d` (`12h`: twelve hours before `now`).
    pub fn parse_since(text: &str, now: Timestamp) -> Option<Timestamp> {
        let text = text.trim();
        if let Ok(at) = text.parse() {
            return Some(at);
        }
        // The unit is the last character, which need not be one byte:
        // splitting at `len - 1` would cut `é` in half.
        let (split, _) = text.char_indices().last()?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().ok()?;
        let seconds = match unit {
            "s" => number,
            "m" => number.checked_mul(60)?,
            "h" => number.checked_mul(3600)?,
            "d" => number.checked_mul(86_400)?,
            _ => return None,
        };
        let span = time::Duration::seconds(i64::try_from(seconds).ok()?);
        now.0.checked_sub(span).map(Timestamp::from_datetime)
    }

    pub fn as_datetime(self) -> OffsetDateTime {
        self.0
    }

    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let at = at.to_offset(UtcOffset::UTC);
        // Only milliseconds are written: a time read back equals the one
        // that was written.
        let at = at
            .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
            .unwrap_or(at);
        Timestamp(at)
    }

    fn latest() -> Self {
        Timestamp::from_datetime(time::macros::datetime!(9999-12-31 23:59:59.999 UTC))
    }

    fn earliest() -> Self {
        Timestamp::from_datetime(time::macros::datetime!(0000-01-01 00:00:00 UTC))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Timestamp::from_datetime)
            .map_err(|_| TimestampError {
                text: text.to_string(),
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn text_is_fixed_width_utc_and_reads_back_the_same() {
        let moment = at("2026-11-23T13:30:00.123456+02:00");
        assert_eq!(moment.to_string(), "2026-11-23T11:30:00.123Z");
        assert_eq!(at(&moment.to_string()), moment);
        let now = Timestamp::now();
        assert_eq!(at(&now.to_string()), now);
        assert_eq!(now.to_string().len(), 24);
    }

    #[test]
    fn text_order_is_time_order() {
        let earlier = at("2026-11-23T09:59:59.999Z");
        let later = at("2026-11-23T10:00:00Z");
        assert!(earlier < later);
        assert!(earlier.to_string() < later.to_string());
        assert_eq!(later.since(earlier), Duration::from_millis(1));
        assert_eq!(earlier.since(later), Duration::ZERO);
    }

    #[test]
    fn arithmetic_saturates_instead_of_failing() {
        let now = Timestamp::now();
        assert_eq!(
            now.plus(Duration::MAX).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            now.minus(Duration::MAX).to_string(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            at("2026-01-01T00:00:00Z").plus(Duration::from_secs(90)),
            at("2026-01-01T00:01:30Z")
        );
    }

    #[test]
    fn since_reads_times_and_ages() {
        let now = at("2026-11-23T12:00:00Z");
        let since = |text| Timestamp::parse_since(text, now).map(|at| at.to_string());
        assert_eq!(since("2h").as_deref(), Some("2026-11-23T10:00:00.000Z"));
        assert_eq!(since("7d").as_deref(), Some("2026-11-16T12:00:00.000Z"));
        assert_eq!(
            since("2026-11-23T13:30:00+02:00").as_deref(),
            Some("2026-11-23T11:30:00.000Z")
        );
        for bad in [
            "",
            "h",
            "-2h",
            "2w",
            "yesterday",
            "99999999999999999d",
            "5é",
            "é",
            "5\u{1F600}",
            "1\u{0301}",
        ] {
            assert_eq!(since(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_text_is_refused_with_what_was_given() {
        let error = "tomorrow".parse::<Timestamp>().unwrap_err();
        assert!(error.to_string().contains("\"tomorrow\""), "{error}");
        assert!(serde_json::from_str::<Timestamp>("\"2026-13-01T00:00:00Z\"").is_err());
        assert_eq!(
            serde_json::to_string(&at("2026-01-02T03:04:05Z")).unwrap(),
            "\"2026-01-02T03:04:05.000Z\""
        );
    }
}
