//! A directory user as a connector sees it: the contract's
//! `directory-user`, read from the SCIM document the directory keeps.
//!
//! The reading is total: a document missing any attribute gives a record
//! with that field empty, never an error; the connector decides what it
//! cannot do without.

use serde_json::{Map, Value};

use crate::runtime::contract::{Address, CustomAttribute, DirectoryUser, Email, Phone};
use crate::scim::schema::{DIRECTORY_USER_SCHEMA, ENTERPRISE_USER_SCHEMA};
use crate::store::UserRecord;

fn text(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

fn at<'a>(attributes: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = attributes.get(*first)?;
    for key in rest {
        value = value.get(key)?;
    }
    Some(value)
}

fn items<'a>(attributes: &'a Map<String, Value>, name: &str) -> impl Iterator<Item = &'a Value> {
    attributes
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn primary(item: &Value) -> bool {
    item.get("primary")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The contract's record of a directory user.
pub fn directory_user(user: &UserRecord) -> DirectoryUser {
    let a = &user.attributes;
    let location = text(at(a, &[DIRECTORY_USER_SCHEMA, "location"])).or_else(|| {
        // Without an explicit location, the work address's city.
        items(a, "addresses")
            .find(|address| address.get("type").and_then(Value::as_str) == Some("work"))
            .and_then(|address| text(address.get("locality")))
    });
    DirectoryUser {
        id: user.id.clone(),
        username: user.user_name.clone(),
        password_expired: at(a, &[DIRECTORY_USER_SCHEMA, "passwordExpired"])
            .and_then(Value::as_bool)
            .unwrap_or(false),
        suspended: !user.active,
        first_name: text(at(a, &["name", "givenName"])),
        middle_name: text(at(a, &["name", "middleName"])),
        last_name: text(at(a, &["name", "familyName"])),
        display_name: text(at(a, &["displayName"])),
        emails: items(a, "emails")
            .filter_map(|email| {
                Some(Email {
                    value: text(email.get("value"))?,
                    kind: text(email.get("type")),
                    primary: primary(email),
                })
            })
            .collect(),
        addresses: items(a, "addresses")
            .map(|address| Address {
                kind: text(address.get("type")),
                street_address: text(address.get("streetAddress")),
                locality: text(address.get("locality")),
                region: text(address.get("region")),
                postal_code: text(address.get("postalCode")),
                country: text(address.get("country")),
                primary: primary(address),
            })
            .collect(),
        phones: items(a, "phoneNumbers")
            .filter_map(|phone| {
                Some(Phone {
                    kind: text(phone.get("type")),
                    number: text(phone.get("value"))?,
                    primary: primary(phone),
                })
            })
            .collect(),
        employee_identifier: text(at(a, &[ENTERPRISE_USER_SCHEMA, "employeeNumber"])),
        department: text(at(a, &[ENTERPRISE_USER_SCHEMA, "department"])),
        company: text(at(a, &[ENTERPRISE_USER_SCHEMA, "organization"])),
        job_title: text(at(a, &["title"])),
        location,
        custom_attributes: at(a, &[DIRECTORY_USER_SCHEMA, "customAttributes"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| {
                Some(CustomAttribute {
                    name: text(item.get("name"))?,
                    value: item.get("value")?.as_str()?.to_string(),
                })
            })
            .collect(),
    }
}

/// The directory's SCIM attributes for a contract record (the inverse of
/// [`directory_user`]): what an import from an application writes. Empty
/// fields are left out; `suspended` is the `active` it returns beside.
pub fn directory_attributes(user: &DirectoryUser) -> (Map<String, Value>, bool) {
    let mut attributes = Map::new();
    let mut put = |path: &[&str], value: Option<&String>| {
        let Some(value) = value.filter(|value| !value.trim().is_empty()) else {
            return;
        };
        let mut node = &mut attributes;
        for key in &path[..path.len() - 1] {
            node = match node
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                Value::Object(inner) => inner,
                _ => return,
            };
        }
        node.insert(
            path[path.len() - 1].to_string(),
            Value::String(value.clone()),
        );
    };
    put(&["userName"], Some(&user.username));
    put(&["name", "givenName"], user.first_name.as_ref());
    put(&["name", "middleName"], user.middle_name.as_ref());
    put(&["name", "familyName"], user.last_name.as_ref());
    put(&["displayName"], user.display_name.as_ref());
    put(&["title"], user.job_title.as_ref());
    put(
        &[ENTERPRISE_USER_SCHEMA, "employeeNumber"],
        user.employee_identifier.as_ref(),
    );
    put(
        &[ENTERPRISE_USER_SCHEMA, "department"],
        user.department.as_ref(),
    );
    put(
        &[ENTERPRISE_USER_SCHEMA, "organization"],
        user.company.as_ref(),
    );
    put(&[DIRECTORY_USER_SCHEMA, "location"], user.location.as_ref());
    let optional = |entries: Vec<(&str, Option<&String>)>, primary: bool| {
        let mut item = Map::new();
        for (key, value) in entries {
            if let Some(value) = value.filter(|value| !value.trim().is_empty()) {
                item.insert(key.to_string(), Value::String(value.clone()));
            }
        }
        if primary {
            item.insert("primary".into(), Value::Bool(true));
        }
        Value::Object(item)
    };
    let emails: Vec<Value> = user
        .emails
        .iter()
        .map(|email| {
            optional(
                vec![("value", Some(&email.value)), ("type", email.kind.as_ref())],
                email.primary,
            )
        })
        .collect();
    let phones: Vec<Value> = user
        .phones
        .iter()
        .map(|phone| {
            optional(
                vec![
                    ("value", Some(&phone.number)),
                    ("type", phone.kind.as_ref()),
                ],
                phone.primary,
            )
        })
        .collect();
    let addresses: Vec<Value> = user
        .addresses
        .iter()
        .map(|address| {
            optional(
                vec![
                    ("type", address.kind.as_ref()),
                    ("streetAddress", address.street_address.as_ref()),
                    ("locality", address.locality.as_ref()),
                    ("region", address.region.as_ref()),
                    ("postalCode", address.postal_code.as_ref()),
                    ("country", address.country.as_ref()),
                ],
                address.primary,
            )
        })
        .collect();
    for (name, list) in [
        ("emails", emails),
        ("phoneNumbers", phones),
        ("addresses", addresses),
    ] {
        if !list.is_empty() {
            attributes.insert(name.into(), Value::Array(list));
        }
    }
    if user.password_expired || !user.custom_attributes.is_empty() {
        let extension = attributes
            .entry(DIRECTORY_USER_SCHEMA.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if user.password_expired {
            extension["passwordExpired"] = Value::Bool(true);
        }
        if !user.custom_attributes.is_empty() {
            extension["customAttributes"] = Value::Array(
                user.custom_attributes
                    .iter()
                    .map(|custom| serde_json::json!({ "name": custom.name, "value": custom.value }))
                    .collect(),
            );
        }
    }
    (attributes, !user.suspended)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_record_read_back_is_the_record_written() {
        let original = directory_user(&record(
            json!({
                "userName": "ada",
                "name": { "givenName": "Ada", "familyName": "Lovelace" },
                "displayName": "Ada Lovelace",
                "title": "Analyst",
                "emails": [{ "value": "ada@work.example", "type": "work", "primary": true }],
                "phoneNumbers": [{ "value": "+44 1", "type": "mobile" }],
                "addresses": [{ "type": "home", "locality": "London", "country": "GB" }],
                ENTERPRISE_USER_SCHEMA: { "employeeNumber": "7", "department": "R&D" },
                DIRECTORY_USER_SCHEMA: { "location": "Marylebone", "customAttributes": [{ "name": "cost", "value": "CC-1" }] }
            }),
            false,
        ));
        let (attributes, active) = directory_attributes(&original);
        assert!(!active);
        let mut again = directory_user(&UserRecord {
            attributes,
            ..record(json!({}), active)
        });
        again.id = original.id.clone();
        // The bindings' records have no PartialEq: compare what they show.
        assert_eq!(format!("{again:?}"), format!("{original:?}"));
    }

    fn record(attributes: Value, active: bool) -> UserRecord {
        UserRecord {
            id: "u1".into(),
            user_name: "ada".into(),
            external_id: None,
            active,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            version: 1,
            created: crate::store::Timestamp::EPOCH,
            modified: crate::store::Timestamp::EPOCH,
        }
    }

    #[test]
    fn every_attribute_reaches_the_contract_record() {
        let user = directory_user(&record(
            json!({
                "userName": "ada",
                "name": { "givenName": "Ada", "middleName": "A.", "familyName": "Lovelace" },
                "displayName": "Ada Lovelace",
                "title": "Analyst",
                "emails": [{ "value": "ada@work.example", "type": "work", "primary": true }, { "value": "" }],
                "phoneNumbers": [{ "value": "+44 1", "type": "mobile" }],
                "addresses": [{ "type": "work", "locality": "London", "country": "GB" }],
                ENTERPRISE_USER_SCHEMA: { "employeeNumber": "7", "department": "R&D", "organization": "Analytical" },
                DIRECTORY_USER_SCHEMA: { "passwordExpired": true, "customAttributes": [{ "name": "cost", "value": "CC-1" }] }
            }),
            false,
        ));
        assert!(user.suspended && user.password_expired);
        assert_eq!(user.first_name.as_deref(), Some("Ada"));
        assert_eq!(user.middle_name.as_deref(), Some("A."));
        assert_eq!(user.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(user.emails.len(), 1, "an empty email is no email");
        assert!(user.emails[0].primary);
        assert_eq!(user.phones[0].number, "+44 1");
        assert_eq!(user.addresses[0].country.as_deref(), Some("GB"));
        assert_eq!(user.employee_identifier.as_deref(), Some("7"));
        assert_eq!(user.company.as_deref(), Some("Analytical"));
        assert_eq!(user.job_title.as_deref(), Some("Analyst"));
        assert_eq!(
            user.location.as_deref(),
            Some("London"),
            "the work city stands in"
        );
        assert_eq!(user.custom_attributes[0].value, "CC-1");
    }

    #[test]
    fn a_bare_user_is_a_record_with_empty_fields() {
        let user = directory_user(&record(json!({ "userName": "ada" }), true));
        assert_eq!(user.username, "ada");
        assert!(!user.suspended && user.emails.is_empty() && user.first_name.is_none());
    }
}
