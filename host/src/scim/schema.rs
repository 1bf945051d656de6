//! The SCIM schemas scimlink speaks (RFC 7643), as data: the inbound
//! server serves and enforces them, the engine names their URNs.
//!
//! One table describes each schema; the same table is served at `/Schemas`,
//! checks every incoming resource, and tells the filter evaluator which
//! attributes compare case-exactly. What is served therefore cannot differ
//! from what is enforced.
//!
//! Checking a resource ([`check_resource`]) is strict about what would lose
//! data silently and lenient about what real identity providers send:
//! - an unknown attribute or a value of the wrong type is refused, naming it;
//! - attribute names match without regard to case and are stored under their
//!   schema name;
//! - `"True"`/`"False"` strings (Entra ID) are accepted for booleans;
//! - `null` means absent; read-only attributes in a request are ignored, as
//!   RFC 7643 §2.2 asks;
//! - `password` is write-only: [`check_resource`] leaves it out of what
//!   the directory stores, and [`written_password`] hands it over apart, to
//!   be sealed; it is never returned.

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{AttrPath, AttributeRules};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const DIRECTORY_USER_SCHEMA: &str =
    "urn:scimlink:params:scim:schemas:extension:directory:1.0:User";
pub const DIRECTORY_GROUP_SCHEMA: &str =
    "urn:scimlink:params:scim:schemas:extension:directory:1.0:Group";

/// Every extension URN, for parsers that must tell a URN from an attribute.
pub const EXTENSION_URNS: &[&str] = &[
    ENTERPRISE_USER_SCHEMA,
    DIRECTORY_USER_SCHEMA,
    DIRECTORY_GROUP_SCHEMA,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Integer,
    Binary,
    Reference,
    Complex,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::Binary => "binary",
            Kind::Reference => "reference",
            Kind::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadWrite,
    ReadOnly,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Default,
    Always,
    Never,
}

/// One attribute of a schema.
#[derive(Debug, Clone, Copy)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub unique: bool,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [Attribute],
    pub description: &'static str,
}

const fn attr(name: &'static str, kind: Kind, description: &'static str) -> Attribute {
    Attribute {
        name,
        kind,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        unique: false,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    attr(name, Kind::String, description)
}

impl Attribute {
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn read_only(mut self) -> Self {
        self.mutability = Mutability::ReadOnly;
        self
    }
    const fn immutable(mut self) -> Self {
        self.mutability = Mutability::Immutable;
        self
    }
    const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
    const fn references(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }
    const fn complex(mut self, sub: &'static [Attribute]) -> Self {
        self.sub_attributes = sub;
        self
    }

    fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|sub| sub.name.eq_ignore_ascii_case(name))
    }
}

/// The sub-attributes of the common multi-valued shape
/// `{value, display, type, primary}`; `types` are the canonical values of
/// `type`.
const fn plural_subs(value_kind: Kind, types: &'static [&'static str]) -> [Attribute; 4] {
    [
        attr("value", value_kind, "The value."),
        string("display", "A human-readable name."),
        string("type", "A label of the value's function.").canonical(types),
        attr(
            "primary",
            Kind::Boolean,
            "Whether this is the primary value.",
        ),
    ]
}

const fn plural(
    name: &'static str,
    subs: &'static [Attribute],
    description: &'static str,
) -> Attribute {
    attr(name, Kind::Complex, description).multi().complex(subs)
}

const EMAIL_SUBS: [Attribute; 4] = plural_subs(Kind::String, &["work", "home", "other"]);
const PHONE_SUBS: [Attribute; 4] = plural_subs(
    Kind::String,
    &["work", "home", "mobile", "fax", "pager", "other"],
);
const IM_SUBS: [Attribute; 4] = plural_subs(
    Kind::String,
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
);
const PHOTO_SUBS: [Attribute; 4] = plural_subs(Kind::Reference, &["photo", "thumbnail"]);
const PLAIN_SUBS: [Attribute; 4] = plural_subs(Kind::String, &[]);
const CERTIFICATE_SUBS: [Attribute; 4] = plural_subs(Kind::Binary, &[]);

