//! Host-side checks of everything a plugin returns, and the fixtures of the
//! smoke call a new plugin version must pass before it serves.
//!
//! Nothing a plugin returns reaches an application, the store or an event
//! before it passed these checks: a SCIM document is a JSON object under
//! the size cap whose `schemas` names the resource type and which carries
//! the type's required attribute; a group decision names exactly the
//! members it was asked about.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::Value;

use super::contract::{
    DirectoryGroup, DirectoryUser, Email, GroupDecision, GroupEvent, GroupEventFacts, Manifest,
    MemberFacts,
};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Most lookup filters one user may have, and the longest one.
const MAX_LOOKUP_FILTERS: usize = 16;
const MAX_FILTER_BYTES: usize = 4096;

/// The SCIM resource types a connector produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub fn schema(self) -> &'static str {
        match self {
            ResourceKind::User => USER_SCHEMA,
            ResourceKind::Group => GROUP_SCHEMA,
        }
    }

    fn required_attribute(self) -> &'static str {
        match self {
            ResourceKind::User => "userName",
            ResourceKind::Group => "displayName",
        }
    }
}

/// Why an output was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("{size} bytes of output, over the cap of {cap} bytes")]
    TooLarge { size: usize, cap: usize },
    #[error(
        "more than {budget} bytes of output (the output cap and its allowance), \
         refused before it was copied"
    )]
    OverBudget { budget: usize },
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a SCIM resource: {0}")]
    NotScim(String),
    #[error("{0}")]
    Inconsistent(String),
}

/// A SCIM document a plugin produced and the host checked. It keeps the
/// JSON text as the plugin wrote it (the body to send) and parses it into a
/// tree only when asked, so the checks cost one pass over the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimDocument {
    kind: ResourceKind,
    text: String,
}

impl ScimDocument {
    pub fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// The JSON text, as sent to the application.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }

    /// The document as a JSON tree.
    pub fn value(&self) -> Value {
        // The text passed `scim_document`, so it is JSON.
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// The attributes the checks read; everything else is skipped unparsed.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    schemas: Option<Vec<Cow<'a, str>>>,
    #[serde(rename = "userName", borrow, default)]
    user_name: Option<Cow<'a, str>>,
    #[serde(rename = "displayName", borrow, default)]
    display_name: Option<Cow<'a, str>>,
}

/// Checks one SCIM document a plugin produced.
pub fn scim_document(
    text: String,
    kind: ResourceKind,
    cap: usize,
) -> Result<ScimDocument, OutputError> {
    if text.len() > cap {
        return Err(OutputError::TooLarge {
            size: text.len(),
            cap,
        });
    }
    let found = match text.trim_start().as_bytes().first() {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        _ => None,
    };
    let envelope: Envelope<'_> = match serde_json::from_str(&text) {
        Ok(envelope) => envelope,
        Err(e) if e.is_data() => {
            return Err(OutputError::NotScim(match found {
                Some(found) => format!("expected a JSON object, found {found}"),
                None => e.to_string(),
            }));
        }
        Err(e) => return Err(OutputError::NotJson(e.to_string())),
    };
    if let Some(found) = found {
        return Err(OutputError::NotScim(format!(
            "expected a JSON object, found {found}"
        )));
    }
    let Some(schemas) = envelope.schemas else {
        return Err(OutputError::NotScim("`schemas` is missing".to_owned()));
    };
    if schemas.is_empty() {
        return Err(OutputError::NotScim(
            "`schemas` must be a non-empty array of schema URIs".to_owned(),
        ));
    }
    if !schemas.iter().any(|s| s == kind.schema()) {
        return Err(OutputError::NotScim(format!(
            "`schemas` lacks {} (found {})",
            kind.schema(),
            schemas.join(", ")
        )));
    }
    let required = match kind {
        ResourceKind::User => envelope.user_name,
        ResourceKind::Group => envelope.display_name,
    };
    if required.is_none_or(|value| value.trim().is_empty()) {
        return Err(OutputError::NotScim(format!(
            "`{}` must be a non-empty string",
            kind.required_attribute()
        )));
    }
    Ok(ScimDocument { kind, text })
}

