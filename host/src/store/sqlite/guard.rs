//! [`GuardStore`] in SQLite: `held_changes`, `held_offboardings` and
//! `guard_admissions`, decided inside one IMMEDIATE transaction.

use super::*;

pub(super) const HELD_COLUMNS: &str =
    "id, app_id, change, offboarding, active_accounts, state, held_at, decided_at, threshold";
pub(super) const HELD_OBJECT_COLUMNS: &str =
    "object_kind, object_id, user_name, remote_id, action, reason, held_at, carried_out";

/// A hold without its objects (see [`with_objects`]).
pub(super) fn held_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<HeldChange>> {
    let change: String = row.get(2)?;
    let state: String = row.get(5)?;
    // 'null' for a per-application hold; a whole change for an older one.
    let change = match serde_json::from_str::<Option<Change>>(&change) {
        Ok(change) => change,
        Err(error) => {
            return Ok(Err(StoreError::Backend(format!(
                "a held change is unreadable: {error}"
            ))));
        }
    };
    let Some(state) = HeldState::parse(&state) else {
        return Ok(Err(StoreError::Backend(format!(
            "a held change has the unknown state {state:?}"
        ))));
    };
    Ok(Ok(HeldChange {
        id: row.get(0)?,
        app_id: row.get(1)?,
        change,
        offboarding: row.get(3)?,
        active_accounts: row.get(4)?,
        threshold: row.get(8)?,
        state,
        held_at: row.get(6)?,
        decided_at: row.get(7)?,
        objects: Vec::new(),
    }))
}

pub(super) fn held_object_from_row(row: &Row<'_>) -> RowResult<HeldObject> {
    let action: String = row.get(4)?;
    let Some(action) = OffboardAction::parse(&action) else {
        return Ok(Err(StoreError::Backend(format!(
            "a held offboarding has the unknown action {action:?}"
        ))));
    };
    Ok(Ok(HeldObject {
        object_kind: row.get(0)?,
        object_id: row.get(1)?,
        user_name: row.get(2)?,
        remote_id: row.get(3)?,
        action,
        reason: row.get(5)?,
        held_at: row.get(6)?,
        carried_out: row.get(7)?,
    }))
}

/// The hold with the offboardings it lists.
pub(super) fn with_objects(
    connection: &Connection,
    mut held: HeldChange,
) -> StoreResult<HeldChange> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {HELD_OBJECT_COLUMNS} FROM held_offboardings
         WHERE held_id = ?1 ORDER BY held_at, object_id"
    ))?;
    held.objects = collect(&mut statement, [&held.id], held_object_from_row)?;
    Ok(held)
}

