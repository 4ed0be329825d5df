//! The api crate's integration tests as one binary: routers called in process,
//! the Lambda adapter, the worker's queue handling, request models, panics
//! and what reaches the logs.

mod logs;

mod catch_panics;
#[cfg(feature = "lambda")]
mod lambda_auth;
mod no_secrets_in_logs;
mod request_models;
mod routers;
mod worker_queue;
