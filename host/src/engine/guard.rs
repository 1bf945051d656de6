//! The deprovisioning guard: an application's offboardings are counted
//! across changes, and once too many come within a window they are held
//! for an operator.
//!
//! Identity providers deprovision one request at a time, so a mistake that
//! removes thousands of users arrives as thousands of small changes. The
//! guard therefore never looks at a change: every path that would offboard
//! an account asks [`admit`] right before it sends the request, and the
//! answer is [`Admitted::Go`] or [`Admitted::Held`]. The paths are
//! - [`super::provision::offboard`], for a user who left scope (deactivate
//!   or delete, as the connector says) and for a connector's group rule
//!   that deactivates or deletes; an account already deactivated is not
//!   asked about (nothing is sent);
//! - [`super::provision::sync_user`], for an update that would turn an
//!   active account inactive (the user was suspended, or set
//!   `active=false`, in the directory).
//!
//! Invariants:
//! - Per application, at most `threshold` distinct accounts are offboarded
//!   within `window` seconds and since the application's last guard
//!   decision, where `threshold = max(minimum, ceil(percent% of the
//!   accounts active when the window opened))`. The decision and its record
//!   are one store transaction ([`crate::store::GuardStore::guard_offboarding`]),
//!   so offboardings decided in parallel, or by several hosts sharing the
//!   database, are counted one after the other and cannot overshoot.
//! - The offboarding that would cross the threshold opens a hold for the
//!   application (event `deprovision_held`); from then on every offboarding
//!   of the application joins it, whatever the count, until an operator
//!   decides. A held offboarding sends nothing and leaves the ledger as it
//!   is: the sync reports [`super::provision::Synced::Held`]. Creates,
//!   updates that keep an account active, and other applications go on.
//! - Approval ([`decide`]) lets exactly the listed offboardings through,
//!   once each, within a window after the decision: the store queues a
//!   `guard`/`approved` change naming the users, whose sync is level-
//!   triggered — a user back in scope meanwhile is not offboarded, and one
//!   still out of it is offboarded as the connector's manifest says (so an
//!   offboarding a group rule decided is carried out the connector's way).
//!   The count restarts at the decision, so an approval never trips again
//!   on what it approved.
//! - Rejection sends nothing and releases the held accounts: the ledger
//!   forgets them (event `user_release`, rule `guard: rejected`), so no
//!   later sync offboards them, and a user the identity provider creates
//!   again is looked up and takes the account over. The count restarts at
//!   the decision too.
//!
//! The window counts a small table of admissions rather than the audit
//! events: an event is written after the request is answered, so
//! offboardings decided at the same time would not see each other, events
//! are pruned on their own schedule, and an update that deactivates is not
//! told apart from another update in the events. An admission is recorded
//! before the request is sent and counted per account: a retry (the ledger
//! entry unchanged since it was admitted) passes without counting again,
//! and an account offboarded twice within the window counts once. Rows
//! older than the window are pruned as the next offboarding is decided.
//!
//! The share is taken of the accounts active when the window opened —
//! those active now plus those offboarded within it — so that the
//! threshold does not shrink as the offboardings it counts proceed.
//!
//! The host's defaults (`scimlink serve --guard-percent --guard-minimum
//! --guard-window-seconds`) are recorded in the store when the engine
//! starts, so the API's on-demand paths apply the same ones; several hosts
//! sharing a database share the defaults of the last one started. An
//! application may override each ([`crate::store::GuardOverrides`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::provision::{DEACTIVATED, SyncError, Target};
use crate::runtime::contract::Offboarding;
use crate::store::Timestamp;
use crate::store::{
    AppRecord, Event, GuardFacts, GuardOverrides, GuardStep, HeldChange, HeldObject, LedgerChange,
    LedgerEntry, OffboardAction, Outcome, Store, StoreError,
};

/// An application's offboardings crossed its threshold and are held.
pub const HELD: &str = "deprovision_held";
/// An operator approved a hold, or one approved offboarding went past the
/// guard.
pub const APPROVED: &str = "deprovision_approved";
/// An operator rejected a hold.
pub const REJECTED: &str = "deprovision_rejected";
/// The rule of the `user_release` event of a rejected hold's account.
pub const REJECTED_RULE: &str = "guard: rejected";

/// Where the host's defaults are recorded ([`record_host_defaults`]).
const DEFAULTS_KEY: &str = "guard_defaults";

