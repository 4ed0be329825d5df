//! The plan lifecycle: which status changes are legal, and what each one writes.
//!
//! ```text
//!  pending ──approve──▶ approved ──deploy──▶ deploying ──finish──▶ deployed
//!     │  ╲                 │  ╲
//!     │   reject            │   (scenario moved / a sibling deployed) ──▶ superseded
//!     │     ╲               │
//!     │      ▶ rejected     └──(expires_at passed)──▶ expired
//!     └──(expires_at passed)──▶ expired,  (a sibling deployed) ──▶ superseded
//!
//!  deploying ──pause──▶ paused ──resume──▶ deploying   (marking goes on)
//!  deployed  ──pause──▶ paused ──resume──▶ deployed
//!  deploying / deployed ──(the guard crossed)──▶ halted ──resume──▶ as paused
//!  deployed (at a percent below 100) ──ramp──▶ deploying (the new slice is marked)
//!  deploying / deployed / paused / halted ──withdraw──▶ withdrawing ──finish──▶ withdrawn
//! ```
//!
//! The services ask [`transition`] whether a command is legal for the plan's
//! current status and get a [`StatusChange`] back; both store backends apply
//! that change — [`StatusChange::apply`] in memory, [`StatusChange::stamped_fields`]
//! for an update expression — so the side fields of a transition (who approved,
//! when it was deployed, …) are decided here once, not once per backend.

use chrono::{DateTime, Utc};

use crate::model::{MigrationPlan, PlanStatus, TransitionRecord};

/// What a caller wants to do with a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCommand {
    /// An operator approves a pending plan.
    Approve { by: Option<String> },
    /// An operator rejects a pending plan, optionally saying why.
    Reject {
        by: Option<String>,
        reason: Option<String>,
    },
    /// An operator changes a pending plan's anchor policies (no status change).
    EditPolicies,
    /// Deploy starts: an approved plan becomes `deploying` (the store's
    /// activation also moves the scenario to the plan's target version).
    Deploy,
    /// Every session of the plan is marked: `deploying` becomes `deployed`.
    FinishDeploying,
    /// The plan can never deploy: its scenario moved on, or a sibling plan from
    /// the same version deployed. (No reason is stored: the plan's events and
    /// the scenario's current version say why.)
    Supersede,
    /// A pending or approved plan was read after its `expires_at`.
    Expire,
    /// An operator stops a rollout: marking and applying stop, flags stay.
    Pause,
    /// An operator lets a paused rollout go on, in the status it was paused in
    /// (`MigrationPlan::paused_from`: `deploying` or `deployed`).
    Resume { to: PlanStatus },
    /// The rollout guard's threshold was crossed: like a pause, with the reason.
    Halt { reason: String },
    /// An operator widens a partial rollout to `percent`: marking pass `pass`
    /// marks the sessions the wider cohort adds.
    Ramp { percent: u8, pass: u32 },
    /// An operator takes the rollout back: pass `pass` clears every flag not
    /// yet applied.
    Withdraw { pass: u32 },
    /// Every flag of the withdrawal is cleared: `withdrawing` becomes `withdrawn`.
    FinishWithdrawing,
}

impl PlanCommand {
    /// The past participle the refusal message uses ("only pending plans can be approved").
    fn verb(&self) -> &'static str {
        match self {
            PlanCommand::Approve { .. } => "approved",
            PlanCommand::Reject { .. } => "rejected",
            PlanCommand::EditPolicies => "edited",
            PlanCommand::Deploy => "deployed",
            PlanCommand::FinishDeploying => "finished",
            PlanCommand::Supersede => "superseded",
            PlanCommand::Expire => "expired",
            PlanCommand::Pause => "paused",
            PlanCommand::Resume { .. } => "resumed",
            PlanCommand::Halt { .. } => "halted",
            PlanCommand::Ramp { .. } => "ramped",
            PlanCommand::Withdraw { .. } => "withdrawn",
            PlanCommand::FinishWithdrawing => "finished withdrawing",
        }
    }

    /// The statuses the command applies to; the first is the one messages name.
    fn allowed_from(&self) -> &'static [PlanStatus] {
        match self {
            PlanCommand::Approve { .. }
            | PlanCommand::Reject { .. }
            | PlanCommand::EditPolicies => &[PlanStatus::Pending],
            PlanCommand::Deploy => &[PlanStatus::Approved],
            PlanCommand::FinishDeploying => &[PlanStatus::Deploying],
            PlanCommand::Supersede | PlanCommand::Expire => {
                &[PlanStatus::Pending, PlanStatus::Approved]
            }
            // Named first: the message "only deployed plans can be paused" reads
            // right for every status that cannot pause.
            PlanCommand::Pause | PlanCommand::Halt { .. } => {
                &[PlanStatus::Deployed, PlanStatus::Deploying]
            }
            PlanCommand::Resume { .. } => &[PlanStatus::Paused, PlanStatus::Halted],
            PlanCommand::Ramp { .. } => &[PlanStatus::Deployed],
            PlanCommand::Withdraw { .. } => &[
                PlanStatus::Deployed,
                PlanStatus::Deploying,
                PlanStatus::Paused,
                PlanStatus::Halted,
            ],
            PlanCommand::FinishWithdrawing => &[PlanStatus::Withdrawing],
        }
    }

    /// The status the command leads to (`None`: it changes no status).
    fn target(&self) -> Option<PlanStatus> {
        match self {
            PlanCommand::Approve { .. } => Some(PlanStatus::Approved),
            PlanCommand::Reject { .. } => Some(PlanStatus::Rejected),
            PlanCommand::EditPolicies => None,
            PlanCommand::Deploy => Some(PlanStatus::Deploying),
            PlanCommand::FinishDeploying => Some(PlanStatus::Deployed),
            PlanCommand::Supersede => Some(PlanStatus::Superseded),
            PlanCommand::Expire => Some(PlanStatus::Expired),
            PlanCommand::Pause => Some(PlanStatus::Paused),
            PlanCommand::Halt { .. } => Some(PlanStatus::Halted),
            PlanCommand::Ramp { .. } => Some(PlanStatus::Deploying),
            PlanCommand::Withdraw { .. } => Some(PlanStatus::Withdrawing),
            PlanCommand::FinishWithdrawing => Some(PlanStatus::Withdrawn),
            // Only back to an activated status that applies migrations.
            PlanCommand::Resume { to } if to.applies_migrations() => Some(*to),
            PlanCommand::Resume { .. } => None,
        }
    }
}

