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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(attributes: Value, active: bool) -> UserRecord {
        UserRecord {
            id: "u1".into(),
            user_name: "ada".into(),
            external_id: None,
            active,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            version: 1,
            created: String::new(),
            modified: String::new(),
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