/// Checks a plugin's lookup filters.
pub fn lookup_filters(filters: &[String]) -> Result<(), OutputError> {
    if filters.len() > MAX_LOOKUP_FILTERS {
        return Err(OutputError::Inconsistent(format!(
            "{} lookup filters, more than the {MAX_LOOKUP_FILTERS} allowed",
            filters.len()
        )));
    }
    for filter in filters {
        if filter.trim().is_empty() {
            return Err(OutputError::Inconsistent(
                "an empty lookup filter".to_owned(),
            ));
        }
        if filter.len() > MAX_FILTER_BYTES {
            return Err(OutputError::TooLarge {
                size: filter.len(),
                cap: MAX_FILTER_BYTES,
            });
        }
    }
    Ok(())
}

/// Checks that a group decision rules on exactly the members it was asked
/// about, each once.
pub fn group_decision(
    facts: &GroupEventFacts,
    decision: &GroupDecision,
) -> Result<(), OutputError> {
    let asked: BTreeSet<&str> = facts.members.iter().map(|m| m.user_id.as_str()).collect();
    let mut answered = BTreeSet::new();
    for member in &decision.members {
        if !asked.contains(member.user_id.as_str()) {
            return Err(OutputError::Inconsistent(format!(
                "the decision names user {:?}, who is not among the event's members",
                member.user_id
            )));
        }
        if !answered.insert(member.user_id.as_str()) {
            return Err(OutputError::Inconsistent(format!(
                "the decision names user {:?} twice",
                member.user_id
            )));
        }
    }
    if answered.len() != asked.len() {
        return Err(OutputError::Inconsistent(format!(
            "the decision rules on {} of the event's {} members",
            answered.len(),
            asked.len()
        )));
    }
    if decision.rule.trim().is_empty() || decision.rule.len() > 200 {
        return Err(OutputError::Inconsistent(
            "the decision's rule name must be 1 to 200 characters".to_owned(),
        ));
    }
    Ok(())
}

/// Checks a manifest against the contract version the component exports.
pub fn manifest(manifest: &Manifest, exported: &semver::Version) -> Result<(), String> {
    let name_ok = !manifest.name.is_empty()
        && manifest.name.len() <= 64
        && manifest
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !manifest.name.starts_with('-');
    if !name_ok {
        return Err(format!(
            "manifest name {:?} must be 1 to 64 characters of a-z, 0-9 and '-'",
            manifest.name
        ));
    }
    semver::Version::parse(&manifest.version)
        .map_err(|e| format!("manifest version {:?} is not semver: {e}", manifest.version))?;
    let declared = semver::Version::parse(&manifest.contract_version).map_err(|e| {
        format!(
            "manifest contract-version {:?} is not semver: {e}",
            manifest.contract_version
        )
    })?;
    if (declared.major, declared.minor) != (exported.major, exported.minor) {
        return Err(format!(
            "the manifest declares contract {declared} but the component exports contract {exported}"
        ));
    }
    if manifest.capabilities.max_members_per_patch == 0 {
        return Err("max-members-per-patch must be at least 1".to_owned());
    }
    Ok(())
}

/// The user of the smoke call: every attribute set, nothing unusual.
pub fn fixture_user() -> DirectoryUser {
    DirectoryUser {
        id: "00000000-0000-4000-8000-000000000001".to_owned(),
        username: "smoke.test".to_owned(),
        password_expired: false,
        suspended: false,
        first_name: Some("Smoke".to_owned()),
        middle_name: None,
        last_name: Some("Test".to_owned()),
        display_name: Some("Smoke Test".to_owned()),
        emails: vec![Email {
            value: "smoke.test@example.com".to_owned(),
            kind: Some("work".to_owned()),
            primary: true,
        }],
        addresses: Vec::new(),
        phones: Vec::new(),
        employee_identifier: Some("0001".to_owned()),
        department: Some("Quality".to_owned()),
        company: Some("Example".to_owned()),
        job_title: Some("Tester".to_owned()),
        location: Some("Remote".to_owned()),
        custom_attributes: Vec::new(),
    }
}

