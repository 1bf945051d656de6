//! The admin API's own shapes of the store's records: events, dead letters,
//! the guard's holds, an application's state, pacing and guard thresholds,
//! and what a directory import did.
//!
//! The store keeps records; the API describes what it sends and accepts.
//! These views are where the OpenAPI schema of a record lives, so the store
//! carries no HTTP concern and a change to a record is a visible change
//! here. Invariant: each view serializes exactly as its record does (the
//! same fields, the same spellings, under the same schema name), so the
//! API's answers and document do not depend on which side describes them;
//! the conversions are total and lose nothing the API shows.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{
    AppState, Change, DeadLetter, Event, GuardOverrides, HeldChange, HeldObject, HeldState,
    ImportOutcome, OffboardAction, Outcome, Pacing, Timestamp,
};

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Outcome)]
pub enum OutcomeView {
    Success,
    Failure,
}

impl From<Outcome> for OutcomeView {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => OutcomeView::Success,
            Outcome::Failure => OutcomeView::Failure,
        }
    }
}

/// One entry of the audit trail: an attempt and how it ended. It never
/// holds a token or a password.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub app_id: Option<String>,
    pub app_name: Option<String>,
    /// `user`, `group`, `app`.
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    /// `idm_integration_activate`, `user_create_provision`, …
    pub operation: String,
    pub outcome: OutcomeView,
    /// The rule or matched key that led to it.
    pub rule: Option<String>,
    pub http_status: Option<u16>,
    /// A short summary of the request and the answer.
    pub summary: String,
}

impl From<Event> for EventView {
    fn from(event: Event) -> Self {
        EventView {
            id: event.id,
            at: event.at,
            app_id: event.app_id,
            app_name: event.app_name,
            object_kind: event.object_kind,
            object_id: event.object_id,
            operation: event.operation,
            outcome: event.outcome.into(),
            rule: event.rule,
            http_status: event.http_status,
            summary: event.summary,
        }
    }
}

/// An object an application refused for a reason another attempt will not
/// cure. It stays listed until a sync of the object succeeds or an operator
/// replays it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = DeadLetter)]
pub struct DeadLetterView {
    pub app_id: String,
    /// `user` or `group`.
    pub object_kind: String,
    pub object_id: String,
    /// The operation that failed (`user_create_provision` …).
    pub operation: String,
    pub reason: String,
    pub http_status: Option<u16>,
    #[schema(value_type = String, format = DateTime)]
    pub first_failed: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_failed: Timestamp,
    /// How many times it failed since it was first listed.
    pub failures: u32,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(letter: DeadLetter) -> Self {
        DeadLetterView {
            app_id: letter.app_id,
            object_kind: letter.object_kind,
            object_id: letter.object_id,
            operation: letter.operation,
            reason: letter.reason,
            http_status: letter.http_status,
            first_failed: letter.first_failed,
            last_failed: letter.last_failed,
            failures: letter.failures,
        }
    }
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HeldState)]
pub enum HeldStateView {
    /// Waiting for an operator; the application's offboardings join it.
    Held,
    /// An operator let its offboardings through: they are carried out.
    Approved,
    /// Dropped by an operator: nothing was sent, its accounts released.
    Rejected,
}

impl From<HeldState> for HeldStateView {
    fn from(state: HeldState) -> Self {
        match state {
            HeldState::Held => HeldStateView::Held,
            HeldState::Approved => HeldStateView::Approved,
            HeldState::Rejected => HeldStateView::Rejected,
        }
    }
}

/// What an offboarding would have done to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = OffboardAction)]
pub enum OffboardActionView {
    /// `active` set to false (the user left scope).
    Deactivate,
    /// The account deleted (the user left scope).
    Delete,
    /// An update that turns the active account inactive (the user was
    /// suspended or set `active=false` in the directory).
    Suspend,
}

impl From<OffboardAction> for OffboardActionView {
    fn from(action: OffboardAction) -> Self {
        match action {
            OffboardAction::Deactivate => OffboardActionView::Deactivate,
            OffboardAction::Delete => OffboardActionView::Delete,
            OffboardAction::Suspend => OffboardActionView::Suspend,
        }
    }
}

