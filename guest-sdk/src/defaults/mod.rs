//! Plain SCIM 2.0 behaviour: what a connector does unless it says otherwise.
//!
//! The user mapping is the full default attribute set of a generic SCIM
//! application (RFC 7643 §4.1 core User plus the enterprise extension):
//!
//! | SCIM | directory |
//! |---|---|
//! | externalId | id |
//! | userName | username |
//! | active | not suspended and not password-expired |
//! | name.givenName / middleName / familyName | first / middle / last name |
//! | displayName | display name |
//! | emails | emails (type, primary) |
//! | addresses | addresses (type, streetAddress, locality, region, postalCode, country) |
//! | phoneNumbers | phones (type, value) |
//! | title | job title |
//! | enterprise employeeNumber / department / organization | employee identifier / department / company |
//!
//! Passwords are never part of the contract: the host does not hand them to
//! connectors, so no default sends one.
//!
//! The group-management rules (what a removed member, an unbound or deleted
//! group, or group management turned off does to groups and accounts) are
//! in [`group_rules`]'s file, `group_rules.rs`.

use serde_json::Value;

mod group_rules;

pub use group_rules::{group_rule, keep_all, offboard_unless_in_scope};

use crate::json_text::JsonObject;
use crate::scim::{self, ENTERPRISE_USER_SCHEMA, ScimJson};
use crate::{Address, DirectoryGroup, DirectoryUser, Email, MappingError, Phone};

/// Every attribute of the directory user record, by its contract field name.
pub const ALL_ATTRIBUTES: &[&str] = &[
    "id",
    "username",
    "password-expired",
    "suspended",
    "first-name",
    "middle-name",
    "last-name",
    "display-name",
    "emails",
    "addresses",
    "phones",
    "employee-identifier",
    "department",
    "company",
    "job-title",
    "location",
    "custom-attributes",
];

/// Whether the account should be active: the user is neither suspended nor
/// has an expired password.
pub fn is_active(user: &DirectoryUser) -> bool {
    !user.suspended && !user.password_expired
}

/// The user's primary email, else the first one.
pub fn primary_email(user: &DirectoryUser) -> Option<&str> {
    user.emails
        .iter()
        .find(|e| e.primary)
        .or_else(|| user.emails.first())
        .map(|e| e.value.as_str())
        .filter(|v| !v.trim().is_empty())
}