/// The group of the smoke call.
pub fn fixture_group() -> DirectoryGroup {
    DirectoryGroup {
        id: "00000000-0000-4000-8000-0000000000g1".to_owned(),
        name: "Smoke Testers".to_owned(),
        description: None,
    }
}

/// The group event of the smoke call.
pub fn fixture_group_event() -> GroupEventFacts {
    GroupEventFacts {
        event: GroupEvent::GroupUnbound,
        group: fixture_group(),
        members: vec![MemberFacts {
            user_id: fixture_user().id,
            other_managed_groups: Vec::new(),
            directly_assigned: false,
        }],
        group_management: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_must_name_their_resource_type() {
        let cap = 1 << 20;
        let check = |text: &str, kind| scim_document(text.to_owned(), kind, cap);
        let user = format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":"a"}}"#);
        let document = check(&user, ResourceKind::User).unwrap();
        assert_eq!(document.value()["userName"], "a");
        let error = check(&user, ResourceKind::Group).unwrap_err();
        assert!(error.to_string().contains(GROUP_SCHEMA), "{error}");
        let error = check(r#"{"userName":"a"}"#, ResourceKind::User).unwrap_err();
        assert!(
            error.to_string().contains("`schemas` is missing"),
            "{error}"
        );
        let error = check("{oops", ResourceKind::User).unwrap_err();
        assert!(matches!(error, OutputError::NotJson(_)));
        let error = check("[]", ResourceKind::User).unwrap_err();
        assert!(error.to_string().contains("an array"), "{error}");
        let error = check("42", ResourceKind::User).unwrap_err();
        assert!(error.to_string().contains("a number"), "{error}");
        let no_name = format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":" "}}"#);
        assert!(check(&no_name, ResourceKind::User).is_err());
        let numeric = format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":7}}"#);
        assert!(matches!(
            check(&numeric, ResourceKind::User),
            Err(OutputError::NotScim(_))
        ));
        let twice = format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":"a","userName":"b"}}"#);
        let error = check(&twice, ResourceKind::User).unwrap_err();
        assert!(error.to_string().contains("duplicate"), "{error}");
        let trailing = format!(r#"{{"schemas":["{USER_SCHEMA}"],"userName":"a"}} junk"#);
        assert!(matches!(
            check(&trailing, ResourceKind::User),
            Err(OutputError::NotJson(_))
        ));
    }

    #[test]
    fn oversized_documents_are_refused_before_parsing() {
        let error = scim_document("x".repeat(11), ResourceKind::User, 10).unwrap_err();
        assert_eq!(error, OutputError::TooLarge { size: 11, cap: 10 });
    }

    #[test]
    fn decisions_must_cover_exactly_the_members_asked_about() {
        use super::super::contract::{AccountAction, GroupAction, MemberDecision};
        let facts = fixture_group_event();
        let mut decision = GroupDecision {
            group: GroupAction::LeaveAsIs,
            members: vec![],
            rule: "r".to_owned(),
        };
        assert!(group_decision(&facts, &decision).is_err());
        decision.members.push(MemberDecision {
            user_id: fixture_user().id,
            action: AccountAction::Keep,
        });
        assert!(group_decision(&facts, &decision).is_ok());
        decision.members.push(MemberDecision {
            user_id: "stranger".to_owned(),
            action: AccountAction::Delete,
        });
        assert!(group_decision(&facts, &decision).is_err());
    }
}
