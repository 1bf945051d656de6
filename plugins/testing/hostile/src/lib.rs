//! Misbehaves when asked to map a user whose userName names a misdeed, and
//! behaves for every other user (so it passes the host's smoke call).

use scimlink_sdk::prelude::*;

struct Hostile;

impl Connector for Hostile {
    fn manifest() -> Manifest {
        Manifest::new("hostile", env!("CARGO_PKG_VERSION"))
    }

    fn map_user(user: &DirectoryUser, settings: &Settings) -> Result<ScimJson, MappingError> {
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
            // Writes to standard error and maps the user as usual.
            "chatty" => {
                eprintln!("chatter from an earlier call");
                defaults::scim_user(user)
            }
            // Valid JSON, but not a SCIM object.
            "not-an-object" => Ok(json!(42).into()),
            "wrong-schema" => Ok(json!({
                "schemas": [scim::GROUP_SCHEMA],
                "displayName": "I am not a user",
            })
            .into()),
            "no-schemas" => Ok(json!({"userName": user.username}).into()),
            // Reports what the sandbox lets it see.
            "probe-sandbox" => {
                let env = std::env::vars().count();
                let args = std::env::args().count();
                let file = std::fs::read("/etc/passwd").is_ok();
                let dir = std::fs::read_dir(".").is_ok();
                let net = std::net::TcpStream::connect("127.0.0.1:9").is_ok();
                let time = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(u64::MAX);
                let mut seeded = std::collections::HashMap::new();
                seeded.insert("a", 1);
                seeded.insert("b", 2);
                seeded.insert("c", 3);
                let order: String = seeded.keys().copied().collect();
                Ok(ScimResource::user()
                    .set("userName", user.username.as_str())
                    .set(
                        "title",
                        format!(
                            "env={env} args={args} file={file} dir={dir} net={net} time={time} order={order}"
                        ),
                    )
                    .build()
                    .into())
            }
            "oversize" => Ok(json!({
                "schemas": [scim::USER_SCHEMA],
                "userName": user.username,
                "displayName": "x".repeat(2 << 20),
            })
            .into()),
            _ => {
                let _ = settings;
                defaults::scim_user(user)
            }
        }
    }
}

scimlink_sdk::export_connector!(Hostile);
