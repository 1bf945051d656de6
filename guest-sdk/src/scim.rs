//! SCIM 2.0 JSON builders (RFC 7643) and filter helpers (RFC 7644 §3.4.2.2).
//!
//! [`ScimResource`] never writes an empty value: an absent or blank
//! attribute is left out of the document, so an application never receives
//! `""` where the directory had nothing.

use serde_json::{Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A finished SCIM document, as the connector hands it to the host: JSON
/// text. Made from a JSON tree (`Value::into`, what [`ScimResource`] and
/// `json!` build) or serialized straight from typed data
/// ([`ScimJson::serialize`], what the defaults do: no tree is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimJson(String);

impl ScimJson {
    /// Serializes typed data (a `#[derive(Serialize)]` struct) as the
    /// document.
    pub fn serialize<T: serde::Serialize + ?Sized>(
        document: &T,
    ) -> Result<Self, crate::MappingError> {
        serde_json::to_string(document).map(ScimJson).map_err(|e| {
            crate::MappingError::other(format!("the document cannot be serialized: {e}"))
        })
    }

    /// Text the SDK's own writer produced, which is a JSON object.
    pub(crate) fn written(text: String) -> Self {
        ScimJson(text)
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    pub fn into_text(self) -> String {
        self.0
    }

    /// The document as a JSON tree (for tests and inspection).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl From<Value> for ScimJson {
    fn from(document: Value) -> Self {
        // `serde_json::to_string` writes straight into a buffer (`Display`
        // goes through the formatting machinery and costs several times
        // more); a tree always serializes.
        ScimJson(serde_json::to_string(&document).unwrap_or_else(|_| document.to_string()))
    }
}

/// A SCIM resource under construction.
#[derive(Debug, Clone)]
pub struct ScimResource {
    schemas: Vec<String>,
    attributes: Map<String, Value>,
}

impl ScimResource {
    /// A resource whose `schemas` holds `core_schema`.
    pub fn new(core_schema: &str) -> Self {
        ScimResource {
            schemas: vec![core_schema.to_owned()],
            attributes: Map::new(),
        }
    }

    /// A core User.
    pub fn user() -> Self {
        Self::new(USER_SCHEMA)
    }

    /// A core Group.
    pub fn group() -> Self {
        Self::new(GROUP_SCHEMA)
    }

    /// A complex value (an entry of `addresses`, say): no `schemas`.
    pub fn complex() -> Self {
        ScimResource {
            schemas: Vec::new(),
            attributes: Map::new(),
        }
    }

    /// Sets an attribute by path: `userName`, or `name.givenName` for a
    /// sub-attribute. Blank strings, nulls, empty arrays and objects are
    /// skipped.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        if is_blank(&value) {
            return self;
        }
        if !path.contains('.') {
            self.attributes.insert(path.to_owned(), value);
            return self;
        }
        let mut target = &mut self.attributes;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                target.insert(part.to_owned(), value);
                break;
            }
            let entry = target
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(map) => target = map,
                _ => unreachable!("entry was made an object above"),
            }
        }
        self
    }

    /// Sets an attribute when a value is present.
    pub fn set_opt<V: Into<Value>>(self, path: &str, value: Option<V>) -> Self {
        match value {
            Some(value) => self.set(path, value),
            None => self,
        }
    }

    /// Sets an attribute of a schema extension, adding the extension to
    /// `schemas` the first time it is used.
    pub fn extension(mut self, schema: &str, name: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        if is_blank(&value) {
            return self;
        }
        if !self.schemas.iter().any(|s| s == schema) {
            self.schemas.push(schema.to_owned());
        }
        let entry = self
            .attributes
            .entry(schema.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = entry {
            map.insert(name.to_owned(), value);
        }
        self
    }

    /// Sets an extension attribute when a value is present.
    pub fn extension_opt<V: Into<Value>>(self, schema: &str, name: &str, value: Option<V>) -> Self {
        match value {
            Some(value) => self.extension(schema, name, value),
            None => self,
        }
    }

    /// The finished JSON document.
    pub fn build(mut self) -> Value {
        // Key order carries no meaning in SCIM: `schemas` joins the other
        // attributes rather than the map being rebuilt around it.
        if !self.schemas.is_empty() {
            self.attributes.insert(
                "schemas".to_owned(),
                Value::Array(self.schemas.into_iter().map(Value::String).collect()),
            );
        }
        Value::Object(self.attributes)
    }
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A SCIM string literal: `value` quoted, with `"` and `\` escaped as JSON
/// requires (RFC 7644 §3.4.2.2 compares against JSON string values).
pub fn quote(value: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// `attribute eq "value"`, safely quoted.
pub fn filter_eq(attribute: &str, value: &str) -> String {
    format!("{attribute} eq {}", quote(value))
}

/// A string attribute of a SCIM document, by path (`name.givenName`, or an
/// extension attribute as `urn:…:User:employeeNumber`).
pub fn get_str<'a>(document: &'a Value, path: &str) -> Option<&'a str> {
    lookup(document, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Any attribute of a SCIM document, by path (see [`get_str`]).
pub fn lookup<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some((schema, attribute)) = path.rsplit_once(':') {
        return document.get(schema)?.get(attribute);
    }
    path.split('.')
        .try_fold(document, |node, part| node.get(part))
}

/// The entry of a multi-valued attribute marked `primary`, else the first.
pub fn primary<'a>(document: &'a Value, attribute: &str) -> Option<&'a Value> {
    let items = document.get(attribute)?.as_array()?;
    items
        .iter()
        .find(|item| item.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| items.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_are_left_out() {
        let document = ScimResource::user()
            .set("userName", "ada")
            .set("displayName", "  ")
            .set_opt("title", None::<&str>)
            .set("name.givenName", "Ada")
            .set("name.familyName", "")
            .build();
        assert_eq!(
            document,
            serde_json::json!({
                "schemas": [USER_SCHEMA],
                "userName": "ada",
                "name": {"givenName": "Ada"},
            })
        );
    }

    #[test]
    fn extensions_add_their_schema_once() {
        let document = ScimResource::user()
            .extension(ENTERPRISE_USER_SCHEMA, "department", "R&D")
            .extension(ENTERPRISE_USER_SCHEMA, "employeeNumber", "42")
            .build();
        assert_eq!(
            document["schemas"],
            serde_json::json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA])
        );
        assert_eq!(
            get_str(
                &document,
                &format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber")
            ),
            Some("42")
        );
    }

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(
            filter_eq("userName", r#"a"b\c"#),
            r#"userName eq "a\"b\\c""#
        );
    }

    #[test]
    fn primary_prefers_the_marked_entry() {
        let document = serde_json::json!({"emails": [
            {"value": "a@x"}, {"value": "b@x", "primary": true}
        ]});
        assert_eq!(primary(&document, "emails").unwrap()["value"], "b@x");
    }
}
