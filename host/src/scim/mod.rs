//! SCIM 2.0 as scimlink speaks it: schemas, filters, PATCH and the error
//! body (with the HTTP response it makes); no routes.
//!
//! The inbound server ([`crate::scim_server`]), the provisioning engine and
//! the connector sandbox's simulated application all build on this module;
//! it depends on none of them, so the engine shares the schema definitions
//! without depending on the inbound server.
//!
//! The filter and PATCH-path grammar is our own: the crates considered
//! (`scim_proto`, `scim-filter`, `scim_v2`) either pull a whole identity
//! server's model with them or do not parse value paths and URN-qualified
//! attributes, and the parser must be fuzzable in isolation.

pub mod error;
pub mod filter;
pub mod patch;
mod robustness;
pub mod schema;
