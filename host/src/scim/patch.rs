//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource held as JSON.
//!
//! Operations apply in order to a copy of the resource; the caller checks
//! the result against the schema and stores it in one write, so a request
//! whose third operation fails changes nothing.
//!
//! Dialects accepted beyond the RFC, because identity providers send them:
//! `op` in any case (`"Replace"`, Entra ID), a `remove` that names the
//! values to remove in `value` instead of a filter (Entra ID for group
//! members), and a `value` that is a lone object where a list is expected.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttributeRules, Filter, PatchPath, matches, parse_patch_path_with};
use super::schema::{EXTENSION_URNS, ResourceType};

/// The most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub op: Op,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Reads a PatchOp request body.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let Some(request) = body.as_object() else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a JSON object",
        ));
    };
    let declares_patch = request
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("schemas"))
        .and_then(|(_, schemas)| schemas.as_array())
        .is_some_and(|schemas| {
            schemas.iter().any(|schema| {
                schema
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
    if !declares_patch {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body must list the schema {PATCH_SCHEMA}"
        )));
    }
    let operations = request
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, operations)| operations.as_array())
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body must carry a list of Operations"))?;
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH may carry at most {MAX_OPERATIONS} operations"
        )));
    }
    operations
        .iter()
        .enumerate()
        .map(|(index, operation)| parse_operation(index, operation))
        .collect()
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn parse_operation(index: usize, operation: &Value) -> Result<Operation, ScimError> {
    let at = |message: String| ScimError::invalid_syntax(format!("Operations[{index}]: {message}"));
    let Some(operation) = operation.as_object() else {
        return Err(at("an operation must be a JSON object".into()));
    };
    let op = match field(operation, "op").and_then(Value::as_str) {
        Some(op) if op.eq_ignore_ascii_case("add") => Op::Add,
        Some(op) if op.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(op) if op.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(op) => {
            return Err(at(format!(
                "unknown op {op:?}; expected add, replace or remove"
            )));
        }
        None => return Err(at("op is required".into())),
    };
    let path = match field(operation, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) if path.trim().is_empty() => None,
        Some(Value::String(path)) => Some(
            parse_patch_path_with(path.trim(), EXTENSION_URNS).map_err(|error| {
                ScimError::invalid_path(format!("Operations[{index}].path: {error}"))
            })?,
        ),
        Some(_) => return Err(at("path must be a string".into())),
    };
    let value = field(operation, "value")
        .cloned()
        .filter(|value| !value.is_null());
    match (op, &path, &value) {
        (Op::Remove, None, _) => Err(ScimError::no_target(format!(
            "Operations[{index}]: remove needs a path"
        ))),
        (Op::Add | Op::Replace, _, None) => Err(at("value is required".into())),
        (Op::Add | Op::Replace, None, Some(value)) if !value.is_object() => Err(at(
            "without a path, value must be an object of attributes".into(),
        )),
        _ => Ok(Operation { op, path, value }),
    }
}

/// Applies operations to `resource` (a JSON object of the resource's
/// attributes, extensions under their URN keys).
pub fn apply(
    resource_type: &ResourceType,
    resource: &mut Map<String, Value>,
    operations: &[Operation],
) -> Result<(), ScimError> {
    for operation in operations {
        match &operation.path {
            None => {
                if let Some(Value::Object(values)) = &operation.value {
                    for (key, value) in values {
                        apply_keyed(resource_type, resource, operation.op, key, value)?;
                    }
                }
            }
            Some(path) => apply_path(resource_type, resource, operation, path)?,
        }
    }
    Ok(())
}

