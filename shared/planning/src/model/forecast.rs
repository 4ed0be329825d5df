//! The outcome forecast of a plan: what reconcile will answer each live
//! session once the plan is deployed (computed by [`crate::forecast`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A forecast count: a plain number when every session was decided, or an
/// estimate with its 95% interval when the sessions were sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ForecastCount {
    Exact(u64),
    Estimated(Estimate),
}

impl ForecastCount {
    /// The count, or the estimate's point value.
    pub fn value(&self) -> u64 {
        match self {
            ForecastCount::Exact(n) => *n,
            ForecastCount::Estimated(e) => e.estimate,
        }
    }

    /// Whether `n` lies within the count (equal to an exact one).
    pub fn holds(&self, n: u64) -> bool {
        match self {
            ForecastCount::Exact(exact) => *exact == n,
            ForecastCount::Estimated(e) => e.low <= n && n <= e.high,
        }
    }
}

impl Default for ForecastCount {
    fn default() -> Self {
        ForecastCount::Exact(0)
    }
}

/// A count estimated from a sample, with a 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Estimate {
    pub estimate: u64,
    pub low: u64,
    pub high: u64,
}

/// What reconcile will answer, counted by action. `continue` includes the
/// sessions counted apart in `excluded_by_scope` and `pinned`;
/// `blocked_by_checkpoint` counts results carrying a checkpoint block, whatever
/// their action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForecastOutcomes {
    #[serde(rename = "continue")]
    pub continue_: ForecastCount,
    /// Left on their version by the policy's scope filter (re-evaluated on
    /// every later call: they may still migrate).
    pub excluded_by_scope: ForecastCount,
    /// Kept on their version for good (`update_downstream: false`, or pinned
    /// by an earlier plan).
    pub pinned: ForecastCount,
    pub teleport: ForecastCount,
    pub collect: ForecastCount,
    pub execute_action: ForecastCount,
    pub exit_scenario: ForecastCount,
    pub blocked_by_checkpoint: ForecastCount,
}

/// What kind of V1 step a forecast stratum is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StratumKind {
    /// An anchor: the step exists in both versions with the same content.
    Anchor,
    /// A step edited in place (same id, other content): its own policy applies.
    EditedStep,
    /// A step the new version deletes: its nearest anchor's policy applies.
    DeletedStep,
    /// A step of a version older than the plan's from-version: sessions not
    /// yet migrated by earlier plans, which reconcile takes through the chain
    /// of deployed plans and then this one (a composite migration).
    EarlierVersion,
}

/// The forecast for the sessions at one V1 step: an anchor, an edited step or
/// a deleted step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnchorForecast {
    /// The anchor whose policy applies (a deleted step's nearest anchor);
    /// absent for a deleted step without any anchor (its sessions exit).
    pub anchor_content_hash: Option<String>,
    /// The name of the V1 step the sessions sit at.
    pub anchor_name: String,
    pub kind: StratumKind,
    /// The version the sessions are on: the plan's from-version, or an
    /// earlier one (`kind: earlier_version`).
    pub version: i64,
    /// The step the sessions sit at (of `version`).
    pub v1_step_id: Uuid,
    pub sessions: ForecastCount,
    pub outcomes: ForecastOutcomes,
    /// Where teleports land: V2 step id → sessions.
    pub targets: BTreeMap<Uuid, ForecastCount>,
    /// Field → sessions that will be asked for it.
    pub fields_missing: BTreeMap<String, ForecastCount>,
}

/// `GET /migration-plans/{plan_id}/forecast`: what deploying the plan now and
/// reconciling every session once would do, per action and per anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanForecast {
    pub plan_id: Uuid,
    /// The plan revision (its policies) the forecast reflects.
    pub plan_revision: u64,
    pub computed_at: DateTime<Utc>,
    /// Every session was decided (counts are numbers); false: sampled
    /// (counts are `{estimate, low, high}`).
    pub exact: bool,
    /// Sessions at the plan's from-version, and at earlier versions still to
    /// migrate through the chain: decided, or counted when sampled.
    pub sessions_considered: u64,
    /// Sessions actually decided (all of them when exact).
    pub sample_size: u64,
    pub outcomes: ForecastOutcomes,
    pub by_anchor: Vec<AnchorForecast>,
    /// Field → sessions of the whole plan that will be asked for it.
    pub fields_missing: BTreeMap<String, ForecastCount>,
}
