//! Whole PATCH requests: any bytes are either refused with a SCIM error or
//! applied to a user and checked against the schema, without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scimlink::scim::patch::{apply, parse_request};
use scimlink::scim::schema::{GROUP_TYPE, USER_TYPE, check_resource};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(operations) = parse_request(&body) else {
        return;
    };
    let user = json!({
        "userName": "ada",
        "name": { "givenName": "Ada", "familyName": "Lovelace" },
        "emails": [
            { "value": "ada@work.example", "type": "work", "primary": true },
            { "value": "ada@home.example", "type": "home" }
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "R&D" }
    });
    let group = json!({ "displayName": "eng", "members": [{ "value": "u1" }, { "value": "u2" }] });
    for (resource_type, resource) in [(&USER_TYPE, user), (&GROUP_TYPE, group)] {
        let Value::Object(mut resource) = resource else {
            return;
        };
        if apply(resource_type, &mut resource, &operations).is_ok() {
            let _ = check_resource(resource_type, &Value::Object(resource));
        }
    }
});