/// One entry of a path-less add/replace. Entra ID writes attribute paths
/// as keys (`"name.givenName"`, `"urn:…:enterprise:2.0:User:employeeNumber"`);
/// those are applied as if they had come as a path.
fn apply_keyed(
    resource_type: &ResourceType,
    resource: &mut Map<String, Value>,
    op: Op,
    key: &str,
    value: &Value,
) -> Result<(), ScimError> {
    let is_path = resource_type.extension(key).is_none()
        && (key.contains('.') || key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")));
    if !is_path {
        return apply_at_key(resource_type, resource, op, key, None, value.clone());
    }
    let path = parse_patch_path_with(key, EXTENSION_URNS)
        .map_err(|error| ScimError::invalid_path(format!("{key}: {error}")))?;
    let operation = Operation {
        op,
        path: Some(path.clone()),
        value: Some(value.clone()),
    };
    apply_path(resource_type, resource, &operation, &path)
}

/// Sets `key` (optionally its sub-attribute) in `container` for add/replace.
fn apply_at_key(
    resource_type: &ResourceType,
    container: &mut Map<String, Value>,
    op: Op,
    key: &str,
    sub: Option<&str>,
    value: Value,
) -> Result<(), ScimError> {
    // An extension named as a key of a path-less add/replace.
    if sub.is_none()
        && let Some(extension) = resource_type.extension(key)
    {
        let Value::Object(fields) = value else {
            return Err(ScimError::invalid_value(format!(
                "{} must be an object",
                extension.id
            )));
        };
        let target = object_at(container, extension.id)?;
        for (name, field_value) in fields {
            if name.eq_ignore_ascii_case("schemas") {
                continue;
            }
            let multi = extension.attribute(&name).is_some_and(|a| a.multi_valued);
            set_value(target, &name, None, field_value, op, multi)?;
        }
        return Ok(());
    }
    let multi = resource_type
        .core
        .attribute(key)
        .is_some_and(|a| a.multi_valued);
    set_value(container, key, sub, value, op, multi)
}

fn apply_path(
    resource_type: &ResourceType,
    resource: &mut Map<String, Value>,
    operation: &Operation,
    path: &PatchPath,
) -> Result<(), ScimError> {
    let attr = &path.attr;
    let extension = match &attr.urn {
        Some(urn) if !urn.eq_ignore_ascii_case(resource_type.core.id) => Some(
            resource_type
                .extension(urn)
                .ok_or_else(|| ScimError::invalid_path(format!("unknown schema {urn:?}")))?,
        ),
        _ => None,
    };
    // The whole extension object.
    if attr.attr.is_empty() {
        let Some(extension) = extension else {
            return Err(ScimError::invalid_path("the path names no attribute"));
        };
        return match operation.op {
            Op::Remove => {
                remove_key(resource, extension.id);
                Ok(())
            }
            Op::Add | Op::Replace => {
                // Sub-attributes the value leaves out stay (RFC 7644 §3.5.2.3).
                let value = operation.value.clone().unwrap_or(Value::Null);
                apply_at_key(
                    resource_type,
                    resource,
                    operation.op,
                    extension.id,
                    None,
                    value,
                )
            }
        };
    }
    let schema = extension.unwrap_or(resource_type.core);
    let multi = schema.attribute(&attr.attr).is_some_and(|a| a.multi_valued);
    let container = match extension {
        Some(extension) => {
            if operation.op == Op::Remove && !resource.contains_key(extension.id) {
                return Ok(());
            }
            object_at(resource, extension.id)?
        }
        None => resource,
    };
    match (&path.filter, operation.op) {
        (None, Op::Remove) => {
            remove_plain(
                container,
                &attr.attr,
                attr.sub.as_deref(),
                operation.value.as_ref(),
            );
            Ok(())
        }
        (None, op) => set_value(
            container,
            &attr.attr,
            attr.sub.as_deref(),
            operation.value.clone().unwrap_or(Value::Null),
            op,
            multi,
        ),
        (Some(filter), op) => apply_filtered(
            resource_type,
            container,
            &attr.attr,
            filter,
            path.sub_after_filter.as_deref(),
            op,
            operation.value.clone(),
        ),
    }
}

fn object_at<'a>(
    container: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, ScimError> {
    let existing = container
        .keys()
        .find(|existing| existing.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_string());
    let slot = container
        .entry(existing)
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| ScimError::invalid_path(format!("{key} is not a complex attribute")))
}

