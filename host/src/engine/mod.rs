//! The provisioning engine: from directory change to SCIM request.
//!
//! - [`worker`] consumes the outbox (the durable queue every directory
//!   change is written to) and syncs each user a change touches, in every
//!   active application;
//! - [`provision`] brings one user's account in one application to the
//!   directory's desired state: lookup and takeover, create, update,
//!   deactivate or delete, each ending in an audit event;
//! - [`lifecycle`] is the integration's lifecycle: activation tests the
//!   connection and records what the application supports, a token rotation
//!   is tested before it replaces the old token;
//! - [`directory_user`] reads a directory user as the connector contract's
//!   record.
//!
//! Groups pushed to applications, the group-management rules, the periodic
//! reconcile, dead letters, plans and the deprovisioning guard are not built
//! yet.

pub mod directory_user;
pub mod lifecycle;
pub mod plan;
pub mod provision;
pub mod worker;
