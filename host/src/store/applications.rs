//! Applications: what the host provisions into, how fast, and with which
//! sealed token.
//!
//! Invariants: names are unique; a token is sealed before it reaches the
//! backend and only [`ApplicationStore::app_token`] opens it; a write
//! appends its [`Change`] (created, activated, deactivated, renamed,
//! token-rotated, group-management-enabled, deleted) in the same
//! transaction; a state other than quarantined carries no reason.

use super::*;

/// Lifecycle state of an application integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// Configured; nothing is sent.
    Inactive,
    /// Provisioning.
    Active,
    /// Held after sustained failures; work waits, nothing is lost.
    Quarantined,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Inactive => "inactive",
            AppState::Active => "active",
            AppState::Quarantined => "quarantined",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "inactive" => Some(AppState::Inactive),
            "active" => Some(AppState::Active),
            "quarantined" => Some(AppState::Quarantined),
            _ => None,
        }
    }
}

/// The largest answer read from an application unless its pacing says
/// otherwise: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// How fast the host may send to an application.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Pacing {
    /// Requests per second at most (halved by the host at each 429).
    pub requests_per_second: f64,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Seconds one attempt may take, from sending to the whole answer.
    pub timeout_seconds: u32,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Consecutive failed requests that quarantine the application.
    pub quarantine_after: u32,
    /// The largest answer read from the application, in bytes (16 MiB); a
    /// larger one fails its request without being read further.
    pub max_response_bytes: u64,
}

impl Default for Pacing {
    /// Polite to a SaaS API, patient with a slow one.
    fn default() -> Self {
        Pacing {
            requests_per_second: 10.0,
            concurrency: 4,
            timeout_seconds: 30,
            max_attempts: 6,
            quarantine_after: 10,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// An application's own deprovisioning-guard thresholds; an absent field
/// takes the host's default (`scimlink serve --guard-percent
/// --guard-minimum --guard-window-seconds`). See [`crate::engine::guard`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardOverrides {
    /// Offboardings within the window are held past this share (0–100) of
    /// the application's active accounts…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// …and past this many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<u64>,
    /// How far back offboardings are counted, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
}

/// An application integration. Its token is not part of it: see
/// [`ApplicationStore::app_token`].
#[derive(Debug, Clone, PartialEq)]
pub struct AppRecord {
    pub id: String,
    pub name: String,
    pub label: String,
    pub connector: String,
    /// May hold `{placeholders}` filled from `settings`.
    pub base_url: String,
    pub manage_groups: bool,
    pub state: AppState,
    pub settings: Vec<(String, String)>,
    /// What the application said it supports when last tested.
    pub capabilities: Value,
    pub pacing: Pacing,
    /// Why the application is quarantined (`None` in any other state).
    pub state_reason: Option<String>,
    pub guard: GuardOverrides,
    /// How temporary passwords are made for the application, when its
    /// connector takes passwords.
    pub passwords: PasswordPolicy,
    pub version: i64,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// A new application.
#[derive(Debug, Clone)]
pub struct AppWrite {
    pub name: String,
    pub label: String,
    pub connector: String,
    pub base_url: String,
    pub token: Secret,
    pub manage_groups: bool,
    pub settings: Vec<(String, String)>,
    pub pacing: Pacing,
    pub guard: GuardOverrides,
    pub passwords: PasswordPolicy,
}

/// A change to an application; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AppUpdate {
    pub label: Option<String>,
    pub base_url: Option<String>,
    pub manage_groups: Option<bool>,
    pub settings: Option<Vec<(String, String)>>,
    pub state: Option<AppState>,
    pub token: Option<Secret>,
    pub capabilities: Option<Value>,
    pub pacing: Option<Pacing>,
    /// Why, with `state` quarantined; any other state clears the reason.
    pub state_reason: Option<String>,
    pub guard: Option<GuardOverrides>,
    pub passwords: Option<PasswordPolicy>,
}

pub trait ApplicationStore: Send + Sync {
    // Applications.
    fn create_app(&self, app: AppWrite) -> StoreResult<AppRecord>;
    /// An application by name or id.
    fn get_app(&self, name_or_id: &str) -> StoreResult<Option<AppRecord>>;
    fn list_apps(&self, page: Page) -> StoreResult<Listing<AppRecord>>;
    fn update_app(&self, name_or_id: &str, update: AppUpdate) -> StoreResult<AppRecord>;
    fn delete_app(&self, name_or_id: &str) -> StoreResult<()>;
    /// The application's bearer token, opened. Only the SCIM client calls it.
    fn app_token(&self, name_or_id: &str) -> StoreResult<Secret>;
}
