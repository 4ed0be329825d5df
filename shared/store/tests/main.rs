//! The store's integration tests, in one test binary: every file here is a
//! module of it rather than a test target of its own, so the crate and its
//! dependencies are linked once instead of once per file (`autotests = false`
//! and the one `[[test]]` in Cargo.toml).
//!
//! Tests on DynamoDB Local are skipped when `AWS_ENDPOINT_URL_DYNAMODB` is not
//! set, and fail instead under `FOCAL_REQUIRE_LOCAL_AWS=1` (`store::testing`).
//! Each creates its own tables and deletes them when it is done: one emulator
//! serves the whole suite, and holds every table's items in memory until it is
//! deleted.

mod contract;
mod counts;
mod index_cost;
mod step_backfill;
mod step_shard;
mod template_tables;