fn key_of(container: &Map<String, Value>, name: &str) -> Option<String> {
    container
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

fn remove_key(container: &mut Map<String, Value>, name: &str) {
    if let Some(key) = key_of(container, name) {
        container.remove(&key);
    }
}

fn set_value(
    container: &mut Map<String, Value>,
    name: &str,
    sub: Option<&str>,
    value: Value,
    op: Op,
    multi_valued: bool,
) -> Result<(), ScimError> {
    let key = key_of(container, name).unwrap_or_else(|| name.to_string());
    if let Some(sub) = sub {
        let slot = container
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        match slot {
            Value::Array(items) => {
                // A sub-attribute of every value of a multi-valued attribute.
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    let sub_key = key_of(item, sub).unwrap_or_else(|| sub.to_string());
                    item.insert(sub_key, value.clone());
                }
            }
            Value::Object(fields) => {
                let sub_key = key_of(fields, sub).unwrap_or_else(|| sub.to_string());
                fields.insert(sub_key, value);
            }
            other => {
                let mut fields = Map::new();
                fields.insert(sub.to_string(), value);
                *other = Value::Object(fields);
            }
        }
        return Ok(());
    }
    if multi_valued && op == Op::Add {
        let additions = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        let slot = container
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        if let Value::Array(items) = slot {
            // At most one value is primary (RFC 7643 §2.4): a new primary
            // value takes the mark from the others.
            let new_primary = additions
                .iter()
                .any(|addition| addition.get("primary") == Some(&Value::Bool(true)));
            if new_primary {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    if item.get("primary") == Some(&Value::Bool(true)) {
                        item.insert("primary".into(), Value::Bool(false));
                    }
                }
            }
            for addition in additions {
                if !items.contains(&addition) {
                    items.push(addition);
                }
            }
        }
        return Ok(());
    }
    // A complex attribute takes the sub-attributes given and keeps the
    // others, for add and for replace alike (RFC 7644 §3.5.2.1, §3.5.2.3).
    if !multi_valued
        && let (Some(Value::Object(existing)), Value::Object(additions)) =
            (container.get_mut(&key), &value)
    {
        // Adding to a complex attribute merges its sub-attributes.
        for (sub_key, sub_value) in additions {
            let existing_key = key_of(existing, sub_key).unwrap_or_else(|| sub_key.clone());
            existing.insert(existing_key, sub_value.clone());
        }
        return Ok(());
    }
    container.insert(key, value);
    Ok(())
}

fn remove_plain(
    container: &mut Map<String, Value>,
    name: &str,
    sub: Option<&str>,
    value: Option<&Value>,
) {
    let Some(key) = key_of(container, name) else {
        return;
    };
    match (sub, value, container.get_mut(&key)) {
        (Some(sub), _, Some(Value::Array(items))) => {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                remove_key(item, sub);
            }
        }
        (Some(sub), _, Some(Value::Object(fields))) => remove_key(fields, sub),
        (None, Some(removals), Some(Value::Array(items))) => {
            // Entra ID: remove the listed values (matched by their `value`).
            let removals: Vec<&Value> = match removals {
                Value::Array(removals) => removals.iter().collect(),
                single => vec![single],
            };
            items.retain(|item| !removals.iter().any(|removal| same_value(item, removal)));
        }
        _ => {
            container.remove(&key);
        }
    }
}

fn same_value(item: &Value, removal: &Value) -> bool {
    match (item.get("value"), removal.get("value")) {
        (Some(left), Some(right)) => left == right,
        _ => item == removal,
    }
}