/// The guard's thresholds for one application.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardLimits {
    /// Offboardings past this share (0–100) of the active accounts…
    pub percent: f64,
    /// …and past this many are held.
    pub minimum: u64,
    /// How far back offboardings are counted.
    pub window_seconds: u64,
}

impl Default for GuardLimits {
    fn default() -> Self {
        GuardLimits {
            percent: 10.0,
            minimum: 20,
            window_seconds: 3600,
        }
    }
}

impl GuardLimits {
    /// The most accounts the window may offboard, of `active_accounts`.
    pub fn threshold(&self, active_accounts: u64) -> u64 {
        let share = (active_accounts as f64 * self.percent / 100.0).ceil();
        // A float cast saturates: a share beyond u64 is u64::MAX.
        (share as u64).max(self.minimum)
    }

    /// These limits with an application's overrides applied.
    pub fn overridden_by(self, overrides: &GuardOverrides) -> Self {
        GuardLimits {
            percent: overrides.percent.unwrap_or(self.percent),
            minimum: overrides.minimum.unwrap_or(self.minimum),
            window_seconds: overrides.window_seconds.unwrap_or(self.window_seconds),
        }
    }
}

/// Records the host's defaults, for every path of this store to apply.
pub fn record_host_defaults(store: &dyn Store, limits: &GuardLimits) -> Result<(), StoreError> {
    let text =
        serde_json::to_string(limits).map_err(|error| StoreError::Backend(error.to_string()))?;
    store.set_meta(DEFAULTS_KEY, &text)
}

