//! Rules 3 to 9 of the `reconcile` documentation, once `decide` has ruled out
//! pinned and up-to-date sessions (and the repair of a checksum mismatch it
//! hands over): follow the route the chain gives, then pin, exit, relocate,
//! collect or land, with a `reason` that explains the outcome.

use uuid::Uuid;

use crate::model::{MigrationScenario, ReconciliationAction};
use crate::scope::session_age_days;

use super::checkpoint::{Block, CheckpointGuard};
use super::context::ReconcileContext;
use super::decision::{Decision, Position, unchanged};
use super::fill::{Fills, Sources};
use super::reroute::{self, ReRoute, ReRouteInput};
use super::route::{self, AnchorRoute, Route};

/// The rules applied to one context.
pub(super) struct Engine<'x, 'a> {
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

impl<'x, 'a> Engine<'x, 'a> {
    pub(super) fn new(ctx: &'x ReconcileContext<'a>) -> Self {
        Engine { ctx }
    }

    pub(super) fn run(&self) -> Decision {
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
    pub(super) fn checksum_mismatch(&self) -> Decision {
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
