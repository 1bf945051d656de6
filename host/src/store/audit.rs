//! The audit trail: every attempt the host makes and how it ended.
//!
//! Invariant: an event never holds a token or a password; events are
//! only ever added, and pruned by age.

use super::*;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// One entry of the audit trail: an attempt and how it ended. It never
/// holds a token or a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub at: Timestamp,
    pub app_id: Option<String>,
    pub app_name: Option<String>,
    /// `user`, `group`, `app`.
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    /// `idm_integration_activate`, `user_create_provision`, …
    pub operation: String,
    pub outcome: Outcome,
    /// The rule or matched key that led to it.
    pub rule: Option<String>,
    pub http_status: Option<u16>,
    /// A short summary of the request and the answer.
    pub summary: String,
}

/// Which events to list; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// An application's id.
    pub app_id: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<Outcome>,
    /// Events at or after it.
    pub since: Option<Timestamp>,
    /// Events before it.
    pub until: Option<Timestamp>,
    /// Events about one object (a user's or a group's id).
    pub object_id: Option<String>,
}

pub trait AuditStore: Send + Sync {
    // Audit events.
    /// Records an event; `id` is filled in when empty.
    fn record_event(&self, event: Event) -> StoreResult<Event>;
    /// Events, newest first.
    fn events(&self, query: &EventQuery, page: Page) -> StoreResult<Listing<Event>>;
    /// Deletes the events older than `before`; how many.
    fn prune_events(&self, before: Timestamp) -> StoreResult<u64>;
}
