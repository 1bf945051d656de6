//! [`ScopeStore`] in SQLite: `bindings` and `assignments`, and scope
//! questions answered with recursive queries over `memberships`.

use super::*;

/// The users in an application's scope (`?1` is its id), as the table
/// `in_scope`: members of a bound group, directly or through nested
/// groups, and users assigned directly. A user is there as often as it is
/// reached (a member of two bound groups, or a member assigned as well):
/// a reading that wants each once says so, since a `UNION` here would
/// build a temporary B-tree of every user for every reading, and one that
/// lists them sorts and deduplicates the ids in a fraction of that time.
/// CROSS JOIN keeps the bound groups as the outer loop: left to itself the
/// planner walks every membership of the directory.
const IN_SCOPE: &str = "WITH RECURSIVE scope(group_id) AS (
     SELECT group_id FROM bindings WHERE app_id = ?1
     UNION
     SELECT m.member_id FROM scope s CROSS JOIN memberships m ON m.group_id = s.group_id
     WHERE m.member_kind = 'Group'
 ),
 in_scope(user_id) AS (
     SELECT m.member_id FROM scope s CROSS JOIN memberships m ON m.group_id = s.group_id
     WHERE m.member_kind = 'User'
     UNION ALL
     SELECT user_id FROM assignments WHERE app_id = ?1
 )";

/// Which of the users in the JSON array `?2` are in the scope of
/// application `?1`: [`ScopeStore::user_in_scope`]'s two questions, asked
/// of every user in one statement. Each user's groups are walked upwards
/// from its own memberships, as for one user; the walk carries the user
/// it started from.
pub(super) const USERS_IN_SCOPE_AMONG: &str = "WITH RECURSIVE up(user_id, group_id) AS (
         SELECT m.member_id, m.group_id
         FROM json_each(?2) AS wanted CROSS JOIN memberships m ON m.member_id = wanted.value
         UNION
         SELECT up.user_id, m.group_id FROM up CROSS JOIN memberships m ON m.member_id = up.group_id
     )
     SELECT up.user_id FROM up JOIN bindings b ON b.group_id = up.group_id WHERE b.app_id = ?1
     UNION
     SELECT a.user_id FROM json_each(?2) AS wanted
     CROSS JOIN assignments a ON a.app_id = ?1 AND a.user_id = wanted.value";

