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
    use serde_json::Value;
    match body {
        Value::Object(fields) => {
            let sets_password = fields
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|path| path.trim().eq_ignore_ascii_case("password"));
            for (key, value) in fields.iter_mut() {
                if key.eq_ignore_ascii_case("password")
                    || (sets_password && key.eq_ignore_ascii_case("value"))
                {
                    *value = Value::String(REDACTED.into());
                } else {
                    redact_passwords(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_passwords),
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
        redact_passwords(&mut body);
        let text = body.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(body["Operations"][2]["value"], "kept");
        assert_eq!(body["Operations"][1]["value"]["title"], "Countess");
        assert_eq!(body["userName"], "ada");
    }
}
