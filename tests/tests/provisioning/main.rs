//! Provisioning end to end: the `scimlink` binary as an operator runs it,
//! against real SCIM applications (scim2-server from PyPI, with a tenant
//! path and a bearer token; `scimlink sandbox-sp` where a test needs an
//! application's quirks), checked by reading the application back. One
//! module per feature; one test binary, so that the features' tests run
//! side by side.
//!
//! - [`lifecycle`]: an account taken over or created, updated,
//!   deactivated or deleted, reactivated, each step audited;
//! - [`group_push`]: groups pushed with their members and the connector's
//!   group rules;
//! - [`assignments`]: users assigned to an application without a group;
//! - [`plan`]: what a sync would send, and provisioning on demand;
//! - [`import`]: accounts only in the application brought into the
//!   directory;
//! - [`reconcile`]: drift in the application repaired;
//! - [`guard`]: offboardings past a threshold held for an operator;
//! - [`failures`]: throttling, server errors and timeouts survived, dead
//!   letters, quarantine;
//! - [`durability`]: a host killed mid-sync finishes after a restart;
//! - [`idle`]: a host with nothing to do looks for work seldom;
//! - [`connectors`]: the bundled connectors whose rules are their own.

mod assignments;
mod connectors;
mod durability;
mod failures;
mod group_push;
mod guard;
mod idle;
mod import;
mod lifecycle;
mod plan;
mod reconcile;
