//! The provisioning engine: from directory change to SCIM request.
//!
//! - [`worker`] consumes the outbox (the durable queue every directory
//!   change is written to) and syncs each user a change touches, in every
//!   active application, with progress kept per (change, application);
//! - [`retry`] is what follows when a change fails in one application:
//!   a doubling backoff, then dead letters;
//! - [`provision`] brings one user's account in one application to the
//!   directory's desired state: lookup and takeover, create, update,
//!   deactivate or delete, each ending in an audit event;
//! - [`operations`] is what an operator does to one application on
//!   demand (activate, deactivate, rotate, plan, provision, reconcile,
//!   import, release): the one door every front end goes through;
//! - [`lifecycle`] is the integration's lifecycle: activation tests the
//!   connection and records what the application supports, a token rotation
//!   is tested before it replaces the old token;
//! - [`groups`] pushes bound groups with their members, and follows the
//!   connector's rules when a user leaves a group, a group is unbound or
//!   deleted, or group management is turned off;
//! - [`guard`] is the deprovisioning guard every offboarding asks first:
//!   per application, offboardings are counted across changes over a
//!   window, and past a threshold they are held for an operator;
//! - [`reconcile`] reads an application back periodically and repairs what
//!   changed there;
//! - [`import`] brings accounts that exist only in an application into the
//!   directory;
//! - [`plan`] shows what a sync would send without sending it;
//! - [`progress`] shows how far along the reconciles this process runs are;
//! - [`directory_user`] reads a directory user as the connector contract's
//!   record;
//! - [`takeover`] decides whether an account a lookup found may be taken
//!   over: the only hit, carrying the filtered value, linked to no one else;
//! - [`locks`] holds one object at a time and reads its state under the
//!   lock, so that no write is decided on a stale read;
//! - [`turn`] lets an engine send to an application only while it holds
//!   the application's lease;
//! - [`connections`] keeps one SCIM client per application for every path
//!   that sends to it.

pub mod connections;
pub mod directory_user;
pub mod groups;
pub mod guard;
pub mod hosts;
pub mod import;
pub mod lifecycle;
pub mod locks;
pub mod operations;
pub mod passwords;
pub mod plan;
pub mod progress;
pub mod provision;
pub mod reconcile;
pub mod retry;
pub mod takeover;
pub mod turn;
pub mod worker;