/// One offboarding the deprovisioning guard held.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = HeldObject)]
pub struct HeldObjectView {
    /// `user`.
    pub object_kind: String,
    pub object_id: String,
    /// The user's userName, when the directory or the last document sent
    /// still knows it.
    pub user_name: Option<String>,
    /// The account in the application.
    pub remote_id: String,
    /// What would have happened.
    pub action: OffboardActionView,
    /// Why: the rule that decided it (`out of scope`, a connector's group
    /// rule, `active=false in the directory`).
    pub reason: String,
    #[schema(value_type = String, format = DateTime)]
    pub held_at: Timestamp,
    /// When an approved offboarding went past the guard.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub carried_out: Option<Timestamp>,
}

impl From<HeldObject> for HeldObjectView {
    fn from(object: HeldObject) -> Self {
        HeldObjectView {
            object_kind: object.object_kind,
            object_id: object.object_id,
            user_name: object.user_name,
            remote_id: object.remote_id,
            action: object.action.into(),
            reason: object.reason,
            held_at: object.held_at,
            carried_out: object.carried_out,
        }
    }
}

/// An application's offboardings the deprovisioning guard holds, because
/// within its window they crossed its threshold. An application has at
/// most one open hold; every offboarding of it while the hold is open
/// joins it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = HeldChange)]
pub struct HeldChangeView {
    pub id: String,
    pub app_id: String,
    /// Only on a hold made by an older scimlink, which held one change
    /// whole: approving it replays that change (through the guard).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub change: Option<Change>,
    /// Offboardings held.
    pub offboarding: u64,
    /// Accounts the application held active when the hold was made.
    pub active_accounts: u64,
    /// The most offboardings the window admitted when the hold was made.
    pub threshold: u64,
    pub state: HeldStateView,
    #[schema(value_type = String, format = DateTime)]
    pub held_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
    /// The offboardings held, in the order they were held.
    pub objects: Vec<HeldObjectView>,
}

impl From<HeldChange> for HeldChangeView {
    fn from(held: HeldChange) -> Self {
        HeldChangeView {
            id: held.id,
            app_id: held.app_id,
            change: held.change,
            offboarding: held.offboarding,
            active_accounts: held.active_accounts,
            threshold: held.threshold,
            state: held.state.into(),
            held_at: held.held_at,
            decided_at: held.decided_at,
            objects: held.objects.into_iter().map(Into::into).collect(),
        }
    }
}

/// Lifecycle state of an application integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = AppState)]
pub enum AppStateView {
    /// Configured; nothing is sent.
    Inactive,
    /// Provisioning.
    Active,
    /// Held after sustained failures; work waits, nothing is lost.
    Quarantined,
}

impl From<AppState> for AppStateView {
    fn from(state: AppState) -> Self {
        match state {
            AppState::Inactive => AppStateView::Inactive,
            AppState::Active => AppStateView::Active,
            AppState::Quarantined => AppStateView::Quarantined,
        }
    }
}

