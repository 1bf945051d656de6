//! Built several times with `FIXTURE_VERSION` set; every document it maps
//! names that version, so a test can tell which version answered a call.
//! Built with `FIXTURE_BROKEN` set, every mapping traps: a version that
//! must fail validation.

use scimlink_sdk::prelude::*;

const VERSION: &str = match option_env!("FIXTURE_VERSION") {
    Some(version) => version,
    None => "1.0.0",
};

struct Versioned;

impl Connector for Versioned {
    fn manifest() -> Manifest {
        Manifest::new("versioned", VERSION)
    }

    fn map_user(user: &DirectoryUser, _settings: &Settings) -> Result<ScimJson, MappingError> {
        if option_env!("FIXTURE_BROKEN").is_some() {
            panic!("this version is broken");
        }
        Ok(ScimResource::user()
            .set("userName", user.username.as_str())
            .set("title", VERSION)
            .build()
            .into())
    }
}

scimlink_sdk::export_connector!(Versioned);
