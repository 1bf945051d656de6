//! The source of truth: the directory, applications, and the engine's
//! durable state, behind the [`Store`] trait.
//!
//! Invariants every implementation keeps:
//! - Every write is one transaction, and the same transaction appends what
//!   changed to the outbox ([`Change`]). A crash therefore never leaves a
//!   change without the record that follow-up work is owed.
//! - Ids are UUIDs chosen by the host, not database sequences, and nothing is
//!   cached between calls, so several hosts may share one database (the
//!   outbox is consumed through leases, see [`Store::claim_changes`]).
//! - `userName` and group `displayName` are unique without regard to case.
//! - Group membership never references a missing user or group and never
//!   forms a cycle: a write that would is refused whole.
//! - A remote account is linked (in the ledger) to at most one directory
//!   object of a kind per application: a write that would link it to a
//!   second is refused with [`StoreError::LinkedElsewhere`].
//! - Application bearer tokens are sealed before they reach storage
//!   ([`secrets::TokenCipher`]); only [`Store::app_token`] opens them.
//!
//! [`sqlite::SqliteStore`] is the embedded default. The trait is synchronous:
//! callers on an async runtime go through [`blocking`].

pub mod secrets;
pub mod sqlite;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use secrets::{Secret, TokenCipher};
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {key:?} not found")]
    NotFound { entity: &'static str, key: String },
    #[error("a {entity} with {field} {value:?} already exists")]
    Conflict {
        entity: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("{entity} {id} is at version {current}, not {expected}")]
    VersionMismatch {
        entity: &'static str,
        id: String,
        expected: i64,
        current: i64,
    },
    /// A membership change that names a missing member or forms a cycle.
    #[error("{0}")]
    InvalidMembership(String),
    /// A ledger write would link a remote account that another directory
    /// object of the same application already holds.
    #[error("account {remote_id} is already linked to {holder}")]
    LinkedElsewhere { remote_id: String, holder: String },
    #[error("sealed token cannot be opened: {0}")]
    Secret(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Backend(error.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A user of the directory: its SCIM attributes and bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// SCIM attributes (core and extensions) without `id`, `meta`, `groups`.
    pub attributes: Map<String, Value>,
    pub version: i64,
    pub created: String,
    pub modified: String,
}

/// What a caller writes for a user. `userName`, `externalId` and `active`
/// are read from `attributes`; the store indexes them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrite {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub attributes: Map<String, Value>,
}

/// What kind of object a group member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "User" => Some(MemberKind::User),
            "Group" => Some(MemberKind::Group),
            _ => None,
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub id: String,
    pub kind: MemberKind,
}

/// A member as the store can describe it to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub kind: MemberKind,
    /// userName of a user, displayName of a group.
    pub display: String,
}

/// A group of the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// SCIM attributes without `id`, `meta`, `members`.
    pub attributes: Map<String, Value>,
    pub members: Vec<MemberView>,
    pub version: i64,
    pub created: String,
    pub modified: String,
}

/// What a caller writes for a group. `members: None` leaves membership as
/// it is; `Some` replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub members: Option<Vec<Member>>,
}

/// A group as a user's `groups` attribute shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display_name: String,
}

/// Indexed keys a user can be found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey {
    Id,
    UserName,
    ExternalId,
}

/// Indexed keys a group can be found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKey {
    Id,
    DisplayName,
    ExternalId,
}

/// A window into an ordered list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Lifecycle state of an application integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

    fn parse(text: &str) -> Option<Self> {
        match text {
            "inactive" => Some(AppState::Inactive),
            "active" => Some(AppState::Active),
            "quarantined" => Some(AppState::Quarantined),
            _ => None,
        }
    }
}

/// How fast the host may send to an application.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
            max_response_bytes: crate::scim_client::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// An application's own deprovisioning-guard thresholds; an absent field
/// takes the host's default (`scimlink serve --guard-percent
/// --guard-minimum --guard-window-seconds`). See [`crate::engine::guard`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
/// [`Store::app_token`].
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
    pub version: i64,
    pub created: String,
    pub modified: String,
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
}

/// What changed, as the outbox records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub seq: i64,
    pub at: String,
    /// `user`, `group`, `membership`, `app`, `binding`.
    pub entity: String,
    pub entity_id: String,
    /// `created`, `updated`, `deleted`, `added`, `removed`, `bound`,
    /// `unbound`, `activated`, `deactivated`, `token-rotated`, `renamed` …
    pub action: String,
    pub detail: Value,
}

