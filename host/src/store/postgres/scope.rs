//! [`ScopeStore`] in PostgreSQL: `bindings` and `assignments`, and scope
//! questions answered with recursive queries over `memberships`.
//!
//! Lists "in id order" are ordered by `COLLATE "C"` (code points, as Rust
//! and SQLite compare), whatever the database's own collation.

use super::*;

/// The users in an application's scope (`$1` is its id): members of a
/// bound group, directly or through nested groups, and users assigned
/// directly.
const IN_SCOPE: &str = "WITH RECURSIVE scope(group_id) AS (
     SELECT group_id FROM bindings WHERE app_id = $1
     UNION
     SELECT m.member_id FROM scope s JOIN memberships m ON m.group_id = s.group_id
     WHERE m.member_kind = 'Group'
 ),
 in_scope(user_id) AS (
     SELECT m.member_id FROM scope s JOIN memberships m ON m.group_id = s.group_id
     WHERE m.member_kind = 'User'
     UNION
     SELECT user_id FROM assignments WHERE app_id = $1
 )";

/// Which of the users `$2` (an array of ids) are in the scope of the
/// application `$1`: each user's groups walked upwards from its own
/// memberships, as for one user, the walk carrying the user it started
/// from; and the users assigned directly.
const USERS_IN_SCOPE_AMONG: &str = "WITH RECURSIVE up(user_id, group_id) AS (
         SELECT m.member_id, m.group_id FROM memberships m WHERE m.member_id = ANY($2)
         UNION
         SELECT up.user_id, m.group_id FROM up JOIN memberships m ON m.member_id = up.group_id
     )
     SELECT up.user_id FROM up JOIN bindings b ON b.group_id = up.group_id WHERE b.app_id = $1
     UNION
     SELECT user_id FROM assignments WHERE app_id = $1 AND user_id = ANY($2)";

impl ScopeStore for PostgresStore {
    fn users_in_scope_among(&self, app_id: &str, user_ids: &[String]) -> StoreResult<Vec<String>> {
        self.read(|transaction| {
            let rows = transaction.query(USERS_IN_SCOPE_AMONG, &[&app_id, &user_ids])?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn bind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = app_in(transaction, app)?;
            current_version(transaction, "groups", "group", group_id, None)?;
            let inserted = transaction.execute(
                "INSERT INTO bindings (app_id, group_id, created) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&app.id, &group_id, &Timestamp::now()],
            )?;
            if inserted > 0 {
                append_change(
                    transaction,
                    &app.id,
                    ChangeKind::Bound {
                        group: group_id.to_string(),
                    },
                )?;
            }
            Ok(())
        })
    }

