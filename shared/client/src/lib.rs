//! The client a conversation runtime uses to talk to focal-migrations.
//!
//! - [`cohort`]: the rollout cohort's [`bucket`](cohort::bucket), shared with
//!   the server. Always compiled, with no dependency beyond `sha2` and `uuid`:
//!   the server crates take the crate without default features and get only this.
//! - `types` ([`model`]): the API's request and response types.
//! - `http` (default): [`Client`], a typed async call per route of the API, the
//!   retry policy a runtime needs, [`Client::reconcile_on_message`] with its
//!   typed [`Decision`], and read-modify-write of sessions under `If-Match`.
//! - `sigv4` (default): signing for stacks behind IAM authorization.
//! - `dynamodb` ([`dynamodb`]): the sessions-table item, with its sharded
//!   `step_key`, for runtimes that write the table directly.
//!
//! docs/runtime.md ("Writing a runtime") walks through it.

pub mod cohort;

#[cfg(feature = "types")]
pub mod model;

#[cfg(feature = "http")]
mod client;
#[cfg(feature = "http")]
mod error;
#[cfg(feature = "http")]
pub mod operations;
#[cfg(feature = "http")]
mod retry;
#[cfg(feature = "http")]
mod runtime;
#[cfg(feature = "sigv4")]
mod sigv4;

#[cfg(all(test, feature = "http"))]
mod http_tests;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

#[cfg(feature = "http")]
pub use client::{
    Auth, Client, ClientBuilder, DiagramQuery, Exchange, ListPlans, Page, Precondition, Revisioned,
};
#[cfg(feature = "http")]
pub use error::{Error, ErrorBody};
#[cfg(feature = "http")]
pub use retry::RetryPolicy;
#[cfg(feature = "http")]
pub use runtime::{Decision, Reconciled};
#[cfg(feature = "sigv4")]
pub use sigv4::SigV4;
