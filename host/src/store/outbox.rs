//! The outbox: every directory or application write appends what changed,
//! in the same transaction, and the engine consumes it one application at
//! a time.
//!
//! A change is first *handed out* ([`OutboxStore::dispatch_changes`]):
//! it becomes one pending *pair* per application it concerns. Each
//! application's pairs are then claimed, in change order, by the engine
//! running that application's work, under a lease renewed while the work
//! runs. A change is done once every one of its pairs is.
//!
//! Invariants: changes are handed out in order, each once; a pair is held
//! by one consumer at a time (taken over by another only once its lease ran
//! out), and a consumer whose lease ran out records nothing; one
//! application's failure never holds up another's work on the same change;
//! a change completes only when no pair of it is pending.

use super::*;

/// One entry of the outbox: what changed, about which object, and when.
///
/// It is written and read, in the outbox and in a hold an older scimlink
/// made, in the form every release has written: the subject's kind and
/// the action (`entity`, `action`), the subject's id (`entity_id`) and a
/// `detail` object, which [`ChangeKind`] gives a type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ChangeRow", from = "ChangeRow")]
pub struct Change {
    pub seq: i64,
    pub at: Timestamp,
    /// The id of the user, group or application the change is about.
    pub subject_id: String,
    pub kind: ChangeKind,
}

/// What a write changed. Each variant is written by exactly one kind of
/// store write, in the same transaction (the conformance suite checks which
/// write appends which); the engine turns each into work per application.
///
/// Its tag is `entity.action` and its fields are the `detail` object's, so
/// the typed form and the stored rows are one and the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum ChangeKind {
    #[serde(rename = "user.created")]
    UserCreated { user_name: String },
    #[serde(rename = "user.updated")]
    UserUpdated { user_name: String, active: bool },
    /// `groups`: the groups the user was a direct member of; its
    /// memberships are gone from the directory with it.
    #[serde(rename = "user.deleted")]
    UserDeleted {
        user_name: String,
        #[serde(default)]
        groups: Vec<String>,
    },
    #[serde(rename = "group.created")]
    GroupCreated { display_name: String },
    /// Attributes other than the name changed.
    #[serde(rename = "group.updated")]
    GroupUpdated {
        display_name: String,
        #[serde(default)]
        previous_display_name: Option<String>,
    },
    #[serde(rename = "group.renamed")]
    GroupRenamed {
        display_name: String,
        #[serde(default)]
        previous_display_name: Option<String>,
    },
    /// Member ids (users or groups) added to and removed from the group.
    #[serde(rename = "group.members-changed")]
    MembersChanged {
        #[serde(default)]
        added: Vec<String>,
        #[serde(default)]
        removed: Vec<String>,
    },
    /// What the group held when it was deleted: its members, the
    /// applications it was bound to and the groups it was a member of.
    #[serde(rename = "group.deleted")]
    GroupDeleted {
        display_name: String,
        #[serde(default)]
        members: Vec<String>,
        #[serde(default)]
        bound_apps: Vec<String>,
        #[serde(default)]
        parents: Vec<String>,
    },
    #[serde(rename = "app.created")]
    AppCreated { name: String },
    /// Label, base URL, settings, pacing, guard or quarantine reason.
    #[serde(rename = "app.updated")]
    AppUpdated { name: String },
    /// What the application supports was tested and recorded.
    #[serde(rename = "app.tested")]
    AppTested { name: String },
    #[serde(rename = "app.token-rotated")]
    AppTokenRotated { name: String },
    #[serde(rename = "app.activated")]
    AppActivated { name: String },
    #[serde(rename = "app.deactivated")]
    AppDeactivated { name: String },
    #[serde(rename = "app.quarantined")]
    AppQuarantined { name: String },
    #[serde(rename = "app.group-management-enabled")]
    GroupManagementEnabled { name: String },
    #[serde(rename = "app.group-management-disabled")]
    GroupManagementDisabled { name: String },
    #[serde(rename = "app.deleted")]
    AppDeleted { name: String },
    /// Dead letters taken off the list: these objects are synced again.
    #[serde(rename = "app.replay")]
    Replay {
        #[serde(default)]
        users: Vec<String>,
        #[serde(default)]
        groups: Vec<String>,
    },
    #[serde(rename = "binding.bound")]
    Bound { group: String },
    /// `members`: the group's members when it was unbound.
    #[serde(rename = "binding.unbound")]
    Unbound {
        group: String,
        #[serde(default)]
        members: Vec<String>,
    },
    #[serde(rename = "assignment.assigned")]
    Assigned { user: String },
    #[serde(rename = "assignment.unassigned")]
    Unassigned { user: String },
    /// An operator approved a hold: its users are synced again and the
    /// guard lets their held offboardings through. `change`: the whole
    /// change a hold of an older scimlink held, replayed.
    #[serde(rename = "guard.approved")]
    HoldApproved {
        held: String,
        #[serde(default)]
        users: Vec<String>,
        #[serde(default)]
        change: Option<Box<Change>>,
    },
    /// A change this scimlink does not know, written by a newer one sharing
    /// the database: nothing is done for it.
    #[serde(skip)]
    Unrecognized {
        entity: String,
        action: String,
        detail: Value,
    },
}

