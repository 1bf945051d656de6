// The behaviour shared by the fixtures written against raw bindings
// (contract-v0-1, missing-export, incompatible-major). Each of them
// generates its own bindings from its own WIT, so this is included into
// each crate (`include!`) rather than shared as a crate: the same text
// compiles against each crate's types.

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

fn fixture_manifest(name: &str, contract_version: &str) -> Manifest {
    Manifest {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        contract_version: contract_version.to_owned(),
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

/// A minimal SCIM user; for the user named "invalid-json", text that is
/// not JSON.
fn user_json(user: &DirectoryUser) -> Result<String, MappingError> {
    if user.username == "invalid-json" {
        return Ok("{not json".to_owned());
    }
    Ok(format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":{},"externalId":{}}}"#,
        quote(&user.username),
        quote(&user.id)
    ))
}

fn group_json(group: &DirectoryGroup) -> Result<String, MappingError> {
    Ok(format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":{}}}"#,
        quote(&group.name)
    ))
}

fn username_filter(user: &DirectoryUser) -> Vec<String> {
    vec![format!("userName eq {}", quote(&user.username))]
}

fn keep_everyone(facts: GroupEventFacts) -> GroupDecision {
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

fn import_unsupported(scim_user: &str) -> Result<DirectoryUser, MappingError> {
    Err(MappingError {
        attribute: None,
        message: format!("import is not supported ({} bytes ignored)", scim_user.len()),
    })
}