/// A command the plan's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Plan is {}; only {} plans can be {}", .status.as_str(), .allowed.as_str(), .verb)]
pub struct LifecycleError {
    /// The plan's current status.
    pub status: PlanStatus,
    /// The status the command needs (the first one, when several are allowed).
    pub allowed: PlanStatus,
    pub verb: &'static str,
}

/// Whether `command` is legal for a plan in `status` (for commands that change
/// no status, such as [`PlanCommand::EditPolicies`]).
pub fn check(status: PlanStatus, command: &PlanCommand) -> Result<(), LifecycleError> {
    let allowed = command.allowed_from();
    if allowed.contains(&status) {
        Ok(())
    } else {
        Err(LifecycleError {
            status,
            allowed: allowed[0],
            verb: command.verb(),
        })
    }
}

/// The status change `command` makes to a plan in `status` at `at`, or why it
/// is not allowed. [`PlanCommand::EditPolicies`] is refused here (it changes no
/// status): use [`check`] for it.
pub fn transition(
    status: PlanStatus,
    command: PlanCommand,
    at: DateTime<Utc>,
) -> Result<StatusChange, LifecycleError> {
    check(status, &command)?;
    let Some(to) = command.target() else {
        if let PlanCommand::Resume { to } = command {
            return Err(LifecycleError {
                status,
                allowed: to,
                verb: "resumed to this status",
            });
        }
        return Err(LifecycleError {
            status,
            allowed: status,
            verb: "changed by a status transition",
        });
    };
    let by = match &command {
        PlanCommand::Approve { by } | PlanCommand::Reject { by, .. } => by.clone(),
        _ => None,
    };
    let stamp = match command {
        PlanCommand::Approve { by } => Stamp::Approved { by },
        PlanCommand::Reject { by, reason } => Stamp::Rejected { by, reason },
        PlanCommand::FinishDeploying => Stamp::Deployed,
        PlanCommand::Pause => Stamp::Paused { from: status },
        PlanCommand::Halt { reason } => Stamp::Halted {
            from: status,
            reason,
        },
        PlanCommand::Resume { .. } => Stamp::Resumed,
        PlanCommand::Ramp { percent, pass } => Stamp::Ramped { percent, pass },
        // The withdrawal's pass; the pause or halt it ends is over too.
        PlanCommand::Withdraw { pass } => Stamp::Withdrawing { pass },
        PlanCommand::FinishWithdrawing => Stamp::Unstamped,
        PlanCommand::Supersede
        | PlanCommand::Expire
        | PlanCommand::Deploy
        | PlanCommand::EditPolicies => Stamp::Unstamped,
    };
    Ok(StatusChange {
        from: status,
        to,
        at,
        stamp,
        by,
    })
}

/// A legal status change and the side fields it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub from: PlanStatus,
    pub to: PlanStatus,
    pub at: DateTime<Utc>,
    pub stamp: Stamp,
    /// Who asked for it, for the plan's history.
    pub by: Option<String>,
}

/// The side fields a status change writes besides `status` and `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// `approved_at` = the change's time, `approved_by` = who (removed when unknown).
    Approved { by: Option<String> },
    /// `rejected_at`, `rejected_by`, `rejection_reason`.
    Rejected {
        by: Option<String>,
        reason: Option<String>,
    },
    /// `deployed_at`.
    Deployed,
    /// `paused_from`: the status `resume` returns to.
    Paused { from: PlanStatus },
    /// `paused_from` and `halt_reason`.
    Halted { from: PlanStatus, reason: String },
    /// `paused_from` and `halt_reason` removed.
    Resumed,
    /// `percent` and `rollout_pass`.
    Ramped { percent: u8, pass: u32 },
    /// `rollout_pass`; `paused_from` and `halt_reason` removed.
    Withdrawing { pass: u32 },
    /// Nothing besides the status.
    Unstamped,
}

