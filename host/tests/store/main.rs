//! The store: the conformance suite every backend must pass
//! (`conformance`), run against each backend (`sqlite`).

mod conformance;
mod sqlite;