impl GuardStore for SqliteStore {
    fn guard_offboarding(
        &self,
        app_id: &str,
        object: &HeldObject,
        entry_state: &str,
        window_seconds: u64,
        decide: &dyn Fn(&GuardFacts) -> GuardStep,
    ) -> StoreResult<GuardRecorded> {
        self.write(|transaction| {
            // An operator's decision stopped counting what came before it
            // (see `decide_held_change`), so an approval does not trip again
            // on what it let through.
            let window_start = Timestamp::ago(std::time::Duration::from_secs(window_seconds));
            transaction
                .prepare_cached("DELETE FROM guard_admissions WHERE app_id = ?1 AND at < ?2")?
                .execute(params![app_id, window_start])?;
            let admitted_in_window: u64 = transaction
                .prepare_cached(
                    "SELECT COUNT(DISTINCT object_id) FROM guard_admissions
                     WHERE app_id = ?1 AND at >= ?2 AND counted = 1",
                )?
                .query_row(params![app_id, window_start], |row| row.get(0))?;
            let already_admitted = transaction
                .prepare_cached(
                    "SELECT 1 FROM guard_admissions
                     WHERE app_id = ?1 AND object_id = ?2 AND entry_state = ?3 AND at >= ?4",
                )?
                .exists(params![app_id, object.object_id, entry_state, window_start])?;
            let active_accounts: u64 = transaction
                .prepare_cached(
                    // Neither deactivated nor sent `active: false` last.
                    "SELECT COUNT(*) FROM ledger
                     WHERE app_id = ?1 AND object_kind = 'user' AND doc_hash != ?2
                       AND NOT (doc IS NOT NULL AND json_valid(doc)
                                AND json_extract(doc, '$.active') IS 0)",
                )?
                .query_row(params![app_id, rules::DEACTIVATED], |row| row.get(0))?;
            // An approval lets the offboardings it lists through once, for
            // a window after the decision.
            let approved_in: Option<String> = transaction
                .prepare_cached(
                    "SELECT h.id FROM held_changes h
                     JOIN held_offboardings o ON o.held_id = h.id
                     WHERE h.app_id = ?1 AND h.state = 'approved' AND h.decided_at > ?2
                       AND o.object_kind = ?3 AND o.object_id = ?4 AND o.carried_out IS NULL
                     ORDER BY h.decided_at DESC LIMIT 1",
                )?
                .query_row(
                    params![app_id, window_start, object.object_kind, object.object_id],
                    |row| row.get(0),
                )
                .optional()?;
            let open_hold: Option<String> = transaction
                .prepare_cached(
                    "SELECT id FROM held_changes WHERE app_id = ?1 AND state = 'held'
                     ORDER BY held_at DESC LIMIT 1",
                )?
                .query_row([app_id], |row| row.get(0))
                .optional()?;
            let facts = GuardFacts {
                active_accounts,
                admitted_in_window,
                already_admitted,
                approved_in,
                open_hold,
            };
            let step = decide(&facts);
            let at = Timestamp::now();
            let mut recorded = GuardRecorded {
                step,
                hold: None,
                hold_made: false,
                newly_held: false,
                facts: facts.clone(),
            };
            match step {
                GuardStep::AdmitAgain => {}
                GuardStep::Admit | GuardStep::AdmitApproved => {
                    let approved = step == GuardStep::AdmitApproved;
                    transaction
                        .prepare_cached(
                            "INSERT INTO guard_admissions
                                 (app_id, object_id, entry_state, kind, counted, at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                            app_id,
                            object.object_id,
                            entry_state,
                            object.action.as_str(),
                            !approved,
                            at
                        ])?;
                    if approved && let Some(held_id) = &facts.approved_in {
                        transaction
                            .prepare_cached(
                                "UPDATE held_offboardings SET carried_out = ?4
                                 WHERE held_id = ?1 AND object_kind = ?2 AND object_id = ?3",
                            )?
                            .execute(params![held_id, object.object_kind, object.object_id, at])?;
                        recorded.hold = Some(held_id.clone());
                    }
                }
                GuardStep::Hold { threshold } => {
                    let held_id = match &facts.open_hold {
                        Some(held_id) => held_id.clone(),
                        None => {
                            let held_id = new_id();
                            transaction.execute(
                                "INSERT INTO held_changes (id, app_id, change, offboarding,
                                     active_accounts, state, held_at, threshold)
                                 VALUES (?1, ?2, 'null', 0, ?3, 'held', ?4, ?5)",
                                params![held_id, app_id, active_accounts, at, threshold],
                            )?;
                            recorded.hold_made = true;
                            held_id
                        }
                    };
                    let listed = transaction
                        .prepare_cached(
                            "INSERT INTO held_offboardings (held_id, object_kind, object_id,
                                 user_name, remote_id, action, reason, held_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                             ON CONFLICT (held_id, object_kind, object_id) DO NOTHING",
                        )?
                        .execute(params![
                            held_id,
                            object.object_kind,
                            object.object_id,
                            object.user_name,
                            object.remote_id,
                            object.action.as_str(),
                            object.reason,
                            at
                        ])?;
                    recorded.newly_held = listed > 0;
                    transaction.execute(
                        "UPDATE held_changes SET offboarding =
                             (SELECT COUNT(*) FROM held_offboardings WHERE held_id = ?1)
                         WHERE id = ?1",
                        [&held_id],
                    )?;
                    recorded.hold = Some(held_id);
                }
            }
            Ok(recorded)
        })
    }

    fn held_changes(&self, app_id: Option<&str>) -> StoreResult<Vec<HeldChange>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM held_changes
                 WHERE ?1 IS NULL OR app_id = ?1 ORDER BY held_at DESC, id"
            ))?;
            let held = statement
                .query_map([app_id], held_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            held.into_iter()
                .map(|held| with_objects(connection, held?))
                .collect()
        })
    }

    fn decide_held_change(&self, id: &str, approve: bool) -> StoreResult<HeldChange> {
        self.write(|transaction| {
            let held = transaction
                .prepare_cached(&format!(
                    "SELECT {HELD_COLUMNS} FROM held_changes WHERE id = ?1"
                ))?
                .query_row([id], held_from_row)
                .optional()?
                .ok_or_else(|| not_found("held change", id))??;
            let held = with_objects(transaction, held)?;
            if held.state != HeldState::Held {
                return Err(StoreError::Conflict {
                    entity: "held change",
                    field: "state",
                    value: held.state.as_str().to_string(),
                });
            }
            let state = if approve {
                HeldState::Approved
            } else {
                HeldState::Rejected
            };
            let at = Timestamp::now();
            transaction.execute(
                "UPDATE held_changes SET state = ?2, decided_at = ?3 WHERE id = ?1",
                params![id, state.as_str(), at],
            )?;
            // The application's count starts again from the decision.
            transaction.execute(
                "UPDATE guard_admissions SET counted = 0 WHERE app_id = ?1",
                [&held.app_id],
            )?;
            if approve {
                let users: Vec<String> = held
                    .objects
                    .iter()
                    .filter(|object| object.object_kind == "user")
                    .map(|object| object.object_id.clone())
                    .collect();
                append_change(
                    transaction,
                    &held.app_id,
                    ChangeKind::HoldApproved {
                        held: held.id.clone(),
                        users,
                        change: held.change.clone().map(Box::new),
                    },
                )?;
            }
            Ok(HeldChange {
                state,
                decided_at: Some(at),
                ..held
            })
        })
    }
}
