//! An application that deletes the accounts of users who leave it, and
//! takes one group member per PATCH: the engine's delete and chunking paths.

use scimlink_sdk::prelude::*;

struct Deleting;

impl Connector for Deleting {
    fn manifest() -> Manifest {
        Manifest::new("deleting", env!("CARGO_PKG_VERSION"))
            .offboarding(Offboarding::Delete)
            .max_members_per_patch(1)
    }
}

scimlink_sdk::export_connector!(Deleting);