/// A schema: its URN, name and attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
    }
}

pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        string(
            "userName",
            "Unique identifier of the user, typically their login.",
        )
        .required()
        .unique(),
        attr("name", Kind::Complex, "The components of the user's name.").complex(&[
            string("formatted", "The full name, formatted for display."),
            string("familyName", "The family name."),
            string("givenName", "The given name."),
            string("middleName", "The middle name(s)."),
            string("honorificPrefix", "The honorific prefix(es)."),
            string("honorificSuffix", "The honorific suffix(es)."),
        ]),
        string("displayName", "The name of the user, suitable for display."),
        string("nickName", "The casual way to address the user."),
        attr(
            "profileUrl",
            Kind::Reference,
            "A URI of the user's online profile.",
        )
        .references(&["external"]),
        string("title", "The user's title, such as \"Vice President\"."),
        string(
            "userType",
            "The relationship between the organization and the user.",
        ),
        string(
            "preferredLanguage",
            "The user's preferred written or spoken language.",
        ),
        string("locale", "The user's default location for localization."),
        string("timezone", "The user's time zone, in IANA format."),
        attr("active", Kind::Boolean, "The user's administrative status."),
        Attribute {
            mutability: Mutability::WriteOnly,
            returned: Returned::Never,
            case_exact: true,
            ..string(
                "password",
                "Write-only, never returned: kept sealed until every application \
                 that takes passwords has it, then wiped.",
            )
        },
        plural("emails", &EMAIL_SUBS, "Email addresses."),
        plural("phoneNumbers", &PHONE_SUBS, "Phone numbers."),
        plural("ims", &IM_SUBS, "Instant messaging addresses."),
        plural("photos", &PHOTO_SUBS, "URLs of photos."),
        attr("addresses", Kind::Complex, "Physical mailing addresses.")
            .multi()
            .complex(&[
                string("formatted", "The full mailing address."),
                string("streetAddress", "The street address."),
                string("locality", "The city or locality."),
                string("region", "The state or region."),
                string("postalCode", "The zip or postal code."),
                string("country", "The country."),
                string("type", "A label of the address's function.")
                    .canonical(&["work", "home", "other"]),
                attr(
                    "primary",
                    Kind::Boolean,
                    "Whether this is the primary address.",
                ),
            ]),
        attr(
            "groups",
            Kind::Complex,
            "The groups the user belongs to directly.",
        )
        .multi()
        .read_only()
        .complex(&[
            string("value", "The group's id.").read_only(),
            attr("$ref", Kind::Reference, "The group's URI.")
                .references(&["Group"])
                .read_only(),
            string("display", "The group's displayName.").read_only(),
            string("type", "direct or indirect.")
                .canonical(&["direct", "indirect"])
                .read_only(),
        ]),
        plural("entitlements", &PLAIN_SUBS, "Entitlements of the user."),
        plural("roles", &PLAIN_SUBS, "Roles of the user."),
        plural(
            "x509Certificates",
            &CERTIFICATE_SUBS,
            "X.509 certificates of the user.",
        ),
    ],
};

pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string(
            "employeeNumber",
            "A string identifier of the user within the organization.",
        ),
        string("costCenter", "The name of a cost center."),
        string("organization", "The name of an organization."),
        string("division", "The name of a division."),
        string("department", "The name of a department."),
        attr("manager", Kind::Complex, "The user's manager.").complex(&[
            string("value", "The manager's id."),
            attr("$ref", Kind::Reference, "The manager's URI.").references(&["User"]),
            string("displayName", "The manager's displayName.").read_only(),
        ]),
    ],
};

pub static DIRECTORY_USER: Schema = Schema {
    id: DIRECTORY_USER_SCHEMA,
    name: "DirectoryUser",
    description: "What the scimlink directory knows of a user beyond the standard schemas",
    attributes: &[
        attr(
            "passwordExpired",
            Kind::Boolean,
            "The user's password has expired: they are provisioned inactive.",
        ),
        string("location", "The user's work location (office or city)."),
        attr(
            "customAttributes",
            Kind::Complex,
            "Directory attributes outside the standard set, by name; connectors may map them.",
        )
        .multi()
        .complex(&[
            string("name", "The attribute's name.").case_exact(),
            string("value", "The attribute's value."),
        ]),
    ],
};

pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        string("displayName", "A human-readable name of the group.")
            .required()
            .unique(),
        attr("members", Kind::Complex, "The members of the group.")
            .multi()
            .complex(&[
                string("value", "The member's id.").immutable().case_exact(),
                attr("$ref", Kind::Reference, "The member's URI.")
                    .references(&["User", "Group"])
                    .immutable(),
                string("type", "The member's resource type.")
                    .canonical(&["User", "Group"])
                    .immutable(),
                // Accepted (RFC 7644 §3.5.2.1 sends it) and not kept: the
                // name is the member's own.
                string("display", "The member's name.").read_only(),
            ]),
    ],
};

pub static DIRECTORY_GROUP: Schema = Schema {
    id: DIRECTORY_GROUP_SCHEMA,
    name: "DirectoryGroup",
    description: "What the scimlink directory knows of a group beyond the standard schema",
    attributes: &[string("description", "What the group is for.")],
};

/// A resource type: its core schema and extensions.
#[derive(Debug)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

pub static USER_TYPE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    core: &USER,
    extensions: &[&ENTERPRISE_USER, &DIRECTORY_USER],
};

pub static GROUP_TYPE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    core: &GROUP,
    extensions: &[&DIRECTORY_GROUP],
};

pub static RESOURCE_TYPES: [&ResourceType; 2] = [&USER_TYPE, &GROUP_TYPE];

pub fn all_schemas() -> [&'static Schema; 5] {
    [
        &USER,
        &ENTERPRISE_USER,
        &DIRECTORY_USER,
        &GROUP,
        &DIRECTORY_GROUP,
    ]
}

impl ResourceType {
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .copied()
            .find(|schema| schema.id.eq_ignore_ascii_case(urn))
    }

    /// The schema an attribute path is in, with the attribute's definition.
    /// `id`, `externalId` and `meta.*` are the common attributes of
    /// RFC 7643 §3.1.
    pub fn resolve(&self, path: &AttrPath) -> Option<(&'static Schema, &'static Attribute)> {
        let schema = match &path.urn {
            None => self.core,
            Some(urn) if urn.eq_ignore_ascii_case(self.core.id) => self.core,
            Some(urn) => self.extension(urn)?,
        };
        let attribute = schema.attribute(&path.attr)?;
        match &path.sub {
            Some(sub) => Some((schema, attribute.sub(sub)?)),
            None => Some((schema, attribute)),
        }
    }

    /// The SCIM representation of this resource type (`/ResourceTypes`).
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.core.id,
            "schemaExtensions": self.extensions.iter()
                .map(|schema| json!({ "schema": schema.id, "required": false }))
                .collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base}/ResourceTypes/{}", self.name),
            },
        })
    }
}

impl AttributeRules for ResourceType {
    fn case_exact(&self, path: &AttrPath) -> bool {
        if path.urn.is_none() && path.sub.is_none() {
            if path.attr.eq_ignore_ascii_case("id") || path.attr.eq_ignore_ascii_case("externalId")
            {
                return true;
            }
            if path.attr.eq_ignore_ascii_case("meta") {
                return false;
            }
        }
        self.resolve(path)
            .is_some_and(|(_, attribute)| attribute.case_exact)
    }
}

