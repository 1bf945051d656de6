use scimlink_sdk::prelude::*;

struct Minimal;

impl Connector for Minimal {
    fn manifest() -> Manifest {
        Manifest::new("minimal", env!("CARGO_PKG_VERSION"))
    }
}

scimlink_sdk::export_connector!(Minimal);
