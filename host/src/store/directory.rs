//! The directory: users, groups and group membership.
//!
//! Invariants: `userName` and group `displayName` are unique without regard
//! to case (compared in [`fold_name`]'s form); membership never references a
//! missing user or group and never forms a cycle, and a write that would is
//! refused whole with [`StoreError::InvalidMembership`]; every write bumps
//! the version of what it changed (a membership change bumps the member
//! user's too: `groups` is part of the user) and appends its [`Change`] in
//! the same transaction.

use super::*;

/// A user of the directory: its SCIM attributes and bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// SCIM attributes (core and extensions) without `id`, `meta`, `groups`.
    pub attributes: Map<String, Value>,
    pub version: i64,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// What a caller writes for a user. `userName`, `externalId` and `active`
/// are read from `attributes`; the store indexes them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrite {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub attributes: Map<String, Value>,
    /// A password the write sets, sealed in the same transaction (see
    /// [`PasswordStore`]); `None` leaves the user's password as it is.
    pub password: Option<Secret>,
}

/// What kind of object a group member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "User" => Some(MemberKind::User),
            "Group" => Some(MemberKind::Group),
            _ => None,
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub id: String,
    pub kind: MemberKind,
}

/// A member as the store can describe it to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub kind: MemberKind,
    /// userName of a user, displayName of a group.
    pub display: String,
}

/// A group of the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// SCIM attributes without `id`, `meta`, `members`.
    pub attributes: Map<String, Value>,
    pub members: Vec<MemberView>,
    pub version: i64,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// What a caller writes for a group. `members: None` leaves membership as
/// it is; `Some` replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub members: Option<Vec<Member>>,
}

/// A group as a user's `groups` attribute shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display_name: String,
}

/// Indexed keys a user can be found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey {
    Id,
    UserName,
    ExternalId,
}

/// Indexed keys a group can be found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKey {
    Id,
    DisplayName,
    ExternalId,
}

/// Users and groups written together by an import.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// Matched on userName: an existing user keeps what the import does not
    /// name (and its `active` status unless `attributes` holds `active`); a
    /// new one is created.
    pub users: Vec<UserWrite>,
    /// Matched on displayName; members are userNames, added to what the
    /// group already holds.
    pub groups: Vec<ImportGroup>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportGroup {
    pub display_name: String,
    pub member_user_names: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    pub users_created: u64,
    pub users_updated: u64,
    pub groups_created: u64,
    pub memberships_added: u64,
}

pub trait DirectoryStore: Send + Sync {
    fn create_user(&self, user: UserWrite) -> StoreResult<UserRecord>;
    /// Replaces a user's attributes; with `expected_version`, only if the
    /// user is still at that version.
    fn replace_user(
        &self,
        id: &str,
        user: UserWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<UserRecord>;
    /// Deletes a user and its memberships.
    fn delete_user(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()>;
    fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// The users of `ids` that exist, in no particular order: one read for
    /// many, where a backend can (this one reads each in turn).
    fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            users.extend(self.get_user(id)?);
        }
        Ok(users)
    }
    /// Users whose key equals `value` (userName without regard to case).
    fn find_users(&self, key: UserKey, value: &str) -> StoreResult<Vec<UserRecord>>;
    /// Users ordered by userName.
    fn list_users(&self, page: Page) -> StoreResult<Listing<UserRecord>>;
    /// Every user, in userName order, until `visit` returns false.
    fn scan_users(&self, visit: &mut dyn FnMut(UserRecord) -> bool) -> StoreResult<()>;
    /// The groups a user is a direct member of.
    fn user_groups(&self, id: &str) -> StoreResult<Vec<GroupRef>>;

    // Groups.
    fn create_group(&self, group: GroupWrite) -> StoreResult<GroupRecord>;
    fn replace_group(
        &self,
        id: &str,
        group: GroupWrite,
        expected_version: Option<i64>,
    ) -> StoreResult<GroupRecord>;
    fn delete_group(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()>;
    fn get_group(&self, id: &str) -> StoreResult<Option<GroupRecord>>;
    /// The group as [`Self::get_group`] gives it, but with `members` left
    /// empty: one row, for a caller that needs only the group's name and
    /// attributes. Listing the members costs a look-up of each one's name,
    /// which a sync, reading its members' accounts by their ids, has no
    /// use for.
    fn get_group_without_members(&self, id: &str) -> StoreResult<Option<GroupRecord>>;
    fn find_groups(&self, key: GroupKey, value: &str) -> StoreResult<Vec<GroupRecord>>;
    /// The groups [`Self::find_groups`] finds, with `members` left empty,
    /// as [`Self::get_group_without_members`] gives them.
    fn find_groups_without_members(
        &self,
        key: GroupKey,
        value: &str,
    ) -> StoreResult<Vec<GroupRecord>>;
    /// Groups ordered by displayName.
    fn list_groups(&self, page: Page) -> StoreResult<Listing<GroupRecord>>;
    fn scan_groups(&self, visit: &mut dyn FnMut(GroupRecord) -> bool) -> StoreResult<()>;
    /// Adds members (already present ones are left alone) and removes
    /// members (absent ones are ignored) in one transaction.
    fn change_members(
        &self,
        group_id: &str,
        add: &[Member],
        remove: &[String],
    ) -> StoreResult<GroupRecord>;

    // Bulk.
    fn import(&self, batch: ImportBatch) -> StoreResult<ImportOutcome>;

    /// The users among `ids`, and the users of the groups among them
    /// (through nested groups), in id order.
    fn users_of(&self, ids: &[String]) -> StoreResult<Vec<String>>;
}

/// A user by id, else by userName (case-insensitively, as the store folds
/// names): how operators name users.
pub fn user_by_id_or_name<S: DirectoryStore + ?Sized>(
    store: &S,
    key: &str,
) -> StoreResult<UserRecord> {
    if let Some(user) = store.get_user(key)? {
        return Ok(user);
    }
    store
        .find_users(UserKey::UserName, key)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound {
            entity: "user",
            key: key.to_string(),
        })
}

/// The id of the group `key` names, its id or else its displayName, found
/// without listing its members: for a caller that needs to know which
/// group, not who is in it (binding it, adding a member to it), so that
/// the size of the group does not make it slower.
pub fn group_id_by_id_or_name<S: DirectoryStore + ?Sized>(
    store: &S,
    key: &str,
) -> StoreResult<String> {
    if let Some(group) = store.get_group_without_members(key)? {
        return Ok(group.id);
    }
    store
        .find_groups_without_members(GroupKey::DisplayName, key)?
        .into_iter()
        .next()
        .map(|group| group.id)
        .ok_or_else(|| StoreError::NotFound {
            entity: "group",
            key: key.to_string(),
        })
}

/// A group by id, else by display name: how operators name groups.
pub fn group_by_id_or_name<S: DirectoryStore + ?Sized>(
    store: &S,
    key: &str,
) -> StoreResult<GroupRecord> {
    if let Some(group) = store.get_group(key)? {
        return Ok(group);
    }
    store
        .find_groups(GroupKey::DisplayName, key)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound {
            entity: "group",
            key: key.to_string(),
        })
}
