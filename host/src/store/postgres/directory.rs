//! [`DirectoryStore`] in PostgreSQL: users, groups and memberships tables;
//! uniqueness through the `*_key` columns holding the folded name.
//!
//! Every write is one serializable transaction that may run again from the
//! start (see `PostgresStore::write`): the rules below (a name still
//! free, a member that exists, a group that would not contain itself) are
//! decided from what the transaction reads, so they hold across hosts.
//!
//! Ids and names are `COLLATE "C"` columns, so lists in userName,
//! displayName or id order come in byte order, as in SQLite, whatever the
//! database's own collation.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::*;

/// Rows a scan reads at a time, within its one snapshot.
const SCAN_BATCH: i64 = 500;

pub(super) fn user_from_row(row: &Row) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: row.get(0),
        user_name: row.get(1),
        external_id: row.get(2),
        active: row.get(3),
        attributes: doc_object(row.get(4))?,
        version: row.get(5),
        created: row.get(6),
        modified: row.get(7),
    })
}

pub(super) fn group_from_row(row: &Row) -> StoreResult<GroupRecord> {
    Ok(GroupRecord {
        id: row.get(0),
        display_name: row.get(1),
        external_id: row.get(2),
        attributes: doc_object(row.get(3))?,
        members: Vec::new(),
        version: row.get(4),
        created: row.get(5),
        modified: row.get(6),
    })
}

/// The group with its members: users first, each kind in display order.
pub(super) fn with_members(
    transaction: &mut Session<'_, impl GenericClient>,
    group: GroupRecord,
) -> Step<GroupRecord> {
    let id = group.id.clone();
    let mut groups = with_all_members(transaction, vec![group])?;
    Ok(groups.pop().ok_or_else(|| not_found("group", &id))?)
}

/// Groups with their members, the members of all of them read in one query.
pub(super) fn with_all_members(
    transaction: &mut Session<'_, impl GenericClient>,
    mut groups: Vec<GroupRecord>,
) -> Step<Vec<GroupRecord>> {
    if groups.is_empty() {
        return Ok(groups);
    }
    let ids: Vec<String> = groups.iter().map(|group| group.id.clone()).collect();
    let rows = transaction.query(
        "SELECT m.group_id, m.member_id, m.member_kind, COALESCE(u.user_name, g.display_name, '')
         FROM memberships m
         LEFT JOIN users u ON m.member_kind = 'User' AND u.id = m.member_id
         LEFT JOIN groups g ON m.member_kind = 'Group' AND g.id = m.member_id
         WHERE m.group_id = ANY($1) ORDER BY m.group_id, m.member_kind DESC, 4",
        &[&ids],
    )?;
    let mut members: HashMap<String, Vec<MemberView>> = HashMap::new();
    for row in &rows {
        let kind: &str = row.get(2);
        members.entry(row.get(0)).or_default().push(MemberView {
            id: row.get(1),
            kind: MemberKind::parse(kind).unwrap_or(MemberKind::User),
            display: row.get(3),
        });
    }
    for group in &mut groups {
        group.members = members.remove(&group.id).unwrap_or_default();
    }
    Ok(groups)
}

/// A group with its members, in the transaction's view.
pub(super) fn load_group(
    transaction: &mut Session<'_, impl GenericClient>,
    id: &str,
) -> Step<Option<GroupRecord>> {
    match group_row(transaction, id)? {
        Some(group) => Ok(Some(with_members(transaction, group)?)),
        None => Ok(None),
    }
}

/// The group's own row, its `members` left empty.
fn group_row(
    transaction: &mut Session<'_, impl GenericClient>,
    id: &str,
) -> Step<Option<GroupRecord>> {
    let row = transaction.query_opt(
        &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = $1"),
        &[&id],
    )?;
    match row {
        Some(row) => Ok(Some(group_from_row(&row)?)),
        None => Ok(None),
    }
}

/// The rows of the groups whose `key` is `value`, members not read.
fn groups_found(
    transaction: &mut Session<'_, impl GenericClient>,
    key: GroupKey,
    value: &str,
) -> Step<Vec<GroupRecord>> {
    let (column, value) = group_key(key, value);
    let rows = transaction.query(
        &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE {column} = $1"),
        &[&value],
    )?;
    collect(rows, group_from_row)
}

