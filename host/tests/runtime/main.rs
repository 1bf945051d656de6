//! The connector runtime, end to end: real components built from this
//! repository (`scripts/build-plugins.sh --fixtures`), loaded and called the
//! way the host does.

mod bad_input;
mod cache;
mod compatibility;
mod hostile;
mod hot_reload;
mod limits;
mod support;

#[global_allocator]
static ALLOCATOR: support::CountingAllocator = support::CountingAllocator;
