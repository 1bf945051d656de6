//! The Swimlane Turbine connector (see README.md): users only through
//! groups, the email as the unique key, and accounts deleted when their
//! last provisioned group no longer holds them.
//!
//! The group rules are the SDK's generic ones with deletion as the
//! offboarding, which is Swimlane's page: a user removed from their last
//! group is removed from Swimlane; a deleted group is deleted with its
//! associations and its users deleted unless another provisioned group
//! holds them; an unbound group stays and the users only it held are
//! deleted; disabling group management leaves everything as it is.

use scimlink_sdk::prelude::*;

pub struct SwimlaneTurbine;

impl Connector for SwimlaneTurbine {
    fn manifest() -> Manifest {
        Manifest::new("swimlane-turbine", env!("CARGO_PKG_VERSION"))
            .description("Swimlane Turbine: users through groups only, email as the key")
            .groups(true)
            .direct_assignment(false)
            .offboarding(Offboarding::Delete)
            .required_attributes(&["emails", "first-name", "last-name", "display-name"])
    }

    fn map_user(user: &DirectoryUser, _settings: &Settings) -> Result<ScimJson, MappingError> {
        let email = defaults::primary_email(user).ok_or_else(|| MappingError::missing("emails"))?;
        let first = required(user.first_name.as_deref(), "first-name")?;
        let last = required(user.last_name.as_deref(), "last-name")?;
        let display = defaults::display_name(user).unwrap_or_else(|| format!("{first} {last}"));
        Ok(ScimResource::user()
            // Swimlane keys users by email: userName carries it, so the two
            // can never disagree.
            .set("userName", email)
            .set("active", defaults::is_active(user))
            .set("externalId", user.id.as_str())
            .set("name.givenName", first)
            .set("name.familyName", last)
            .set("displayName", display)
            .set(
                "emails",
                json!([{ "value": email, "type": "work", "primary": true }]),
            )
            .build()
            .into())
    }

    /// The email is the key: look it up as userName, then as an email.
    fn lookup_filters(user: &DirectoryUser, _settings: &Settings) -> Vec<String> {
        match defaults::primary_email(user) {
            Some(email) => vec![
                scim::filter_eq("userName", email),
                scim::filter_eq("emails.value", email),
            ],
            None => Vec::new(),
        }
    }

    fn on_group_event(facts: &GroupEventFacts, _settings: &Settings) -> GroupDecision {
        defaults::group_rule(facts, Offboarding::Delete)
    }
}

fn required<'a>(value: Option<&'a str>, attribute: &str) -> Result<&'a str, MappingError> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| MappingError::missing(attribute))
}

scimlink_sdk::export_connector!(SwimlaneTurbine);

#[cfg(test)]
mod tests {
    use super::*;
    use scimlink_sdk::MemberFacts;

    #[test]
    fn the_email_is_the_username_and_the_required_fields_are_sent() {
        let document = SwimlaneTurbine::map_user(&defaults::sample_user(), &Settings::default())
            .unwrap()
            .value();
        assert_eq!(document["userName"], "ada@example.com");
        assert_eq!(document["emails"][0]["value"], "ada@example.com");
        assert_eq!(
            document["name"],
            json!({ "givenName": "Ada", "familyName": "Lovelace" })
        );
        assert_eq!(document["displayName"], "Ada Lovelace");
        assert!(document.get("roles").is_none() && document.get("title").is_none());
    }

    #[test]
    fn a_missing_display_name_is_built_from_first_and_last_name() {
        let mut user = defaults::sample_user();
        user.display_name = None;
        user.first_name = Some("Zoë".into());
        let document = SwimlaneTurbine::map_user(&user, &Settings::default())
            .unwrap()
            .value();
        assert_eq!(document["displayName"], "Zoë Lovelace");
    }

    #[test]
    fn a_user_without_email_or_names_is_refused_with_the_attribute_named() {
        let mut user = defaults::sample_user();
        user.emails.clear();
        let error = SwimlaneTurbine::map_user(&user, &Settings::default()).unwrap_err();
        assert_eq!(error.attribute.as_deref(), Some("emails"));
        assert!(SwimlaneTurbine::lookup_filters(&user, &Settings::default()).is_empty());
        let mut user = defaults::sample_user();
        user.last_name = Some("  ".into());
        let error = SwimlaneTurbine::map_user(&user, &Settings::default()).unwrap_err();
        assert_eq!(error.attribute.as_deref(), Some("last-name"));
    }

    fn facts(event: GroupEvent, managed: bool) -> GroupEventFacts {
        GroupEventFacts {
            event,
            group: DirectoryGroup {
                id: "g1".into(),
                name: "Analysts".into(),
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

    fn actions(decision: &GroupDecision) -> Vec<AccountAction> {
        decision.members.iter().map(|m| m.action).collect()
    }

    #[test]
    fn users_leave_with_their_last_group() {
        let settings = Settings::default();
        let removed = SwimlaneTurbine::on_group_event(
            &facts(GroupEvent::UserRemovedFromGroup, true),
            &settings,
        );
        assert_eq!(removed.group, GroupAction::RemoveMembers);
        assert_eq!(
            actions(&removed),
            [AccountAction::Delete, AccountAction::Keep]
        );
        let deleted =
            SwimlaneTurbine::on_group_event(&facts(GroupEvent::GroupDeleted, true), &settings);
        assert_eq!(deleted.group, GroupAction::DeleteGroup);
        assert_eq!(
            actions(&deleted),
            [AccountAction::Delete, AccountAction::Keep]
        );
        let unbound =
            SwimlaneTurbine::on_group_event(&facts(GroupEvent::GroupUnbound, true), &settings);
        assert_eq!(unbound.group, GroupAction::LeaveAsIs);
        assert_eq!(
            actions(&unbound),
            [AccountAction::Delete, AccountAction::Keep]
        );
        let disabled = SwimlaneTurbine::on_group_event(
            &facts(GroupEvent::GroupManagementDisabled, false),
            &settings,
        );
        assert_eq!(disabled.group, GroupAction::LeaveAsIs);
        assert_eq!(
            actions(&disabled),
            [AccountAction::Keep, AccountAction::Keep]
        );
    }

    #[test]
    fn users_come_only_through_groups() {
        let manifest = SwimlaneTurbine::manifest();
        assert!(!manifest.capabilities.direct_assignment);
        assert_eq!(manifest.capabilities.offboarding, Offboarding::Delete);
    }
}
