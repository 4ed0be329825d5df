//! What travels through the marking queue: chains, messages and page ids.

use planning::MigrationPlan;
use planning::eligibility::marked_steps;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One V1 step whose sessions a deployment marks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub step_id: Uuid,
    /// The step-index shard this chain walks (`0..shards`).
    #[serde(default)]
    pub shard: u32,
    /// The plan's shard count, recorded on its chains when marking started.
    #[serde(default = "one_shard")]
    pub shards: u32,
    /// The anchor whose policy applies: the step's own anchor, or a deleted
    /// step's nearest anchor. `None` for a deleted step with no anchor at all
    /// (its sessions are still flagged, and reconcile exits them gracefully).
    pub anchor_content_hash: Option<String>,
    /// The marking pass (0: the deploy's; one more per ramp): each pass walks
    /// the chains again under its own page ids.
    #[serde(default, skip_serializing_if = "is_first_pass")]
    pub pass: u32,
    /// The rollout's share when the pass started: only sessions of that
    /// cohort are marked (carried in the message, so a worker never marks with
    /// a percent it cached before a ramp).
    #[serde(default = "all_sessions", skip_serializing_if = "reaches_all")]
    pub percent: u8,
    /// A withdrawal's chain: its pages clear this plan's unapplied flags
    /// instead of setting flags.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdraw: bool,
}

fn one_shard() -> u32 {
    1
}

fn is_first_pass(pass: &u32) -> bool {
    *pass == 0
}

fn all_sessions() -> u8 {
    100
}

fn reaches_all(percent: &u8) -> bool {
    *percent >= 100
}

/// What a chain's next page does, given the plan's status read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageTurn {
    /// The plan is in the chain's walking status: mark (or clear) the page.
    Walk,
    /// A marking chain whose plan is being (or has been) withdrawn: settle
    /// the page and end the chain there.
    Settle,
    /// Anything else (paused, halted, gone…): stop; a resume walks on.
    Stop,
}

pub(crate) fn page_turn(chain: &Chain, status: Option<planning::PlanStatus>) -> PageTurn {
    use planning::PlanStatus::{Withdrawing, Withdrawn};
    match status {
        Some(s) if s == chain.walking_status() => PageTurn::Walk,
        Some(Withdrawing | Withdrawn) if !chain.withdraw => PageTurn::Settle,
        _ => PageTurn::Stop,
    }
}

impl Chain {
    /// The chain a registered chain's state describes; `withdraw` says whether
    /// it is walked as a withdrawal's (a state does not record it: the plan's
    /// status and pass do).
    pub(crate) fn of_state(state: store::ChainState, withdraw: bool) -> (Chain, Option<String>) {
        let chain = Chain {
            step_id: state.step_id,
            shard: state.shard,
            shards: state.shards,
            anchor_content_hash: state.anchor_content_hash,
            pass: state.pass,
            percent: state.percent,
            withdraw,
        };
        (chain, state.cursor)
    }

    /// Which registered chain this is.
    pub(crate) fn key(&self) -> store::ChainKey {
        store::ChainKey {
            step_id: self.step_id,
            shard: self.shard,
            pass: self.pass,
        }
    }

    /// The status the plan is in while this chain is walked.
    pub(crate) fn walking_status(&self) -> planning::PlanStatus {
        if self.withdraw {
            planning::PlanStatus::Withdrawing
        } else {
            planning::PlanStatus::Deploying
        }
    }

    pub(crate) fn flag_hash(&self) -> String {
        self.anchor_content_hash.clone().unwrap_or_default()
    }

    /// This step's chain in every one of `shards` shards.
    pub fn sharded(self, shards: u32) -> impl Iterator<Item = Chain> {
        let shards = shards.max(1);
        (0..shards).map(move |shard| Chain {
            shard,
            shards,
            ..self.clone()
        })
    }
}

/// The id of the page of `chain` that starts after `cursor`: the same for
/// every delivery and every walk of that page (the ledger's key). A ramp's
/// pass walks the same pages again, under ids of its own.
pub fn page_id(chain: &Chain, cursor: Option<&str>) -> String {
    let page = format!(
        "{}#{}#{}",
        chain.step_id,
        chain.shard,
        cursor.unwrap_or("start")
    );
    match chain.pass {
        0 => page,
        pass => format!("p{pass}#{page}"),
    }
}

/// Why a queue body is not a marking message.
#[derive(Debug, thiserror::Error)]
#[error("not a marking message: {0}")]
pub struct NotAMarkMessage(#[from] serde_json::Error);

/// A queue message: mark one page of one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkMessage {
    pub tenant_id: Uuid,
    pub plan_id: Uuid,
    pub chain: Chain,
    /// Index cursor of the page; `None` is the chain's first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl MarkMessage {
    /// The ledger key: the same page always has the same id. Cursors are
    /// bound to their shard's query, so the shard keeps the first pages of a
    /// step's shards apart.
    pub fn page_id(&self) -> String {
        page_id(&self.chain, self.cursor.as_deref())
    }
}

/// The steps a plan marks (every anchor and every deleted step of V1), each
/// as its chain in shard 0 of 1: [`Chain::sharded`] gives the chains per shard.
pub fn chains_of(plan: &MigrationPlan) -> Vec<Chain> {
    marked_steps(&plan.transformation_map)
        .into_iter()
        .map(|step| Chain {
            step_id: step.step_id,
            shard: 0,
            shards: 1,
            anchor_content_hash: step.anchor_content_hash,
            pass: 0,
            percent: 100,
            withdraw: false,
        })
        .collect()
}

impl MarkMessage {
    /// Read a queue body: a JSON object with exactly this message's fields
    /// (the worker's own format; a body in any other shape is not ours).
    pub fn parse(body: &str) -> Result<Self, NotAMarkMessage> {
        // serde would also take the struct's sequence form; no writer of ours sends it.
        if !body.trim_start().starts_with('{') {
            return Err(NotAMarkMessage(serde::de::Error::custom(
                "expected a JSON object",
            )));
        }
        Ok(serde_json::from_str(body)?)
    }
}