/// Refuses `value` when another row than `except_id` holds it: `sql`
/// selects the holder by `$1` (the folded name), `$2` (the id to except).
pub(super) fn ensure_unique(
    transaction: &mut Tx<'_, '_>,
    sql: &str,
    value: &str,
    except_id: &str,
    entity: &'static str,
    field: &'static str,
) -> Step<()> {
    let taken = transaction.query_opt(sql, &[&value, &except_id])?;
    match taken {
        Some(_) => Err(StoreError::Conflict {
            entity,
            field,
            value: value.to_string(),
        }
        .into()),
        None => Ok(()),
    }
}

pub(super) fn insert_user(transaction: &mut Tx<'_, '_>, user: &UserWrite) -> Step<UserRecord> {
    let key = rules::fold_name(&user.user_name);
    ensure_unique(
        transaction,
        "SELECT id FROM users WHERE user_name_key = $1 AND id != $2",
        &key,
        "",
        "user",
        "userName",
    )?;
    let id = new_id();
    let at = Timestamp::now();
    transaction.execute(
        "INSERT INTO users (id, user_name, user_name_key, external_id, active, doc, version, created, modified)
         VALUES ($1, $2, $7, $3, $4, $5, 1, $6, $6)",
        &[
            &id,
            &user.user_name,
            &user.external_id,
            &user.active,
            &Value::Object(user.attributes.clone()),
            &at,
            &key,
        ],
    )?;
    append_change(
        transaction,
        &id,
        ChangeKind::UserCreated {
            user_name: user.user_name.clone(),
        },
    )?;
    Ok(UserRecord {
        id,
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        active: user.active,
        attributes: user.attributes.clone(),
        version: 1,
        created: at,
        modified: at,
    })
}

pub(super) fn update_user(
    transaction: &mut Tx<'_, '_>,
    id: &str,
    user: &UserWrite,
    expected_version: Option<i64>,
) -> Step<UserRecord> {
    let version = current_version(transaction, "users", "user", id, expected_version)? + 1;
    let key = rules::fold_name(&user.user_name);
    ensure_unique(
        transaction,
        "SELECT id FROM users WHERE user_name_key = $1 AND id != $2",
        &key,
        id,
        "user",
        "userName",
    )?;
    let at = Timestamp::now();
    let created: Timestamp = transaction
        .query_one(
            "UPDATE users SET user_name = $2, user_name_key = $8, external_id = $3, active = $4, doc = $5,
                 version = $6, modified = $7
             WHERE id = $1 RETURNING created",
            &[
                &id,
                &user.user_name,
                &user.external_id,
                &user.active,
                &Value::Object(user.attributes.clone()),
                &version,
                &at,
                &key,
            ],
        )?
        .get(0);
    append_change(
        transaction,
        id,
        ChangeKind::UserUpdated {
            user_name: user.user_name.clone(),
            active: user.active,
        },
    )?;
    Ok(UserRecord {
        id: id.to_string(),
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        active: user.active,
        attributes: user.attributes.clone(),
        version,
        created,
        modified: at,
    })
}

/// An imported user laid over the stored one (see
/// [`rules::merge_imported_user`]).
pub(super) fn merge_import(
    transaction: &mut Tx<'_, '_>,
    id: &str,
    user: &UserWrite,
) -> Step<UserWrite> {
    let row = transaction
        .query_opt("SELECT doc, active FROM users WHERE id = $1", &[&id])?
        .ok_or_else(|| not_found("user", id))?;
    Ok(rules::merge_imported_user(
        doc_object(row.get(0))?,
        row.get(1),
        user,
    ))
}

