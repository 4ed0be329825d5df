//! The just-in-time reconcile decision, as a pure function.
//!
//! The endpoint loads the session, the current scenario version and the deployed
//! plans, calls [`decide`], and applies the returned [`Decision`]: one conditional
//! write, an audit event, the plan counters. Nothing here reads a clock, a store or
//! the network, so the same inputs always give the same decision.
//!
//! # Calling it
//!
//! ```ignore
//! // Once per Lambda instance, cached (both are immutable and Send + Sync):
//! let v1 = Arc::new(PreparedScenario::new(v1_def));
//! let v2 = Arc::new(PreparedScenario::new(v2_def));
//! let plan = Arc::new(PreparedPlan::new(plan_v1_v2));
//! // Per request:
//! let chain = [PlanLink { plan: &plan, to: &v2 }];
//! let decision = decide(&ReconcileContext {
//!     session: &session,
//!     current: &v2,
//!     chain: &chain,
//!     session_version: Some(&v1),
//!     known_fields: &request.known_fields,
//!     now,
//! });
//! ```
//!
//! `chain` holds the deployed plans from the session's version to the current
//! one, in order, each with the definition of its `to_version`. Give what you
//! have: a missing plan, a gap or an empty chain is a *broken chain* and the
//! session is relocated by the content hash of its step (which needs
//! `session_version`, the definition of the version the session is on; it also
//! locates checkpoints whose step ids changed, and names the step for scope
//! filters).
//!
//! # Applying a decision
//!
//! - [`Decision::writes_session`] false: nothing to write (plain `continue`).
//! - `applies_migration`: this is a migration outcome. Write in one conditional
//!   update, guarded by the flag still naming `flag_plan_id` (or, without a flag,
//!   no flag and the same version and step): `new_position` when present
//!   (version, step, checksum), `pin_version` when present, clear the flag, merge
//!   `set_variables`. Then write the audit event (`fields_filled`, `fields_asked`,
//!   `result`) and count it (`result.blocked_by_checkpoint` counts a checkpoint
//!   block). A lost condition means another call applied it: answer
//!   [`already_migrated`].
//! - Otherwise (`collect`, or a flag that no longer applies): merge
//!   `set_variables`, clear the flag when `clear_flag`; no migration is counted.
//!
//! `flag_plan_id` is the plan that marked the session (its pending count drops
//! when the flag is cleared); `plan_id` is the last plan of the chain, whose
//! version the session lands on.
//!
//! # Rules, in the order they are tried
//!
//! 1. `pinned_version` set → `continue`, forever (a flag that slipped in is cleared).
//! 2. Version current (or newer) → `continue`; a leftover flag is cleared.
//! 3. Locate the anchor in the first plan: by the flag's anchor hash when the flag
//!    was computed for the step the session is still on; otherwise by position
//!    (anchor V1 step, edited step, or deleted step → its nearest anchor) and the
//!    anchor policy's scope filter is evaluated now. An edited step (same id,
//!    other content) is an anchor keyed by its policy key: the session lands on
//!    it, unless its policy says `relocate_to_nearest_anchor` — then it is a
//!    deleted step (its nearest anchor and that anchor's policy take over; the
//!    scope filter stays the edited step's, which marking used). Out of scope → `continue` on its
//!    version, not pinned: filters on age or custom conditions can include the
//!    session later, so it is re-evaluated on every call (no write).
//!    Only the first plan's scope filter applies: it is the plan that marked (or
//!    would have marked) the session; later plans never saw it.
//! 4. Follow the anchor through every plan of the chain (composite migration).
//!    Any link whose policy has `update_downstream = false` pins the session on the
//!    version it is on: `continue`, position unchanged, flag cleared. A deleted
//!    step without a nearest anchor → `exit_scenario`. A chain that cannot be
//!    followed → relocation by content hash, else `exit_scenario`.
//! 5. Each link contributes per its effective scenario (`force_scenario` or the
//!    computed one): gap fill → fields of inserted upstream steps and inserted
//!    upstream required actions; re-route → also its new upstream forks. Fields
//!    the final version no longer needs are dropped; actions and forks are mapped
//!    onto the final version (by id, else content hash) and dropped when gone.
//! 6. Checkpoint invariant on the anchor's V2 step (see below); blocked → the
//!    session stays pinned on its version.
//! 7. Re-route: evaluate the diverting forks (see `reroute`); missing condition
//!    fields → `collect`; a diversion → `teleport` there with a message; a blocked
//!    diversion carries on to the anchor with `blocked_by_checkpoint`.
//! 8. Gap fill: missing fields → `collect` (flag kept); required actions not yet
//!    visited → `execute_action` (landing on the anchor afterwards). Fields an
//!    upstream edited step now collects count like an inserted step's; a step an
//!    edit made a required action is owed even though the session visited it,
//!    when the session's version of that step performed no action.
//! 9. Land on the anchor's V2 step: `teleport`, or `continue` when the step id is
//!    unchanged (still a migration: version and checksum move).
//!
//! Relocation by content hash (broken chain) only moves the session to the step
//! with its step's content (same id preferred, else the only one; when no step has
//! that content, the step with the same id, edited in place); it cannot know
//! what the missing plans would have asked, so it collects nothing. A step without
//! a unique counterpart → `exit_scenario`.
//!
//! `reason` always says what was decided and adds what was skipped: conditions
//! that are not valid CEL or failed to evaluate, pruned fields, forks not
//! re-evaluated because they precede a passed checkpoint.
//!
//! `exit_scenario` moves the session to the entry step of the current version, so
//! that the stored session is valid and a retry answers `continue`; the runtime
//! says the restart message and starts over (every migration outcome but
//! `collect` sets version, step and checksum).
//!
//! # Checkpoints
//!
//! Before any landing, the last checkpoint of `step_history` is located in the
//! target version (by id, and by content hash through the definitions given when
//! the ids changed). The landing is refused when that checkpoint no longer exists,
//! when the target can reach it, or when the target *is* it and the session is not
//! sitting on it; for a re-route, also when the fork that chose the branch can
//! reach it (or is it). Earlier checkpoints of the history are checked for
//! reachability as well.

