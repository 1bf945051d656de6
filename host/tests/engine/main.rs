//! The provisioning engine in process, against the simulated SCIM
//! application on loopback (`scimlink::sandbox::sp`) and a SQLite store in
//! a temporary folder — no `scimlink` process, no real application:
//! - [`groups`]: groups pushed with their members, and the connector's
//!   rules for a member removed, a group unbound or deleted, group
//!   management turned off, each carried out on the scope as it is when
//!   the object's lock is held;
//! - [`hosts`]: hosts sharing one PostgreSQL database hold an object for
//!   one another;
//! - [`migration`]: a SQLite deployment moved into PostgreSQL carries on
//!   without sending anything again;
//! - [`operations`]: what an operator does to one application on demand,
//!   and what each refusal leaves untouched;
//! - [`passwords`]: when a user's password is wiped;
//! - [`worker`]: the outbox consumer on its own thread, as `scimlink serve`
//!   runs it — each change applied per application, progress recorded per
//!   application, a failing application retried while the others proceed;
//! - [`world`]: the directory, applications and connectors the tests set
//!   up, and every use of the store's API.

#[path = "../runtime/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../store/database.rs"]
mod database;
mod groups;
mod hosts;
mod migration;
mod operations;
mod passwords;
mod worker;
mod world;
