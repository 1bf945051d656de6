//! [`GuardStore`] in PostgreSQL: `held_changes`, `held_offboardings` and
//! `guard_admissions`, each offboarding read, decided and recorded inside
//! one serializable write. Offboardings decided at once, by this host or
//! another, are therefore counted one after the other (PostgreSQL aborts
//! all but one of transactions that read the same count, and the write
//! runs them again), and an application gets one open hold at most.

use super::*;

const HELD_COLUMNS: &str =
    "id, app_id, change, offboarding, active_accounts, state, held_at, decided_at, threshold";
const HELD_OBJECT_COLUMNS: &str =
    "object_kind, object_id, user_name, remote_id, action, reason, held_at, carried_out";

/// A hold without its objects (see [`with_objects`]).
fn held_from_row(row: &Row) -> StoreResult<HeldChange> {
    let change: Value = row.get(2);
    let state: String = row.get(5);
    // JSON null for a per-application hold; a whole change for an older one.
    let change = serde_json::from_value::<Option<Change>>(change)
        .map_err(|error| StoreError::Backend(format!("a held change is unreadable: {error}")))?;
    let Some(state) = HeldState::parse(&state) else {
        return Err(StoreError::Backend(format!(
            "a held change has the unknown state {state:?}"
        )));
    };
    Ok(HeldChange {
        id: row.get(0),
        app_id: row.get(1),
        change,
        offboarding: to_u64(row.get(3)),
        active_accounts: to_u64(row.get(4)),
        threshold: to_u64(row.get(8)),
        state,
        held_at: row.get(6),
        decided_at: row.get(7),
        objects: Vec::new(),
    })
}

fn held_object_from_row(row: &Row) -> StoreResult<HeldObject> {
    let action: String = row.get(4);
    let Some(action) = OffboardAction::parse(&action) else {
        return Err(StoreError::Backend(format!(
            "a held offboarding has the unknown action {action:?}"
        )));
    };
    Ok(HeldObject {
        object_kind: row.get(0),
        object_id: row.get(1),
        user_name: row.get(2),
        remote_id: row.get(3),
        action,
        reason: row.get(5),
        held_at: row.get(6),
        carried_out: row.get(7),
    })
}

/// The hold with the offboardings it lists.
fn with_objects(
    transaction: &mut Session<'_, impl GenericClient>,
    mut held: HeldChange,
) -> Step<HeldChange> {
    let rows = transaction.query(
        &format!(
            "SELECT {HELD_OBJECT_COLUMNS} FROM held_offboardings
             WHERE held_id = $1 ORDER BY held_at, object_id"
        ),
        &[&held.id],
    )?;
    held.objects = collect(rows, held_object_from_row)?;
    Ok(held)
}

/// The application's user accounts the ledger holds as active: neither
/// deactivated nor last sent with `active: false`
/// ([`rules::holds_active_account`]).
///
/// `ledger.doc` is text the store does not validate, and PostgreSQL 15 has
/// no cast to JSON that tolerates malformed text, so the documents are not
/// read as JSON in SQL: an entry whose document does not contain `false`
/// at all cannot have been sent inactive and is counted there; the few
/// others are judged here by the shared rule.
fn active_accounts_in(transaction: &mut Tx<'_, '_>, app_id: &str) -> Step<u64> {
    let surely_active: i64 = transaction
        .query_one(
            "SELECT COUNT(*) FROM ledger
             WHERE app_id = $1 AND object_kind = 'user' AND doc_hash != $2
               AND (doc IS NULL OR strpos(doc, 'false') = 0)",
            &[&app_id, &rules::DEACTIVATED],
        )?
        .get(0);
    let rows = transaction.query(
        "SELECT app_id, object_kind, object_id, remote_id, doc_hash, updated, doc FROM ledger
         WHERE app_id = $1 AND object_kind = 'user' AND doc_hash != $2
           AND strpos(doc, 'false') > 0",
        &[&app_id, &rules::DEACTIVATED],
    )?;
    let mut active = to_u64(surely_active);
    for row in &rows {
        let entry = LedgerEntry {
            app_id: row.get(0),
            object_kind: row.get(1),
            object_id: row.get(2),
            remote_id: row.get(3),
            doc_hash: row.get(4),
            updated: row.get(5),
            document: row.get(6),
        };
        if rules::holds_active_account(&entry) {
            active += 1;
        }
    }
    Ok(active)
}