mod checkpoint;
mod fill;
mod prepared;
mod reroute;
mod route;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::model::Session;
use crate::model::{KnownField, MigrationScenario, ReconciliationAction, ReconciliationResult};
use crate::scope::session_age_days;

pub use fill::{CONFIRM_BELOW, MIN_CONFIDENCE, SOURCE_KNOWN, SOURCE_VARIABLES};
pub use prepared::{PreparedPlan, PreparedScenario};

use checkpoint::{Block, CheckpointGuard};
use fill::{Fills, Sources};
use reroute::{ReRoute, ReRouteInput};
use route::{AnchorRoute, Route};

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

/// Where a migrated session now is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub version: i64,
    pub step_id: Uuid,
    pub checksum: String,
}

/// What to answer and what to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub result: ReconciliationResult,
    /// The plan named by the session's flag, if any: the guard of the write.
    pub flag_plan_id: Option<Uuid>,
    /// The plan whose migration is applied or attempted (last of the chain, or the
    /// plan whose policy pinned the session).
    pub plan_id: Option<Uuid>,
    /// New version, step and checksum; `None` leaves them unchanged.
    pub new_position: Option<Position>,
    /// Set `pinned_version` to this.
    pub pin_version: Option<i64>,
    /// Remove `pending_migration`.
    pub clear_flag: bool,
    /// Values to merge into the session's variables (only changed ones).
    pub set_variables: BTreeMap<String, Value>,
    /// Field → where its value came from (`known_fields`, a candidate's source,
    /// `session_variables`), for the audit event.
    pub fields_filled: BTreeMap<String, String>,
    /// Fields the customer is asked for.
    pub fields_asked: Vec<String>,
    /// A migration outcome: conditional write, audit event, counters.
    pub applies_migration: bool,
    /// The session's `scenario_checksum` did not match its version's: the runtime
    /// ran an edited definition under the same version number (logged by callers).
    pub checksum_mismatch: bool,
}

