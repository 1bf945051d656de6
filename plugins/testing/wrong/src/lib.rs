//! A connector that builds, loads and passes `plugin check`, yet is wrong
//! twice, the way real connectors go wrong:
//! - its mapping swaps the given and the family name;
//! - its rule for a user removed from a group asks to delete the whole
//!   group (the host never does that for one member's removal) and keeps
//!   the removed user's account active, although the user has no access.
//!
//! `scimlink plugin test` must fail it at `create` and at
//! `group-membership`, saying why.

use scimlink_sdk::prelude::*;

struct Wrong;

impl Connector for Wrong {
    fn manifest() -> Manifest {
        Manifest::new("wrong", env!("CARGO_PKG_VERSION"))
            .description("A wrong mapping and a wrong group rule")
    }

    fn map_user(user: &DirectoryUser, _settings: &Settings) -> Result<ScimJson, MappingError> {
        let email = defaults::primary_email(user)
            .map(|email| json!([{ "value": email, "type": "work", "primary": true }]));
        Ok(ScimResource::user()
            .set("userName", user.username.as_str())
            .set("active", defaults::is_active(user))
            .set_opt("name.givenName", user.last_name.as_deref())
            .set_opt("name.familyName", user.first_name.as_deref())
            .set_opt("emails", email)
            .build()
            .into())
    }

    fn on_group_event(facts: &GroupEventFacts, _settings: &Settings) -> GroupDecision {
        match facts.event {
            GroupEvent::UserRemovedFromGroup => GroupDecision {
                group: GroupAction::DeleteGroup,
                members: defaults::keep_all(facts),
                rule: "delete-group-keep-accounts".to_owned(),
            },
            _ => defaults::group_rule(facts, Offboarding::Deactivate),
        }
    }
}

scimlink_sdk::export_connector!(Wrong);