impl ScopeStore for SqliteStore {
    fn bind(&self, app: &str, group_id: &str) -> StoreResult<()> {
        self.write(|transaction| {
            let app = self.app_in(transaction, app)?;
            current_version(transaction, "groups", "group", group_id, None)?;
            let inserted = transaction.execute(
                "INSERT OR IGNORE INTO bindings (app_id, group_id, created) VALUES (?1, ?2, ?3)",
                params![app.id, group_id, Timestamp::now()],
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
            let app = self.app_in(transaction, app)?;
            let deleted = transaction.execute(
                "DELETE FROM bindings WHERE app_id = ?1 AND group_id = ?2",
                params![app.id, group_id],
            )?;
            if deleted == 0 {
                return Err(not_found("binding", group_id));
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
            let app = self.app_in(transaction, app)?;
            current_version(transaction, "users", "user", user_id, None)?;
            let inserted = transaction.execute(
                "INSERT OR IGNORE INTO assignments (app_id, user_id, created) VALUES (?1, ?2, ?3)",
                params![app.id, user_id, Timestamp::now()],
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
            let app = self.app_in(transaction, app)?;
            let deleted = transaction.execute(
                "DELETE FROM assignments WHERE app_id = ?1 AND user_id = ?2",
                params![app.id, user_id],
            )?;
            if deleted == 0 {
                return Err(not_found("assignment", user_id));
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
        self.read(|connection| {
            let app = self.app_in(connection, app)?;
            let mut statement = connection.prepare_cached(
                "SELECT user_id FROM assignments WHERE app_id = ?1 ORDER BY user_id",
            )?;
            let users = statement
                .query_map([&app.id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(users)
        })
    }

    fn bindings(&self, app: &str) -> StoreResult<Vec<GroupRef>> {
        self.read(|connection| {
            let app = self.app_in(connection, app)?;
            let mut statement = connection.prepare_cached(
                "SELECT g.id, g.display_name FROM bindings b JOIN groups g ON g.id = b.group_id
                 WHERE b.app_id = ?1 ORDER BY g.display_name",
            )?;
            let groups = statement
                .query_map([&app.id], |row| {
                    Ok(GroupRef {
                        id: row.get(0)?,
                        display_name: row.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(groups)
        })
    }

    fn users_in_scope(&self, app: &str) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let app = self.app_in(connection, app)?;
            let mut statement =
                connection.prepare_cached(&format!("{IN_SCOPE} SELECT user_id FROM in_scope"))?;
            let mut users: Vec<String> = statement
                .query_map([&app.id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            users.sort_unstable();
            users.dedup();
            Ok(users)
        })
    }

    fn scope_tally(&self, app_id: &str) -> StoreResult<ScopeTally> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "{IN_SCOPE}
                 SELECT
                     (SELECT COUNT(DISTINCT user_id) FROM in_scope),
                     (SELECT COUNT(DISTINCT i.user_id) FROM in_scope i JOIN ledger l
                          ON l.app_id = ?1 AND l.object_kind = 'user' AND l.object_id = i.user_id),
                     (SELECT COUNT(*) FROM ledger WHERE app_id = ?1 AND object_kind = 'user'),
                     (SELECT COUNT(*) FROM ledger
                          WHERE app_id = ?1 AND object_kind = 'user' AND doc_hash = ?2),
                     (SELECT COUNT(*) FROM ledger WHERE app_id = ?1 AND object_kind = 'group')"
            ))?;
            let tally = statement.query_row(params![app_id, rules::DEACTIVATED], |row| {
                Ok(ScopeTally {
                    users_in_scope: row.get(0)?,
                    users_linked: row.get(1)?,
                    accounts: row.get(2)?,
                    accounts_deactivated: row.get(3)?,
                    groups: row.get(4)?,
                })
            })?;
            Ok(tally)
        })
    }

    fn user_in_scope(&self, app_id: &str, user_id: &str) -> StoreResult<bool> {
        self.read(|connection| {
            let assigned = connection
                .prepare_cached("SELECT 1 FROM assignments WHERE app_id = ?1 AND user_id = ?2")?
                .exists(params![app_id, user_id])?;
            Ok(assigned
                || connection
                .prepare_cached(
                    "WITH RECURSIVE up(group_id) AS (
                         SELECT group_id FROM memberships WHERE member_id = ?2
                         UNION
                         SELECT m.group_id FROM up CROSS JOIN memberships m ON m.member_id = up.group_id
                     )
                     SELECT 1 FROM up JOIN bindings b ON b.group_id = up.group_id WHERE b.app_id = ?1
                     LIMIT 1",
                )?
                .exists(params![app_id, user_id])?)
        })
    }

    fn users_in_scope_among(&self, app_id: &str, user_ids: &[String]) -> StoreResult<Vec<String>> {
        let wanted = serde_json::to_string(user_ids)
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        self.read(|connection| {
            let mut statement = connection.prepare_cached(USERS_IN_SCOPE_AMONG)?;
            let in_scope = statement
                .query_map(params![app_id, wanted], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(in_scope)
        })
    }

    fn bound_groups_containing(&self, app_id: &str, member_id: &str) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "WITH RECURSIVE up(group_id) AS (
                     SELECT ?2
                     UNION
                     SELECT m.group_id FROM up CROSS JOIN memberships m ON m.member_id = up.group_id
                 )
                 SELECT b.group_id FROM up JOIN bindings b ON b.group_id = up.group_id
                 WHERE b.app_id = ?1 ORDER BY b.group_id",
            )?;
            let groups = statement
                .query_map(params![app_id, member_id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(groups)
        })
    }
}
