//! The group-management rules of a generic SCIM application, which most
//! connectors use as they are (Cinode's help page states them word for
//! word) or with their own offboarding: what happens to the remote group
//! and to each member's account when a user leaves a managed group, a
//! group is unbound or deleted, or group management is turned off.
//!
//! The invariant every rule here keeps: a member that another managed group
//! or a direct assignment keeps in scope keeps their account.

use crate::{
    AccountAction, GroupAction, GroupDecision, GroupEvent, GroupEventFacts, MemberDecision,
    Offboarding,
};

/// The group-management rules of a generic SCIM application:
///
/// - a user removed from a group is removed from the remote group; their
///   account is offboarded unless another managed group (or a direct
///   assignment) keeps them in scope;
/// - an unbound group is left as it is in the application; its members are
///   offboarded under the same exception;
/// - a deleted group is deleted in the application; its members are
///   offboarded under the same exception;
/// - disabling group management leaves groups and memberships as they are
///   and every account as it is.
///
/// "Offboarded" is `offboarding`: deactivate or delete.
pub fn group_rule(facts: &GroupEventFacts, offboarding: Offboarding) -> GroupDecision {
    let offboard = match offboarding {
        Offboarding::Deactivate => AccountAction::Deactivate,
        Offboarding::Delete => AccountAction::Delete,
    };
    let (group, rule) = match facts.event {
        GroupEvent::UserRemovedFromGroup if facts.group_management => (
            GroupAction::RemoveMembers,
            "remove-member-offboard-unless-other-group",
        ),
        GroupEvent::UserRemovedFromGroup => (GroupAction::LeaveAsIs, "offboard-unless-other-group"),
        GroupEvent::GroupUnbound => (
            GroupAction::LeaveAsIs,
            "unbind-leave-group-offboard-unless-other-group",
        ),
        GroupEvent::GroupDeleted if facts.group_management => (
            GroupAction::DeleteGroup,
            "delete-group-offboard-unless-other-group",
        ),
        GroupEvent::GroupDeleted => (GroupAction::LeaveAsIs, "offboard-unless-other-group"),
        GroupEvent::GroupManagementDisabled => {
            return GroupDecision {
                group: GroupAction::LeaveAsIs,
                members: keep_all(facts),
                rule: "group-management-disabled-leave-as-is".to_owned(),
            };
        }
    };
    GroupDecision {
        group,
        members: offboard_unless_in_scope(facts, offboard),
        rule: rule.to_owned(),
    }
}

/// Every member keeps their account.
pub fn keep_all(facts: &GroupEventFacts) -> Vec<MemberDecision> {
    facts
        .members
        .iter()
        .map(|m| MemberDecision {
            user_id: m.user_id.clone(),
            action: AccountAction::Keep,
        })
        .collect()
}

/// `action` for each member no other managed group or direct assignment
/// keeps in scope; keep for the others.
pub fn offboard_unless_in_scope(
    facts: &GroupEventFacts,
    action: AccountAction,
) -> Vec<MemberDecision> {
    facts
        .members
        .iter()
        .map(|m| MemberDecision {
            user_id: m.user_id.clone(),
            action: if m.other_managed_groups.is_empty() && !m.directly_assigned {
                action
            } else {
                AccountAction::Keep
            },
        })
        .collect()
}