fn apply_filtered(
    resource_type: &ResourceType,
    container: &mut Map<String, Value>,
    name: &str,
    filter: &Filter,
    sub: Option<&str>,
    op: Op,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let rules = ElementRules {
        resource_type,
        attribute: name,
    };
    if op != Op::Remove
        && let Some(mut element) = element_from_equalities(filter)
        && !container
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_array())
            .is_some_and(|items| items.iter().any(|item| matches(filter, item, &rules)))
    {
        // `emails[type eq "work"].value` on a user without a work email:
        // the value the filter describes is created (what Entra ID expects).
        match (sub, value) {
            (Some(sub), Some(value)) => {
                element.insert(sub.to_string(), value);
            }
            (None, Some(Value::Object(fields))) => element.extend(fields),
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "a value of {name} is required"
                )));
            }
        }
        let key = key_of(container, name).unwrap_or_else(|| name.to_string());
        let slot = container
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        if let Value::Array(items) = slot {
            items.push(Value::Object(element));
        }
        return Ok(());
    }
    let Some(key) = key_of(container, name) else {
        return match op {
            Op::Remove => Ok(()),
            _ => Err(ScimError::no_target(format!(
                "{name} has no values to match"
            ))),
        };
    };
    let Some(Value::Array(items)) = container.get_mut(&key) else {
        return Err(ScimError::invalid_path(format!(
            "{name} is not multi-valued"
        )));
    };
    let matching: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| matches(filter, item, &rules))
        .map(|(index, _)| index)
        .collect();
    if matching.is_empty() {
        return match op {
            Op::Remove => Ok(()),
            _ => Err(ScimError::no_target(format!(
                "no value of {name} matches the filter"
            ))),
        };
    }
    match (op, sub) {
        (Op::Remove, None) => {
            let mut index = 0;
            items.retain(|_| {
                let keep = !matching.contains(&index);
                index += 1;
                keep
            });
            if items.is_empty() {
                container.remove(&key);
            }
        }
        (Op::Remove, Some(sub)) => {
            for index in matching {
                if let Some(item) = items.get_mut(index).and_then(Value::as_object_mut) {
                    remove_key(item, sub);
                }
            }
        }
        (_, Some(sub)) => {
            for index in matching {
                if let Some(item) = items.get_mut(index).and_then(Value::as_object_mut) {
                    let sub_key = key_of(item, sub).unwrap_or_else(|| sub.to_string());
                    item.insert(sub_key, value.clone().unwrap_or(Value::Null));
                }
            }
        }
        (_, None) => {
            let Some(Value::Object(fields)) = value else {
                return Err(ScimError::invalid_value(format!(
                    "a value of {name} must be an object"
                )));
            };
            for index in matching {
                if let Some(item) = items.get_mut(index).and_then(Value::as_object_mut) {
                    if op == Op::Replace {
                        item.clear();
                    }
                    for (sub_key, sub_value) in &fields {
                        let existing = key_of(item, sub_key).unwrap_or_else(|| sub_key.clone());
                        item.insert(existing, sub_value.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// The element a filter of `eq` comparisons joined by `and` describes
/// (`type eq "work" and primary eq true`), if it is one.
fn element_from_equalities(filter: &Filter) -> Option<Map<String, Value>> {
    use super::filter::{CompareOp, Literal};
    let mut element = Map::new();
    let mut pending = vec![filter];
    while let Some(filter) = pending.pop() {
        match filter {
            Filter::And(left, right) => {
                pending.push(left);
                pending.push(right);
            }
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if path.urn.is_none() && path.sub.is_none() => {
                let value = match value {
                    Literal::String(text) => Value::String(text.clone()),
                    Literal::Bool(flag) => Value::Bool(*flag),
                    Literal::Number(number) => Value::Number(number.clone()),
                    Literal::Null => return None,
                };
                element.insert(path.attr.clone(), value);
            }
            _ => return None,
        }
    }
    Some(element)
}

/// Case rules for a value filter: paths inside `emails[...]` are
/// sub-attributes of `emails`.
struct ElementRules<'a> {
    resource_type: &'a ResourceType,
    attribute: &'a str,
}

impl AttributeRules for ElementRules<'_> {
    fn case_exact(&self, path: &super::filter::AttrPath) -> bool {
        let full = super::filter::AttrPath {
            urn: None,
            attr: self.attribute.to_string(),
            sub: Some(path.attr.clone()),
        };
        self.resource_type.case_exact(&full)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_TYPE, USER_TYPE};

    fn patch(resource: Value, body: Value) -> Result<Value, ScimError> {
        let operations = parse_request(&body)?;
        let Value::Object(mut resource) = resource else {
            unreachable!()
        };
        apply(&USER_TYPE, &mut resource, &operations)?;
        Ok(Value::Object(resource))
    }

    fn ops(operations: Value) -> Value {
        json!({ "schemas": [PATCH_SCHEMA], "Operations": operations })
    }

    #[test]
    fn replace_with_entra_capitalisation_and_string_booleans() {
        let out = patch(
            json!({ "userName": "a", "active": true }),
            ops(json!([{ "op": "Replace", "path": "active", "value": "False" }])),
        )
        .unwrap();
        // The string is kept here; the schema check turns it into a boolean.
        assert_eq!(out["active"], "False");
    }

    #[test]
    fn a_value_filter_picks_the_element_to_change() {
        let out = patch(
            json!({ "emails": [
                { "value": "a@work.example", "type": "work" },
                { "value": "a@home.example", "type": "home" }
            ] }),
            ops(json!([{ "op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@work.example" }])),
        )
        .unwrap();
        assert_eq!(out["emails"][0]["value"], "new@work.example");
        assert_eq!(out["emails"][1]["value"], "a@home.example");
    }

    #[test]
    fn a_filtered_add_creates_the_value_the_filter_describes() {
        let out = patch(
            json!({ "userName": "a", "emails": [{ "value": "a@home.example", "type": "home" }] }),
            ops(json!([{ "op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@work.example" }])),
        )
        .unwrap();
        assert_eq!(
            out["emails"][1],
            json!({ "type": "work", "value": "a@work.example" })
        );
    }

    #[test]
    fn entra_path_keys_and_complex_replace_merge() {
        let out = patch(
            json!({ "userName": "a", "name": { "givenName": "A", "familyName": "B" } }),
            ops(json!([{ "op": "Replace", "value": {
                "name.familyName": "C",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"
            } }])),
        )
        .unwrap();
        assert_eq!(out["name"], json!({ "givenName": "A", "familyName": "C" }));
        assert_eq!(out[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "7");
        let out = patch(
            out,
            ops(json!([{ "op": "replace", "path": "name", "value": { "givenName": "Z" } }])),
        )
        .unwrap();
        assert_eq!(out["name"], json!({ "givenName": "Z", "familyName": "C" }));
    }

    #[test]
    fn replace_with_a_filter_that_matches_nothing_is_no_target() {
        let error = patch(
            json!({ "emails": [{ "value": "a@x", "type": "home" }] }),
            ops(json!([{ "op": "replace", "path": "emails[type co \"wo\"].value", "value": "b" }])),
        )
        .unwrap_err();
        assert_eq!(error.scim_type, Some("noTarget"));
    }

    #[test]
    fn add_without_path_merges_and_appends() {
        let out = patch(
            json!({ "userName": "a", "emails": [{ "value": "a@x" }], "name": { "givenName": "A" } }),
            ops(json!([{ "op": "add", "value": {
                "emails": [{ "value": "b@x" }],
                "name": { "familyName": "B" },
                ENTERPRISE_USER_SCHEMA: { "department": "R&D" }
            } }])),
        )
        .unwrap();
        assert_eq!(out["emails"].as_array().unwrap().len(), 2);
        assert_eq!(out["name"], json!({ "givenName": "A", "familyName": "B" }));
        assert_eq!(out[ENTERPRISE_USER_SCHEMA]["department"], "R&D");
    }

    #[test]
    fn extension_paths_and_whole_extension_removal() {
        let path = format!("{ENTERPRISE_USER_SCHEMA}:manager");
        let out = patch(
            json!({ "userName": "a" }),
            ops(json!([{ "op": "add", "path": path, "value": { "value": "m1" } }])),
        )
        .unwrap();
        assert_eq!(out[ENTERPRISE_USER_SCHEMA]["manager"]["value"], "m1");
        let out = patch(
            out,
            ops(json!([{ "op": "remove", "path": ENTERPRISE_USER_SCHEMA }])),
        )
        .unwrap();
        assert!(out.get(ENTERPRISE_USER_SCHEMA).is_none());
    }

    #[test]
    fn entra_member_removal_by_value() {
        let operations = parse_request(&ops(json!([{
            "op": "Remove", "path": "members", "value": [{ "value": "u1" }]
        }])))
        .unwrap();
        let mut group =
            json!({ "displayName": "g", "members": [{ "value": "u1" }, { "value": "u2" }] });
        apply(&GROUP_TYPE, group.as_object_mut().unwrap(), &operations).unwrap();
        assert_eq!(group["members"], json!([{ "value": "u2" }]));
    }

    #[test]
    fn member_removal_by_filter() {
        let operations = parse_request(&ops(json!([{
            "op": "remove", "path": "members[value eq \"u2\"]"
        }])))
        .unwrap();
        let mut group =
            json!({ "displayName": "g", "members": [{ "value": "u1" }, { "value": "u2" }] });
        apply(&GROUP_TYPE, group.as_object_mut().unwrap(), &operations).unwrap();
        assert_eq!(group["members"], json!([{ "value": "u1" }]));
    }

    #[test]
    fn malformed_requests_are_refused_with_a_scim_type() {
        for (body, scim_type) in [
            (json!([]), "invalidSyntax"),
            (json!({ "Operations": [] }), "invalidSyntax"),
            (ops(json!([{ "op": "move", "path": "a" }])), "invalidSyntax"),
            (ops(json!([{ "op": "remove" }])), "noTarget"),
            (
                ops(json!([{ "op": "add", "path": "emails[type eq]", "value": 1 }])),
                "invalidPath",
            ),
            (ops(json!([{ "op": "add", "value": 3 }])), "invalidSyntax"),
            (ops(json!("nope")), "invalidSyntax"),
        ] {
            let error = parse_request(&body).unwrap_err();
            assert_eq!(error.scim_type, Some(scim_type), "{body}");
        }
    }
}