/// One side field of a status change, for backends that write fields by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedField {
    /// The attribute name, as in the serialized [`MigrationPlan`].
    pub name: &'static str,
    /// `None`: remove the attribute (e.g. an approval without an approver).
    pub value: Option<StampValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampValue {
    Time(DateTime<Utc>),
    Text(String),
    Number(u64),
}

impl StatusChange {
    /// The change, asked for by `by` (kept when `None`: an approval or a
    /// rejection names its actor in its command).
    pub fn by(mut self, by: Option<String>) -> Self {
        if by.is_some() {
            self.by = by;
        }
        self
    }

    /// This change as the plan's history records it, the plan then at `revision`.
    pub fn record(&self, revision: u64) -> TransitionRecord {
        let (reason, percent) = match &self.stamp {
            Stamp::Halted { reason, .. } => (Some(reason.clone()), None),
            Stamp::Ramped { percent, .. } => (None, Some(*percent)),
            _ => (None, None),
        };
        TransitionRecord {
            from: self.from,
            to: self.to,
            at: self.at,
            revision,
            by: self.by.clone(),
            reason,
            percent,
        }
    }

    /// Leaving a live status frees the plan's version pair for a new plan.
    pub fn frees_version_pair(&self) -> bool {
        self.from.is_live() && !self.to.is_live()
    }

    /// Leaving the statuses whose chains are walked (`deploying`,
    /// `withdrawing`) takes the plan off the resume sweep's list.
    pub fn leaves_deploying(&self) -> bool {
        self.from.walks_chains() && !self.to.walks_chains()
    }

    /// Entering them (a resume, a ramp, a withdrawal) puts the plan back on
    /// the sweep's list.
    pub fn enters_deploying(&self) -> bool {
        !self.from.walks_chains() && self.to.walks_chains()
    }

    /// The side fields this change sets or removes, in a stable order.
    pub fn stamped_fields(&self) -> Vec<StampedField> {
        let time = || Some(StampValue::Time(self.at));
        let text = |v: &Option<String>| v.clone().map(StampValue::Text);
        let field = |name, value| StampedField { name, value };
        match &self.stamp {
            Stamp::Approved { by } => {
                vec![field("approved_at", time()), field("approved_by", text(by))]
            }
            Stamp::Rejected { by, reason } => vec![
                field("rejected_at", time()),
                field("rejected_by", text(by)),
                field("rejection_reason", text(reason)),
            ],
            Stamp::Deployed => vec![field("deployed_at", time())],
            Stamp::Paused { from } => vec![field(
                "paused_from",
                Some(StampValue::Text(from.as_str().to_owned())),
            )],
            Stamp::Halted { from, reason } => vec![
                field(
                    "paused_from",
                    Some(StampValue::Text(from.as_str().to_owned())),
                ),
                field("halt_reason", Some(StampValue::Text(reason.clone()))),
            ],
            Stamp::Resumed => vec![field("paused_from", None), field("halt_reason", None)],
            Stamp::Ramped { percent, pass } => vec![
                field("percent", Some(StampValue::Number(u64::from(*percent)))),
                field("rollout_pass", Some(StampValue::Number(u64::from(*pass)))),
            ],
            Stamp::Withdrawing { pass } => vec![
                field("rollout_pass", Some(StampValue::Number(u64::from(*pass)))),
                field("paused_from", None),
                field("halt_reason", None),
            ],
            Stamp::Unstamped => Vec::new(),
        }
    }

    /// The plan as it is after the change: new status, the revision bumped,
    /// the side fields written, the change in its history.
    pub fn apply(&self, plan: &mut MigrationPlan) {
        plan.status = self.to;
        plan.revision += 1;
        self.record(plan.revision).append_to(&mut plan.transitions);
        match &self.stamp {
            Stamp::Approved { by } => {
                plan.approved_at = Some(self.at);
                plan.approved_by = by.clone();
            }
            Stamp::Rejected { by, reason } => {
                plan.rejected_at = Some(self.at);
                plan.rejected_by = by.clone();
                plan.rejection_reason = reason.clone();
            }
            Stamp::Deployed => plan.deployed_at = Some(self.at),
            Stamp::Paused { from } => plan.paused_from = Some(*from),
            Stamp::Halted { from, reason } => {
                plan.paused_from = Some(*from);
                plan.halt_reason = Some(reason.clone());
            }
            Stamp::Resumed => {
                plan.paused_from = None;
                plan.halt_reason = None;
            }
            Stamp::Ramped { percent, pass } => {
                plan.percent = Some(*percent);
                plan.rollout_pass = *pass;
            }
            Stamp::Withdrawing { pass } => {
                plan.rollout_pass = *pass;
                plan.paused_from = None;
                plan.halt_reason = None;
            }
            Stamp::Unstamped => {}
        }
    }
}

#[cfg(test)]
mod tests;