fn attribute_json(attribute: &Attribute) -> Value {
    let mut out = json!({
        "name": attribute.name,
        "type": attribute.kind.name(),
        "multiValued": attribute.multi_valued,
        "description": attribute.description,
        "required": attribute.required,
        "caseExact": attribute.case_exact,
        "mutability": match attribute.mutability {
            Mutability::ReadWrite => "readWrite",
            Mutability::ReadOnly => "readOnly",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": match attribute.returned {
            Returned::Default => "default",
            Returned::Always => "always",
            Returned::Never => "never",
        },
        "uniqueness": if attribute.unique { "server" } else { "none" },
    });
    if let Value::Object(map) = &mut out {
        if !attribute.canonical_values.is_empty() {
            map.insert("canonicalValues".into(), json!(attribute.canonical_values));
        }
        if attribute.kind == Kind::Reference {
            map.insert("referenceTypes".into(), json!(attribute.reference_types));
        }
        if attribute.kind == Kind::Complex {
            map.insert(
                "subAttributes".into(),
                Value::Array(
                    attribute
                        .sub_attributes
                        .iter()
                        .map(attribute_json)
                        .collect(),
                ),
            );
        }
    }
    out
}

impl Schema {
    /// The SCIM representation of this schema (`/Schemas`).
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base}/Schemas/{}", self.id),
            },
        })
    }
}

/// The longest password the directory takes.
pub const MAX_PASSWORD_CHARACTERS: usize = 1024;

/// The password a resource a client sent sets, if it sets one: a
/// non-empty string (RFC 7643 §4.1.1). `null` sets none.
pub fn written_password(input: &Value) -> Result<Option<crate::secrets::Secret>, ScimError> {
    let Value::Object(input) = input else {
        return Ok(None);
    };
    let Some((_, value)) = input
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("password"))
    else {
        return Ok(None);
    };
    match value {
        Value::Null => Ok(None),
        Value::String(password) if password.chars().count() > MAX_PASSWORD_CHARACTERS => {
            Err(ScimError::invalid_value(format!(
                "password must be at most {MAX_PASSWORD_CHARACTERS} characters"
            )))
        }
        Value::String(password) if !password.is_empty() => {
            Ok(Some(crate::secrets::Secret::new(password.as_str())))
        }
        Value::String(_) => Err(ScimError::invalid_value("password must not be empty")),
        _ => Err(wrong_type("password", "string")),
    }
}

/// A resource as checked: writable attributes under their schema names
/// (extensions under their URN), without `id`, `meta`, `schemas`, read-only
/// and write-only attributes.
pub type Attributes = Map<String, Value>;

/// Checks a resource a client sent and returns what the directory stores.
pub fn check_resource(
    resource_type: &ResourceType,
    input: &Value,
) -> Result<Attributes, ScimError> {
    let Value::Object(input) = input else {
        return Err(ScimError::invalid_syntax(
            "the resource must be a JSON object",
        ));
    };
    let mut out = Map::new();
    for (key, value) in input {
        if key.eq_ignore_ascii_case("schemas") {
            check_schemas_list(resource_type, value)?;
            continue;
        }
        if key.eq_ignore_ascii_case("id") || key.eq_ignore_ascii_case("meta") {
            continue;
        }
        if key.eq_ignore_ascii_case("externalId") {
            match value {
                Value::Null => {}
                Value::String(text) => {
                    out.insert("externalId".into(), Value::String(text.clone()));
                }
                _ => return Err(wrong_type("externalId", "string")),
            }
            continue;
        }
        if let Some(extension) = resource_type.extension(key) {
            match value {
                Value::Null => {}
                Value::Object(fields) => {
                    let checked = check_attributes(extension, fields, extension.id)?;
                    if !checked.is_empty() {
                        out.insert(extension.id.to_string(), Value::Object(checked));
                    }
                }
                _ => return Err(wrong_type(extension.id, "complex")),
            }
            continue;
        }
        let Some(attribute) = resource_type.core.attribute(key) else {
            return Err(ScimError::invalid_syntax(format!(
                "unknown attribute {key:?} for a {}",
                resource_type.name
            ))
            .with_type("invalidValue"));
        };
        if let Some(value) = check_value(attribute, value, attribute.name)? {
            out.insert(attribute.name.to_string(), value);
        }
    }
    for attribute in resource_type.core.attributes {
        if attribute.required && !out.contains_key(attribute.name) {
            return Err(ScimError::invalid_value(format!(
                "{} is required",
                attribute.name
            )));
        }
    }
    Ok(out)
}

