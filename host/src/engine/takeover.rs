//! Whether an account found by a lookup may be taken over.
//!
//! A takeover links an existing account of the application to a directory
//! object and overwrites it with the directory's document, so a wrong one
//! hands someone else's account — its data, its roles — to another person.
//! A lookup hit is taken over only when all of these hold:
//! - the application answered with a list that is whole: it counts
//!   (`totalResults`) no more and no fewer than it lists (`Resources`). An
//!   application that pages its answers (a page size of one) lists one of
//!   several matches, and one that leaves the list out (say for
//!   `attributes=`) lists none of those it counts; either way what was
//!   listed cannot show that there is only one, or none;
//! - the application answered with exactly one resource;
//! - that resource carries the value it was looked up by: the filter is
//!   evaluated against it with SCIM's rules (userName and emails compared
//!   without regard to case, externalId exactly). An application that
//!   ignores `filter` and answers with an unrelated account is caught here;
//! - no other directory object of the same kind holds it in this
//!   application's ledger (the store refuses such a link too, see
//!   [`crate::store::LedgerStore::ledger_holder`]).
//!
//! Anything else is a refusal that names why; nothing is sent. A lookup
//! finds nothing only when its answer says so: no resource listed and none
//! counted. A refusal is also what keeps the engine from creating a second
//! account beside one a partial answer did not show.

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
    /// Nothing matched, and the answer counts nothing: the next lookup,
    /// or a create.
    None,
    /// Exactly one resource, carrying the filtered value: its id.
    One(String),
    /// Not safe to take over or to create past: why, for the event and the
    /// dead letter.
    Refused(String),
}

/// Vets what an application answered the lookup `filter` with: its list
/// answer, whole.
pub fn vet(kind: LookupKind, filter: &str, answer: &Value) -> Candidate {
    let noun = kind.noun();
    let refused = |why: String| {
        Candidate::Refused(format!(
            "the application answered {filter} with {why}: no {noun} is taken over and \
             none is created"
        ))
    };
    let listed: Option<Vec<&Value>> = match answer.get("Resources") {
        None | Some(Value::Null) => None,
        Some(Value::Array(resources)) => Some(resources.iter().collect()),
        Some(_) => return refused("Resources that are not a list".into()),
    };
    match (answer.get("totalResults"), &listed) {
        (Some(total), listed) => {
            let listed = listed.as_ref().map_or(0, Vec::len);
            match total.as_u64() {
                Some(total) if total == listed as u64 => {}
                Some(total) => {
                    return refused(format!(
                        "a count of {total} but {listed} listed, an answer that is not whole \
                         and cannot show whether there is one"
                    ));
                }
                None => return refused(format!("a totalResults that is not a count ({total})")),
            }
        }
        // RFC 7644 requires the count; without it, a list is judged by what
        // it names (only a page of one could hide a second match there).
        (None, Some(_)) => {}
        (None, None) => return refused("neither Resources nor totalResults, no list".into()),
    }
    vet_listed(kind, filter, listed.as_deref().unwrap_or_default())
}

/// Vets the resources of a whole answer.
fn vet_listed(kind: LookupKind, filter: &str, found: &[&Value]) -> Candidate {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A whole list answer of `found`, counted as listed.
    fn whole(found: &[&Value]) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": found.len(),
            "Resources": found,
        })
    }

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
                &whole(&[&ada])
            ),
            Candidate::One("r1".into())
        );
        assert_eq!(
            vet(
                LookupKind::User,
                r#"emails.value eq "ada@example.com""#,
                &whole(&[&ada])
            ),
            Candidate::One("r1".into())
        );
        assert_eq!(
            vet(LookupKind::User, r#"userName eq "ada""#, &whole(&[])),
            Candidate::None
        );
    }

    #[test]
    fn a_hit_without_the_filtered_value_is_refused() {
        // An application that ignores `filter` answers with whatever it has.
        let bob = user("r2", "bob", "bob@example.com");
        let Candidate::Refused(reason) =
            vet(LookupKind::User, r#"userName eq "ada""#, &whole(&[&bob]))
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
            vet(LookupKind::User, r#"userName eq "ada""#, &whole(&[&one, &two])),
            Candidate::Refused(reason) if reason.starts_with("2 accounts match")
        ));
        let nameless = json!({ "userName": "ada" });
        assert!(matches!(
            vet(LookupKind::User, r#"userName eq "ada""#, &whole(&[&nameless])),
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
                &whole(&[&group])
            ),
            Candidate::One("g1".into())
        );
        assert!(matches!(
            vet(LookupKind::Group, "displayName eq", &whole(&[&group])),
            Candidate::Refused(reason) if reason.contains("cannot be checked")
        ));
    }

    #[test]
    fn an_answer_that_counts_more_or_fewer_than_it_lists_is_refused() {
        let ada = user("r1", "ada", "ada@example.com");
        let filter = r#"emails.value eq "ada@example.com""#;
        // A page of one out of two matches: the one listed is not "the one".
        let paged = json!({ "totalResults": 2, "Resources": [ada], "itemsPerPage": 1 });
        let Candidate::Refused(reason) = vet(LookupKind::User, filter, &paged) else {
            panic!("taken over");
        };
        assert!(reason.contains("a count of 2 but 1 listed"), "{reason}");
        assert!(reason.contains("none is created"), "{reason}");
        // A count without the list (left out, say, for `attributes=`) is
        // not "nothing found": a create would make a second account.
        for unlisted in [
            json!({ "totalResults": 1 }),
            json!({ "totalResults": 1, "Resources": null }),
            json!({ "totalResults": 1, "Resources": [] }),
        ] {
            assert!(
                matches!(
                    vet(LookupKind::User, filter, &unlisted),
                    Candidate::Refused(reason) if reason.contains("a count of 1 but 0 listed")
                ),
                "{unlisted}"
            );
        }
        // Fewer counted than listed contradicts itself.
        assert!(matches!(
            vet(LookupKind::User, filter, &json!({ "totalResults": 0, "Resources": [ada] })),
            Candidate::Refused(reason) if reason.contains("a count of 0 but 1 listed")
        ));
        assert!(matches!(
            vet(LookupKind::Group, r#"displayName eq "x""#, &json!({ "totalResults": "1" })),
            Candidate::Refused(reason) if reason.contains("not a count")
        ));
    }

    #[test]
    fn an_answer_that_is_no_list_is_refused_and_one_without_a_count_is_judged_by_its_list() {
        let ada = user("r1", "ada", "ada@example.com");
        let filter = r#"userName eq "ada""#;
        for unlisted in [
            json!({}),
            json!({ "id": "r1", "userName": "ada" }),
            json!([]),
        ] {
            assert!(
                matches!(
                    vet(LookupKind::User, filter, &unlisted),
                    Candidate::Refused(reason) if reason.contains("no list")
                ),
                "{unlisted}"
            );
        }
        assert!(matches!(
            vet(LookupKind::User, filter, &json!({ "Resources": { "id": "r1" } })),
            Candidate::Refused(reason) if reason.contains("not a list")
        ));
        // Without `totalResults` (which RFC 7644 requires, and some
        // applications leave out) the list says what was found.
        assert_eq!(
            vet(LookupKind::User, filter, &json!({ "Resources": [ada] })),
            Candidate::One("r1".into())
        );
        assert_eq!(
            vet(LookupKind::User, filter, &json!({ "Resources": [] })),
            Candidate::None
        );
        assert_eq!(
            vet(LookupKind::User, filter, &json!({ "totalResults": 0 })),
            Candidate::None
        );
    }
}