/// Inserts memberships after checking that every member exists and that no
/// group would contain itself; returns the ids actually added, in the order
/// given.
///
/// The checks and the writes each take a few statements for the whole
/// list, not a few per member: over a network a group of thousands is
/// written in a handful of round trips. The outcome is the one of adding
/// the members one by one: the first member refused (in the order given)
/// refuses the write, and a member named twice is added once.
pub(super) fn add_members(
    transaction: &mut Tx<'_, '_>,
    group_id: &str,
    members: &[Member],
) -> Step<Vec<String>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let of_kind = |kind: MemberKind| -> Vec<String> {
        members
            .iter()
            .filter(|member| member.kind == kind)
            .map(|member| member.id.clone())
            .collect()
    };
    let users = existing(transaction, "users", &of_kind(MemberKind::User))?;
    let groups = existing(transaction, "groups", &of_kind(MemberKind::Group))?;
    for member in members {
        let exists = match member.kind {
            MemberKind::User => users.contains(&member.id),
            MemberKind::Group => groups.contains(&member.id),
        };
        if !exists {
            return Err(StoreError::InvalidMembership(format!(
                "member {} is not a {} of the directory",
                member.id,
                member.kind.as_str().to_lowercase()
            ))
            .into());
        }
        // Memberships this call adds leave `group_id`, never enter it, so
        // none of them makes a path from a candidate back to `group_id`:
        // checking every candidate before writing any is checking each in
        // turn.
        if member.kind == MemberKind::Group
            && would_contain_itself(transaction, group_id, &member.id)?
        {
            return Err(StoreError::InvalidMembership(format!(
                "group {} cannot be a member of group {group_id}: it would contain itself",
                member.id
            ))
            .into());
        }
    }
    let mut seen = HashSet::new();
    let (ids, kinds): (Vec<String>, Vec<&str>) = members
        .iter()
        .filter(|member| seen.insert(member.id.as_str()))
        .map(|member| (member.id.clone(), member.kind.as_str()))
        .unzip();
    let inserted: HashSet<String> = transaction
        .query(
            "INSERT INTO memberships (group_id, member_id, member_kind)
             SELECT $1, given.member_id, given.member_kind
             FROM unnest($2::text[], $3::text[]) AS given(member_id, member_kind)
             ON CONFLICT DO NOTHING
             RETURNING member_id",
            &[&group_id, &ids, &kinds],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let added: Vec<String> = ids.into_iter().filter(|id| inserted.contains(id)).collect();
    touch_users(transaction, &added)?;
    Ok(added)
}

