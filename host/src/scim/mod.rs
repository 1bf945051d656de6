//! SCIM 2.0 as scimlink speaks it: schemas, filters, PATCH and the error
//! body (with the HTTP response it makes); no routes.
//!
//! The inbound server ([`crate::scim_server`]), the provisioning engine and
//! the connector sandbox's simulated application all build on this module;
//! it depends on none of them, so the engine shares the schema definitions
//! without depending on the inbound server.
//!
//! The filter and PATCH-path grammar is our own: the crates considered
//! (`scim_proto`, `scim-filter`, `scim_v2`) either pull a whole identity
//! server's model with them or do not parse value paths and URN-qualified
//! attributes, and the parser must be fuzzable in isolation.

pub mod error;
pub mod filter;
pub mod patch;
mod robustness;
pub mod schema;

/// What a redacted password reads as.
pub const REDACTED: &str = "[redacted]";

/// `body` with every password it carries replaced by [`REDACTED`]: any
/// `password` attribute, at any depth (a resource, an extension, a list's
/// resources an application should not have echoed), and the value of a
/// PATCH operation whose path is `password`. Whatever keeps or shows a
/// request or an answer (a sandbox recording, the simulated application's
/// log, a debug print) passes it through here first.
pub fn redact_passwords(body: &mut serde_json::Value) {
    for_each_password(body, &mut |value| {
        *value = serde_json::Value::String(REDACTED.into());
    });
}

/// The passwords `body` carries, where [`redact_passwords`] finds them:
/// what an answer that echoes one is scrubbed of ([`scrub_passwords`]).
pub fn passwords_in(body: &serde_json::Value) -> Vec<String> {
    fn walk(body: &serde_json::Value, found: &mut Vec<String>) {
        use serde_json::Value;
        match body {
            Value::Object(fields) => {
                let sets_password = sets_password(fields);
                for (key, value) in fields {
                    if is_password(key, sets_password) {
                        if let Value::String(password) = value
                            && !password.is_empty()
                        {
                            found.push(password.clone());
                        }
                    } else {
                        walk(value, found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(body, &mut found);
    found
}

/// `text` with each of `passwords` replaced by [`REDACTED`], as sent and
/// as JSON escapes it: an application's answer that repeats a password it
/// was sent (an error detail, a resource echoed back) is scrubbed of it
/// before anything keeps or shows the answer.
pub fn scrub_passwords(text: String, passwords: &[String]) -> String {
    // JSON inside JSON (a detail quoting the request) escapes it twice.
    fn escaped(text: &str) -> String {
        let quoted = serde_json::Value::String(text.to_owned()).to_string();
        quoted[1..quoted.len() - 1].to_owned()
    }
    let mut text = text;
    for password in passwords {
        let once = escaped(password);
        let twice = escaped(&once);
        for form in [twice.as_str(), once.as_str(), password.as_str()] {
            if text.contains(form) {
                text = text.replace(form, REDACTED);
            }
        }
    }
    text
}

/// Calls `found` with every password value in `body`: any `password`
/// attribute, at any depth, and the value of a PATCH operation whose path
/// names `password` (plain or with its schema's URN).
/// Whether `fields` are a PATCH operation whose path is `password`.
fn sets_password(fields: &serde_json::Map<String, serde_json::Value>) -> bool {
    fields
        .get("path")
        .and_then(serde_json::Value::as_str)
        .map(|path| path.trim().to_ascii_lowercase())
        .is_some_and(|path| path == "password" || path.ends_with(":password"))
}

/// Whether the attribute `key` holds a password: a `password` attribute,
/// or the value of an operation that [`sets_password`].
fn is_password(key: &str, sets_password: bool) -> bool {
    key.eq_ignore_ascii_case("password") || (sets_password && key.eq_ignore_ascii_case("value"))
}

fn for_each_password(body: &mut serde_json::Value, found: &mut dyn FnMut(&mut serde_json::Value)) {
    use serde_json::Value;
    match body {
        Value::Object(fields) => {
            let sets_password = sets_password(fields);
            for (key, value) in fields.iter_mut() {
                if is_password(key, sets_password) {
                    found(value);
                } else {
                    for_each_password(value, found);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| for_each_password(item, found)),
        _ => {}
    }
}

#[cfg(test)]
mod redaction_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_a_request_carries_them() {
        let mut body = json!({
            "userName": "ada",
            "Password": "s3cret-1",
            "Operations": [
                { "op": "replace", "path": "password", "value": "s3cret-2" },
                { "op": "replace", "value": { "password": "s3cret-3", "title": "Countess" } },
                { "op": "replace", "path": "title", "value": "kept" },
            ],
            "Resources": [{ "password": "s3cret-4" }],
        });
        let mut found = passwords_in(&body);
        found.sort();
        assert_eq!(found, ["s3cret-1", "s3cret-2", "s3cret-3", "s3cret-4"]);
        redact_passwords(&mut body);
        let text = body.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(body["Operations"][2]["value"], "kept");
        assert_eq!(body["Operations"][1]["value"]["title"], "Countess");
        assert_eq!(body["userName"], "ada");
    }

    #[test]
    fn a_password_set_by_its_urn_path_is_redacted() {
        let mut body = json!({ "Operations": [{
            "op": "replace",
            "path": "urn:ietf:params:scim:schemas:core:2.0:User:password",
            "value": "s3cret",
        }]});
        redact_passwords(&mut body);
        assert!(!body.to_string().contains("s3cret"), "{body}");
    }

    #[test]
    fn an_echoed_password_is_scrubbed_raw_and_escaped() {
        let passwords = ["pa\"ss\\wörd".to_string()];
        let raw = "weak password: pa\"ss\\wörd".to_string();
        let escaped = json!({ "detail": "weak: pa\"ss\\wörd" }).to_string();
        let quoted_request = json!({
            "detail": json!({ "password": "pa\"ss\\wörd" }).to_string()
        })
        .to_string();
        for text in [raw, escaped, quoted_request] {
            let scrubbed = scrub_passwords(text.clone(), &passwords);
            assert!(!scrubbed.contains("wörd"), "{text} → {scrubbed}");
            assert!(scrubbed.contains(REDACTED));
        }
    }
}
