//! The client a conversational runtime uses to talk to focal-migrations.
//!
//! Without features the crate is only the pure parts the server shares with
//! runtimes: the rollout cohort [`bucket`](cohort::bucket).

pub mod cohort;
