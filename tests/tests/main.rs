//! The end-to-end suite as one test binary (one link of the AWS SDK instead of
//! one per file): each module is one area, run against the embedded store and
//! DynamoDB Local + the local SQS (see `common`).

mod common;

mod ambiguous_writes;
mod api_lifecycle;
mod client_contract;
mod client_direct_write;
mod client_runtime_example;
mod console_browser;
mod console_http;
mod edited_steps_http;
mod fanout;
mod forecast;
mod hostile_expressions;
mod hostile_input;
mod lambda_auth_invoke;
mod lambda_invoke;
mod large_plan;
mod lifecycle_events;
mod metrics_scrape;
mod metrics_template;
mod original_compat;
mod plan_expiry;
mod reconcile_http;
mod reconcile_preview_http;
mod retention;
mod rollout_drain;
mod rollout_guard;
mod rollout_pause;
mod rollout_ramp;
mod rollout_withdraw;
mod route_list;
mod session_counts_http;
mod session_integrity;
mod sharded_marking;