/// The host's defaults as last recorded; the built-in ones before any.
pub fn host_defaults(store: &dyn Store) -> Result<GuardLimits, StoreError> {
    Ok(store
        .meta(DEFAULTS_KEY)?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// The thresholds that apply to `app`.
pub fn limits_of(store: &dyn Store, app: &AppRecord) -> Result<GuardLimits, StoreError> {
    Ok(host_defaults(store)?.overridden_by(&app.guard))
}

/// What the guard answers about one offboarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Send it.
    Go,
    /// Do not: it is listed in the application's open hold.
    Held,
}

impl From<Offboarding> for OffboardAction {
    fn from(how: Offboarding) -> Self {
        match how {
            Offboarding::Deactivate => OffboardAction::Deactivate,
            Offboarding::Delete => OffboardAction::Delete,
        }
    }
}

/// The guard's policy, given what the store read: an approved offboarding
/// and a retry of one already let through pass; with a hold open, or the
/// window full, it is held; otherwise it passes and is counted.
pub fn decide_step(facts: &GuardFacts, limits: &GuardLimits) -> GuardStep {
    if facts.approved_in.is_some() {
        return GuardStep::AdmitApproved;
    }
    if facts.already_admitted {
        return GuardStep::AdmitAgain;
    }
    let threshold = limits.threshold(facts.active_accounts + facts.admitted_in_window);
    if facts.open_hold.is_some() || facts.admitted_in_window >= threshold {
        GuardStep::Hold { threshold }
    } else {
        GuardStep::Admit
    }
}

/// Whether sending `desired` for `entry`'s account turns an active account
/// inactive: the ledger's last document had it active (or the account is
/// not marked deactivated and no document says otherwise), the new one
/// says `active: false`.
pub fn deactivates(entry: &LedgerEntry, desired: &Value) -> bool {
    if desired.get("active") != Some(&Value::Bool(false)) || entry.doc_hash == DEACTIVATED {
        return false;
    }
    let previous = entry
        .document
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    previous.is_none_or(|previous| previous.get("active") != Some(&Value::Bool(false)))
}

/// Asks the guard whether `entry`'s account may be offboarded now (see the
/// module): the decision is recorded, with its events, before this
/// returns. Call it right before sending the offboarding request.
pub async fn admit(
    target: &Target<'_>,
    entry: &LedgerEntry,
    action: OffboardAction,
    reason: &str,
) -> Result<Admitted, SyncError> {
    let store = target.store;
    let app = target.app;
    let (limits, user_name) = {
        let (app, entry) = (app.clone(), entry.clone());
        store
            .run(move |store| Ok((limits_of(store, &app)?, user_name_of(store, &entry)?)))
            .await?
    };
    let object = HeldObject {
        object_kind: entry.object_kind.clone(),
        object_id: entry.object_id.clone(),
        user_name,
        remote_id: entry.remote_id.clone(),
        action,
        reason: reason.to_string(),
        held_at: Timestamp::now(),
        carried_out: None,
    };
    // A retry finds the entry as it was; an account offboarded again after
    // it came back does not (its entry was written since, even if with the
    // same document), and is counted again.
    let entry_state = format!("{} {} {}", entry.remote_id, entry.doc_hash, entry.updated);
    let recorded = store
        .guard_offboarding(
            &app.id,
            &object,
            &entry_state,
            limits.window_seconds,
            move |facts: &GuardFacts| decide_step(facts, &limits),
        )
        .await?;
    let hold = recorded.hold.as_deref().unwrap_or("-");
    let account = describe(&object);
    match recorded.step {
        GuardStep::Admit | GuardStep::AdmitAgain => Ok(Admitted::Go),
        GuardStep::AdmitApproved => {
            target
                .record(
                    &object.object_id,
                    APPROVED,
                    Outcome::Success,
                    Some("guard: approved".into()),
                    None,
                    format!(
                        "{account}: approved by an operator in hold {hold}, sent past the guard"
                    ),
                )
                .await;
            Ok(Admitted::Go)
        }
        GuardStep::Hold { threshold } => {
            if recorded.hold_made {
                let facts = &recorded.facts;
                let event = super::lifecycle::event(
                    app,
                    HELD,
                    Outcome::Failure,
                    None,
                    format!(
                        "{} accounts offboarded within {} s (threshold {threshold}: {}% of {} \
                         active accounts, at least {}): further offboardings are held as {hold} \
                         until an operator approves or rejects it (`scimlink held approve|reject \
                         {hold}`); creates and updates go on",
                        facts.admitted_in_window,
                        limits.window_seconds,
                        limits.percent,
                        facts.active_accounts + facts.admitted_in_window,
                        limits.minimum,
                    ),
                );
                if let Err(error) = store.record_event(event).await {
                    tracing::error!("cannot record an event: {error}");
                }
            }
            if recorded.newly_held {
                target
                    .record(
                        &object.object_id,
                        HELD,
                        Outcome::Failure,
                        Some(format!("guard: {reason}")),
                        None,
                        format!("{account}: held in {hold}; nothing was sent"),
                    )
                    .await;
            }
            Ok(Admitted::Held)
        }
    }
}

/// "deactivate of ada (account 123)", for events.
fn describe(object: &HeldObject) -> String {
    match &object.user_name {
        Some(name) => format!(
            "{} of {name} (account {})",
            object.action.as_str(),
            object.remote_id
        ),
        None => format!("{} of account {}", object.action.as_str(), object.remote_id),
    }
}

/// The user's userName: the directory's, or the last document's when the
/// user is gone from the directory.
fn user_name_of(store: &dyn Store, entry: &LedgerEntry) -> Result<Option<String>, StoreError> {
    if entry.object_kind == "user"
        && let Some(user) = store.get_user(&entry.object_id)?
    {
        return Ok(Some(user.user_name));
    }
    Ok(entry
        .document
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|document| {
            document
                .get("userName")
                .and_then(Value::as_str)
                .map(str::to_string)
        }))
}

