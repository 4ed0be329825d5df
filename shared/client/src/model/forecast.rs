//! The outcome forecast of a plan.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The forecast for the sessions at one V1 step: an anchor, an edited step or
/// a deleted step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorForecast {
    /// The anchor whose policy applies (a deleted step's nearest anchor);
    /// absent for a deleted step without any anchor (its sessions exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_content_hash: Option<String>,
    /// The name of the V1 step the sessions sit at.
    pub anchor_name: String,
    /// Field → sessions that will be asked for it.
    pub fields_missing: BTreeMap<String, ForecastCount>,
    pub kind: StratumKind,
    pub outcomes: ForecastOutcomes,
    pub sessions: ForecastCount,
    /// Where teleports land: V2 step id → sessions.
    pub targets: BTreeMap<Uuid, ForecastCount>,
    /// The step the sessions sit at (of `version`).
    pub v1_step_id: Uuid,
    /// The version the sessions are on: the plan's from-version, or an
    /// earlier one (`kind: earlier_version`).
    pub version: i64,
}

/// A count estimated from a sample, with a 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub estimate: u64,
    pub high: u64,
    pub low: u64,
}

/// A forecast count: a plain number when every session was decided, or an
/// estimate with its 95% interval when the sessions were sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ForecastCount {
    Exact(u64),
    Estimated(Estimate),
}

/// What reconcile will answer, counted by action. `continue` includes the
/// sessions counted apart in `excluded_by_scope` and `pinned`;
/// `blocked_by_checkpoint` counts results carrying a checkpoint block, whatever
/// their action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastOutcomes {
    pub blocked_by_checkpoint: ForecastCount,
    pub collect: ForecastCount,
    pub r#continue: ForecastCount,
    /// Left on their version by the policy's scope filter (re-evaluated on
    /// every later call: they may still migrate).
    pub excluded_by_scope: ForecastCount,
    pub execute_action: ForecastCount,
    pub exit_scenario: ForecastCount,
    /// Kept on their version for good (`update_downstream: false`, or pinned
    /// by an earlier plan).
    pub pinned: ForecastCount,
    pub teleport: ForecastCount,
}

/// `GET /migration-plans/{plan_id}/forecast`: what deploying the plan now and
/// reconciling every session once would do, per action and per anchor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanForecast {
    pub by_anchor: Vec<AnchorForecast>,
    pub computed_at: DateTime<Utc>,
    /// Every session was decided (counts are numbers); false: sampled
    /// (counts are `{estimate, low, high}`).
    pub exact: bool,
    /// Field → sessions of the whole plan that will be asked for it.
    pub fields_missing: BTreeMap<String, ForecastCount>,
    pub outcomes: ForecastOutcomes,
    pub plan_id: Uuid,
    /// The plan revision (its policies) the forecast reflects.
    pub plan_revision: u64,
    /// Sessions actually decided (all of them when exact).
    pub sample_size: u64,
    /// Sessions at the plan's from-version, and at earlier versions still to
    /// migrate through the chain: decided, or counted when sampled.
    pub sessions_considered: u64,
}

/// What kind of V1 step a forecast stratum is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StratumKind {
    Anchor,
    EditedStep,
    DeletedStep,
    EarlierVersion,
}
