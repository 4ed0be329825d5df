//! The planning core of focal-migrations.
//!
//! Everything here is pure: no I/O, no clock reads (callers pass `now`), no async.
//! The HTTP layer, the storage layer and the CLI all build on these types.

pub mod conditions;
pub mod diff;
pub mod drain;
pub mod eligibility;
pub mod events;
pub mod forecast;
mod graph;
pub mod guard;
pub mod hash;
pub mod lifecycle;
pub mod model;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod render;
pub mod scope;
pub mod testkit;
pub mod validate;

pub use model::*;

/// Which sessions a partial rollout reaches: the stable bucket runtimes
/// compute too, kept in the client crate so both sides share one function.
pub use focal_migrations_client::cohort;
