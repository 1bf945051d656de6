//! SCIM 2.0 as the inbound server speaks it: schemas, filters, PATCH, the
//! error body, and the HTTP routes.
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
pub mod server;