/// Those of `ids` that are rows of `table`.
fn existing(transaction: &mut Tx<'_, '_>, table: &str, ids: &[String]) -> Step<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(transaction
        .query(
            &format!("SELECT id FROM {table} WHERE id = ANY($1)"),
            &[&ids],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// [`rules::would_contain_itself`] over the transaction's memberships. A
/// database error met on the walk is returned as it is, so that a
/// serialization failure still has its write run again.
fn would_contain_itself(
    transaction: &mut Tx<'_, '_>,
    group_id: &str,
    candidate: &str,
) -> Step<bool> {
    let mut database_error = None;
    let contains = rules::would_contain_itself(group_id, candidate, |group| {
        match member_groups(transaction, group) {
            Ok(groups) => Ok(groups),
            Err(Failure::Store(error)) => Err(error),
            Err(Failure::Database(error)) => {
                let message = database_message(&error);
                database_error = Some(error);
                Err(StoreError::Backend(message))
            }
        }
    });
    if let Some(error) = database_error {
        return Err(Failure::Database(error));
    }
    Ok(contains?)
}

/// The groups that are direct members of `group_id`.
pub(super) fn member_groups(transaction: &mut Tx<'_, '_>, group_id: &str) -> Step<Vec<String>> {
    let rows = transaction.query(
        "SELECT member_id FROM memberships WHERE group_id = $1 AND member_kind = 'Group'",
        &[&group_id],
    )?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Deletes memberships (absent ones are ignored); returns the ids actually
/// removed, in the order given, each once.
pub(super) fn remove_members(
    transaction: &mut Tx<'_, '_>,
    group_id: &str,
    members: &[String],
) -> Step<Vec<String>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let deleted: HashSet<String> = transaction
        .query(
            "DELETE FROM memberships WHERE group_id = $1 AND member_id = ANY($2)
             RETURNING member_id",
            &[&group_id, &members],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut seen = HashSet::new();
    let removed: Vec<String> = members
        .iter()
        .filter(|member| deleted.contains(*member) && seen.insert(member.as_str()))
        .cloned()
        .collect();
    touch_users(transaction, &removed)?;
    Ok(removed)
}

/// A user's `groups` is part of the user: a membership change gives the
/// user a new version (and ETag). A group id matches no user and is a no-op.
pub(super) fn touch_users(transaction: &mut Tx<'_, '_>, ids: &[String]) -> Step<()> {
    if ids.is_empty() {
        return Ok(());
    }
    transaction.execute(
        "UPDATE users SET version = version + 1, modified = $2 WHERE id = ANY($1)",
        &[&ids, &Timestamp::now()],
    )?;
    Ok(())
}

pub(super) fn record_membership_change(
    transaction: &mut Tx<'_, '_>,
    group_id: &str,
    added: &[String],
    removed: &[String],
) -> Step<()> {
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    append_change(
        transaction,
        group_id,
        ChangeKind::MembersChanged {
            added: added.to_vec(),
            removed: removed.to_vec(),
        },
    )
}

pub(super) fn bump_group(transaction: &mut Tx<'_, '_>, group_id: &str) -> Step<()> {
    transaction.execute(
        "UPDATE groups SET version = version + 1, modified = $2 WHERE id = $1",
        &[&group_id, &Timestamp::now()],
    )?;
    Ok(())
}

pub(super) fn member_ids(transaction: &mut Tx<'_, '_>, group_id: &str) -> Step<Vec<String>> {
    let rows = transaction.query(
        "SELECT member_id FROM memberships WHERE group_id = $1",
        &[&group_id],
    )?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub(super) fn find_group_id(transaction: &mut Tx<'_, '_>, name: &str) -> Step<Option<String>> {
    Ok(transaction
        .query_opt(
            "SELECT id FROM groups WHERE display_name_key = $1",
            &[&rules::fold_name(name)],
        )?
        .map(|row| row.get(0)))
}

/// The id of the user named `user_name` (without regard to case).
fn find_user_id(transaction: &mut Tx<'_, '_>, user_name: &str) -> Step<Option<String>> {
    Ok(transaction
        .query_opt(
            "SELECT id FROM users WHERE user_name_key = $1",
            &[&rules::fold_name(user_name)],
        )?
        .map(|row| row.get(0)))
}

/// The ids of the groups `member_id` is a direct member of.
fn parent_groups(transaction: &mut Tx<'_, '_>, member_id: &str) -> Step<Vec<String>> {
    let rows = transaction.query(
        "SELECT group_id FROM memberships WHERE member_id = $1",
        &[&member_id],
    )?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub(super) fn insert_group(transaction: &mut Tx<'_, '_>, group: &GroupWrite) -> Step<String> {
    let key = rules::fold_name(&group.display_name);
    ensure_unique(
        transaction,
        "SELECT id FROM groups WHERE display_name_key = $1 AND id != $2",
        &key,
        "",
        "group",
        "displayName",
    )?;
    let id = new_id();
    let at = Timestamp::now();
    transaction.execute(
        "INSERT INTO groups (id, display_name, display_name_key, external_id, doc, version, created, modified)
         VALUES ($1, $2, $6, $3, $4, 1, $5, $5)",
        &[
            &id,
            &group.display_name,
            &group.external_id,
            &Value::Object(group.attributes.clone()),
            &at,
            &key,
        ],
    )?;
    append_change(
        transaction,
        &id,
        ChangeKind::GroupCreated {
            display_name: group.display_name.clone(),
        },
    )?;
    if let Some(members) = &group.members {
        let added = add_members(transaction, &id, members)?;
        record_membership_change(transaction, &id, &added, &[])?;
    }
    Ok(id)
}

/// The column a user is found by, and the value as that column holds it.
fn user_key(key: UserKey, value: &str) -> (&'static str, String) {
    match key {
        UserKey::Id => ("id", value.to_string()),
        UserKey::UserName => ("user_name_key", rules::fold_name(value)),
        UserKey::ExternalId => ("external_id", value.to_string()),
    }
}

/// The column a group is found by, and the value as that column holds it.
fn group_key(key: GroupKey, value: &str) -> (&'static str, String) {
    match key {
        GroupKey::Id => ("id", value.to_string()),
        GroupKey::DisplayName => ("display_name_key", rules::fold_name(value)),
        GroupKey::ExternalId => ("external_id", value.to_string()),
    }
}

impl DirectoryStore for PostgresStore {
    fn create_user(&self, user: UserWrite) -> StoreResult<UserRecord> {
        self.write(|transaction| {
            let record = insert_user(transaction, &user)?;
            if let Some(password) = &user.password {
                passwords::store_password(transaction, &self.cipher, &record.id, password)?;
            }
            Ok(record)
        })
    }

    fn replace_user(
        &self,
        id: &str,
        user: UserWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<UserRecord> {
        self.write(|transaction| {
            let record = update_user(transaction, id, &user, expected_version)?;
            if let Some(password) = &user.password {
                passwords::store_password(transaction, &self.cipher, id, password)?;
            }
            Ok(record)
        })
    }

    fn delete_user(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        self.write(|transaction| {
            current_version(transaction, "users", "user", id, expected_version)?;
            let groups = parent_groups(transaction, id)?;
            let user_name: String = transaction
                .query_one("SELECT user_name FROM users WHERE id = $1", &[&id])?
                .get(0);
            transaction.execute("DELETE FROM memberships WHERE member_id = $1", &[&id])?;
            passwords::forget_passwords(transaction, id)?;
            transaction.execute("DELETE FROM users WHERE id = $1", &[&id])?;
            for group in &groups {
                bump_group(transaction, group)?;
            }
            append_change(
                transaction,
                id,
                ChangeKind::UserDeleted { user_name, groups },
            )
        })
    }

    fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        self.read(|transaction| {
            let row = transaction.query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
                &[&id],
            )?;
            Ok(row.as_ref().map(user_from_row).transpose()?)
        })
    }

    fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        self.read(|transaction| {
            let rows = transaction.query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1)"),
                &[&ids],
            )?;
            collect(rows, user_from_row)
        })
    }

    fn find_users(&self, key: UserKey, value: &str) -> StoreResult<Vec<UserRecord>> {
        let (column, value) = user_key(key, value);
        self.read(|transaction| {
            let rows = transaction.query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1"),
                &[&value],
            )?;
            collect(rows, user_from_row)
        })
    }

    fn list_users(&self, page: Page) -> StoreResult<Listing<UserRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|transaction| {
            let total: i64 = transaction
                .query_one("SELECT COUNT(*) FROM users", &[])?
                .get(0);
            let rows = transaction.query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users ORDER BY user_name, id LIMIT $1 OFFSET $2"
                ),
                &[&limit, &offset],
            )?;
            Ok(Listing {
                items: collect(rows, user_from_row)?,
                total: to_u64(total),
            })
        })
    }

    fn scan_users(&self, visit: &mut dyn FnMut(UserRecord) -> bool) -> StoreResult<()> {
        // Batch after batch of one snapshot, each after the last one read.
        self.read(|transaction| {
            let mut after: Option<(String, String)> = None;
            loop {
                let rows = match &after {
                    None => transaction.query(
                        &format!(
                            "SELECT {USER_COLUMNS} FROM users ORDER BY user_name, id LIMIT $1"
                        ),
                        &[&SCAN_BATCH],
                    )?,
                    Some((user_name, id)) => transaction.query(
                        &format!(
                            "SELECT {USER_COLUMNS} FROM users WHERE (user_name, id) > ($1, $2)
                             ORDER BY user_name, id LIMIT $3"
                        ),
                        &[user_name, id, &SCAN_BATCH],
                    )?,
                };
                let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= SCAN_BATCH;
                for row in &rows {
                    let user = user_from_row(row)?;
                    after = Some((user.user_name.clone(), user.id.clone()));
                    if !visit(user) {
                        return Ok(());
                    }
                }
                if !full {
                    return Ok(());
                }
            }
        })
    }

    fn user_groups(&self, id: &str) -> StoreResult<Vec<GroupRef>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT g.id, g.display_name FROM memberships m JOIN groups g ON g.id = m.group_id
                 WHERE m.member_id = $1 ORDER BY g.display_name",
                &[&id],
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

    fn create_group(&self, group: GroupWrite) -> StoreResult<GroupRecord> {
        self.write(|transaction| {
            let id = insert_group(transaction, &group)?;
            Ok(load_group(transaction, &id)?.ok_or_else(|| not_found("group", &id))?)
        })
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<GroupRecord> {
        self.write(|transaction| {
            let version = current_version(transaction, "groups", "group", id, expected_version)?;
            let key = rules::fold_name(&group.display_name);
            ensure_unique(
                transaction,
                "SELECT id FROM groups WHERE display_name_key = $1 AND id != $2",
                &key,
                id,
                "group",
                "displayName",
            )?;
            let previous_name: String = transaction
                .query_one("SELECT display_name FROM groups WHERE id = $1", &[&id])?
                .get(0);
            transaction.execute(
                "UPDATE groups SET display_name = $2, display_name_key = $7, external_id = $3, doc = $4,
                     version = $5, modified = $6 WHERE id = $1",
                &[
                    &id,
                    &group.display_name,
                    &group.external_id,
                    &Value::Object(group.attributes.clone()),
                    &(version + 1),
                    &Timestamp::now(),
                    &key,
                ],
            )?;
            let display_name = group.display_name.clone();
            let previous_display_name = Some(previous_name);
            let change = if previous_display_name.as_deref() == Some(display_name.as_str()) {
                ChangeKind::GroupUpdated {
                    display_name,
                    previous_display_name,
                }
            } else {
                ChangeKind::GroupRenamed {
                    display_name,
                    previous_display_name,
                }
            };
            append_change(transaction, id, change)?;
            if let Some(members) = &group.members {
                let wanted: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
                let current: HashSet<String> = member_ids(transaction, id)?.into_iter().collect();
                let stale: Vec<String> = current
                    .iter()
                    .filter(|member| !wanted.contains(member.as_str()))
                    .cloned()
                    .collect();
                // Only members new to the group are checked (existence,
                // cycles): a PATCH adding one member to a large group costs
                // one check, not one per member.
                let new: Vec<Member> = members
                    .iter()
                    .filter(|member| !current.contains(&member.id))
                    .cloned()
                    .collect();
                let removed = remove_members(transaction, id, &stale)?;
                let added = add_members(transaction, id, &new)?;
                record_membership_change(transaction, id, &added, &removed)?;
            }
            Ok(load_group(transaction, id)?.ok_or_else(|| not_found("group", id))?)
        })
    }

    fn delete_group(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        self.write(|transaction| {
            current_version(transaction, "groups", "group", id, expected_version)?;
            let members = member_ids(transaction, id)?;
            let apps: Vec<String> = transaction
                .query("SELECT app_id FROM bindings WHERE group_id = $1", &[&id])?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let name: String = transaction
                .query_one("SELECT display_name FROM groups WHERE id = $1", &[&id])?
                .get(0);
            let parents = parent_groups(transaction, id)?;
            transaction.execute("DELETE FROM memberships WHERE member_id = $1", &[&id])?;
            transaction.execute("DELETE FROM groups WHERE id = $1", &[&id])?;
            touch_users(transaction, &members)?;
            for parent in &parents {
                bump_group(transaction, parent)?;
            }
            append_change(
                transaction,
                id,
                ChangeKind::GroupDeleted {
                    display_name: name,
                    members,
                    bound_apps: apps,
                    parents,
                },
            )
        })
    }

    fn get_group(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        self.read(|transaction| load_group(transaction, id))
    }

    fn get_group_without_members(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        self.read(|transaction| group_row(transaction, id))
    }

    fn find_groups(&self, key: GroupKey, value: &str) -> StoreResult<Vec<GroupRecord>> {
        self.read(|transaction| {
            let groups = groups_found(transaction, key, value)?;
            with_all_members(transaction, groups)
        })
    }

    fn find_groups_without_members(
        &self,
        key: GroupKey,
        value: &str,
    ) -> StoreResult<Vec<GroupRecord>> {
        self.read(|transaction| groups_found(transaction, key, value))
    }

    fn list_groups(&self, page: Page) -> StoreResult<Listing<GroupRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|transaction| {
            let total: i64 = transaction
                .query_one("SELECT COUNT(*) FROM groups", &[])?
                .get(0);
            let rows = transaction.query(
                &format!(
                    "SELECT {GROUP_COLUMNS} FROM groups ORDER BY display_name, id LIMIT $1 OFFSET $2"
                ),
                &[&limit, &offset],
            )?;
            let groups = collect(rows, group_from_row)?;
            Ok(Listing {
                items: with_all_members(transaction, groups)?,
                total: to_u64(total),
            })
        })
    }

    fn scan_groups(&self, visit: &mut dyn FnMut(GroupRecord) -> bool) -> StoreResult<()> {
        // Batch after batch of one snapshot, each after the last one read;
        // the members of a batch are read together.
        self.read(|transaction| {
            let mut after: Option<(String, String)> = None;
            loop {
                let rows = match &after {
                    None => transaction.query(
                        &format!(
                            "SELECT {GROUP_COLUMNS} FROM groups ORDER BY display_name, id LIMIT $1"
                        ),
                        &[&SCAN_BATCH],
                    )?,
                    Some((display_name, id)) => transaction.query(
                        &format!(
                            "SELECT {GROUP_COLUMNS} FROM groups WHERE (display_name, id) > ($1, $2)
                             ORDER BY display_name, id LIMIT $3"
                        ),
                        &[display_name, id, &SCAN_BATCH],
                    )?,
                };
                let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= SCAN_BATCH;
                let groups = with_all_members(transaction, collect(rows, group_from_row)?)?;
                for group in groups {
                    after = Some((group.display_name.clone(), group.id.clone()));
                    if !visit(group) {
                        return Ok(());
                    }
                }
                if !full {
                    return Ok(());
                }
            }
        })
    }

    fn change_members(
        &self,
        group_id: &str,
        add: &[Member],
        remove: &[String],
    ) -> StoreResult<GroupRecord> {
        self.write(|transaction| {
            current_version(transaction, "groups", "group", group_id, None)?;
            let removed = remove_members(transaction, group_id, remove)?;
            let added = add_members(transaction, group_id, add)?;
            if !added.is_empty() || !removed.is_empty() {
                bump_group(transaction, group_id)?;
            }
            record_membership_change(transaction, group_id, &added, &removed)?;
            Ok(load_group(transaction, group_id)?.ok_or_else(|| not_found("group", group_id))?)
        })
    }

    fn import(&self, batch: ImportBatch) -> StoreResult<ImportOutcome> {
        self.write(|transaction| {
            let mut outcome = ImportOutcome::default();
            for user in &batch.users {
                match find_user_id(transaction, &user.user_name)? {
                    Some(id) => {
                        let merged = merge_import(transaction, &id, user)?;
                        update_user(transaction, &id, &merged, None)?;
                        outcome.users_updated += 1;
                    }
                    None => {
                        insert_user(transaction, user)?;
                        outcome.users_created += 1;
                    }
                }
            }
            for group in &batch.groups {
                let id = match find_group_id(transaction, &group.display_name)? {
                    Some(id) => id,
                    None => {
                        outcome.groups_created += 1;
                        insert_group(
                            transaction,
                            &rules::imported_group(&group.display_name),
                        )?
                    }
                };
                let mut members = Vec::with_capacity(group.member_user_names.len());
                for user_name in &group.member_user_names {
                    let user_id = find_user_id(transaction, user_name)?.ok_or_else(|| {
                        StoreError::InvalidMembership(format!(
                            "group {:?} names member {user_name:?}, who is not a user of the directory",
                            group.display_name
                        ))
                    })?;
                    members.push(Member {
                        id: user_id,
                        kind: MemberKind::User,
                    });
                }
                let added = add_members(transaction, &id, &members)?;
                if !added.is_empty() {
                    bump_group(transaction, &id)?;
                }
                outcome.memberships_added += added.len() as u64;
                record_membership_change(transaction, &id, &added, &[])?;
            }
            Ok(outcome)
        })
    }

    fn users_of(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        self.read(|transaction| {
            // The users among `ids`, then the users of every group reached
            // down from the others. A BTreeSet gives id order as Rust (and
            // SQLite) compare, whatever the database's collation.
            let rows = transaction.query(
                "WITH RECURSIVE down(group_id) AS (
                     SELECT given.id FROM unnest($1::text[]) AS given(id)
                     WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = given.id)
                     UNION
                     SELECT m.member_id FROM down JOIN memberships m ON m.group_id = down.group_id
                     WHERE m.member_kind = 'Group'
                 )
                 SELECT id FROM users WHERE id = ANY($1)
                 UNION
                 SELECT m.member_id FROM down JOIN memberships m ON m.group_id = down.group_id
                 WHERE m.member_kind = 'User'",
                &[&ids],
            )?;
            let users: BTreeSet<String> = rows.iter().map(|row| row.get(0)).collect();
            Ok(users.into_iter().collect())
        })
    }
}
