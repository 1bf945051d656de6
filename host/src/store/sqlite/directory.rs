//! [`DirectoryStore`] in SQLite: users, groups and memberships tables;
//! uniqueness through the `*_key` columns holding the folded name.

use super::*;

/// The users whose ids the JSON array `?1` holds, each looked up by the
/// primary key (a test checks the plan).
fn users_by_id() -> String {
    format!("SELECT {USER_COLUMNS} FROM users WHERE id IN (SELECT value FROM json_each(?1))")
}

pub(super) fn user_from_row(row: &Row<'_>) -> RowResult<UserRecord> {
    let doc: String = row.get(4)?;
    let (id, user_name, external_id, active) = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let (version, created, modified) = (row.get(5)?, row.get(6)?, row.get(7)?);
    Ok(parse_doc(&doc).map(|attributes| UserRecord {
        id,
        user_name,
        external_id,
        active,
        attributes,
        version,
        created,
        modified,
    }))
}

pub(super) fn group_from_row(row: &Row<'_>) -> RowResult<GroupRecord> {
    let doc: String = row.get(3)?;
    let (id, display_name, external_id) = (row.get(0)?, row.get(1)?, row.get(2)?);
    let (version, created, modified) = (row.get(4)?, row.get(5)?, row.get(6)?);
    Ok(parse_doc(&doc).map(|attributes| GroupRecord {
        id,
        display_name,
        external_id,
        attributes,
        members: Vec::new(),
        version,
        created,
        modified,
    }))
}

