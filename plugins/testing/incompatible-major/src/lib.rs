//! A component built against an incompatible major version of the contract.
//! Written against the raw bindings, as a connector built before the SDK
//! (or against another contract) would be.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use exports::scimlink::connector::connector::Guest;
use scimlink::connector::types::*;

struct Fixture;

fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

impl Guest for Fixture {
    fn describe() -> Manifest {
        Manifest {
            name: "incompatible-major".to_owned(),
            version: "1.0.0".to_owned(),
            contract_version: "1.0.0".to_owned(),
            description: String::new(),
            base_url_template: None,
            settings: Vec::new(),
            capabilities: Capabilities {
                groups: true,
                direct_assignment: true,
                offboarding: Offboarding::Deactivate,
                update_method: UpdateMethod::Patch,
                max_members_per_patch: 50,
                required_attributes: vec!["username".to_owned()],
            },
        }
    }

    fn map_user(user: DirectoryUser, _settings: Vec<Setting>) -> Result<String, MappingError> {
        if user.username == "invalid-json" {
            return Ok("{not json".to_owned());
        }
        Ok(format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":{},"externalId":{}}}"#,
            quote(&user.username),
            quote(&user.id)
        ))
    }

    fn map_users(
        users: Vec<DirectoryUser>,
        settings: Vec<Setting>,
    ) -> Vec<Result<String, MappingError>> {
        users
            .into_iter()
            .map(|user| Self::map_user(user, settings.clone()))
            .collect()
    }

    fn map_group(group: DirectoryGroup, _settings: Vec<Setting>) -> Result<String, MappingError> {
        Ok(format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":{}}}"#,
            quote(&group.name)
        ))
    }

    fn lookup_filters(user: DirectoryUser, _settings: Vec<Setting>) -> Vec<String> {
        vec![format!("userName eq {}", quote(&user.username))]
    }

    fn on_group_event(facts: GroupEventFacts, _settings: Vec<Setting>) -> GroupDecision {
        GroupDecision {
            group: GroupAction::LeaveAsIs,
            members: facts
                .members
                .into_iter()
                .map(|m| MemberDecision {
                    user_id: m.user_id,
                    action: AccountAction::Keep,
                })
                .collect(),
            rule: "keep".to_owned(),
        }
    }

    fn read_user(
        scim_user: String,
        _settings: Vec<Setting>,
    ) -> Result<DirectoryUser, MappingError> {
        Err(MappingError {
            attribute: None,
            message: format!(
                "import is not supported ({} bytes ignored)",
                scim_user.len()
            ),
        })
    }
}

export!(Fixture);