    fn unbind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = app_in(transaction, app)?;
            let deleted = transaction.execute(
                "DELETE FROM bindings WHERE app_id = $1 AND group_id = $2",
                &[&app.id, &group_id],
            )?;
            if deleted == 0 {
                return Err(not_found("binding", group_id).into());
            }
            let members = member_ids(transaction, group_id)?;
            append_change(
                transaction,
                &app.id,
                ChangeKind::Unbound {
                    group: group_id.to_string(),
                    members,
                },
            )
        })
    }

    fn assign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = app_in(transaction, app)?;
            current_version(transaction, "users", "user", user_id, None)?;
            let inserted = transaction.execute(
                "INSERT INTO assignments (app_id, user_id, created) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&app.id, &user_id, &Timestamp::now()],
            )?;
            if inserted > 0 {
                append_change(
                    transaction,
                    &app.id,
                    ChangeKind::Assigned {
                        user: user_id.to_string(),
                    },
                )?;
            }
            Ok(())
        })
    }

    fn unassign(&self, app: &str, user_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = app_in(transaction, app)?;
            let deleted = transaction.execute(
                "DELETE FROM assignments WHERE app_id = $1 AND user_id = $2",
                &[&app.id, &user_id],
            )?;
            if deleted == 0 {
                return Err(not_found("assignment", user_id).into());
            }
            append_change(
                transaction,
                &app.id,
                ChangeKind::Unassigned {
                    user: user_id.to_string(),
                },
            )
        })
    }

    fn assignments(&self, app: &str) -> StoreResult<Vec<String>> {
        self.read(|transaction| {
            let app = app_in(transaction, app)?;
            let rows = transaction.query(
                "SELECT user_id FROM assignments WHERE app_id = $1 ORDER BY user_id COLLATE \"C\"",
                &[&app.id],
            )?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn bindings(&self, app: &str) -> StoreResult<Vec<GroupRef>> {
        self.read(|transaction| {
            let app = app_in(transaction, app)?;
            let rows = transaction.query(
                "SELECT g.id, g.display_name FROM bindings b JOIN groups g ON g.id = b.group_id
                 WHERE b.app_id = $1 ORDER BY g.display_name",
                &[&app.id],
            )?;
            Ok(rows
                .iter()
                .map(|row| GroupRef {
                    id: row.get(0),
                    display_name: row.get(1),
                })
                .collect())
        })
    }

    fn users_in_scope(&self, app: &str) -> StoreResult<Vec<String>> {
        self.read(|transaction| {
            let app = app_in(transaction, app)?;
            let rows = transaction.query(
                &format!("{IN_SCOPE} SELECT user_id FROM in_scope ORDER BY user_id COLLATE \"C\""),
                &[&app.id],
            )?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn scope_tally(&self, app_id: &str) -> StoreResult<ScopeTally> {
        self.read(|transaction| {
            let row = transaction.query_one(
                &format!(
                    "{IN_SCOPE}
                 SELECT
                     (SELECT COUNT(*) FROM in_scope),
                     (SELECT COUNT(*) FROM in_scope i JOIN ledger l
                          ON l.app_id = $1 AND l.object_kind = 'user' AND l.object_id = i.user_id),
                     (SELECT COUNT(*) FROM ledger WHERE app_id = $1 AND object_kind = 'user'),
                     (SELECT COUNT(*) FROM ledger
                          WHERE app_id = $1 AND object_kind = 'user' AND doc_hash = $2),
                     (SELECT COUNT(*) FROM ledger WHERE app_id = $1 AND object_kind = 'group')"
                ),
                &[&app_id, &rules::DEACTIVATED],
            )?;
            let count = |index: usize| to_u64(row.get::<_, i64>(index));
            Ok(ScopeTally {
                users_in_scope: count(0),
                users_linked: count(1),
                accounts: count(2),
                accounts_deactivated: count(3),
                groups: count(4),
            })
        })
    }

    fn user_in_scope(&self, app_id: &str, user_id: &str) -> StoreResult<bool> {
        self.read(|transaction| {
            let assigned = transaction
                .query_opt(
                    "SELECT 1 FROM assignments WHERE app_id = $1 AND user_id = $2",
                    &[&app_id, &user_id],
                )?
                .is_some();
            if assigned {
                return Ok(true);
            }
            let bound = transaction
                .query_opt(
                    "WITH RECURSIVE up(group_id) AS (
                         SELECT group_id FROM memberships WHERE member_id = $2
                         UNION
                         SELECT m.group_id FROM up JOIN memberships m ON m.member_id = up.group_id
                     )
                     SELECT 1 FROM up JOIN bindings b ON b.group_id = up.group_id WHERE b.app_id = $1
                     LIMIT 1",
                    &[&app_id, &user_id],
                )?
                .is_some();
            Ok(bound)
        })
    }

    fn bound_groups_containing(&self, app_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "WITH RECURSIVE up(group_id) AS (
                     SELECT $2::text
                     UNION
                     SELECT m.group_id FROM up JOIN memberships m ON m.member_id = up.group_id
                 )
                 SELECT b.group_id FROM up JOIN bindings b ON b.group_id = up.group_id
                 WHERE b.app_id = $1 ORDER BY b.group_id COLLATE \"C\"",
                &[&app_id, &member_id],
            )?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}
