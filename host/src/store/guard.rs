//! The deprovisioning guard's records: holds, the offboardings they list,
//! and the offboardings admitted within the window. The policy is
//! [`crate::engine::guard`]'s; the store counts and records atomically.
//!
//! Invariants: an application has at most one open hold; deciding one
//! offboarding reads the facts and records the decision in one transaction,
//! so offboardings decided at once (by this host or another) are counted
//! one after the other; a hold is decided once.

use super::*;

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "held" => Some(HeldState::Held),
            "approved" => Some(HeldState::Approved),
            "rejected" => Some(HeldState::Rejected),
            _ => None,
        }
    }
}

/// What an offboarding would have done to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "deactivate" => Some(OffboardAction::Deactivate),
            "delete" => Some(OffboardAction::Delete),
            "suspend" => Some(OffboardAction::Suspend),
            _ => None,
        }
    }
}

/// One offboarding the deprovisioning guard held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub held_at: Timestamp,
    /// When an approved offboarding went past the guard.
    pub carried_out: Option<Timestamp>,
}

/// An application's offboardings the deprovisioning guard holds, because
/// within its window they crossed its threshold (see
/// [`crate::engine::guard`]). An application has at most one open hold;
/// every offboarding of it while the hold is open joins it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldChange {
    pub id: String,
    pub app_id: String,
    /// Only on a hold made by an older scimlink, which held one change
    /// whole: approving it replays that change (through the guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// Offboardings held.
    pub offboarding: u64,
    /// Accounts the application held active when the hold was made.
    pub active_accounts: u64,
    /// The most offboardings the window admitted when the hold was made.
    pub threshold: u64,
    pub state: HeldState,
    pub held_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    /// The offboardings held, in the order they were held.
    pub objects: Vec<HeldObject>,
}

/// What the store knows, inside the guard's transaction, about one
/// offboarding about to be decided (see [`GuardStore::guard_offboarding`]).
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

/// What [`GuardStore::guard_offboarding`] recorded.
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

pub trait GuardStore: Send + Sync {
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
}