impl GuardStore for PostgresStore {
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
            transaction.execute(
                "DELETE FROM guard_admissions WHERE app_id = $1 AND at < $2",
                &[&app_id, &window_start],
            )?;
            let admitted_in_window: i64 = transaction
                .query_one(
                    "SELECT COUNT(DISTINCT object_id) FROM guard_admissions
                     WHERE app_id = $1 AND at >= $2 AND counted",
                    &[&app_id, &window_start],
                )?
                .get(0);
            let admitted_in_window = to_u64(admitted_in_window);
            let already_admitted = transaction
                .query_opt(
                    "SELECT 1 FROM guard_admissions
                     WHERE app_id = $1 AND object_id = $2 AND entry_state = $3 AND at >= $4
                     LIMIT 1",
                    &[&app_id, &object.object_id, &entry_state, &window_start],
                )?
                .is_some();
            let active_accounts = active_accounts_in(transaction, app_id)?;
            // An approval lets the offboardings it lists through once, for
            // a window after the decision.
            let approved_in: Option<String> = transaction
                .query_opt(
                    "SELECT h.id FROM held_changes h
                     JOIN held_offboardings o ON o.held_id = h.id
                     WHERE h.app_id = $1 AND h.state = 'approved' AND h.decided_at > $2
                       AND o.object_kind = $3 AND o.object_id = $4 AND o.carried_out IS NULL
                     ORDER BY h.decided_at DESC LIMIT 1",
                    &[
                        &app_id,
                        &window_start,
                        &object.object_kind,
                        &object.object_id,
                    ],
                )?
                .map(|row| row.get(0));
            let open_hold: Option<String> = transaction
                .query_opt(
                    "SELECT id FROM held_changes WHERE app_id = $1 AND state = 'held'
                     ORDER BY held_at DESC LIMIT 1",
                    &[&app_id],
                )?
                .map(|row| row.get(0));
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
                    transaction.execute(
                        "INSERT INTO guard_admissions
                             (app_id, object_id, entry_state, kind, counted, at)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &app_id,
                            &object.object_id,
                            &entry_state,
                            &object.action.as_str(),
                            &!approved,
                            &at,
                        ],
                    )?;
                    if approved && let Some(held_id) = &facts.approved_in {
                        transaction.execute(
                            "UPDATE held_offboardings SET carried_out = $4
                             WHERE held_id = $1 AND object_kind = $2 AND object_id = $3",
                            &[held_id, &object.object_kind, &object.object_id, &at],
                        )?;
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
                                 VALUES ($1, $2, 'null', 0, $3, 'held', $4, $5)",
                                &[
                                    &held_id,
                                    &app_id,
                                    &to_i64(active_accounts),
                                    &at,
                                    &to_i64(threshold),
                                ],
                            )?;
                            recorded.hold_made = true;
                            held_id
                        }
                    };
                    let listed = transaction.execute(
                        "INSERT INTO held_offboardings (held_id, object_kind, object_id,
                             user_name, remote_id, action, reason, held_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (held_id, object_kind, object_id) DO NOTHING",
                        &[
                            &held_id,
                            &object.object_kind,
                            &object.object_id,
                            &object.user_name,
                            &object.remote_id,
                            &object.action.as_str(),
                            &object.reason,
                            &at,
                        ],
                    )?;
                    recorded.newly_held = listed > 0;
                    transaction.execute(
                        "UPDATE held_changes SET offboarding =
                             (SELECT COUNT(*) FROM held_offboardings WHERE held_id = $1)
                         WHERE id = $1",
                        &[&held_id],
                    )?;
                    recorded.hold = Some(held_id);
                }
            }
            Ok(recorded)
        })
    }

    fn held_changes(&self, app_id: Option<&str>) -> StoreResult<Vec<HeldChange>> {
        self.read(|transaction| {
            let rows = transaction.query(
                &format!(
                    "SELECT {HELD_COLUMNS} FROM held_changes
                     WHERE $1::text IS NULL OR app_id = $1 ORDER BY held_at DESC, id"
                ),
                &[&app_id],
            )?;
            let held = collect(rows, held_from_row)?;
            held.into_iter()
                .map(|held| with_objects(transaction, held))
                .collect()
        })
    }

    fn decide_held_change(&self, id: &str, approve: bool) -> StoreResult<HeldChange> {
        self.write(|transaction| {
            let row = transaction
                .query_opt(
                    &format!("SELECT {HELD_COLUMNS} FROM held_changes WHERE id = $1"),
                    &[&id],
                )?
                .ok_or_else(|| not_found("held change", id))?;
            let held = with_objects(transaction, held_from_row(&row)?)?;
            if held.state != HeldState::Held {
                return Err(StoreError::Conflict {
                    entity: "held change",
                    field: "state",
                    value: held.state.as_str().to_string(),
                }
                .into());
            }
            let state = if approve {
                HeldState::Approved
            } else {
                HeldState::Rejected
            };
            let at = Timestamp::now();
            transaction.execute(
                "UPDATE held_changes SET state = $2, decided_at = $3 WHERE id = $1",
                &[&id, &state.as_str(), &at],
            )?;
            // The application's count starts again from the decision.
            transaction.execute(
                "UPDATE guard_admissions SET counted = FALSE WHERE app_id = $1",
                &[&held.app_id],
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