/// What an application holds of one directory object, as last accepted.
/// Where one change stands for one application it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeProgress {
    pub seq: i64,
    pub app_id: String,
    /// Done with: applied, or given up on with its objects dead-lettered.
    pub done: bool,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When a failed pair may be tried again (RFC 3339 UTC).
    pub retry_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub app_id: String,
    /// `user` or `group`.
    pub object_kind: String,
    pub object_id: String,
    /// The object's id in the application.
    pub remote_id: String,
    /// sha256 of the last document the application accepted, or a marker
    /// of a state without a document (`deactivated`).
    pub doc_hash: String,
    /// The last document the application accepted, when one was sent.
    pub document: Option<String>,
    pub updated: String,
}

/// A change to the ledger made together with the event that records it.
#[derive(Debug, Clone, Copy)]
pub enum LedgerChange<'a> {
    Put(&'a LedgerEntry),
    Remove {
        app_id: &'a str,
        object_kind: &'a str,
        object_id: &'a str,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    pub at: String,
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
    /// RFC 3339 UTC; events at or after it.
    pub since: Option<String>,
}

/// An object an application refused for a reason another attempt will not
/// cure. It stays listed until a sync of the object succeeds or an operator
/// replays it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub app_id: String,
    /// `user` or `group`.
    pub object_kind: String,
    pub object_id: String,
    /// The operation that failed (`user_create_provision` …).
    pub operation: String,
    pub reason: String,
    pub http_status: Option<u16>,
    pub first_failed: String,
    pub last_failed: String,
    /// How many times it failed since it was first listed.
    pub failures: u32,
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HeldState {
    /// Waiting for an operator; the application's offboardings join it.
    Held,
    /// An operator let its offboardings through: they are carried out.
    Approved,
    /// Dropped by an operator: nothing was sent, its accounts released.
    Rejected,
}

impl HeldState {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldState::Held => "held",
            HeldState::Approved => "approved",
            HeldState::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "held" => Some(HeldState::Held),
            "approved" => Some(HeldState::Approved),
            "rejected" => Some(HeldState::Rejected),
            _ => None,
        }
    }
}

/// What an offboarding would have done to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OffboardAction {
    /// `active` set to false (the user left scope).
    Deactivate,
    /// The account deleted (the user left scope).
    Delete,
    /// An update that turns the active account inactive (the user was
    /// suspended or set `active=false` in the directory).
    Suspend,
}

impl OffboardAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OffboardAction::Deactivate => "deactivate",
            OffboardAction::Delete => "delete",
            OffboardAction::Suspend => "suspend",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "deactivate" => Some(OffboardAction::Deactivate),
            "delete" => Some(OffboardAction::Delete),
            "suspend" => Some(OffboardAction::Suspend),
            _ => None,
        }
    }
}

/// One offboarding the deprovisioning guard held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeldObject {
    /// `user`.
    pub object_kind: String,
    pub object_id: String,
    /// The user's userName, when the directory or the last document sent
    /// still knows it.
    pub user_name: Option<String>,
    /// The account in the application.
    pub remote_id: String,
    /// What would have happened.
    pub action: OffboardAction,
    /// Why: the rule that decided it (`out of scope`, a connector's group
    /// rule, `active=false in the directory`).
    pub reason: String,
    pub held_at: String,
    /// When an approved offboarding went past the guard.
    pub carried_out: Option<String>,
}

/// An application's offboardings the deprovisioning guard holds, because
/// within its window they crossed its threshold (see
/// [`crate::engine::guard`]). An application has at most one open hold;
/// every offboarding of it while the hold is open joins it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeldChange {
    pub id: String,
    pub app_id: String,
    /// Only on a hold made by an older scimlink, which held one change
    /// whole: approving it replays that change (through the guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub change: Option<Change>,
    /// Offboardings held.
    pub offboarding: u64,
    /// Accounts the application held active when the hold was made.
    pub active_accounts: u64,
    /// The most offboardings the window admitted when the hold was made.
    pub threshold: u64,
    pub state: HeldState,
    pub held_at: String,
    pub decided_at: Option<String>,
    /// The offboardings held, in the order they were held.
    pub objects: Vec<HeldObject>,
}

