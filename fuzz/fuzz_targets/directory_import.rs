//! Directory import files: any UTF-8 text, read as CSV and as JSON, is
//! either refused with an error or gives users and groups that the admin
//! API's import then accepts or refuses, without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scimlink::api::{BodyOf, check_body};
use scimlink::cli::import::read_text;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for named_json in [false, true] {
        let Ok((users, groups)) = read_text(text, named_json) else {
            continue;
        };
        // What `scimlink directory import` sends.
        for body in [json!({ "users": users }), json!({ "groups": groups })] {
            let _ = check_body(BodyOf::ImportDirectory, body.to_string().as_bytes());
        }
    }
});
