//! scimlink: a self-hosted SCIM 2.0 provisioning engine whose application
//! connectors are isolated WebAssembly components.
//!
//! The host owns everything that touches the world (scheduling, HTTP,
//! storage, secrets); a connector owns the rules of its application
//! (attribute mapping, group-management decisions, account matching).
//!
//! | module | responsibility |
//! |---|---|
//! | [`secrets`] | sealed tokens, the host key and keys derived from it, private files (a leaf: depends on nothing of the host) |
//! | [`runtime`] | loading, limiting, validating and hot-swapping connectors |
//! | [`auth`] | the bearer tokens the host accepts: admin API and inbound SCIM |
//! | [`store`] | the directory and the engine's durable state (SQLite by default) |
//! | [`scim`] | SCIM 2.0 itself: schemas, filters, PATCH, error bodies (no HTTP routes) |
//! | [`scim_server`] | the inbound SCIM 2.0 server that feeds the directory |
//! | [`api`] | the HTTP server: admin API, OpenAPI document, health |
//! | [`console`] | the operator console under `/console`: sign-in, sessions, the embedded front end over the admin API |
//! | [`scim_client`] | talking to an application: retries, pacing, circuit breaker |
//! | [`engine`] | provisioning: the outbox consumer, user and group sync, the operations on demand |
//! | [`sandbox`] | the connector author's kit: simulated application, lifecycle test, scaffold |
//! | [`host`] | the composition root: store, connectors, clients, engine and router of one host |
//! | [`cli`] | the `scimlink` command line |

pub mod api;
pub mod auth;
pub mod cli;
pub mod console;
pub mod engine;
pub mod host;
pub mod runtime;
pub mod sandbox;
pub mod scim;
pub mod scim_client;
pub mod scim_server;
pub mod secrets;
pub mod store;