/// The display name, else "first last" when either is present.
pub fn display_name(user: &DirectoryUser) -> Option<String> {
    if let Some(name) = user
        .display_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
    {
        return Some(name.to_owned());
    }
    let joined = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// The full default SCIM User of a directory user (see the module table),
/// written straight from the record: no JSON tree is built.
pub fn scim_user(user: &DirectoryUser) -> Result<ScimJson, MappingError> {
    Ok(ScimJson::written(user_document(user)))
}

/// The same document as a JSON tree, for a connector that changes a few
/// attributes of the default before sending it.
pub fn scim_user_value(user: &DirectoryUser) -> Value {
    // The writer's text always parses.
    serde_json::from_str(&user_document(user)).unwrap_or(Value::Null)
}

/// The default SCIM Group: displayName and externalId.
pub fn scim_group(group: &DirectoryGroup) -> Result<ScimJson, MappingError> {
    let mut out = String::with_capacity(128);
    let mut document = JsonObject::open(&mut out);
    document.static_strings("schemas", &[scim::GROUP_SCHEMA]);
    document.string("displayName", &group.name);
    document.optional_string("externalId", text(&group.id));
    document.close();
    Ok(ScimJson::written(out))
}

/// A string attribute, unless it is blank: nothing is sent as `""`.
fn text(value: &str) -> Option<&str> {
    // What `trim().is_empty()` says, from the first character on: most
    // values answer at their first.
    (!value.chars().all(char::is_whitespace)).then_some(value)
}

fn optional(value: &Option<String>) -> Option<&str> {
    value.as_deref().and_then(text)
}

/// Room for a user with every attribute set, so the text is not regrown
/// while it is written.
const USER_DOCUMENT_CAPACITY: usize = 1024;

/// The default user document's text. An object or a list with nothing in
/// it is left out, as a blank string is.
fn user_document(user: &DirectoryUser) -> String {
    let employee_number = optional(&user.employee_identifier);
    let department = optional(&user.department);
    let organization = optional(&user.company);
    let enterprise = employee_number.is_some() || department.is_some() || organization.is_some();

    let mut out = String::with_capacity(USER_DOCUMENT_CAPACITY);
    let mut document = JsonObject::open(&mut out);
    document.static_strings(
        "schemas",
        if enterprise {
            &[scim::USER_SCHEMA, ENTERPRISE_USER_SCHEMA]
        } else {
            &[scim::USER_SCHEMA]
        },
    );
    document.optional_string("externalId", text(&user.id));
    document.optional_string("userName", text(&user.username));
    document.bool("active", is_active(user));

    let given_name = optional(&user.first_name);
    let middle_name = optional(&user.middle_name);
    let family_name = optional(&user.last_name);
    if given_name.is_some() || middle_name.is_some() || family_name.is_some() {
        let mut name = document.object("name");
        name.optional_string("givenName", given_name);
        name.optional_string("middleName", middle_name);
        name.optional_string("familyName", family_name);
        name.close();
    }
    document.optional_string("displayName", optional(&user.display_name));

    contacts(
        &mut document,
        "emails",
        user.emails
            .iter()
            .map(|email| (email.value.as_str(), &email.kind, email.primary)),
    );
    if !user.addresses.is_empty() {
        let mut addresses = document.objects("addresses");
        for address in &user.addresses {
            let mut entry = addresses.object();
            entry.optional_string("type", optional(&address.kind));
            entry.optional_string("streetAddress", optional(&address.street_address));
            entry.optional_string("locality", optional(&address.locality));
            entry.optional_string("region", optional(&address.region));
            entry.optional_string("postalCode", optional(&address.postal_code));
            entry.optional_string("country", optional(&address.country));
            entry.bool("primary", address.primary);
            entry.close();
        }
        addresses.close();
    }
    contacts(
        &mut document,
        "phoneNumbers",
        user.phones
            .iter()
            .map(|phone| (phone.number.as_str(), &phone.kind, phone.primary)),
    );
    document.optional_string("title", optional(&user.job_title));

    if enterprise {
        let mut extension = document.object(ENTERPRISE_USER_SCHEMA);
        extension.optional_string("employeeNumber", employee_number);
        extension.optional_string("department", department);
        extension.optional_string("organization", organization);
        extension.close();
    }
    document.close();
    out
}

/// `emails` or `phoneNumbers`: an entry without a value is left out, and
/// the list with it when no entry is left.
fn contacts<'u>(
    document: &mut JsonObject<'_>,
    key: &'static str,
    entries: impl Iterator<Item = (&'u str, &'u Option<String>, bool)>,
) {
    let mut entries = entries
        .filter_map(|(value, kind, primary)| Some((text(value)?, optional(kind), primary)))
        .peekable();
    if entries.peek().is_none() {
        return;
    }
    let mut list = document.objects(key);
    for (value, kind, primary) in entries {
        let mut entry = list.object();
        entry.string("value", value);
        entry.optional_string("type", kind);
        entry.bool("primary", primary);
        entry.close();
    }
    list.close();
}

/// Take over by userName first, then by the primary email.
pub fn lookup_filters(user: &DirectoryUser) -> Vec<String> {
    let mut filters = vec![scim::filter_eq("userName", &user.username)];
    if let Some(email) = primary_email(user) {
        filters.push(scim::filter_eq("emails.value", email));
    }
    filters
}

