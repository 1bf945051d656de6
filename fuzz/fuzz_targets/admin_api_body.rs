//! Admin API request bodies: any bytes, read as the body of each operation
//! that takes one, are either refused with an API error (400 or 422) or
//! pass the handler's checks, without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scimlink::api::{BodyOf, check_body};

fuzz_target!(|data: &[u8]| {
    for operation in BodyOf::ALL {
        let _ = check_body(operation, data);
    }
});