/// The group's own row, its `members` left empty.
pub(super) fn group_row(connection: &Connection, id: &str) -> StoreResult<Option<GroupRecord>> {
    let group = connection
        .prepare_cached(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1"))?
        .query_row([id], group_from_row)
        .optional()?;
    group.transpose()
}

pub(super) fn with_members(
    connection: &Connection,
    mut group: GroupRecord,
) -> StoreResult<GroupRecord> {
    let mut statement = connection.prepare_cached(
        "SELECT m.member_id, m.member_kind, COALESCE(u.user_name, g.display_name, '')
         FROM memberships m
         LEFT JOIN users u ON m.member_kind = 'User' AND u.id = m.member_id
         LEFT JOIN groups g ON m.member_kind = 'Group' AND g.id = m.member_id
         WHERE m.group_id = ?1 ORDER BY m.member_kind DESC, 3",
    )?;
    let rows = statement.query_map([&group.id], |row| {
        let kind: String = row.get(1)?;
        Ok(MemberView {
            id: row.get(0)?,
            kind: MemberKind::parse(&kind).unwrap_or(MemberKind::User),
            display: row.get(2)?,
        })
    })?;
    group.members = rows.collect::<Result<_, _>>()?;
    Ok(group)
}

pub(super) fn insert_user(transaction: &Connection, user: &UserWrite) -> StoreResult<UserRecord> {
    ensure_unique(
        transaction,
        "SELECT id FROM users WHERE user_name_key = ?1 AND id != ?2",
        &rules::fold_name(&user.user_name),
        "",
        "user",
        "userName",
    )?;
    let id = new_id();
    let at = Timestamp::now();
    transaction
        .prepare_cached(
            "INSERT INTO users (id, user_name, user_name_key, external_id, active, doc, version, created, modified)
             VALUES (?1, ?2, ?7, ?3, ?4, ?5, 1, ?6, ?6)",
        )?
        .execute(params![
            id,
            user.user_name,
            user.external_id,
            user.active,
            to_json(&user.attributes),
            at,
            rules::fold_name(&user.user_name)
        ])?;
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
    transaction: &Connection,
    id: &str,
    user: &UserWrite,
    expected_version: Option<i64>,
) -> StoreResult<UserRecord> {
    let version = current_version(transaction, "users", "user", id, expected_version)? + 1;
    ensure_unique(
        transaction,
        "SELECT id FROM users WHERE user_name_key = ?1 AND id != ?2",
        &rules::fold_name(&user.user_name),
        id,
        "user",
        "userName",
    )?;
    let at = Timestamp::now();
    let created: Timestamp = transaction
        .prepare_cached(
            "UPDATE users SET user_name = ?2, user_name_key = ?8, external_id = ?3, active = ?4, doc = ?5,
                 version = ?6, modified = ?7
             WHERE id = ?1 RETURNING created",
        )?
        .query_row(
            params![
                id,
                user.user_name,
                user.external_id,
                user.active,
                to_json(&user.attributes),
                version,
                at,
                rules::fold_name(&user.user_name)
            ],
            |row| row.get(0),
        )?;
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
    transaction: &Connection,
    id: &str,
    user: &UserWrite,
) -> StoreResult<UserWrite> {
    let (doc, active): (String, bool) =
        transaction.query_row("SELECT doc, active FROM users WHERE id = ?1", [id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(rules::merge_imported_user(parse_doc(&doc)?, active, user))
}

/// Inserts memberships after checking that every member exists and that no
/// group would contain itself; returns the ids actually added.
pub(super) fn add_members(
    transaction: &Connection,
    group_id: &str,
    members: &[Member],
) -> StoreResult<Vec<String>> {
    let mut added = Vec::new();
    for member in members {
        let table = match member.kind {
            MemberKind::User => "users",
            MemberKind::Group => "groups",
        };
        let exists = transaction
            .prepare_cached(&format!("SELECT 1 FROM {table} WHERE id = ?1"))?
            .exists([&member.id])?;
        if !exists {
            return Err(StoreError::InvalidMembership(format!(
                "member {} is not a {} of the directory",
                member.id,
                member.kind.as_str().to_lowercase()
            )));
        }
        if member.kind == MemberKind::Group
            && rules::would_contain_itself(group_id, &member.id, |group| {
                member_groups(transaction, group)
            })?
        {
            return Err(StoreError::InvalidMembership(format!(
                "group {} cannot be a member of group {group_id}: it would contain itself",
                member.id
            )));
        }
        let inserted = transaction
            .prepare_cached(
                "INSERT OR IGNORE INTO memberships (group_id, member_id, member_kind) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![group_id, member.id, member.kind.as_str()])?;
        if inserted > 0 {
            touch_user(transaction, &member.id)?;
            added.push(member.id.clone());
        }
    }
    Ok(added)
}

/// The groups that are direct members of `group_id`.
pub(super) fn member_groups(transaction: &Connection, group_id: &str) -> StoreResult<Vec<String>> {
    let mut statement = transaction.prepare_cached(
        "SELECT member_id FROM memberships WHERE group_id = ?1 AND member_kind = 'Group'",
    )?;
    let groups = statement
        .query_map([group_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(groups)
}

pub(super) fn remove_members(
    transaction: &Connection,
    group_id: &str,
    members: &[String],
) -> StoreResult<Vec<String>> {
    let mut removed = Vec::new();
    for member in members {
        let deleted = transaction
            .prepare_cached("DELETE FROM memberships WHERE group_id = ?1 AND member_id = ?2")?
            .execute(params![group_id, member])?;
        if deleted > 0 {
            touch_user(transaction, member)?;
            removed.push(member.clone());
        }
    }
    Ok(removed)
}

/// A user's `groups` is part of the user: a membership change gives the
/// user a new version (and ETag). A group id matches no user and is a no-op.
pub(super) fn touch_user(transaction: &Connection, id: &str) -> StoreResult<()> {
    transaction
        .prepare_cached("UPDATE users SET version = version + 1, modified = ?2 WHERE id = ?1")?
        .execute(params![id, Timestamp::now()])?;
    Ok(())
}

pub(super) fn record_membership_change(
    transaction: &Connection,
    group_id: &str,
    added: &[String],
    removed: &[String],
) -> StoreResult<()> {
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

pub(super) fn bump_group(transaction: &Connection, group_id: &str) -> StoreResult<()> {
    transaction
        .prepare_cached("UPDATE groups SET version = version + 1, modified = ?2 WHERE id = ?1")?
        .execute(params![group_id, Timestamp::now()])?;
    Ok(())
}

pub(super) fn member_ids(transaction: &Connection, group_id: &str) -> StoreResult<Vec<String>> {
    let mut statement =
        transaction.prepare_cached("SELECT member_id FROM memberships WHERE group_id = ?1")?;
    let ids = statement
        .query_map([group_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

pub(super) fn find_group_id(transaction: &Connection, name: &str) -> StoreResult<Option<String>> {
    Ok(transaction
        .prepare_cached("SELECT id FROM groups WHERE display_name_key = ?1")?
        .query_row([rules::fold_name(name)], |row| row.get(0))
        .optional()?)
}

pub(super) fn insert_group(transaction: &Connection, group: &GroupWrite) -> StoreResult<String> {
    ensure_unique(
        transaction,
        "SELECT id FROM groups WHERE display_name_key = ?1 AND id != ?2",
        &rules::fold_name(&group.display_name),
        "",
        "group",
        "displayName",
    )?;
    let id = new_id();
    let at = Timestamp::now();
    transaction
        .prepare_cached(
            "INSERT INTO groups (id, display_name, display_name_key, external_id, doc, version, created, modified)
             VALUES (?1, ?2, ?6, ?3, ?4, 1, ?5, ?5)",
        )?
        .execute(params![
            id,
            group.display_name,
            group.external_id,
            to_json(&group.attributes),
            at,
            rules::fold_name(&group.display_name)
        ])?;
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

/// The rows of the groups whose `key` is `value` (a displayName compared
/// folded, as names are), members not read.
fn groups_found(
    connection: &Connection,
    key: GroupKey,
    value: &str,
) -> StoreResult<Vec<GroupRecord>> {
    let folded;
    let value = if key == GroupKey::DisplayName {
        folded = rules::fold_name(value);
        folded.as_str()
    } else {
        value
    };
    let column = match key {
        GroupKey::Id => "id",
        GroupKey::DisplayName => "display_name_key",
        GroupKey::ExternalId => "external_id",
    };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups WHERE {column} = ?1"
    ))?;
    collect(&mut statement, [value], group_from_row)
}

impl DirectoryStore for SqliteStore {
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
            let mut statement = transaction
                .prepare_cached("SELECT group_id FROM memberships WHERE member_id = ?1")?;
            let groups: Vec<String> = statement
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let user_name: String = transaction.query_row(
                "SELECT user_name FROM users WHERE id = ?1",
                [id],
                |row| row.get(0),
            )?;
            transaction.execute("DELETE FROM memberships WHERE member_id = ?1", [id])?;
            transaction.execute("DELETE FROM users WHERE id = ?1", [id])?;
            passwords::forget_passwords(transaction, id)?;
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
        self.read(|connection| {
            connection
                .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
                .query_row([id], user_from_row)
                .optional()?
                .transpose()
        })
    }

    fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        let wanted =
            serde_json::to_string(ids).map_err(|error| StoreError::Backend(error.to_string()))?;
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&users_by_id())?;
            collect(&mut statement, [wanted.as_str()], user_from_row)
        })
    }

    fn find_users(&self, key: UserKey, value: &str) -> StoreResult<Vec<UserRecord>> {
        let folded;
        let value = if key == UserKey::UserName {
            folded = rules::fold_name(value);
            folded.as_str()
        } else {
            value
        };
        let column = match key {
            UserKey::Id => "id",
            UserKey::UserName => "user_name_key",
            UserKey::ExternalId => "external_id",
        };
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {column} = ?1"
            ))?;
            collect(&mut statement, [value], user_from_row)
        })
    }

    fn list_users(&self, page: Page) -> StoreResult<Listing<UserRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|connection| {
            let total: u64 =
                connection.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY user_name, id LIMIT ?1 OFFSET ?2"
            ))?;
            let items = collect(&mut statement, params![limit, offset], user_from_row)?;
            Ok(Listing { items, total })
        })
    }

    fn scan_users(&self, visit: &mut dyn FnMut(UserRecord) -> bool) -> StoreResult<()> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY user_name, id"
            ))?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                if !visit(user_from_row(row)??) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn user_groups(&self, id: &str) -> StoreResult<Vec<GroupRef>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT g.id, g.display_name FROM memberships m JOIN groups g ON g.id = m.group_id
                 WHERE m.member_id = ?1 ORDER BY g.display_name",
            )?;
            let groups = statement
                .query_map([id], |row| {
                    Ok(GroupRef {
                        id: row.get(0)?,
                        display_name: row.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(groups)
        })
    }

    fn create_group(&self, group: GroupWrite) -> StoreResult<GroupRecord> {
        let id = self.write(|transaction| insert_group(transaction, &group))?;
        self.get_group(&id)?.ok_or_else(|| not_found("group", &id))
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<GroupRecord> {
        self.write(|transaction| {
            let version = current_version(transaction, "groups", "group", id, expected_version)?;
            ensure_unique(
                transaction,
                "SELECT id FROM groups WHERE display_name_key = ?1 AND id != ?2",
                &rules::fold_name(&group.display_name),
                id,
                "group",
                "displayName",
            )?;
            let previous_name: String = transaction.query_row(
                "SELECT display_name FROM groups WHERE id = ?1",
                [id],
                |row| row.get(0),
            )?;
            transaction.execute(
                "UPDATE groups SET display_name = ?2, display_name_key = ?7, external_id = ?3, doc = ?4,
                     version = ?5, modified = ?6 WHERE id = ?1",
                params![
                    id,
                    group.display_name,
                    group.external_id,
                    to_json(&group.attributes),
                    version + 1,
                    Timestamp::now(),
                    rules::fold_name(&group.display_name)
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
            Ok(())
        })?;
        self.get_group(id)?.ok_or_else(|| not_found("group", id))
    }

    fn delete_group(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        self.write(|transaction| {
            current_version(transaction, "groups", "group", id, expected_version)?;
            let members = member_ids(transaction, id)?;
            let mut statement =
                transaction.prepare_cached("SELECT app_id FROM bindings WHERE group_id = ?1")?;
            let apps: Vec<String> = statement
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let name: String = transaction.query_row(
                "SELECT display_name FROM groups WHERE id = ?1",
                [id],
                |row| row.get(0),
            )?;
            let mut statement = transaction
                .prepare_cached("SELECT group_id FROM memberships WHERE member_id = ?1")?;
            let parents: Vec<String> = statement
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            transaction.execute("DELETE FROM memberships WHERE member_id = ?1", [id])?;
            transaction.execute("DELETE FROM groups WHERE id = ?1", [id])?;
            for member in &members {
                touch_user(transaction, member)?;
            }
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
        self.read(|connection| self.load_group(connection, id))
    }

    fn get_group_without_members(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        self.read(|connection| group_row(connection, id))
    }

    fn find_groups(&self, key: GroupKey, value: &str) -> StoreResult<Vec<GroupRecord>> {
        self.read(|connection| {
            groups_found(connection, key, value)?
                .into_iter()
                .map(|group| with_members(connection, group))
                .collect()
        })
    }

    fn find_groups_without_members(
        &self,
        key: GroupKey,
        value: &str,
    ) -> StoreResult<Vec<GroupRecord>> {
        self.read(|connection| groups_found(connection, key, value))
    }

    fn list_groups(&self, page: Page) -> StoreResult<Listing<GroupRecord>> {
        let (limit, offset) = page_clause(page);
        self.read(|connection| {
            let total: u64 =
                connection.query_row("SELECT COUNT(*) FROM groups", [], |row| row.get(0))?;
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups ORDER BY display_name, id LIMIT ?1 OFFSET ?2"
            ))?;
            let items = collect(&mut statement, params![limit, offset], group_from_row)?
                .into_iter()
                .map(|group| with_members(connection, group))
                .collect::<StoreResult<_>>()?;
            Ok(Listing { items, total })
        })
    }

    fn scan_groups(&self, visit: &mut dyn FnMut(GroupRecord) -> bool) -> StoreResult<()> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups ORDER BY display_name, id"
            ))?;
            let groups = collect(&mut statement, [], group_from_row)?;
            for group in groups {
                if !visit(with_members(connection, group)?) {
                    break;
                }
            }
            Ok(())
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
            record_membership_change(transaction, group_id, &added, &removed)
        })?;
        self.get_group(group_id)?
            .ok_or_else(|| not_found("group", group_id))
    }

    fn import(&self, batch: ImportBatch) -> StoreResult<ImportOutcome> {
        self.write(|transaction| {
            let mut outcome = ImportOutcome::default();
            for user in &batch.users {
                let existing: Option<String> = transaction
                    .prepare_cached("SELECT id FROM users WHERE user_name_key = ?1")?
                    .query_row([rules::fold_name(&user.user_name)], |row| row.get(0))
                    .optional()?;
                match existing {
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
                    let user_id: String = transaction
                        .prepare_cached("SELECT id FROM users WHERE user_name_key = ?1")?
                        .query_row([rules::fold_name(user_name)], |row| row.get(0))
                        .optional()?
                        .ok_or_else(|| {
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
        self.read(|connection| {
            let mut users = std::collections::BTreeSet::new();
            let mut is_user = connection.prepare_cached("SELECT 1 FROM users WHERE id = ?1")?;
            let mut nested = connection.prepare_cached(
                "WITH RECURSIVE down(group_id) AS (
                     SELECT ?1
                     UNION
                     SELECT m.member_id FROM down CROSS JOIN memberships m ON m.group_id = down.group_id
                     WHERE m.member_kind = 'Group'
                 )
                 SELECT DISTINCT m.member_id FROM down CROSS JOIN memberships m ON m.group_id = down.group_id
                 WHERE m.member_kind = 'User'",
            )?;
            for id in ids {
                if is_user.exists([id])? {
                    users.insert(id.clone());
                    continue;
                }
                for user in nested.query_map([id], |row| row.get::<_, String>(0))? {
                    users.insert(user?);
                }
            }
            Ok(users.into_iter().collect())
        })
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn plan(sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        let folder = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(folder.path(), TokenCipher::from_key(&[7; 32])).unwrap();
        let writer = store.writer.lock().unwrap();
        writer
            .connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params, |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn users_read_at_once_are_each_looked_up_by_the_primary_key() {
        let plan = plan(&users_by_id(), ["[]"]);
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH users USING INDEX") && step.contains("(id=?)")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN users")),
            "{plan:?}"
        );
    }

    #[test]
    fn scope_asked_of_many_walks_only_their_memberships() {
        let plan = plan(super::super::scope::USERS_IN_SCOPE_AMONG, ["app", "[]"]);
        // Only the ids asked about and the walk itself are scanned; every
        // table is searched by an index.
        let scanned: Vec<&String> = plan
            .iter()
            .filter(|step| step.starts_with("SCAN "))
            .filter(|step| !step.starts_with("SCAN wanted") && step.as_str() != "SCAN up")
            .collect();
        assert!(scanned.is_empty(), "{plan:?}");
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH m USING COVERING INDEX memberships_member")),
            "{plan:?}"
        );
    }
}