impl ChangeKind {
    /// The stored form: the subject's kind, the action and the detail.
    pub fn to_row(&self) -> (String, String, Value) {
        if let ChangeKind::Unrecognized {
            entity,
            action,
            detail,
        } = self
        {
            return (entity.clone(), action.clone(), detail.clone());
        }
        // Serializing plain data to a JSON value cannot fail; the tag is
        // always there.
        let mut detail = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let tag = match detail.remove("kind") {
            Some(Value::String(tag)) => tag,
            _ => String::new(),
        };
        let (entity, action) = tag.split_once('.').unwrap_or((tag.as_str(), ""));
        (
            entity.to_string(),
            action.to_string(),
            Value::Object(detail),
        )
    }

    /// Reads the stored form; what this scimlink does not know, or cannot
    /// read, is kept as [`ChangeKind::Unrecognized`].
    pub fn from_row(entity: &str, action: &str, detail: Value) -> Self {
        let mut tagged = match &detail {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        tagged.insert("kind".into(), Value::String(format!("{entity}.{action}")));
        serde_json::from_value(Value::Object(tagged)).unwrap_or_else(|_| ChangeKind::Unrecognized {
            entity: entity.to_string(),
            action: action.to_string(),
            detail,
        })
    }
}

/// [`Change`] as it is stored and serialized.
#[derive(Serialize, Deserialize)]
struct ChangeRow {
    seq: i64,
    at: Timestamp,
    entity: String,
    entity_id: String,
    action: String,
    #[serde(default)]
    detail: Value,
}

impl From<Change> for ChangeRow {
    fn from(change: Change) -> Self {
        let (entity, action, detail) = change.kind.to_row();
        ChangeRow {
            seq: change.seq,
            at: change.at,
            entity,
            entity_id: change.subject_id,
            action,
            detail,
        }
    }
}

impl From<ChangeRow> for Change {
    fn from(row: ChangeRow) -> Self {
        Change {
            seq: row.seq,
            at: row.at,
            subject_id: row.entity_id,
            kind: ChangeKind::from_row(&row.entity, &row.action, row.detail),
        }
    }
}

/// Where one change stands for one application it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeProgress {
    pub seq: i64,
    pub app_id: String,
    /// Done with: applied, or given up on with its objects dead-lettered.
    pub done: bool,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When a failed pair may be tried again.
    pub retry_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

pub trait OutboxStore: Send + Sync {
    /// Hands out up to `limit` changes not handed out yet, in order: each
    /// becomes one pending pair per application it concerns
    /// ([`rules::concerned_apps`], among the applications active now), and
    /// one that concerns none is done at once. How many were handed out.
    /// One host hands out at a time; another asking meanwhile hands out
    /// nothing.
    fn dispatch_changes(&self, limit: u32) -> StoreResult<u32>;
    /// Up to `limit` pending pairs of the application `app_id`, in change
    /// order, that are due (never failed, or their retry time has come)
    /// and that no live lease holds, leased to `consumer` for
    /// `lease_seconds`; each with its change.
    fn claim_pairs(
        &self,
        consumer: &str,
        app_id: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> StoreResult<Vec<(Change, ChangeProgress)>>;
    /// Extends `consumer`'s leases on the pairs of `app_id` among `seqs`;
    /// the seqs it still held and extended. One missing was taken by
    /// another consumer after the lease ran out: its work must stop.
    fn renew_pairs(
        &self,
        consumer: &str,
        app_id: &str,
        seqs: &[i64],
        lease_seconds: u32,
    ) -> StoreResult<Vec<i64>>;
    /// Records where `consumer`'s pairs stand, for those it still holds (a
    /// consumer whose lease ran out records nothing), and gives their
    /// leases up: a pair not done waits for its retry time. A change whose
    /// every pair is done is done, its pairs forgotten.
    fn settle_pairs(&self, consumer: &str, progress: &[ChangeProgress]) -> StoreResult<()>;
    /// Marks done every pending pair of an application that is no longer
    /// active (deactivated, quarantined, deleted: the full sync that
    /// resumes one brings it up to date), and completes the changes left
    /// with nothing pending. How many pairs it let go.
    fn sweep_pairs(&self) -> StoreResult<u64>;
    /// The pairs recorded for `seqs`, done or not.
    fn change_progress(&self, seqs: &[i64]) -> StoreResult<Vec<ChangeProgress>>;
    /// Up to `limit` changes after `seq`, done or not, in order.
    fn changes_after(&self, seq: i64, limit: u32) -> StoreResult<Vec<Change>>;
    /// Changes not done yet.
    fn pending_changes(&self) -> StoreResult<u64>;
    /// Woken when a commit of this process appended to the outbox, so that
    /// a consumer need not poll to learn of it (it still polls for other
    /// processes sharing the database).
    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_change_reads_and_writes_the_stored_form() {
        let stored = json!({
            "seq": 7,
            "at": "2026-01-01T00:00:00.000Z",
            "entity": "group",
            "entity_id": "g1",
            "action": "members-changed",
            "detail": { "added": ["u1"], "removed": ["u2"] }
        });
        let change: Change = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(change.subject_id, "g1");
        assert_eq!(
            change.kind,
            ChangeKind::MembersChanged {
                added: vec!["u1".into()],
                removed: vec!["u2".into()],
            }
        );
        assert_eq!(serde_json::to_value(&change).unwrap(), stored);
    }

    #[test]
    fn every_kind_survives_its_row() {
        let approved = ChangeKind::HoldApproved {
            held: "h1".into(),
            users: vec!["u1".into()],
            change: Some(Box::new(Change {
                seq: 3,
                at: "2026-01-01T00:00:00.000Z".parse().unwrap(),
                subject_id: "g1".into(),
                kind: ChangeKind::GroupDeleted {
                    display_name: "eng".into(),
                    members: vec!["u1".into()],
                    bound_apps: vec!["a1".into()],
                    parents: vec![],
                },
            })),
        };
        let kinds = [
            ChangeKind::UserUpdated {
                user_name: "ada".into(),
                active: false,
            },
            ChangeKind::GroupRenamed {
                display_name: "eng".into(),
                previous_display_name: Some("engineering".into()),
            },
            ChangeKind::GroupManagementDisabled { name: "crm".into() },
            ChangeKind::Unassigned { user: "u1".into() },
            approved,
        ];
        for kind in kinds {
            let (entity, action, detail) = kind.to_row();
            assert!(!entity.is_empty() && !action.is_empty(), "{kind:?}");
            assert!(detail.get("kind").is_none(), "the tag is not in the detail");
            assert_eq!(ChangeKind::from_row(&entity, &action, detail), kind);
        }
        let (entity, action, detail) =
            ChangeKind::GroupManagementEnabled { name: "crm".into() }.to_row();
        assert_eq!(
            (entity.as_str(), action.as_str()),
            ("app", "group-management-enabled")
        );
        assert_eq!(detail, json!({ "name": "crm" }));
    }

    #[test]
    fn a_change_this_host_does_not_know_is_kept_as_it_was() {
        let detail = json!({ "shape": [1, 2] });
        let kind = ChangeKind::from_row("widget", "spun", detail.clone());
        assert_eq!(
            kind,
            ChangeKind::Unrecognized {
                entity: "widget".into(),
                action: "spun".into(),
                detail: detail.clone(),
            }
        );
        assert_eq!(kind.to_row(), ("widget".into(), "spun".into(), detail));
        // A known kind whose detail is unreadable is not guessed at either.
        assert!(matches!(
            ChangeKind::from_row("user", "created", json!({ "userName": 5 })),
            ChangeKind::Unrecognized { .. }
        ));
    }
}
