//! Scope: which groups are bound to an application and which users are
//! assigned to it directly, and the questions the engine asks of them.
//!
//! A user is in an application's scope when it is assigned directly or is
//! a member, directly or through nested groups, of a bound group. Binding,
//! unbinding, assigning and unassigning append their [`Change`] in the same
//! transaction; doing one twice is doing it once (and appends nothing).

use super::*;

pub trait ScopeStore: Send + Sync {
    fn bind(&self, app: &str, group_id: &str) -> StoreResult<()>;
    fn unbind(&self, app: &str, group_id: &str) -> StoreResult<()>;
    fn bindings(&self, app: &str) -> StoreResult<Vec<GroupRef>>;
    /// Assigns a user to the application directly (in scope without a
    /// bound group). Assigning twice is assigning once.
    fn assign(&self, app: &str, user_id: &str) -> StoreResult<()>;
    fn unassign(&self, app: &str, user_id: &str) -> StoreResult<()>;
    /// Ids of the users assigned directly, in id order.
    fn assignments(&self, app: &str) -> StoreResult<Vec<String>>;
    /// Ids of the users in the application's scope — members, directly or
    /// through nested groups, of a group bound to it, and users assigned to
    /// it directly — in id order.
    fn users_in_scope(&self, app: &str) -> StoreResult<Vec<String>>;
    /// Whether the user is in the application's scope: assigned to it
    /// directly, or a member, directly or through nested groups, of a group
    /// bound to it.
    fn user_in_scope(&self, app_id: &str, user_id: &str) -> StoreResult<bool>;
    /// Those of `user_ids` in the application's scope, as
    /// [`ScopeStore::user_in_scope`] decides each, in no particular order:
    /// one read for many, where a backend can (this one asks of each in
    /// turn).
    fn users_in_scope_among(&self, app_id: &str, user_ids: &[String]) -> StoreResult<Vec<String>> {
        let mut in_scope = Vec::new();
        for user_id in user_ids {
            if self.user_in_scope(app_id, user_id)? {
                in_scope.push(user_id.clone());
            }
        }
        Ok(in_scope)
    }
    /// The groups bound to the application that hold `member_id` (a user or
    /// a group) directly or through nested groups — `member_id` itself when
    /// it is a bound group — in id order.
    fn bound_groups_containing(&self, app_id: &str, member_id: &str) -> StoreResult<Vec<String>>;
    /// How far the application's accounts cover its scope, counted by the
    /// store in one read (an operator's page asks every few seconds; no row
    /// is loaded).
    fn scope_tally(&self, app_id: &str) -> StoreResult<ScopeTally>;
}

/// An application's scope and accounts, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeTally {
    pub users_in_scope: u64,
    /// Users in scope with a linked account.
    pub users_linked: u64,
    /// Linked user accounts, in scope or not.
    pub accounts: u64,
    /// Linked user accounts that are deactivated.
    pub accounts_deactivated: u64,
    /// Groups pushed to the application.
    pub groups: u64,
}
