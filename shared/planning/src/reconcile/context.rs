//! What a decision is computed from: the session, the current version and the
//! chain of deployed plans leading to it. A leaf of `reconcile`: every part of
//! the decision reads it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::model::{KnownField, Session};

use super::prepared::{PreparedPlan, PreparedScenario};

/// One deployed plan of the chain, with the definition of its `to_version`.
#[derive(Debug, Clone, Copy)]
pub struct PlanLink<'a> {
    pub plan: &'a PreparedPlan,
    pub to: &'a PreparedScenario,
}

/// Everything a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileContext<'a> {
    pub session: &'a Session,
    /// The scenario's current version (its `version` is the current version).
    pub current: &'a PreparedScenario,
    /// Deployed plans from the session's version to the current one, in order.
    pub chain: &'a [PlanLink<'a>],
    /// The definition of the version the session is on, when still available.
    pub session_version: Option<&'a PreparedScenario>,
    pub known_fields: &'a BTreeMap<String, KnownField>,
    pub now: DateTime<Utc>,
}