/// An operator's decision on an open hold, with its events. Approval lets
/// the held offboardings through (the store queues their users); rejection
/// releases every held account that is still the one the ledger links.
///
/// The decision is one transaction and each release another: should the
/// host stop in between, an account not yet released stays in the ledger,
/// and its next offboarding is counted again (and held again past the
/// threshold), never sent unguarded.
pub fn decide(store: &dyn Store, id: &str, approve: bool) -> Result<HeldChange, StoreError> {
    let held = store.decide_held_change(id, approve)?;
    let Some(app) = store.get_app(&held.app_id)? else {
        return Ok(held);
    };
    let summary = if approve {
        format!(
            "hold {} approved: its {} offboarding(s) are carried out",
            held.id, held.offboarding
        )
    } else {
        format!(
            "hold {} rejected: nothing was sent; its {} account(s) are released, left as they \
             are and no longer managed",
            held.id, held.offboarding
        )
    };
    let operation = if approve { APPROVED } else { REJECTED };
    store.record_event(super::lifecycle::event(
        &app,
        operation,
        Outcome::Success,
        None,
        summary,
    ))?;
    if approve {
        return Ok(held);
    }
    for object in &held.objects {
        let Some(entry) = store.ledger_entry(&app.id, &object.object_kind, &object.object_id)?
        else {
            continue;
        };
        // Linked meanwhile to another account (taken over again): that one
        // was not held.
        if entry.remote_id != object.remote_id {
            continue;
        }
        let event = Event {
            id: String::new(),
            at: Timestamp::now(),
            app_id: Some(app.id.clone()),
            app_name: Some(app.name.clone()),
            object_kind: Some(object.object_kind.clone()),
            object_id: Some(object.object_id.clone()),
            operation: super::groups::USER_RELEASE.to_string(),
            outcome: Outcome::Success,
            rule: Some(REJECTED_RULE.to_string()),
            http_status: None,
            summary: format!(
                "{}: rejected in hold {}; account {} left as it is in the application; no \
                 longer managed",
                describe(object),
                held.id,
                object.remote_id
            ),
        };
        store.record_with_ledger(
            LedgerChange::Remove {
                app_id: &app.id,
                object_kind: &object.object_kind,
                object_id: &object.object_id,
            },
            event,
        )?;
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;

    fn limits(percent: f64, minimum: u64) -> GuardLimits {
        GuardLimits {
            percent,
            minimum,
            window_seconds: 3600,
        }
    }

    fn facts(active: u64, admitted: u64) -> GuardFacts {
        GuardFacts {
            active_accounts: active,
            admitted_in_window: admitted,
            ..GuardFacts::default()
        }
    }

    #[test]
    fn the_threshold_is_the_larger_of_the_minimum_and_the_share() {
        let limits = limits(10.0, 20);
        assert_eq!(limits.threshold(0), 20);
        assert_eq!(limits.threshold(40), 20);
        assert_eq!(limits.threshold(200), 20);
        // The share rounds up: 10% of 201 is 20.1, so 21.
        assert_eq!(limits.threshold(201), 21);
        assert_eq!(limits.threshold(5_000), 500);
        // A host that never holds (the sandbox) saturates, never wraps.
        assert_eq!(self::limits(100.0, u64::MAX).threshold(10), u64::MAX);
    }

    #[test]
    fn offboardings_pass_up_to_the_threshold_then_are_held() {
        let limits = limits(10.0, 20);
        // 40 accounts, offboarded one change at a time: the count is across
        // changes, and the base is what was active when the window opened.
        for admitted in 0..20 {
            let step = decide_step(&facts(40 - admitted, admitted), &limits);
            assert_eq!(step, GuardStep::Admit, "offboarding {}", admitted + 1);
        }
        assert_eq!(
            decide_step(&facts(20, 20), &limits),
            GuardStep::Hold { threshold: 20 }
        );
        // The share of a large application, not of what is left of it.
        let large = limits.threshold(1_000);
        assert_eq!(large, 100);
        assert_eq!(decide_step(&facts(901, 99), &limits), GuardStep::Admit);
        assert_eq!(
            decide_step(&facts(900, 100), &limits),
            GuardStep::Hold { threshold: 100 }
        );
    }

    #[test]
    fn an_open_hold_takes_every_offboarding_until_a_decision() {
        let open = GuardFacts {
            open_hold: Some("h1".into()),
            ..facts(40, 0)
        };
        assert_eq!(
            decide_step(&open, &limits(10.0, 20)),
            GuardStep::Hold { threshold: 20 }
        );
    }

    #[test]
    fn approved_and_retried_offboardings_pass_uncounted() {
        let limits = limits(10.0, 20);
        let approved = GuardFacts {
            approved_in: Some("h1".into()),
            open_hold: Some("h2".into()),
            ..facts(40, 20)
        };
        assert_eq!(decide_step(&approved, &limits), GuardStep::AdmitApproved);
        let retry = GuardFacts {
            already_admitted: true,
            ..facts(40, 20)
        };
        assert_eq!(decide_step(&retry, &limits), GuardStep::AdmitAgain);
    }

    #[test]
    fn an_applications_overrides_replace_the_host_defaults_one_by_one() {
        let host = GuardLimits::default();
        let overrides = GuardOverrides {
            minimum: Some(5),
            ..GuardOverrides::default()
        };
        let app = host.overridden_by(&overrides);
        assert_eq!(app.minimum, 5);
        assert_eq!(app.percent, host.percent);
        assert_eq!(app.window_seconds, host.window_seconds);
        assert_eq!(
            decide_step(&facts(35, 5), &limits(0.0, 5)),
            GuardStep::Hold { threshold: 5 }
        );
    }

    #[test]
    fn only_an_update_that_turns_an_active_account_inactive_is_an_offboarding() {
        let entry = |hash: &str, document: Option<Value>| LedgerEntry {
            app_id: "a".into(),
            object_kind: "user".into(),
            object_id: "u".into(),
            remote_id: "r".into(),
            doc_hash: hash.into(),
            document: document.map(|document| document.to_string()),
            updated: Timestamp::now(),
        };
        let inactive = serde_json::json!({ "userName": "ada", "active": false });
        let active = serde_json::json!({ "userName": "ada", "active": true });
        assert!(deactivates(&entry("h", Some(active.clone())), &inactive));
        // No document to compare with: counted, to be safe.
        assert!(deactivates(&entry("h", None), &inactive));
        assert!(!deactivates(&entry("h", Some(inactive.clone())), &inactive));
        assert!(!deactivates(&entry(DEACTIVATED, None), &inactive));
        assert!(!deactivates(&entry("h", Some(active.clone())), &active));
        assert!(!deactivates(&entry("h", Some(inactive)), &active));
    }

    /// A store with one application and `users` linked active accounts.
    fn store_with(users: usize) -> (tempfile::TempDir, crate::store::SqliteStore, String) {
        use crate::store::{AppWrite, Secret, SqliteStore, TokenCipher};
        let folder = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[5; 32])).unwrap();
        let app = store
            .create_app(AppWrite {
                name: "crm".into(),
                label: "crm".into(),
                connector: "custom-scim".into(),
                base_url: "http://127.0.0.1:1/v2".into(),
                token: Secret::new("t"),
                manage_groups: false,
                settings: Vec::new(),
                pacing: Default::default(),
                guard: Default::default(),
                passwords: Default::default(),
            })
            .unwrap();
        for index in 0..users {
            store
                .put_ledger_entry(&entry_of(&app.id, index, "h"))
                .unwrap();
        }
        (folder, store, app.id)
    }

    fn entry_of(app_id: &str, index: usize, hash: &str) -> LedgerEntry {
        LedgerEntry {
            app_id: app_id.into(),
            object_kind: "user".into(),
            object_id: format!("u{index}"),
            remote_id: format!("r{index}"),
            doc_hash: hash.into(),
            document: None,
            updated: Timestamp::now(),
        }
    }

    /// Asks the store's guard about user `index`, as [`admit`] does.
    fn offboard(
        store: &dyn Store,
        app_id: &str,
        index: usize,
        limits: &GuardLimits,
    ) -> crate::store::GuardRecorded {
        let entry = store
            .ledger_entry(app_id, "user", &format!("u{index}"))
            .unwrap()
            .unwrap();
        let object = HeldObject {
            object_kind: "user".into(),
            object_id: entry.object_id.clone(),
            user_name: None,
            remote_id: entry.remote_id.clone(),
            action: OffboardAction::Deactivate,
            reason: "out of scope".into(),
            held_at: Timestamp::now(),
            carried_out: None,
        };
        let state = format!("{} {} {}", entry.remote_id, entry.doc_hash, entry.updated);
        let recorded = store
            .guard_offboarding(
                app_id,
                &object,
                &state,
                limits.window_seconds,
                &|facts: &GuardFacts| decide_step(facts, limits),
            )
            .unwrap();
        if matches!(recorded.step, GuardStep::Admit | GuardStep::AdmitApproved) {
            // Sent: the ledger marks it deactivated.
            store
                .put_ledger_entry(&entry_of(app_id, index, DEACTIVATED))
                .unwrap();
        }
        recorded
    }

    #[test]
    fn the_store_counts_across_calls_holds_past_the_threshold_and_a_decision_restarts_the_count() {
        let (_folder, store, app_id) = store_with(10);
        let limits = limits(0.0, 3);
        for index in 0..3 {
            assert_eq!(
                offboard(&store, &app_id, index, &limits).step,
                GuardStep::Admit
            );
        }
        let first = offboard(&store, &app_id, 3, &limits);
        assert_eq!(first.step, GuardStep::Hold { threshold: 3 });
        assert!(first.hold_made && first.newly_held);
        let joined = offboard(&store, &app_id, 4, &limits);
        assert!(!joined.hold_made && joined.newly_held);
        assert_eq!(joined.hold, first.hold);
        // Asked again, a held offboarding is listed once.
        assert!(!offboard(&store, &app_id, 4, &limits).newly_held);
        let hold_id = first.hold.clone().unwrap();
        let held = store.held_changes(Some(&app_id)).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].offboarding, 2);
        assert_eq!(held[0].threshold, 3);
        assert_eq!(held[0].active_accounts, 7);

        // Approved: each held one passes once, uncounted; the count
        // restarts at the decision.
        let approved = decide(&store, &hold_id, true).unwrap();
        assert_eq!(approved.state, crate::store::HeldState::Approved);
        assert_eq!(
            offboard(&store, &app_id, 3, &limits).step,
            GuardStep::AdmitApproved
        );
        assert_eq!(
            offboard(&store, &app_id, 4, &limits).step,
            GuardStep::AdmitApproved
        );
        for index in 5..8 {
            assert_eq!(
                offboard(&store, &app_id, index, &limits).step,
                GuardStep::Admit
            );
        }
        assert_eq!(
            offboard(&store, &app_id, 8, &limits).step,
            GuardStep::Hold { threshold: 3 }
        );
    }

    #[test]
    fn a_retry_passes_uncounted_but_an_account_offboarded_again_counts_again() {
        let (_folder, store, app_id) = store_with(5);
        let limits = limits(0.0, 2);
        let entry = store.ledger_entry(&app_id, "user", "u0").unwrap().unwrap();
        let object = HeldObject {
            object_kind: "user".into(),
            object_id: "u0".into(),
            user_name: None,
            remote_id: "r0".into(),
            action: OffboardAction::Delete,
            reason: "out of scope".into(),
            held_at: Timestamp::now(),
            carried_out: None,
        };
        let state = format!("{} {} {}", entry.remote_id, entry.doc_hash, entry.updated);
        let ask = |state: &str| {
            store
                .guard_offboarding(&app_id, &object, state, 3600, &|facts: &GuardFacts| {
                    decide_step(facts, &limits)
                })
                .unwrap()
                .step
        };
        assert_eq!(ask(&state), GuardStep::Admit);
        // The request failed; the same entry is offboarded again.
        assert_eq!(ask(&state), GuardStep::AdmitAgain);
        // Back in scope, written again, then offboarded again: a new
        // offboarding, of an account already counted.
        assert_eq!(ask("r0 h later"), GuardStep::Admit);
        assert_eq!(offboard(&store, &app_id, 1, &limits).step, GuardStep::Admit);
        assert_eq!(
            offboard(&store, &app_id, 2, &limits).step,
            GuardStep::Hold { threshold: 2 }
        );
    }

    #[test]
    fn offboardings_older_than_the_window_are_not_counted() {
        let (_folder, store, app_id) = store_with(5);
        let limits = GuardLimits {
            percent: 0.0,
            minimum: 1,
            window_seconds: 1,
        };
        assert_eq!(offboard(&store, &app_id, 0, &limits).step, GuardStep::Admit);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(offboard(&store, &app_id, 1, &limits).step, GuardStep::Admit);
        assert_eq!(
            offboard(&store, &app_id, 2, &limits).step,
            GuardStep::Hold { threshold: 1 }
        );
    }

    #[test]
    fn a_rejection_releases_the_held_accounts_and_sends_nothing_later() {
        let (_folder, store, app_id) = store_with(5);
        let limits = limits(0.0, 1);
        assert_eq!(offboard(&store, &app_id, 0, &limits).step, GuardStep::Admit);
        let held = offboard(&store, &app_id, 1, &limits);
        offboard(&store, &app_id, 2, &limits);
        let rejected = decide(&store, held.hold.as_deref().unwrap(), false).unwrap();
        assert_eq!(rejected.state, crate::store::HeldState::Rejected);
        assert_eq!(rejected.objects.len(), 2);
        for user in ["u1", "u2"] {
            assert_eq!(store.ledger_entry(&app_id, "user", user).unwrap(), None);
        }
        let releases = store
            .events(
                &crate::store::EventQuery {
                    operation: Some(super::super::groups::USER_RELEASE.into()),
                    ..Default::default()
                },
                crate::store::Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .unwrap();
        assert_eq!(releases.total, 2);
        assert!(
            releases
                .items
                .iter()
                .all(|event| event.rule.as_deref() == Some(REJECTED_RULE))
        );
        // Decided once; the count restarts: the next one passes.
        assert!(decide(&store, held.hold.as_deref().unwrap(), true).is_err());
        assert_eq!(offboard(&store, &app_id, 3, &limits).step, GuardStep::Admit);
    }
}