impl Decision {
    /// Whether the session item must be written at all.
    pub fn writes_session(&self) -> bool {
        self.applies_migration || self.clear_flag || !self.set_variables.is_empty()
    }
}

/// The answer to a call whose conditional write lost to a concurrent or earlier
/// call that applied the same migration.
pub fn already_migrated() -> ReconciliationResult {
    ReconciliationResult::continue_with("already migrated")
}

/// Decide what to do with `ctx.session` before its next turn.
pub fn decide(ctx: &ReconcileContext<'_>) -> Decision {
    let s = ctx.session;
    let current_version = ctx.current.version();
    let has_flag = s.pending_migration.is_some();
    if let Some(pin) = s.pinned_version {
        let mut d = unchanged(ctx, format!("pinned to version {pin}"));
        // A pinned session is never migrated again, so a flag can only be stale.
        d.clear_flag = has_flag;
        return d;
    }
    if s.active_scenario_version == current_version
        && s.scenario_checksum
            .as_deref()
            .is_some_and(|c| c != ctx.current.checksum())
    {
        return Engine { ctx }.checksum_mismatch();
    }
    if s.active_scenario_version >= current_version {
        let reason = if !has_flag && s.active_scenario_version == current_version {
            "up to date".to_string()
        } else if has_flag {
            format!(
                "already on version {}: pending migration cleared",
                s.active_scenario_version
            )
        } else {
            format!(
                "session is on version {}, newer than the current version {current_version}",
                s.active_scenario_version
            )
        };
        let mut d = unchanged(ctx, reason);
        d.clear_flag = has_flag;
        return d;
    }
    Engine { ctx }.run()
}

/// A `continue` that changes nothing about where the session is.
fn unchanged(ctx: &ReconcileContext<'_>, reason: impl Into<String>) -> Decision {
    Decision {
        result: ReconciliationResult::continue_with(reason),
        flag_plan_id: ctx
            .session
            .pending_migration
            .as_ref()
            .map(|f| f.migration_plan_id),
        plan_id: None,
        new_position: None,
        pin_version: None,
        clear_flag: false,
        set_variables: BTreeMap::new(),
        fields_filled: BTreeMap::new(),
        fields_asked: Vec::new(),
        applies_migration: false,
        checksum_mismatch: false,
    }
}

struct Engine<'x, 'a> {
    ctx: &'x ReconcileContext<'a>,
}

/// Accumulated explanation, joined into `reason`.
#[derive(Default)]
struct Notes {
    head: String,
    extra: Vec<String>,
}

impl Notes {
    fn reason(&self) -> String {
        if self.extra.is_empty() {
            self.head.clone()
        } else {
            format!("{}; {}", self.head, self.extra.join("; "))
        }
    }
}

