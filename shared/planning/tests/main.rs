//! The crate's integration tests, as one binary: they link against `planning`
//! once and run in one process, instead of one binary per file. Each module is
//! one suite; `support` holds what several suites share.

mod edited_steps;
mod expression_limits;
mod properties;
mod reconcile_properties;
mod support;
