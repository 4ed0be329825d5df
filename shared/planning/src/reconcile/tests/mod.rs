//! One test (at least) per reconcile rule (the numbered rules and the
//! checkpoint invariant of `reconcile`'s module documentation). Plans are
//! written by hand so that each test controls exactly the transformation map
//! the decision sees.
//!
//! One file per rule or concern; they share the builders and harness of
//! `fixtures` and the example flows of `worlds`.

mod chains;
mod checkpoints;
mod clean_graft;
mod computed_plans;
mod condition_limits;
mod deleted_steps;
mod fixtures;
mod gap_fill;
mod no_migration;
mod policies;
mod re_route;
mod scope;
mod worlds;