impl<'a> Engine<'_, 'a> {
    fn run(&self) -> Decision {
        match route::route(self.ctx) {
            Route::Anchor(r) => self.migrate(r),
            Route::Pinned {
                anchor,
                scenario,
                plan,
            } => {
                let mut d = self.base();
                d.plan_id = Some(plan.id());
                d.result.migration_scenario = Some(scenario);
                d.result.anchor_hash = Some(anchor.anchor_content_hash.clone());
                self.pin(
                    d,
                    format!(
                        "the policy of plan {} for '{}' keeps sessions on their version (update_downstream = false)",
                        plan.id(),
                        anchor.anchor_name
                    ),
                )
            }
            Route::OutOfScope {
                anchor,
                plan,
                not_taken,
            } => {
                let mut reason = format!(
                    "outside the scope of the policy for '{}': stays on version {}",
                    anchor.anchor_name, self.ctx.session.active_scenario_version
                );
                if let Some(why) = not_taken {
                    reason.push_str(&format!(" ({why})"));
                }
                let mut d = unchanged(self.ctx, reason);
                d.plan_id = Some(plan.id());
                d.result.anchor_hash = Some(anchor.anchor_content_hash.clone());
                // A flag computed for another position does not apply any more.
                d.clear_flag = self.ctx.session.pending_migration.is_some();
                d
            }
            Route::DeletedWithoutAnchor { step_name } => self.exit(format!(
                "step '{step_name}' was removed and no step of the new version replaces it"
            )),
            Route::Broken(why) => self.relocate(why),
        }
    }

    /// A decision for this session with nothing decided yet.
    fn base(&self) -> Decision {
        let mut d = unchanged(self.ctx, "");
        d.plan_id = self.ctx.chain.last().map(|l| l.plan.id());
        d
    }

    fn version_span(&self) -> String {
        let links = self.ctx.chain.len();
        let span = format!(
            "version {} → {}",
            self.ctx.session.active_scenario_version,
            self.ctx.current.version()
        );
        if links > 1 {
            format!("{span}, composite over {links} plans")
        } else {
            span
        }
    }

    /// Stay on the current version for good.
    fn pin(&self, mut d: Decision, reason: String) -> Decision {
        d.result.action = ReconciliationAction::Continue;
        d.result.reason = Some(reason);
        d.pin_version = Some(self.ctx.session.active_scenario_version);
        d.clear_flag = true;
        d.applies_migration = true;
        d
    }

    fn pin_blocked(&self, mut d: Decision, block: Block) -> Decision {
        d.result.blocked_by_checkpoint = true;
        d.result.checkpoint_warning = Some(block.warning);
        let reason = format!(
            "checkpoint blocks the migration: stays pinned on version {}",
            self.ctx.session.active_scenario_version
        );
        self.pin(d, reason)
    }

    fn exit(&self, why: String) -> Decision {
        let current = self.ctx.current;
        let mut d = self.base();
        d.result.action = ReconciliationAction::ExitScenario;
        d.result.user_message = Some(
            "Sorry, this conversation has changed since we last spoke and we can't pick up where we left off. Let's start again from the beginning."
                .to_string(),
        );
        d.result.reason = Some(format!(
            "{why}; restarting in version {}",
            current.version()
        ));
        let entry = current.definition().entry_step_id;
        d.result.target_step_id = Some(entry);
        d.new_position = Some(Position {
            version: current.version(),
            step_id: entry,
            checksum: current.checksum().to_string(),
        });
        d.clear_flag = true;
        d.applies_migration = true;
        d
    }

    /// The session claims the current version, but its checksum says it ran
    /// another definition under that number. Its step, when the current version
    /// has it, is where it continues (position and checksum rewritten, any flag
    /// cleared); otherwise it restarts — never left between two definitions.
    fn checksum_mismatch(&self) -> Decision {
        let ctx = self.ctx;
        let s = ctx.session;
        let current = ctx.current;
        let why = format!(
            "scenario checksum {} is not version {}'s ({}): the session ran an edited definition",
            s.scenario_checksum.as_deref().unwrap_or(""),
            current.version(),
            current.checksum()
        );
        let mut d = match current.index_of(s.active_step_id) {
            Some(_) => {
                let mut d = unchanged(
                    ctx,
                    format!("{why}; its step exists in this version, so it continues there"),
                );
                d.new_position = Some(Position {
                    version: current.version(),
                    step_id: s.active_step_id,
                    checksum: current.checksum().to_string(),
                });
                d.clear_flag = s.pending_migration.is_some();
                d.applies_migration = true;
                d
            }
            None => self.exit(format!(
                "{why}, and its step does not exist in version {}",
                current.version()
            )),
        };
        d.checksum_mismatch = true;
        d
    }

    /// The chain cannot be followed: find the session's step in the current
    /// version by its content hash.
    fn relocate(&self, why: String) -> Decision {
        let ctx = self.ctx;
        let id = ctx.session.active_step_id;
        let found = ctx.session_version.and_then(|def| {
            let idx = def.index_of(id)?;
            let hash = def.hash(idx);
            ctx.current
                .relocate(id, hash)
                .map(|t| (t, hash.to_string()))
        });
        let Some((target, hash)) = found else {
            return self.exit(format!(
                "{why}, and the session's step has no counterpart in version {}",
                ctx.current.version()
            ));
        };
        let mut d = self.base();
        d.result.anchor_hash = Some(hash);
        let guard = CheckpointGuard::new(ctx);
        if let Err(block) = guard.check_landing(target) {
            return self.pin_blocked(d, block);
        }
        let notes = Notes {
            head: format!("relocated by content hash ({why}), {}", self.version_span()),
            extra: Vec::new(),
        };
        self.land(
            d,
            target,
            "relocated_by_content_hash",
            None,
            Fills::default(),
            notes,
            None,
        )
    }

    fn migrate(&self, r: AnchorRoute<'a>) -> Decision {
        let ctx = self.ctx;
        let current = ctx.current;
        let mut d = self.base();
        d.result.migration_scenario = Some(r.scenario);
        d.result.anchor_hash = Some(r.anchor.anchor_content_hash.clone());

        let guard = CheckpointGuard::new(ctx);
        if let Err(block) = guard.check_landing(r.target) {
            return self.pin_blocked(d, block);
        }

        let sources = Sources {
            known: ctx.known_fields,
            session: ctx.session,
        };
        let mut fills = Fills::default();
        let mut notes = Notes {
            head: format!(
                "{} at '{}', {}",
                r.scenario.as_str(),
                r.anchor.anchor_name,
                self.version_span()
            ),
            extra: Vec::new(),
        };
        match (&r.edited_step, &r.deleted_step) {
            (Some((edited, true)), _) => notes.extra.push(format!(
                "step '{edited}' was edited in place and its policy relocates its sessions; continuing from its nearest anchor"
            )),
            (Some((edited, false)), Some(step)) => notes.extra.push(format!(
                "step '{step}' was removed; continuing from '{edited}', edited in place"
            )),
            (Some((edited, false)), None) => notes.extra.push(format!(
                "step '{edited}' was edited in place; the session stays on it"
            )),
            (None, Some(step)) => notes.extra.push(format!(
                "step '{step}' was removed; continuing from its nearest anchor"
            )),
            (None, None) => {}
        }
        let mut block = None;

        if r.scenario == MigrationScenario::ReRoute && !r.forks.is_empty() {
            let step_name = route::current_step_name(ctx, r.deleted_step.as_deref().unwrap_or(""));
            let input = ReRouteInput {
                ctx,
                forks: &r.forks,
                target: r.target,
                guard: &guard,
                sources: &sources,
                current_step_name: step_name,
                age_days: session_age_days(ctx.session, ctx.now),
            };
            match reroute::evaluate(&input, &mut fills, &mut notes.extra) {
                ReRoute::Collect => return self.collect(d, fills, notes, None),
                ReRoute::Divert { fork, to } => {
                    notes.head = format!(
                        "re_route at '{}': the new decision at '{}' sends the customer to '{}', {}",
                        r.anchor.anchor_name,
                        current.step(fork).name,
                        current.step(to).name,
                        self.version_span()
                    );
                    let message = format!(
                        "Our process has been updated, so we're taking you to the right place: {}.",
                        current.step(to).name
                    );
                    return self.land(d, to, "re_route", Some(message), fills, notes, None);
                }
                ReRoute::Blocked(b) => block = Some(b),
                ReRoute::Stay => {}
            }
        }

        for field in &r.fields {
            if current.needs_field(field) {
                fills.require(&sources, field);
            } else {
                notes.extra.push(format!(
                    "field '{field}' is no longer used by version {}; not asked",
                    current.version()
                ));
            }
        }
        if !fills.missing.is_empty() {
            return self.collect(d, fills, notes, block);
        }

        if !r.actions.is_empty() {
            let upstream = current.reaching(r.target);
            let visited = |id: Uuid| ctx.session.step_history.iter().any(|v| v.step_id == id);
            // A step the edit made a required action was visited without one when
            // the session's version of it performed no action at all.
            let passed_without_action = |id: Uuid| {
                ctx.session_version
                    .and_then(|d| d.step_by_id(id))
                    .is_some_and(|s| !s.performs_action && !s.is_required_action)
            };
            let actions: Vec<Uuid> = r
                .actions
                .iter()
                .filter(|&&(a, _)| {
                    a != r.target && upstream[a] && current.step(a).is_required_action
                })
                .filter(|&&(a, owed)| {
                    let id = current.step(a).id;
                    !visited(id) || (owed && passed_without_action(id))
                })
                .map(|&(a, _)| current.step(a).id)
                .collect();
            if !actions.is_empty() {
                let mut d = self.land(d, r.target, r.scenario.as_str(), None, fills, notes, block);
                d.result.action = ReconciliationAction::ExecuteAction;
                d.result.target_step_id = Some(current.step(r.target).id);
                d.result.execute_action_ids = actions;
                return d;
            }
        }

        let reason = if r.deleted_step.is_some() {
            "deleted_step"
        } else {
            r.scenario.as_str()
        };
        let message = r.deleted_step.as_ref().map(|_| {
            format!(
                "This part of our conversation has changed, so we'll pick up from: {}.",
                current.step(r.target).name
            )
        });
        self.land(d, r.target, reason, message, fills, notes, block)
    }

    fn collect(
        &self,
        mut d: Decision,
        fills: Fills,
        notes: Notes,
        block: Option<Block>,
    ) -> Decision {
        let missing = fills.missing;
        d.result.action = ReconciliationAction::Collect;
        d.result.user_message = Some(collect_prompt(&missing));
        d.result.reason = Some(format!(
            "{}; waiting for {}",
            notes.reason(),
            missing.join(", ")
        ));
        d.result.collect_fields = missing.clone();
        d.result.confirm_fields = fills.confirm_fields;
        if let Some(b) = block {
            d.result.blocked_by_checkpoint = true;
            d.result.checkpoint_warning = Some(b.warning);
        }
        d.fields_asked = missing;
        d.set_variables = fills.set_variables;
        d.fields_filled = fills.fields_filled;
        d
    }

    #[allow(clippy::too_many_arguments)]
    fn land(
        &self,
        mut d: Decision,
        target: usize,
        teleport_reason: &str,
        user_message: Option<String>,
        fills: Fills,
        notes: Notes,
        block: Option<Block>,
    ) -> Decision {
        let current = self.ctx.current;
        let step_id = current.step(target).id;
        if step_id == self.ctx.session.active_step_id {
            d.result.action = ReconciliationAction::Continue;
        } else {
            d.result.action = ReconciliationAction::Teleport;
            d.result.target_step_id = Some(step_id);
            d.result.teleport_reason = Some(teleport_reason.to_string());
            d.result.user_message = user_message;
        }
        d.result.reason = Some(notes.reason());
        d.result.confirm_fields = fills.confirm_fields;
        if let Some(b) = block {
            d.result.blocked_by_checkpoint = true;
            d.result.checkpoint_warning = Some(b.warning);
        }
        d.new_position = Some(Position {
            version: current.version(),
            step_id,
            checksum: current.checksum().to_string(),
        });
        d.clear_flag = true;
        d.applies_migration = true;
        d.set_variables = fills.set_variables;
        d.fields_filled = fills.fields_filled;
        d
    }
}

/// `date_of_birth` → `date of birth`.
fn humanize(field: &str) -> String {
    field.replace(['_', '-'], " ")
}

fn collect_prompt(fields: &[String]) -> String {
    let names: Vec<String> = fields.iter().map(|f| humanize(f)).collect();
    match names.as_slice() {
        [one] => format!("Before we continue, could you tell me your {one}?"),
        [init @ .., last] => format!(
            "Before we continue, I need a few details: your {} and {last}.",
            init.join(", ")
        ),
        [] => "Before we continue, I need a few more details.".to_string(),
    }
}
