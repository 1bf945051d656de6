//! Rules every backend applies the same way. They are plain Rust, outside
//! any query language, so that a second backend reuses them instead of
//! re-writing them: a backend fetches what a rule needs and stores what it
//! decides. The conformance suite (host/tests/store/conformance.rs) checks
//! that a backend applies them.

use std::collections::{BTreeSet, VecDeque};

use serde_json::{Map, Value};

use super::{
    AppRecord, AppState, AppUpdate, ChangeKind, LedgerEntry, StoreError, StoreResult, UserWrite,
};

/// The `doc_hash` of a ledger entry whose account was deactivated: there is
/// no document behind it.
pub const DEACTIVATED: &str = "deactivated";

/// The form `userName` and group `displayName` are unique in and looked up
/// by: Unicode lower case, the folding the SCIM filter evaluator applies.
pub fn fold_name(name: &str) -> String {
    name.to_lowercase()
}

/// The stored version `current` of `entity` `id`, when it is the version
/// the caller expects (or the caller expects none): a write against an
/// older version would lose an update.
pub fn expect_version(
    entity: &'static str,
    id: &str,
    expected: Option<i64>,
    current: i64,
) -> StoreResult<i64> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::VersionMismatch {
            entity,
            id: id.to_string(),
            expected,
            current,
        }),
        _ => Ok(current),
    }
}

/// Whether making group `candidate` a member of group `group` would make a
/// group contain itself: `candidate` is `group`, or holds it through nested
/// groups. `member_groups(g)` lists the groups that are direct members of
/// `g`. Each group is visited once, so a cycle already stored (which this
/// rule keeps from ever being written) cannot loop.
pub fn would_contain_itself(
    group: &str,
    candidate: &str,
    mut member_groups: impl FnMut(&str) -> StoreResult<Vec<String>>,
) -> StoreResult<bool> {
    let mut seen = BTreeSet::from([candidate.to_string()]);
    let mut next = VecDeque::from([candidate.to_string()]);
    while let Some(current) = next.pop_front() {
        if current == group {
            return Ok(true);
        }
        for inner in member_groups(&current)? {
            if seen.insert(inner.clone()) {
                next.push_back(inner);
            }
        }
    }
    Ok(false)
}

