//! PATCH paths: any UTF-8 input is either rejected with an error or parsed,
//! without panicking, with and without the extension URNs known.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scimlink::scim::filter::{parse_patch_path, parse_patch_path_with};

const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_patch_path(input);
    let _ = parse_patch_path_with(input, &[ENTERPRISE_USER]);
});
