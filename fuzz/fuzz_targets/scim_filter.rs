//! SCIM filters: any UTF-8 input is either rejected with an error or parses
//! into a filter that evaluates, without panicking, against a user that has
//! every JSON type, multi-valued simple and complex attributes, an extension
//! object and date-times.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scimlink::scim::filter::{
    AttrPath, AttributeRules, equality_key, matches, parse_filter, parse_filter_with,
};
use serde_json::{Value, json};

const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// As in the core User schema, `id` is the case-exact attribute.
struct SampleRules;

impl AttributeRules for SampleRules {
    fn case_exact(&self, path: &AttrPath) -> bool {
        path.sub.is_none() && path.attr.eq_ignore_ascii_case("id")
    }
}

static SAMPLE_USER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "Bjensen@Example.com",
        "name": { "givenName": "Barbara", "familyName": "Jensen", "middleName": null },
        "title": "",
        "active": true,
        "loginCount": 42,
        "score": -4.5,
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" },
            { "type": "other" }
        ],
        "phoneNumbers": [],
        "members": [{ "value": "g1", "$ref": "https://example.com/Groups/g1" }],
        "nested": [[1, 2], [], [{ "value": "deep" }]],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34.123+02:00"
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" }
        }
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [
        parse_filter(input),
        parse_filter_with(input, &[ENTERPRISE_USER]),
    ] {
        let Ok(filter) = parsed else {
            continue;
        };
        let _ = matches(&filter, &SAMPLE_USER, &SampleRules);
        let _ = equality_key(&filter, &["id", "userName", "externalId"]);
    }
});
