//! Use cases over the store. Handlers parse and call these; these never see HTTP.

pub mod deployments;
pub mod error;
pub mod plans;
pub(crate) mod reconcile;
pub(crate) mod scenarios;
pub(crate) mod sessions;
