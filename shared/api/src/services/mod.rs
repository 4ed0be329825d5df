//! Use cases over the store. Handlers parse and call these; these never see HTTP.

pub mod deployments;
pub mod plans;
pub mod reconcile;
pub mod scenarios;
pub mod sessions;