/// What the store knows, inside the guard's transaction, about one
/// offboarding about to be decided (see [`Store::guard_offboarding`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardFacts {
    /// The application's accounts the ledger holds as active.
    pub active_accounts: u64,
    /// Distinct accounts offboarded past the guard within the window and
    /// since the application's last decision, approved ones left out.
    /// (Several hosts' clocks are compared: they should agree to well
    /// within the window.)
    pub admitted_in_window: u64,
    /// This account, as the ledger holds it now, was already let through
    /// within the window: a retry of an offboarding that did not finish.
    pub already_admitted: bool,
    /// An approved hold lists this account and it was not carried out yet.
    pub approved_in: Option<String>,
    /// The application's open hold.
    pub open_hold: Option<String>,
}

/// The guard's decision on one offboarding, which the store records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardStep {
    /// Send it, counted in the window.
    Admit,
    /// Send it: already counted (a retry), nothing recorded.
    AdmitAgain,
    /// Send it: an operator approved it; marked carried out, not counted.
    AdmitApproved,
    /// Do not send it: listed in the open hold, made now with `threshold`
    /// when there is none.
    Hold { threshold: u64 },
}

/// What [`Store::guard_offboarding`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRecorded {
    pub step: GuardStep,
    /// The hold it joined or made (for [`GuardStep::Hold`]) or that
    /// approved it (for [`GuardStep::AdmitApproved`]).
    pub hold: Option<String>,
    /// The hold was made by this offboarding.
    pub hold_made: bool,
    /// The offboarding was not listed in the hold before.
    pub newly_held: bool,
    pub facts: GuardFacts,
}

