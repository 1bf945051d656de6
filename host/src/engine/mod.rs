//! The provisioning engine: from directory change to SCIM request.
//!
//! What exists so far is the integration lifecycle ([`lifecycle`]):
//! activating an application tests its connection and records what it
//! supports, a token rotation is tested before it replaces the old token,
//! and every step ends in an audit event.

pub mod lifecycle;