fn check_schemas_list(resource_type: &ResourceType, value: &Value) -> Result<(), ScimError> {
    let Value::Array(schemas) = value else {
        return Err(wrong_type("schemas", "list of URNs"));
    };
    for schema in schemas {
        let Value::String(urn) = schema else {
            return Err(wrong_type("schemas", "list of URNs"));
        };
        if !urn.eq_ignore_ascii_case(resource_type.core.id)
            && resource_type.extension(urn).is_none()
        {
            return Err(ScimError::invalid_value(format!(
                "schema {urn:?} is not one of a {}",
                resource_type.name
            )));
        }
    }
    Ok(())
}

fn check_attributes(
    schema: &Schema,
    fields: &Map<String, Value>,
    path: &str,
) -> Result<Attributes, ScimError> {
    let mut out = Map::new();
    for (key, value) in fields {
        // Some clients repeat the extension's URN inside it.
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let Some(attribute) = schema.attribute(key) else {
            return Err(ScimError::invalid_value(format!(
                "unknown attribute {key:?} in {path}"
            )));
        };
        if let Some(value) = check_value(attribute, value, attribute.name)? {
            out.insert(attribute.name.to_string(), value);
        }
    }
    Ok(out)
}

/// The checked value of one attribute, or `None` when it is not stored.
fn check_value(
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, ScimError> {
    if matches!(
        attribute.mutability,
        Mutability::ReadOnly | Mutability::WriteOnly
    ) {
        return Ok(None);
    }
    match value {
        Value::Null => return Ok(None),
        Value::Array(items) if attribute.multi_valued => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(item) = check_single(attribute, item, path)? {
                    out.push(item);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Value::Array(out)));
        }
        Value::Array(_) => return Err(wrong_type(path, "single value")),
        _ if attribute.multi_valued => {
            // A lone value where a list is expected: take it as a list of one.
            return Ok(check_single(attribute, value, path)?.map(|item| Value::Array(vec![item])));
        }
        _ => {}
    }
    check_single(attribute, value, path)
}

fn check_single(
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, ScimError> {
    match (attribute.kind, value) {
        (_, Value::Null) => Ok(None),
        (Kind::String | Kind::Reference | Kind::Binary, Value::String(_)) => {
            Ok(Some(value.clone()))
        }
        (Kind::Boolean, Value::Bool(_)) => Ok(Some(value.clone())),
        (Kind::Boolean, Value::String(text)) if text.eq_ignore_ascii_case("true") => {
            Ok(Some(Value::Bool(true)))
        }
        (Kind::Boolean, Value::String(text)) if text.eq_ignore_ascii_case("false") => {
            Ok(Some(Value::Bool(false)))
        }
        (Kind::Integer, Value::Number(number)) if number.is_i64() => Ok(Some(value.clone())),
        (Kind::Complex, Value::Object(fields)) => {
            let mut out = Map::new();
            for (key, sub_value) in fields {
                let Some(sub) = attribute.sub(key) else {
                    return Err(ScimError::invalid_value(format!(
                        "unknown attribute {key:?} in {path}"
                    )));
                };
                let sub_path = format!("{path}.{}", sub.name);
                if let Some(sub_value) = check_value(sub, sub_value, &sub_path)? {
                    out.insert(sub.name.to_string(), sub_value);
                }
            }
            if out.is_empty() {
                Ok(None)
            } else {
                Ok(Some(Value::Object(out)))
            }
        }
        (kind, _) => Err(wrong_type(path, kind.name())),
    }
}

fn wrong_type(path: &str, expected: &str) -> ScimError {
    ScimError::invalid_value(format!("{path} must be a {expected}"))
}

/// The schema URNs a stored resource carries: its core schema, then each
/// extension it has attributes of.
pub fn schemas_of(resource_type: &ResourceType, attributes: &Attributes) -> Vec<Value> {
    let mut schemas = vec![Value::String(resource_type.core.id.to_string())];
    for extension in resource_type.extensions {
        if attributes.contains_key(extension.id) {
            schemas.push(Value::String(extension.id.to_string()));
        }
    }
    schemas
}
