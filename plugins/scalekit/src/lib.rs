//! The Scalekit connector: users and groups, groups being how users are
//! assigned (see README.md).
//!
//! Scalekit's rule differs from the generic one in one place: when a group
//! is unbound, the host sends Scalekit a group update that removes every
//! member — the users are unassigned — and the group itself stays there.

use scimlink_sdk::prelude::*;

pub struct Scalekit;

impl Connector for Scalekit {
    fn manifest() -> Manifest {
        Manifest::new("scalekit", env!("CARGO_PKG_VERSION"))
            .description("Scalekit directory sync: users assigned through groups")
            .groups(true)
            .direct_assignment(false)
            .offboarding(Offboarding::Deactivate)
    }

    fn on_group_event(facts: &GroupEventFacts, _settings: &Settings) -> GroupDecision {
        let generic = defaults::group_rule(facts, Offboarding::Deactivate);
        match facts.event {
            GroupEvent::GroupUnbound if facts.group_management => GroupDecision {
                group: GroupAction::ClearMembers,
                rule: "unbind-unassign-all-members-keep-group".to_owned(),
                ..generic
            },
            _ => generic,
        }
    }
}

scimlink_sdk::export_connector!(Scalekit);

#[cfg(test)]
mod tests {
    use super::*;
    use scimlink_sdk::MemberFacts;

    fn facts(event: GroupEvent, managed: bool) -> GroupEventFacts {
        GroupEventFacts {
            event,
            group: DirectoryGroup {
                id: "g1".into(),
                name: "YourApp Users".into(),
                description: None,
            },
            members: vec![
                MemberFacts {
                    user_id: "only-here".into(),
                    other_managed_groups: Vec::new(),
                    directly_assigned: false,
                },
                MemberFacts {
                    user_id: "elsewhere".into(),
                    other_managed_groups: vec!["g2".into()],
                    directly_assigned: false,
                },
            ],
            group_management: managed,
        }
    }

    #[test]
    fn unbinding_unassigns_every_member_and_keeps_the_group() {
        let decision =
            Scalekit::on_group_event(&facts(GroupEvent::GroupUnbound, true), &Settings::default());
        assert_eq!(decision.group, GroupAction::ClearMembers);
        let actions: Vec<AccountAction> = decision.members.iter().map(|m| m.action).collect();
        assert_eq!(actions, [AccountAction::Deactivate, AccountAction::Keep]);
    }

    #[test]
    fn the_other_events_follow_the_generic_rules() {
        let settings = Settings::default();
        let deleted = Scalekit::on_group_event(&facts(GroupEvent::GroupDeleted, true), &settings);
        assert_eq!(deleted.group, GroupAction::DeleteGroup);
        let disabled = Scalekit::on_group_event(
            &facts(GroupEvent::GroupManagementDisabled, false),
            &settings,
        );
        assert_eq!(disabled.group, GroupAction::LeaveAsIs);
        // Without group management there is no remote group to empty.
        let unbound = Scalekit::on_group_event(&facts(GroupEvent::GroupUnbound, false), &settings);
        assert_eq!(unbound.group, GroupAction::LeaveAsIs);
    }

    #[test]
    fn users_are_assigned_through_groups_only() {
        let manifest = Scalekit::manifest();
        assert!(manifest.capabilities.groups);
        assert!(!manifest.capabilities.direct_assignment);
        let document = Scalekit::map_user(&defaults::sample_user(), &Settings::default())
            .unwrap()
            .value();
        assert_eq!(document["userName"], "ada.lovelace");
    }
}
