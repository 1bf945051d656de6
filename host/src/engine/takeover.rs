//! Whether an account found by a lookup may be taken over.
//!
//! A takeover links an existing account of the application to a directory
//! object and overwrites it with the directory's document, so a wrong one
//! hands someone else's account — its data, its roles — to another person.
//! A lookup hit is taken over only when all of these hold:
//! - the application answered with exactly one resource;
//! - that resource carries the value it was looked up by: the filter is
//!   evaluated against it with SCIM's rules (userName and emails compared
//!   without regard to case, externalId exactly). An application that
//!   ignores `filter` and answers with an unrelated account is caught here;
//! - no other directory object of the same kind holds it in this
//!   application's ledger (the store refuses such a link too, see
//!   [`crate::store::LedgerStore::ledger_holder`]).
//!
//! Anything else is a refusal that names why; nothing is sent.

use serde_json::Value;

use crate::scim::filter::{matches, parse_filter_with};
use crate::scim::schema::{EXTENSION_URNS, GROUP_TYPE, ResourceType, USER_TYPE};

/// The kind of object a lookup was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    User,
    Group,
}

impl LookupKind {
    fn resource_type(self) -> &'static ResourceType {
        match self {
            LookupKind::User => &USER_TYPE,
            LookupKind::Group => &GROUP_TYPE,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            LookupKind::User => "account",
            LookupKind::Group => "group",
        }
    }
}

/// What one lookup's answer allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// Nothing matched: the next lookup, or a create.
    None,
    /// Exactly one resource, carrying the filtered value: its id.
    One(String),
    /// Not safe to take over or to create past: why, for the event and the
    /// dead letter.
    Refused(String),
}

/// Vets the resources an application answered `filter` with.
pub fn vet(kind: LookupKind, filter: &str, found: &[&Value]) -> Candidate {
    if found.is_empty() {
        return Candidate::None;
    }
    let noun = kind.noun();
    let parsed = match parse_filter_with(filter, EXTENSION_URNS) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Candidate::Refused(format!(
                "the lookup {filter} cannot be checked against what the application \
                 answered ({error}): no {noun} is taken over"
            ));
        }
    };
    let rules = kind.resource_type();
    if let Some(stray) = found
        .iter()
        .find(|resource| !matches(&parsed, resource, rules))
    {
        let id = stray
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("without id");
        return Candidate::Refused(format!(
            "the application answered {filter} with {noun} {id}, which does not carry that \
             value (does it ignore filters?): no {noun} is taken over"
        ));
    }
    match found {
        [one] => match one.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Candidate::One(id.to_string()),
            _ => Candidate::Refused(format!("the {noun} matching {filter} has no id")),
        },
        many => Candidate::Refused(format!(
            "{} {noun}s match {filter}: none is taken over",
            many.len()
        )),
    }
}

/// The resources of a list answer.
pub fn resources(body: &Value) -> Vec<&Value> {
    body.get("Resources")
        .and_then(Value::as_array)
        .map(|resources| resources.iter().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(id: &str, user_name: &str, email: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": id, "userName": user_name,
            "emails": [{ "value": email, "primary": true }],
        })
    }

    #[test]
    fn one_hit_carrying_the_value_is_a_candidate_without_regard_to_case() {
        let ada = user("r1", "Ada@Example.com", "ADA@example.com");
        assert_eq!(
            vet(
                LookupKind::User,
                r#"userName eq "ada@example.com""#,
                &[&ada]
            ),
            Candidate::One("r1".into())
        );
        assert_eq!(
            vet(
                LookupKind::User,
                r#"emails.value eq "ada@example.com""#,
                &[&ada]
            ),
            Candidate::One("r1".into())
        );
        assert_eq!(
            vet(LookupKind::User, r#"userName eq "ada""#, &[]),
            Candidate::None
        );
    }

    #[test]
    fn a_hit_without_the_filtered_value_is_refused() {
        // An application that ignores `filter` answers with whatever it has.
        let bob = user("r2", "bob", "bob@example.com");
        let Candidate::Refused(reason) = vet(LookupKind::User, r#"userName eq "ada""#, &[&bob])
        else {
            panic!("taken over");
        };
        assert!(reason.contains("account r2"), "{reason}");
        assert!(reason.contains("ignore filters"), "{reason}");
    }

    #[test]
    fn several_hits_or_a_hit_without_id_are_refused() {
        let one = user("r1", "ada", "ada@example.com");
        let two = user("r2", "ADA", "ada@example.com");
        assert!(matches!(
            vet(LookupKind::User, r#"userName eq "ada""#, &[&one, &two]),
            Candidate::Refused(reason) if reason.starts_with("2 accounts match")
        ));
        let nameless = json!({ "userName": "ada" });
        assert!(matches!(
            vet(LookupKind::User, r#"userName eq "ada""#, &[&nameless]),
            Candidate::Refused(reason) if reason.contains("has no id")
        ));
    }

    #[test]
    fn groups_are_vetted_by_display_name_and_bad_filters_refused() {
        let group = json!({ "id": "g1", "displayName": "Engineering" });
        assert_eq!(
            vet(
                LookupKind::Group,
                r#"displayName eq "engineering""#,
                &[&group]
            ),
            Candidate::One("g1".into())
        );
        assert!(matches!(
            vet(LookupKind::Group, "displayName eq", &[&group]),
            Candidate::Refused(reason) if reason.contains("cannot be checked")
        ));
    }
}