/// A SCIM User (core + enterprise) as a directory user. `id` is the
/// document's externalId when it has one: the directory assigns the rest.
pub fn read_user(document: &Value) -> Result<DirectoryUser, MappingError> {
    if !document.is_object() {
        return Err(MappingError::other("a SCIM user must be a JSON object"));
    }
    let text = |path: &str| scim::get_str(document, path).map(str::to_owned);
    let username = text("userName").ok_or_else(|| MappingError::missing("userName"))?;
    let enterprise = |name: &str| text(&format!("{ENTERPRISE_USER_SCHEMA}:{name}"));
    let active = match document.get("active") {
        Some(Value::Bool(active)) => *active,
        // Some applications send "True"/"False" strings.
        Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        _ => true,
    };
    let list = |attribute: &str| {
        document
            .get(attribute)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let field = |item: &Value, name: &str| {
        item.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let is_primary = |item: &Value| item.get("primary").and_then(Value::as_bool) == Some(true);

    Ok(DirectoryUser {
        id: text("externalId").unwrap_or_default(),
        username,
        password_expired: false,
        suspended: !active,
        first_name: text("name.givenName"),
        middle_name: text("name.middleName"),
        last_name: text("name.familyName"),
        display_name: text("displayName"),
        emails: list("emails")
            .iter()
            .filter_map(|item| {
                Some(Email {
                    value: field(item, "value")?,
                    kind: field(item, "type"),
                    primary: is_primary(item),
                })
            })
            .collect(),
        addresses: list("addresses")
            .iter()
            .map(|item| Address {
                kind: field(item, "type"),
                street_address: field(item, "streetAddress"),
                locality: field(item, "locality"),
                region: field(item, "region"),
                postal_code: field(item, "postalCode"),
                country: field(item, "country"),
                primary: is_primary(item),
            })
            .collect(),
        phones: list("phoneNumbers")
            .iter()
            .filter_map(|item| {
                Some(Phone {
                    number: field(item, "value")?,
                    kind: field(item, "type"),
                    primary: is_primary(item),
                })
            })
            .collect(),
        employee_identifier: enterprise("employeeNumber"),
        department: enterprise("department"),
        company: enterprise("organization"),
        job_title: text("title"),
        location: None,
        custom_attributes: Vec::new(),
    })
}

/// A complete sample user, for tests and smoke calls.
pub fn sample_user() -> DirectoryUser {
    DirectoryUser {
        id: "5f1d2c3b4a".to_owned(),
        username: "ada.lovelace".to_owned(),
        password_expired: false,
        suspended: false,
        first_name: Some("Ada".to_owned()),
        middle_name: Some("King".to_owned()),
        last_name: Some("Lovelace".to_owned()),
        display_name: Some("Ada Lovelace".to_owned()),
        emails: vec![Email {
            value: "ada@example.com".to_owned(),
            kind: Some("work".to_owned()),
            primary: true,
        }],
        addresses: vec![Address {
            kind: Some("work".to_owned()),
            street_address: Some("12 St James's Square".to_owned()),
            locality: Some("London".to_owned()),
            region: None,
            postal_code: Some("SW1Y 4LB".to_owned()),
            country: Some("GB".to_owned()),
            primary: true,
        }],
        phones: vec![Phone {
            kind: Some("work".to_owned()),
            number: "+44 20 7946 0000".to_owned(),
            primary: true,
        }],
        employee_identifier: Some("E-1815".to_owned()),
        department: Some("Analytical Engines".to_owned()),
        company: Some("Babbage & Co".to_owned()),
        job_title: Some("Mathematician".to_owned()),
        location: Some("London".to_owned()),
        custom_attributes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AccountAction, DirectoryGroup, GroupAction, GroupEvent, GroupEventFacts, MemberFacts,
        Offboarding,
    };

    #[test]
    fn default_user_maps_every_attribute() {
        let document = scim_user(&sample_user()).unwrap().value();
        assert_eq!(document["externalId"], "5f1d2c3b4a");
        assert_eq!(document["userName"], "ada.lovelace");
        assert_eq!(document["active"], true);
        assert_eq!(document["name"]["middleName"], "King");
        assert_eq!(document["emails"][0]["type"], "work");
        assert_eq!(document["addresses"][0]["locality"], "London");
        assert_eq!(document["phoneNumbers"][0]["value"], "+44 20 7946 0000");
        assert_eq!(document["title"], "Mathematician");
        assert_eq!(
            document[ENTERPRISE_USER_SCHEMA]["organization"],
            "Babbage & Co"
        );
    }

    /// The documents are the same text, byte for byte, as the
    /// `serde_json` serialization of the same attributes.
    #[test]
    fn default_documents_are_compact_json_with_blank_attributes_left_out() {
        let mut user = sample_user();
        assert_eq!(
            scim_user(&user).unwrap().text(),
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"5f1d2c3b4a","userName":"ada.lovelace","active":true,"name":{"givenName":"Ada","middleName":"King","familyName":"Lovelace"},"displayName":"Ada Lovelace","emails":[{"value":"ada@example.com","type":"work","primary":true}],"addresses":[{"type":"work","streetAddress":"12 St James's Square","locality":"London","postalCode":"SW1Y 4LB","country":"GB","primary":true}],"phoneNumbers":[{"value":"+44 20 7946 0000","type":"work","primary":true}],"title":"Mathematician","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"E-1815","department":"Analytical Engines","organization":"Babbage & Co"}}"#
        );

        user.emails[0].value = " ".into();
        user.phones.clear();
        user.first_name = None;
        user.middle_name = Some(String::new());
        user.last_name = None;
        user.employee_identifier = None;
        user.department = None;
        user.company = Some(" ".into());
        user.addresses[0].kind = None;
        user.display_name = Some("Zoë \"Q\" \\ \t\u{1}".into());
        user.suspended = true;
        assert_eq!(
            scim_user(&user).unwrap().text(),
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"externalId":"5f1d2c3b4a","userName":"ada.lovelace","active":false,"displayName":"Zoë \"Q\" \\ \t\u0001","addresses":[{"streetAddress":"12 St James's Square","locality":"London","postalCode":"SW1Y 4LB","country":"GB","primary":true}],"title":"Mathematician"}"#
        );
        assert_eq!(
            scim_user_value(&user)["displayName"],
            "Zoë \"Q\" \\ \t\u{1}"
        );

        let group = |id: &str, name: &str| DirectoryGroup {
            id: id.into(),
            name: name.into(),
            description: None,
        };
        assert_eq!(
            scim_group(&group("g1", "Eng \"A\"")).unwrap().text(),
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Eng \"A\"","externalId":"g1"}"#
        );
        assert_eq!(
            scim_group(&group(" ", "Eng")).unwrap().text(),
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Eng"}"#
        );
    }

    #[test]
    fn suspended_or_expired_users_are_inactive() {
        let mut user = sample_user();
        user.password_expired = true;
        assert_eq!(scim_user_value(&user)["active"], false);
        user.password_expired = false;
        user.suspended = true;
        assert_eq!(scim_user_value(&user)["active"], false);
    }

    #[test]
    fn read_user_round_trips_the_default_mapping() {
        let user = sample_user();
        let mut back = read_user(&scim_user_value(&user)).unwrap();
        back.location = user.location.clone();
        assert_eq!(format!("{back:?}"), format!("{user:?}"));
    }

    #[test]
    fn lookup_tries_username_then_email() {
        assert_eq!(
            lookup_filters(&sample_user()),
            vec![
                r#"userName eq "ada.lovelace""#.to_owned(),
                r#"emails.value eq "ada@example.com""#.to_owned()
            ]
        );
    }

    fn facts(event: GroupEvent, others: &[&str]) -> GroupEventFacts {
        GroupEventFacts {
            event,
            group: DirectoryGroup {
                id: "g1".into(),
                name: "Engineering".into(),
                description: None,
            },
            members: vec![
                MemberFacts {
                    user_id: "only-here".into(),
                    other_managed_groups: vec![],
                    directly_assigned: false,
                },
                MemberFacts {
                    user_id: "elsewhere".into(),
                    other_managed_groups: others.iter().map(|s| s.to_string()).collect(),
                    directly_assigned: false,
                },
            ],
            group_management: true,
        }
    }

    #[test]
    fn unbinding_offboards_only_users_without_another_group() {
        let decision = group_rule(
            &facts(GroupEvent::GroupUnbound, &["g2"]),
            Offboarding::Deactivate,
        );
        assert!(matches!(decision.group, GroupAction::LeaveAsIs));
        assert!(matches!(
            decision.members[0].action,
            AccountAction::Deactivate
        ));
        assert!(matches!(decision.members[1].action, AccountAction::Keep));
    }

    #[test]
    fn deleting_a_group_deletes_it_remotely() {
        let decision = group_rule(
            &facts(GroupEvent::GroupDeleted, &["g2"]),
            Offboarding::Delete,
        );
        assert!(matches!(decision.group, GroupAction::DeleteGroup));
        assert!(matches!(decision.members[0].action, AccountAction::Delete));
    }

    #[test]
    fn disabling_group_management_changes_nothing() {
        let decision = group_rule(
            &facts(GroupEvent::GroupManagementDisabled, &[]),
            Offboarding::Deactivate,
        );
        assert!(matches!(decision.group, GroupAction::LeaveAsIs));
        assert!(
            decision
                .members
                .iter()
                .all(|m| matches!(m.action, AccountAction::Keep))
        );
    }
}
