//! The sandbox: what connector authors and application vendors use before
//! anything reaches a real deployment.
//!
//! - [`sp`] is a simulated SCIM application with switchable quirks
//!   (`scimlink sandbox-sp`);
//! - [`harness`] drives a connector through the whole provisioning
//!   lifecycle inside a throwaway host and checks every step by reading
//!   the application back (`scimlink plugin test`);
//! - [`tape`] records the exchanges with an application as fixtures, and
//!   replays them offline;
//! - [`report`] renders a run as text, JSON or JUnit XML;
//! - [`scaffold`] writes a new connector crate (`scimlink plugin new`).

pub mod harness;
pub mod report;
pub mod scaffold;
pub mod sp;
pub mod tape;
