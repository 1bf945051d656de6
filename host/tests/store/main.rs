//! The store: the conformance suite every backend must pass
//! (`conformance`), run against each backend (`sqlite`, `postgresql`).

mod conformance;
mod database;
mod postgresql;
mod sqlite;
