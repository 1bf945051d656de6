//! The console's sessions, held in the host's memory.
//!
//! Invariants:
//! - a session id is 256 random bits from the system's source, shown to
//!   the browser once (in its cookie) and kept only as its SHA-256, so the
//!   table itself holds nothing a browser could present;
//! - each session has its own CSRF token, also 256 random bits, compared
//!   in constant time;
//! - a session ends when it has been idle for `idle` (a page that polls by
//!   itself does not count as use), when it is `lifetime` old whatever its
//!   use, or when it signs out; an ended session is never found again;
//! - at most `capacity` sessions are open; opening one more ends the
//!   oldest.
//!
//! Sessions live and die with the process: a restart signs everyone out,
//! and each host of a scale-out has its own.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secrets::{KeyError, random_bytes};

/// How long sessions last, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub lifetime: Duration,
    pub capacity: usize,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 60 * 60),
            capacity: 256,
        }
    }
}

/// A session just opened: what the browser is given.
#[derive(Debug)]
pub struct Opened {
    /// The cookie's value.
    pub id: String,
    pub csrf: String,
}

/// Who made a request: an operator, or a page refreshing itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Operator,
    Poll,
}

/// An open session, as a request finds it.
#[derive(Debug, Clone)]
pub struct Found {
    csrf: String,
}

impl Found {
    /// The session's CSRF token, for the pages it is shown.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn accepts_csrf(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|presented| {
            presented.len() == self.csrf.len()
                && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
        })
    }
}

struct Session {
    csrf: String,
    opened: Instant,
    used: Instant,
}

/// The open sessions.
pub struct Sessions {
    policy: SessionPolicy,
    open: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    pub fn new(policy: SessionPolicy) -> Self {
        Sessions {
            policy,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Opens a session at `now`.
    pub fn open(&self, now: Instant) -> Result<Opened, KeyError> {
        let id = random_token()?;
        let csrf = random_token()?;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, session| self.alive(session, now));
        while open.len() >= self.policy.capacity.max(1) {
            let oldest = open
                .iter()
                .min_by_key(|(_, session)| session.opened)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => open.remove(&key),
                None => break,
            };
        }
        open.insert(
            digest(&id),
            Session {
                csrf: csrf.clone(),
                opened: now,
                used: now,
            },
        );
        Ok(Opened { id, csrf })
    }

    /// The session whose cookie holds `id`, if it is open at `now`. An
    /// operator's request (`use_`) keeps it from going idle; a page polling
    /// by itself does not.
    pub fn find(&self, id: &str, now: Instant, use_: Use) -> Option<Found> {
        let key = digest(id);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let alive = open
            .get(&key)
            .is_some_and(|session| self.alive(session, now));
        if !alive {
            open.remove(&key);
            return None;
        }
        let session = open.get_mut(&key)?;
        if use_ == Use::Operator {
            session.used = now;
        }
        Some(Found {
            csrf: session.csrf.clone(),
        })
    }

    /// Ends the session whose cookie holds `id`.
    pub fn close(&self, id: &str) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&digest(id));
    }

    fn alive(&self, session: &Session, now: Instant) -> bool {
        now.saturating_duration_since(session.used) < self.policy.idle
            && now.saturating_duration_since(session.opened) < self.policy.lifetime
    }
}

fn random_token() -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(idle: u64, lifetime: u64, capacity: usize) -> Sessions {
        Sessions::new(SessionPolicy {
            idle: Duration::from_secs(idle),
            lifetime: Duration::from_secs(lifetime),
            capacity,
        })
    }

    #[test]
    fn a_session_is_found_by_its_id_alone_and_carries_its_own_csrf_token() {
        let sessions = sessions(60, 600, 8);
        let now = Instant::now();
        let first = sessions.open(now).unwrap();
        let second = sessions.open(now).unwrap();
        assert_ne!(first.id, second.id);
        assert_ne!(first.csrf, second.csrf);
        assert_eq!(first.id.len(), 43, "256 bits, base64url");
        let found = sessions.find(&first.id, now, Use::Operator).unwrap();
        assert!(found.accepts_csrf(Some(&first.csrf)));
        assert!(!found.accepts_csrf(Some(&second.csrf)));
        assert!(!found.accepts_csrf(None));
        assert!(!found.accepts_csrf(Some("")));
        assert!(sessions.find("not-a-session", now, Use::Operator).is_none());
        assert!(sessions.find(&first.csrf, now, Use::Operator).is_none());
    }

    #[test]
    fn a_session_ends_when_idle_when_old_and_when_closed() {
        let sessions = sessions(60, 600, 8);
        let start = Instant::now();
        let idle = sessions.open(start).unwrap();
        assert!(
            sessions
                .find(&idle.id, start + Duration::from_secs(59), Use::Operator)
                .is_some()
        );
        // Used at 59 s: idle again only at 119 s.
        assert!(
            sessions
                .find(&idle.id, start + Duration::from_secs(118), Use::Operator)
                .is_some()
        );
        assert!(
            sessions
                .find(&idle.id, start + Duration::from_secs(179), Use::Operator)
                .is_none()
        );
        assert!(
            sessions
                .find(&idle.id, start + Duration::from_secs(1), Use::Operator)
                .is_none(),
            "an ended session stays ended"
        );

        let busy = sessions.open(start).unwrap();
        // Used every 50 s, up to 550 s: never idle.
        for seconds in (50..=550).step_by(50) {
            let at = start + Duration::from_secs(seconds);
            assert!(
                sessions.find(&busy.id, at, Use::Operator).is_some(),
                "at {seconds} s"
            );
        }
        assert!(
            sessions
                .find(&busy.id, start + Duration::from_secs(600), Use::Operator)
                .is_none(),
            "use does not stretch a session past its lifetime"
        );

        let closed = sessions.open(start).unwrap();
        sessions.close(&closed.id);
        assert!(sessions.find(&closed.id, start, Use::Operator).is_none());
    }

    #[test]
    fn a_page_polling_by_itself_does_not_keep_a_session_from_going_idle() {
        let sessions = sessions(60, 600, 8);
        let start = Instant::now();
        let opened = sessions.open(start).unwrap();
        for seconds in [20, 40, 59] {
            let at = start + Duration::from_secs(seconds);
            assert!(sessions.find(&opened.id, at, Use::Poll).is_some());
        }
        assert!(
            sessions
                .find(&opened.id, start + Duration::from_secs(61), Use::Poll)
                .is_none()
        );
    }

    #[test]
    fn past_its_capacity_the_oldest_session_ends() {
        let sessions = sessions(60, 600, 2);
        let start = Instant::now();
        let first = sessions.open(start).unwrap();
        let second = sessions.open(start + Duration::from_secs(1)).unwrap();
        let third = sessions.open(start + Duration::from_secs(2)).unwrap();
        let now = start + Duration::from_secs(3);
        assert!(sessions.find(&first.id, now, Use::Operator).is_none());
        assert!(sessions.find(&second.id, now, Use::Operator).is_some());
        assert!(sessions.find(&third.id, now, Use::Operator).is_some());
    }
}