/// How fast the host may send to an application. An absent field is the
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
#[schema(as = Pacing)]
pub struct PacingView {
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

impl Default for PacingView {
    fn default() -> Self {
        Pacing::default().into()
    }
}

impl From<Pacing> for PacingView {
    fn from(pacing: Pacing) -> Self {
        PacingView {
            requests_per_second: pacing.requests_per_second,
            concurrency: pacing.concurrency,
            timeout_seconds: pacing.timeout_seconds,
            max_attempts: pacing.max_attempts,
            quarantine_after: pacing.quarantine_after,
            max_response_bytes: pacing.max_response_bytes,
        }
    }
}

impl From<PacingView> for Pacing {
    fn from(pacing: PacingView) -> Self {
        Pacing {
            requests_per_second: pacing.requests_per_second,
            concurrency: pacing.concurrency,
            timeout_seconds: pacing.timeout_seconds,
            max_attempts: pacing.max_attempts,
            quarantine_after: pacing.quarantine_after,
            max_response_bytes: pacing.max_response_bytes,
        }
    }
}

/// An application's own deprovisioning-guard thresholds; an absent field
/// takes the host's default (`scimlink serve --guard-percent
/// --guard-minimum --guard-window-seconds`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = GuardOverrides)]
pub struct GuardOverridesView {
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

impl From<GuardOverrides> for GuardOverridesView {
    fn from(guard: GuardOverrides) -> Self {
        GuardOverridesView {
            percent: guard.percent,
            minimum: guard.minimum,
            window_seconds: guard.window_seconds,
        }
    }
}

impl From<GuardOverridesView> for GuardOverrides {
    fn from(guard: GuardOverridesView) -> Self {
        GuardOverrides {
            percent: guard.percent,
            minimum: guard.minimum,
            window_seconds: guard.window_seconds,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = ImportOutcome)]
pub struct ImportOutcomeView {
    pub users_created: u64,
    pub users_updated: u64,
    pub groups_created: u64,
    pub memberships_added: u64,
}

impl From<ImportOutcome> for ImportOutcomeView {
    fn from(outcome: ImportOutcome) -> Self {
        ImportOutcomeView {
            users_created: outcome.users_created,
            users_updated: outcome.users_updated,
            groups_created: outcome.groups_created,
            memberships_added: outcome.memberships_added,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChangeKind;

    /// A view must serialize as its record does: the API's answers are the
    /// same whichever describes them.
    fn same_json<R: Serialize + Clone, V: Serialize + From<R>>(record: R) {
        let as_record = serde_json::to_value(record.clone()).unwrap();
        let as_view = serde_json::to_value(V::from(record)).unwrap();
        assert_eq!(as_view, as_record);
    }

    #[test]
    fn every_view_serializes_as_its_record() {
        let at = Timestamp::now();
        same_json::<_, EventView>(Event {
            id: "e1".into(),
            at,
            app_id: Some("a1".into()),
            app_name: Some("crm".into()),
            object_kind: Some("user".into()),
            object_id: Some("u1".into()),
            operation: "user_create_provision".into(),
            outcome: Outcome::Failure,
            rule: Some("userName".into()),
            http_status: Some(409),
            summary: "POST /Users → 409".into(),
        });
        same_json::<_, DeadLetterView>(DeadLetter {
            app_id: "a1".into(),
            object_kind: "user".into(),
            object_id: "u1".into(),
            operation: "user_update_provision".into(),
            reason: "400 invalidValue".into(),
            http_status: Some(400),
            first_failed: at,
            last_failed: at.plus(std::time::Duration::from_secs(5)),
            failures: 3,
        });
        let object = HeldObject {
            object_kind: "user".into(),
            object_id: "u1".into(),
            user_name: Some("ada".into()),
            remote_id: "r1".into(),
            action: OffboardAction::Suspend,
            reason: "active=false in the directory".into(),
            held_at: at,
            carried_out: None,
        };
        for (state, change) in [
            (HeldState::Held, None),
            (
                HeldState::Approved,
                Some(Change {
                    seq: 7,
                    at,
                    subject_id: "g1".into(),
                    kind: ChangeKind::Unrecognized {
                        entity: "group".into(),
                        action: "renamed".into(),
                        detail: serde_json::json!({}),
                    },
                }),
            ),
        ] {
            same_json::<_, HeldChangeView>(HeldChange {
                id: "h1".into(),
                app_id: "a1".into(),
                change,
                offboarding: 30,
                active_accounts: 100,
                threshold: 20,
                state,
                held_at: at,
                decided_at: Some(at),
                objects: vec![object.clone()],
            });
        }
        for state in [AppState::Inactive, AppState::Active, AppState::Quarantined] {
            same_json::<_, AppStateView>(state);
        }
        same_json::<_, PacingView>(Pacing::default());
        same_json::<_, GuardOverridesView>(GuardOverrides::default());
        same_json::<_, GuardOverridesView>(GuardOverrides {
            percent: Some(12.5),
            minimum: Some(3),
            window_seconds: Some(60),
        });
        same_json::<_, ImportOutcomeView>(ImportOutcome {
            users_created: 1,
            users_updated: 2,
            groups_created: 3,
            memberships_added: 4,
        });
    }

    #[test]
    fn inputs_read_as_their_records_do() {
        for text in [
            r#"{}"#,
            r#"{"requestsPerSecond": 2.5, "maxResponseBytes": 65536}"#,
        ] {
            let view: PacingView = serde_json::from_str(text).unwrap();
            let record: Pacing = serde_json::from_str(text).unwrap();
            assert_eq!(Pacing::from(view), record);
        }
        for text in [r#"{}"#, r#"{"percent": 5, "windowSeconds": 600}"#] {
            let view: GuardOverridesView = serde_json::from_str(text).unwrap();
            let record: GuardOverrides = serde_json::from_str(text).unwrap();
            assert_eq!(GuardOverrides::from(view), record);
        }
        assert!(serde_json::from_str::<GuardOverridesView>(r#"{"percentage": 5}"#).is_err());
    }
}
