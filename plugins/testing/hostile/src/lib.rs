//! Misbehaves when asked to map a user whose userName names a misdeed, and
//! behaves for every other user (so it passes the host's smoke call).

use scimlink_sdk::prelude::*;

struct Hostile;

impl Connector for Hostile {
    fn manifest() -> Manifest {
        Manifest::new("hostile", env!("CARGO_PKG_VERSION"))
    }

    fn map_user(user: &DirectoryUser, settings: &Settings) -> Result<Value, MappingError> {
        match user.username.as_str() {
            "infinite-loop" => {
                let mut counter = 0u64;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                // Reserve without touching: memory grows as fast as it can.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = Vec::<u8>::with_capacity(8 << 20);
                    block.push(1);
                    hoard.push(std::hint::black_box(block));
                }
            }
            "panic" => panic!("the connector panicked on purpose"),
            // Valid JSON, but not a SCIM object.
            "not-an-object" => Ok(json!(42)),
            "wrong-schema" => Ok(json!({
                "schemas": [scim::GROUP_SCHEMA],
                "displayName": "I am not a user",
            })),
            "no-schemas" => Ok(json!({"userName": user.username})),
            "oversize" => Ok(json!({
                "schemas": [scim::USER_SCHEMA],
                "userName": user.username,
                "displayName": "x".repeat(2 << 20),
            })),
            _ => {
                let _ = settings;
                Ok(defaults::scim_user(user))
            }
        }
    }
}

scimlink_sdk::export_connector!(Hostile);
