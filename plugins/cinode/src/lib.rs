//! The Cinode connector: users and groups, the attribute table of Cinode's
//! help page, and its group-management rules (see README.md).
//!
//! The rules are the SDK's generic ones, which are Cinode's word for word:
//! empty groups are not created, a group of the same name is taken over,
//! renames are followed, an unbound group is left as it is and its members
//! deactivated unless another managed group keeps them, a deleted group is
//! deleted and its members deactivated under the same exception, and
//! disabling group management leaves groups and memberships as they are.

use scimlink_sdk::prelude::*;

pub struct Cinode;

/// The tenant endpoint. Without a tenant, an operator gives the
/// non-tenant endpoint as the base URL: [`NON_TENANT_BASE_URL`].
pub const BASE_URL: &str = "https://api.cinode.com/scim/tenants/{tenantId}/v2";
pub const NON_TENANT_BASE_URL: &str = "https://api.cinode.com/scim/v2";

impl Connector for Cinode {
    fn manifest() -> Manifest {
        Manifest::new("cinode", env!("CARGO_PKG_VERSION"))
            .description("Cinode: users and groups, with Cinode's group-management rules")
            .base_url(BASE_URL)
            .setting(
                "tenantId",
                "Cinode tenant id, for the tenant endpoint; without it, give --base-url https://api.cinode.com/scim/v2",
                false,
            )
            .groups(true)
            .offboarding(Offboarding::Deactivate)
            .required_attributes(&[
                "username",
                "employee-identifier",
                "first-name",
                "last-name",
                "job-title",
                "addresses",
                "location",
            ])
    }

    fn map_user(user: &DirectoryUser, _settings: &Settings) -> Result<ScimJson, MappingError> {
        let address = work_city(user).map(|city| {
            json!([{ "type": "work", "locality": city, "formatted": city, "primary": true }])
        });
        Ok(ScimResource::user()
            .set("userName", user.username.as_str())
            .set("active", defaults::is_active(user))
            .set_opt("externalId", user.employee_identifier.as_deref())
            .set_opt("name.givenName", user.first_name.as_deref())
            .set_opt("name.familyName", user.last_name.as_deref())
            .set_opt("title", user.job_title.as_deref())
            .set_opt("addresses", address)
            .build()
            .into())
    }

    /// Takeover by userName, then by the employee id Cinode holds as
    /// externalId. Not by email: Cinode is sent no email, so a match on one
    /// would be a match on data the directory does not manage there.
    fn lookup_filters(user: &DirectoryUser, _settings: &Settings) -> Vec<String> {
        let mut filters = vec![scim::filter_eq("userName", &user.username)];
        if let Some(id) = user
            .employee_identifier
            .as_deref()
            .filter(|id| !id.trim().is_empty())
        {
            filters.push(scim::filter_eq("externalId", id));
        }
        filters
    }
}

/// The work city: the work address's locality, else the user's location.
pub fn work_city(user: &DirectoryUser) -> Option<&str> {
    user.addresses
        .iter()
        .find(|address| address.kind.as_deref() == Some("work"))
        .and_then(|address| address.locality.as_deref())
        .or(user.location.as_deref())
        .filter(|city| !city.trim().is_empty())
}

scimlink_sdk::export_connector!(Cinode);

#[cfg(test)]
mod tests {
    use super::*;
    use scimlink_sdk::MemberFacts;

    #[test]
    fn maps_the_attribute_table() {
        let user = defaults::sample_user();
        let document = Cinode::map_user(&user, &Settings::default())
            .unwrap()
            .value();
        assert_eq!(document["userName"], "ada.lovelace");
        assert_eq!(document["active"], true);
        assert_eq!(document["externalId"], "E-1815");
        assert_eq!(
            document["name"],
            json!({ "givenName": "Ada", "familyName": "Lovelace" })
        );
        assert_eq!(document["title"], "Mathematician");
        assert_eq!(document["addresses"][0]["formatted"], "London");
        assert_eq!(document["addresses"][0]["locality"], "London");
        assert!(document.get("emails").is_none() && document.get("phoneNumbers").is_none());
    }

    #[test]
    fn missing_attributes_are_left_out() {
        let mut user = defaults::sample_user();
        user.employee_identifier = None;
        user.job_title = None;
        user.addresses.clear();
        user.location = None;
        let document = Cinode::map_user(&user, &Settings::default())
            .unwrap()
            .value();
        for absent in ["externalId", "title", "addresses"] {
            assert!(document.get(absent).is_none(), "{absent}: {document}");
        }
        assert_eq!(
            Cinode::lookup_filters(&user, &Settings::default()),
            [r#"userName eq "ada.lovelace""#]
        );
    }

    #[test]
    fn takeover_is_by_username_then_employee_id() {
        let user = defaults::sample_user();
        assert_eq!(
            Cinode::lookup_filters(&user, &Settings::default()),
            [r#"userName eq "ada.lovelace""#, r#"externalId eq "E-1815""#]
        );
    }

    fn facts(event: GroupEvent, others: &[&str], managed: bool) -> GroupEventFacts {
        GroupEventFacts {
            event,
            group: DirectoryGroup {
                id: "g1".into(),
                name: "Consultants".into(),
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
                    other_managed_groups: others.iter().map(|g| (*g).to_owned()).collect(),
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
    fn the_group_management_considerations_of_the_help_page() {
        let settings = Settings::default();
        // Unbinding: syncing stops, the group is left as-is, members are
        // deactivated unless another managed group keeps them.
        let unbound =
            Cinode::on_group_event(&facts(GroupEvent::GroupUnbound, &["g2"], true), &settings);
        assert_eq!(unbound.group, GroupAction::LeaveAsIs);
        assert_eq!(
            actions(&unbound),
            [AccountAction::Deactivate, AccountAction::Keep]
        );
        // Deletion: deleted in Cinode, members deactivated under the same exception.
        let deleted =
            Cinode::on_group_event(&facts(GroupEvent::GroupDeleted, &["g2"], true), &settings);
        assert_eq!(deleted.group, GroupAction::DeleteGroup);
        assert_eq!(
            actions(&deleted),
            [AccountAction::Deactivate, AccountAction::Keep]
        );
        // Disabling group management: groups, memberships and identities stay.
        let disabled = Cinode::on_group_event(
            &facts(GroupEvent::GroupManagementDisabled, &[], false),
            &settings,
        );
        assert_eq!(disabled.group, GroupAction::LeaveAsIs);
        assert_eq!(
            actions(&disabled),
            [AccountAction::Keep, AccountAction::Keep]
        );
        // A user removed from a group leaves it, deactivated unless kept.
        let removed = Cinode::on_group_event(
            &facts(GroupEvent::UserRemovedFromGroup, &["g2"], true),
            &settings,
        );
        assert_eq!(removed.group, GroupAction::RemoveMembers);
        assert_eq!(
            actions(&removed),
            [AccountAction::Deactivate, AccountAction::Keep]
        );
    }

    #[test]
    fn groups_carry_their_name() {
        let group = DirectoryGroup {
            id: "g1".into(),
            name: "Konsulter Göteborg".into(),
            description: None,
        };
        let document = Cinode::map_group(&group, &Settings::default())
            .unwrap()
            .value();
        assert_eq!(document["displayName"], "Konsulter Göteborg");
        assert!(Cinode::manifest().capabilities.groups);
    }
}