/// An imported user laid over the stored one (`stored`, with its `active`
/// status): attributes the import names replace the stored ones (complex
/// ones sub-attribute by sub-attribute), the rest stay; an import without
/// `active` leaves the user's status as it was.
pub fn merge_imported_user(
    mut stored: Map<String, Value>,
    stored_active: bool,
    incoming: &UserWrite,
) -> UserWrite {
    for (key, value) in &incoming.attributes {
        match (stored.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(update)) => {
                for (sub, sub_value) in update {
                    existing.insert(sub.clone(), sub_value.clone());
                }
            }
            _ => {
                stored.insert(key.clone(), value.clone());
            }
        }
    }
    let active = if incoming.attributes.contains_key("active") {
        incoming.active
    } else {
        stored_active
    };
    stored.insert("active".into(), Value::Bool(active));
    UserWrite {
        password: None,
        user_name: incoming.user_name.clone(),
        external_id: incoming.external_id.clone().or_else(|| {
            stored
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        active,
        attributes: stored,
    }
}

/// Whether a ledger entry stands for an account the application holds as
/// active: neither deactivated nor last sent with `active: false`. (The
/// deprovisioning guard's threshold is a share of these.)
pub fn holds_active_account(entry: &LedgerEntry) -> bool {
    if entry.doc_hash == DEACTIVATED {
        return false;
    }
    let sent_inactive = entry
        .document
        .as_deref()
        .and_then(|document| serde_json::from_str::<Value>(document).ok())
        .is_some_and(|document| document.get("active") == Some(&Value::Bool(false)));
    !sent_inactive
}

/// Applies `update` to `app` (its fields only: sealing a new token is the
/// backend's) and says which changes the write appends, in order and
/// without repeats; none when nothing differs. A reason only ever explains
/// a quarantine: any other state clears it.
pub fn apply_app_update(app: &mut AppRecord, update: &AppUpdate) -> Vec<ChangeKind> {
    let name = app.name.clone();
    let updated = || ChangeKind::AppUpdated { name: name.clone() };
    let mut changes = Vec::new();
    if let Some(label) = &update.label {
        app.label = label.clone();
        changes.push(updated());
    }
    if let Some(base_url) = &update.base_url {
        app.base_url = base_url.clone();
        changes.push(updated());
    }
    if let Some(settings) = &update.settings {
        app.settings = settings.clone();
        changes.push(updated());
    }
    if let Some(manage_groups) = update.manage_groups
        && manage_groups != app.manage_groups
    {
        app.manage_groups = manage_groups;
        changes.push(if manage_groups {
            ChangeKind::GroupManagementEnabled { name: name.clone() }
        } else {
            ChangeKind::GroupManagementDisabled { name: name.clone() }
        });
    }
    if let Some(state) = update.state
        && state != app.state
    {
        app.state = state;
        changes.push(match state {
            AppState::Active => ChangeKind::AppActivated { name: name.clone() },
            AppState::Inactive => ChangeKind::AppDeactivated { name: name.clone() },
            AppState::Quarantined => ChangeKind::AppQuarantined { name: name.clone() },
        });
    }
    let reason = match app.state {
        AppState::Quarantined => update.state_reason.clone().or(app.state_reason.take()),
        _ => None,
    };
    if reason != app.state_reason {
        app.state_reason = reason;
        changes.push(updated());
    }
    if let Some(pacing) = update.pacing
        && pacing != app.pacing
    {
        app.pacing = pacing;
        changes.push(updated());
    }
    if let Some(guard) = update.guard
        && guard != app.guard
    {
        app.guard = guard;
        changes.push(updated());
    }
    if let Some(passwords) = update.passwords
        && passwords != app.passwords
    {
        app.passwords = passwords;
        changes.push(updated());
    }
    if let Some(capabilities) = &update.capabilities {
        app.capabilities = capabilities.clone();
        changes.push(ChangeKind::AppTested { name: name.clone() });
    }
    if update.token.is_some() {
        changes.push(ChangeKind::AppTokenRotated { name: name.clone() });
    }
    changes.dedup();
    changes
}

/// A group an import creates: its name, and the same as its SCIM
/// `displayName`, as a group created through SCIM holds it.
pub fn imported_group(display_name: &str) -> super::GroupWrite {
    let mut attributes = Map::new();
    attributes.insert(
        "displayName".into(),
        Value::String(display_name.to_string()),
    );
    super::GroupWrite {
        display_name: display_name.to_string(),
        external_id: None,
        attributes,
        members: None,
    }
}

/// How long a change of a kind this scimlink does not know waits to be
/// handed out by a host that knows it, before it is taken to concern no
/// application.
pub const UNKNOWN_CHANGE_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether this scimlink may hand `change` out now. A change of a kind it
/// does not know was written by a newer scimlink sharing the database
/// (hosts are upgraded one at a time): it, and every change after it, is
/// left for a newer host to hand out, and taken to concern nothing only
/// once no host has done so for [`UNKNOWN_CHANGE_GRACE`].
pub fn may_hand_out(change: &super::Change, now: super::Timestamp) -> bool {
    !matches!(change.kind, ChangeKind::Unrecognized { .. })
        || now.since(change.at) >= UNKNOWN_CHANGE_GRACE
}

/// The applications a change concerns, among those `active` now (by id):
/// every one for a change to the directory, the application itself for a
/// change to its scope, its first sync, its group management, a replay or
/// an approved hold, and none for the rest (a change to an application's
/// own settings sends nothing, and one this scimlink does not know is not
/// guessed at).
pub fn concerned_apps(kind: &ChangeKind, subject_id: &str, active: &[String]) -> Vec<String> {
    match kind {
        ChangeKind::UserCreated { .. }
        | ChangeKind::UserUpdated { .. }
        | ChangeKind::UserDeleted { .. }
        | ChangeKind::GroupCreated { .. }
        | ChangeKind::GroupUpdated { .. }
        | ChangeKind::GroupRenamed { .. }
        | ChangeKind::MembersChanged { .. }
        | ChangeKind::GroupDeleted { .. } => active.to_vec(),
        ChangeKind::Bound { .. }
        | ChangeKind::Unbound { .. }
        | ChangeKind::Assigned { .. }
        | ChangeKind::Unassigned { .. }
        | ChangeKind::AppActivated { .. }
        | ChangeKind::GroupManagementEnabled { .. }
        | ChangeKind::GroupManagementDisabled { .. }
        | ChangeKind::Replay { .. }
        | ChangeKind::HoldApproved { .. } => active
            .iter()
            .filter(|app_id| app_id.as_str() == subject_id)
            .cloned()
            .collect(),
        ChangeKind::AppCreated { .. }
        | ChangeKind::AppUpdated { .. }
        | ChangeKind::AppTested { .. }
        | ChangeKind::AppTokenRotated { .. }
        | ChangeKind::AppDeactivated { .. }
        | ChangeKind::AppQuarantined { .. }
        | ChangeKind::AppDeleted { .. }
        | ChangeKind::Unrecognized { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn names_fold_beyond_ascii() {
        assert_eq!(fold_name("ÅSA.Öberg@Example.COM"), "åsa.öberg@example.com");
        assert_eq!(fold_name("ΟΔΥΣΣΕΥΣ"), "οδυσσευς");
    }

    #[test]
    fn an_unexpected_version_is_refused() {
        assert_eq!(expect_version("user", "u1", None, 4).unwrap(), 4);
        assert_eq!(expect_version("user", "u1", Some(4), 4).unwrap(), 4);
        let error = expect_version("user", "u1", Some(3), 4).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::VersionMismatch {
                    expected: 3,
                    current: 4,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_group_never_contains_itself() {
        // a ⊃ b ⊃ c, and d holds a cycle that was never written by rule.
        let members: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec![]),
            ("d", vec!["e"]),
            ("e", vec!["d"]),
        ]);
        let lookup = |group: &str| -> StoreResult<Vec<String>> {
            Ok(members
                .get(group)
                .map(|inner| inner.iter().map(|g| g.to_string()).collect())
                .unwrap_or_default())
        };
        assert!(would_contain_itself("a", "a", lookup).unwrap());
        assert!(
            would_contain_itself("c", "a", lookup).unwrap(),
            "a as a member of c: a holds c"
        );
        assert!(
            !would_contain_itself("a", "c", lookup).unwrap(),
            "c as a member of a: c holds nothing"
        );
        assert!(
            !would_contain_itself("x", "d", lookup).unwrap(),
            "a walk through a stored cycle ends"
        );
    }

    #[test]
    fn an_import_keeps_what_it_does_not_name() {
        let stored = json!({
            "userName": "ada",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "title": "Countess",
            "externalId": "e-1",
            "active": false
        });
        let mut attributes = Map::new();
        attributes.insert("name".into(), json!({ "familyName": "King" }));
        let incoming = UserWrite {
            password: None,
            user_name: "ada".into(),
            external_id: None,
            active: true,
            attributes,
        };
        let merged = merge_imported_user(stored.as_object().cloned().unwrap(), false, &incoming);
        assert_eq!(
            merged.attributes["name"],
            json!({ "givenName": "Ada", "familyName": "King" })
        );
        assert_eq!(merged.attributes["title"], json!("Countess"));
        assert!(
            !merged.active,
            "no `active` in the import: the status stays"
        );
        assert_eq!(merged.external_id.as_deref(), Some("e-1"));
    }

    #[test]
    fn an_account_is_active_until_deactivated_or_sent_inactive() {
        let entry = |doc_hash: &str, document: Option<&str>| LedgerEntry {
            app_id: "a".into(),
            object_kind: "user".into(),
            object_id: "u".into(),
            remote_id: "r".into(),
            doc_hash: doc_hash.into(),
            document: document.map(str::to_string),
            updated: crate::store::Timestamp::now(),
        };
        assert!(holds_active_account(&entry("h", None)));
        assert!(holds_active_account(&entry(
            "h",
            Some(r#"{"active":true}"#)
        )));
        assert!(!holds_active_account(&entry(
            "h",
            Some(r#"{"active":false}"#)
        )));
        assert!(!holds_active_account(&entry(DEACTIVATED, None)));
    }

    #[test]
    fn a_change_of_an_unknown_kind_waits_for_a_host_that_knows_it() {
        let now = crate::store::Timestamp::now();
        let change = |kind: ChangeKind, age: u64| crate::store::Change {
            seq: 1,
            at: now.minus(std::time::Duration::from_secs(age)),
            subject_id: "u1".into(),
            kind,
        };
        let unknown = || ChangeKind::Unrecognized {
            entity: "widget".into(),
            action: "spun".into(),
            detail: Value::Null,
        };
        let known = ChangeKind::UserCreated {
            user_name: "ada".into(),
        };
        assert!(may_hand_out(&change(known, 0), now));
        assert!(
            !may_hand_out(&change(unknown(), 5), now),
            "a newer host hands it out"
        );
        assert!(
            may_hand_out(&change(unknown(), 61), now),
            "no host knew it for a minute: it concerns nothing"
        );
        assert!(concerned_apps(&unknown(), "u1", &["a1".into()]).is_empty());
    }
}
