//! The HTTP layer of focal-migrations: axum routers per endpoint group over the
//! shared services, with FastAPI-style errors. Lambda functions hand one group's
//! router to `lambda_http::run`; `migrations serve` merges them all.

pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod extract;
pub mod marking;
pub mod metrics;
pub mod routes;
pub mod services;
pub mod state;

pub use config::Config;
pub use error::{ApiError, ApiResult};
/// The marking queue's interface (`marking::queue`), at its old path.
pub use marking::queue;
/// The OpenAPI document (`routes::openapi`), at its old path.
pub use routes::openapi;
pub use routes::{
    app, deployments_router, finish, health_router, plans_router, scenarios_router, sessions_router,
};
pub use state::AppState;
/// Exact session recounts (`worker::recount`), at their old path.
pub use worker::recount;
pub mod aws;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "local")]
pub mod local_queue;
pub mod telemetry;
pub mod worker;