/// Users and groups written together by an import.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// Matched on userName: an existing user keeps what the import does not
    /// name (and its `active` status unless `attributes` holds `active`); a
    /// new one is created.
    pub users: Vec<UserWrite>,
    /// Matched on displayName; members are userNames, added to what the
    /// group already holds.
    pub groups: Vec<ImportGroup>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportGroup {
    pub display_name: String,
    pub member_user_names: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportOutcome {
    pub users_created: u64,
    pub users_updated: u64,
    pub groups_created: u64,
    pub memberships_added: u64,
}

/// The storage of one host, or of several sharing a database.
pub trait Store: Send + Sync + 'static {
    // Users.
    fn create_user(&self, user: UserWrite) -> StoreResult<UserRecord>;
    /// Replaces a user's attributes; with `expected_version`, only if the
    /// user is still at that version.
    fn replace_user(
        &self,
        id: &str,
        user: UserWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<UserRecord>;
    /// Deletes a user and its memberships.
    fn delete_user(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()>;
    fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// Users whose key equals `value` (userName without regard to case).
    fn find_users(&self, key: UserKey, value: &str) -> StoreResult<Vec<UserRecord>>;
    /// Users ordered by userName.
    fn list_users(&self, page: Page) -> StoreResult<Listing<UserRecord>>;
    /// Every user, in userName order, until `visit` returns false.
    fn scan_users(&self, visit: &mut dyn FnMut(UserRecord) -> bool) -> StoreResult<()>;
    /// The groups a user is a direct member of.
    fn user_groups(&self, id: &str) -> StoreResult<Vec<GroupRef>>;

    // Groups.
    fn create_group(&self, group: GroupWrite) -> StoreResult<GroupRecord>;
    fn replace_group(
        &self,
        id: &str,
        group: GroupWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<GroupRecord>;
    fn delete_group(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()>;
    fn get_group(&self, id: &str) -> StoreResult<Option<GroupRecord>>;
    fn find_groups(&self, key: GroupKey, value: &str) -> StoreResult<Vec<GroupRecord>>;
    /// Groups ordered by displayName.
    fn list_groups(&self, page: Page) -> StoreResult<Listing<GroupRecord>>;
    fn scan_groups(&self, visit: &mut dyn FnMut(GroupRecord) -> bool) -> StoreResult<()>;
    /// Adds members (already present ones are left alone) and removes
    /// members (absent ones are ignored) in one transaction.
    fn change_members(
        &self,
        group_id: &str,
        add: &[Member],
        remove: &[String],
    ) -> StoreResult<GroupRecord>;

    // Applications.
    fn create_app(&self, app: AppWrite) -> StoreResult<AppRecord>;
    /// An application by name or id.
    fn get_app(&self, name_or_id: &str) -> StoreResult<Option<AppRecord>>;
    fn list_apps(&self, page: Page) -> StoreResult<Listing<AppRecord>>;
    fn update_app(&self, name_or_id: &str, update: AppUpdate) -> StoreResult<AppRecord>;
    fn delete_app(&self, name_or_id: &str) -> StoreResult<()>;
    /// The application's bearer token, opened. Only the SCIM client calls it.
    fn app_token(&self, name_or_id: &str) -> StoreResult<Secret>;
    fn bind(&self, app: &str, group_id: &str) -> StoreResult<()>;
    fn unbind(&self, app: &str, group_id: &str) -> StoreResult<()>;
    fn bindings(&self, app: &str) -> StoreResult<Vec<GroupRef>>;
    /// Assigns a user to the application directly (in scope without a
    /// bound group). Assigning twice is assigning once.
    fn assign(&self, app: &str, user_id: &str) -> StoreResult<()>;
    fn unassign(&self, app: &str, user_id: &str) -> StoreResult<()>;
    /// Ids of the users assigned directly, in id order.
    fn assignments(&self, app: &str) -> StoreResult<Vec<String>>;
    /// Ids of the users in the application's scope — members, directly or
    /// through nested groups, of a group bound to it, and users assigned to
    /// it directly — in id order.
    fn users_in_scope(&self, app: &str) -> StoreResult<Vec<String>>;

    // Bulk.
    fn import(&self, batch: ImportBatch) -> StoreResult<ImportOutcome>;

    // Outbox.
    /// Up to `limit` unfinished changes in order that no live lease holds,
    /// leased to `consumer` for `lease_seconds`.
    fn claim_changes(
        &self,
        consumer: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<Change>>;
    /// Extends `consumer`'s leases on `seqs` (a long change stays its own);
    /// the seqs it still held and extended. One missing was taken by
    /// another consumer after the lease ran out: its work must stop.
    fn renew_claims(
        &self,
        consumer: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>>;
    /// Marks `consumer`'s changes among `seqs` done and forgets their
    /// per-application progress.
    fn complete_changes(&self, consumer: &str, seqs: &[i64]) -> StoreResult<()>;
    /// Lets `consumer`'s claim on each change run until the given time
    /// (RFC 3339 UTC), when it may be claimed again: a change waiting for a
    /// failed application's retry is not claimed before it is due.
    fn defer_changes(&self, consumer: &str, until: &[(i64, String)]) -> StoreResult<()>;
    /// The per-application progress recorded for `seqs`.
    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>>;
    /// Records where changes stand for applications (replacing what was
    /// recorded for the same pairs), for those still claimed by `consumer`:
    /// a consumer whose lease ran out records nothing.
    fn record_progress(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()>;
    fn pending_changes(&self) -> StoreResult<u64>;
    /// Woken when a commit of this process appended to the outbox, so that
    /// a consumer need not poll to learn of it (it still polls for other
    /// processes sharing the database).
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// The users among `ids`, and the users of the groups among them
    /// (through nested groups), in id order.
    fn users_of(&self, ids: &[String]) -> StoreResult<Vec<String>>;
    /// Whether the user is in the application's scope: assigned to it
    /// directly, or a member, directly or through nested groups, of a group
    /// bound to it.
    fn user_in_scope(&self, app_id: &str, user_id: &str) -> StoreResult<bool>;
    /// The groups bound to the application that hold `member_id` (a user or
    /// a group) directly or through nested groups — `member_id` itself when
    /// it is a bound group — in id order.
    fn bound_groups_containing(&self, app_id: &str, member_id: &str) -> StoreResult<Vec<String>>;

    // The ledger.
    fn ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<Option<LedgerEntry>>;
    /// Every entry of one kind for an application.
    fn ledger_entries(&self, app_id: &str, object_kind: &str) -> StoreResult<Vec<LedgerEntry>>;
    /// The remote ids the ledger holds for the objects among `object_ids`,
    /// as (object id, remote id), in `object_ids` order.
    fn remote_ids(
        &self,
        app_id: &str,
        object_kind: &str,
        object_ids: &[String],
    ) -> StoreResult<Vec<(String, String)>>;
    /// The entry that links the remote account `remote_id`, whichever
    /// object holds it: a remote account is linked to at most one object of
    /// a kind per application, and a write that would link it to a second
    /// is refused with [`StoreError::LinkedElsewhere`].
    fn ledger_holder(
        &self,
        app_id: &str,
        object_kind: &str,
        remote_id: &str,
    ) -> StoreResult<Option<LedgerEntry>>;
    /// How many entries of one kind an application has, those whose
    /// `doc_hash` is `excluding_hash` left out.
    fn count_ledger_entries(
        &self,
        app_id: &str,
        object_kind: &str,
        excluding_hash: &str,
    ) -> StoreResult<u64>;
    /// Writes an entry; `updated` is set to now.
    fn put_ledger_entry(&self, entry: &LedgerEntry) -> StoreResult<()>;
    fn remove_ledger_entry(
        &self,
        app_id: &str,
        object_kind: &str,
        object_id: &str,
    ) -> StoreResult<()>;

    // Dead letters.
    /// Lists an object as failed for good, or counts one more failure of an
    /// object already listed. (Writing the object's ledger entry, or
    /// removing it, takes it off the list: it succeeded.)
    fn put_dead_letter(&self, letter: &DeadLetter) -> StoreResult<()>;
    /// An application's dead letters, oldest first.
    fn dead_letters(&self, app_id: &str) -> StoreResult<Vec<DeadLetter>>;
    /// Takes dead letters of an application off the list (those of
    /// `object_ids`, or all) and queues their objects for another sync, in
    /// one transaction. How many were replayed.
    fn replay_dead_letters(&self, app_id: &str, object_ids: Option<&[String]>) -> StoreResult<u64>;

    // The deprovisioning guard (policy in [`crate::engine::guard`]).
    /// Decides one offboarding of `object` in `app_id` and records the
    /// decision, in one transaction (so offboardings decided at once, by
    /// this host or another, are counted one after the other): reads the
    /// [`GuardFacts`] — counting within the last `window_seconds` and since
    /// the application's last decision, and pruning older admissions —
    /// asks `decide`, and records its step. `entry_state` names the ledger
    /// entry as the offboarding found it: a retry finds the same.
    fn guard_offboarding(
        &self,
        app_id: &str,
        object: &HeldObject,
        entry_state: &str,
        window_seconds: u64,
        decide: &dyn Fn(&GuardFacts) -> GuardStep,
    ) -> StoreResult<GuardRecorded>;
    /// Holds, newest first, of one application or all, decided included.
    fn held_changes(&self, app_id: Option<&str>) -> StoreResult<Vec<HeldChange>>;
    /// An operator's decision on an open hold. Approval queues a
    /// `guard`/`approved` change for its application naming the held users
    /// (or, for an older scimlink's hold, the change it held), in the same
    /// transaction; the guard then lets exactly those offboardings through.
    /// A hold already decided is refused as a conflict.
    fn decide_held_change(&self, id: &str, approve: bool) -> StoreResult<HeldChange>;

    // Audit events.
    /// Records an event; `id` and `at` are filled in when empty.
    fn record_event(&self, event: Event) -> StoreResult<Event>;
    /// Changes the ledger and records the event that says why, in one
    /// transaction: what the application accepted and its audit entry land
    /// together or not at all.
    fn record_with_ledger(&self, change: LedgerChange<'_>, event: Event) -> StoreResult<()> {
        match change {
            LedgerChange::Put(entry) => self.put_ledger_entry(entry)?,
            LedgerChange::Remove {
                app_id,
                object_kind,
                object_id,
            } => self.remove_ledger_entry(app_id, object_kind, object_id)?,
        }
        self.record_event(event).map(|_| ())
    }
    /// Events, newest first.
    fn events(&self, query: &EventQuery, page: Page) -> StoreResult<Listing<Event>>;
    /// Deletes the events older than `before` (RFC 3339 UTC); how many.
    fn prune_events(&self, before: &str) -> StoreResult<u64>;

    // Host metadata.
    fn meta(&self, key: &str) -> StoreResult<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> StoreResult<()>;
}

/// Runs a store call off the async runtime's worker threads.
pub async fn blocking<T, F>(store: &Arc<dyn Store>, call: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|join| StoreError::Backend(format!("store task failed: {join}")))?
}
