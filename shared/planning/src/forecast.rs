//! The outcome forecast: what reconcile will answer each session at a plan's
//! from-version once the plan is deployed, before anyone approves it.
//!
//! Nothing here is estimated from the plan alone: every session is put through
//! the same two decisions a deployment puts it through — marking
//! ([`crate::eligibility::marking_decision`]: flag it, or leave it out of scope,
//! pinned or to another plan) and then [`crate::reconcile::decide`] on its next
//! message with no `known_fields` beyond what the session holds — in a dry run.
//! So on a population that does not move between the forecast and the
//! reconciles, the forecast's counts are the reconciles' counts.
//!
//! The caller reads the sessions (all of them, or a sample per stratum — a
//! stratum is one marked V1 step: an anchor, an edited step or a deleted step)
//! and feeds them to a [`StratumTally`]; [`finish`] turns the tallies into the
//! answer, exact or scaled to each stratum's counted sessions with 95%
//! intervals.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::eligibility::{MarkDecision, MarkedStep, marked_steps, marking_decision};
use crate::model::{
    AnchorForecast, Estimate, ForecastCount, ForecastOutcomes, PendingMigration, PlanForecast,
    ReconciliationAction, ReconciliationResult, Session, StratumKind,
};
use crate::reconcile::{PlanLink, PreparedPlan, PreparedScenario, ReconcileContext, decide};
use crate::scope::CompiledScope;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_964;

/// One stratum of a plan's sessions: a V1 step the plan marks, or a step of
/// an earlier version whose sessions have not migrated yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stratum {
    pub step: MarkedStep,
    pub kind: StratumKind,
    pub step_name: String,
    /// The version the stratum's sessions are on.
    pub version: i64,
}

/// An earlier version's sessions: its definition and the deployed plans that
/// lead from it to the plan's from-version, in order.
struct EarlierVersion<'a> {
    definition: &'a PreparedScenario,
    links: Vec<PlanLink<'a>>,
}

/// What reconcile would answer one session, and why it stays where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOutcome {
    pub result: ReconciliationResult,
    /// A `continue` because the scope filter leaves the session out.
    pub excluded_by_scope: bool,
    /// A `continue` that keeps the session on its version for good.
    pub pinned: bool,
}

/// A plan ready to forecast: its strata and their scope filters compiled once.
pub struct Forecaster<'a> {
    plan: &'a PreparedPlan,
    from: &'a PreparedScenario,
    to: &'a PreparedScenario,
    now: DateTime<Utc>,
    strata: Vec<Stratum>,
    /// Policy key → its scope filter compiled (`None`: no policy, or one that
    /// no longer compiles, which marking treats as marking no one).
    scopes: HashMap<String, Result<CompiledScope<'a>, ()>>,
    earlier: HashMap<i64, EarlierVersion<'a>>,
}

impl<'a> Forecaster<'a> {
    /// `from` and `to` are the plan's from- and to-version definitions; `now` is
    /// the time scope filters on age are evaluated at.
    pub fn new(
        plan: &'a PreparedPlan,
        from: &'a PreparedScenario,
        to: &'a PreparedScenario,
        now: DateTime<Utc>,
    ) -> Self {
        let map = &plan.plan().transformation_map;
        let names: HashMap<Uuid, &str> = from
            .definition()
            .steps
            .iter()
            .map(|s| (s.id, s.name.as_str()))
            .collect();
        let anchors = map.anchors.len();
        let strata = marked_steps(map)
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                let kind = if i < anchors {
                    StratumKind::Anchor
                } else if map.deleted_nodes[i - anchors].edited {
                    StratumKind::EditedStep
                } else {
                    StratumKind::DeletedStep
                };
                Stratum {
                    step_name: names.get(&step.step_id).copied().unwrap_or("").to_string(),
                    kind,
                    step,
                    version: plan.plan().from_version,
                }
            })
            .collect();
        let scopes = plan
            .plan()
            .anchor_policies
            .iter()
            .map(|(key, policy)| {
                (
                    key.clone(),
                    CompiledScope::compile(&policy.scope_filter).map_err(|_| ()),
                )
            })
            .collect();
        Forecaster {
            plan,
            from,
            to,
            now,
            strata,
            scopes,
            earlier: HashMap::new(),
        }
    }

    /// Add the sessions of an earlier version: `definition` is that version,
    /// `links` the deployed plans from it to the plan's from-version (in
    /// order), `steps` its steps that have sessions. Deploying this plan does
    /// not mark them; their next reconcile migrates them through `links` and
    /// this plan at once.
    pub fn with_earlier_version(
        mut self,
        definition: &'a PreparedScenario,
        links: Vec<PlanLink<'a>>,
        steps: impl IntoIterator<Item = Uuid>,
    ) -> Self {
        let version = definition.version();
        let names: HashMap<Uuid, &str> = definition
            .definition()
            .steps
            .iter()
            .map(|s| (s.id, s.name.as_str()))
            .collect();
        for step_id in steps {
            self.strata.push(Stratum {
                step: MarkedStep {
                    step_id,
                    anchor_content_hash: None,
                },
                kind: StratumKind::EarlierVersion,
                step_name: names.get(&step_id).copied().unwrap_or("").to_string(),
                version,
            });
        }
        self.earlier
            .insert(version, EarlierVersion { definition, links });
        self
    }

    /// The marked V1 steps, in the plan's order: anchors, then deleted and
    /// edited steps.
    pub fn strata(&self) -> &[Stratum] {
        &self.strata
    }

    /// What the session's next reconcile would answer once the plan is
    /// deployed: marked (or not) as the deployment would, then decided.
    pub fn outcome(&self, stratum: &Stratum, session: &Session) -> SessionOutcome {
        if let Some(earlier) = self.earlier.get(&stratum.version) {
            let mut chain = earlier.links.clone();
            chain.push(PlanLink {
                plan: self.plan,
                to: self.to,
            });
            return self.decided_through(&chain, earlier.definition, session);
        }
        let plan = self.plan.plan();
        let policy_key = stratum.step.anchor_content_hash.as_deref();
        let scope = match policy_key.and_then(|k| self.scopes.get(k)) {
            None => None,
            Some(Ok(scope)) => Some(scope),
            // Marking marks no one under a policy whose filter no longer compiles.
            Some(Err(())) => return self.decided(without_flag(session)),
        };
        let marked = match marking_decision(session, plan.id, scope, &stratum.step_name, self.now) {
            MarkDecision::Mark => {
                let mut flagged = session.clone();
                flagged.pending_migration = Some(PendingMigration {
                    migration_plan_id: plan.id,
                    target_version: plan.to_version,
                    anchor_content_hash: policy_key.unwrap_or_default().to_string(),
                    from_step_id: stratum.step.step_id,
                    marked_at: self.now,
                });
                flagged
            }
            MarkDecision::AlreadyMarked | MarkDecision::Pinned | MarkDecision::OutOfScope => {
                session.clone()
            }
            // Reconcile clears a flag that does not lead to the current version
            // and decides without it; the forecast assumes this plan deployed.
            MarkDecision::FlaggedByAnotherPlan => without_flag(session),
        };
        self.decided(marked)
    }

    fn decided(&self, session: Session) -> SessionOutcome {
        let chain = [PlanLink {
            plan: self.plan,
            to: self.to,
        }];
        self.decided_through(&chain, self.from, &session)
    }

    fn decided_through(
        &self,
        chain: &[PlanLink<'_>],
        session_version: &PreparedScenario,
        session: &Session,
    ) -> SessionOutcome {
        let decision = decide(&ReconcileContext {
            session,
            current: self.to,
            chain,
            session_version: Some(session_version),
            known_fields: &BTreeMap::new(),
            now: self.now,
        });
        let is_continue = decision.result.action == ReconciliationAction::Continue;
        let pinned =
            is_continue && (decision.pin_version.is_some() || session.pinned_version.is_some());
        let excluded_by_scope = is_continue && !pinned && !decision.applies_migration;
        SessionOutcome {
            result: decision.result,
            excluded_by_scope,
            pinned,
        }
    }
}

fn without_flag(session: &Session) -> Session {
    let mut s = session.clone();
    s.pending_migration = None;
    s
}

/// Outcome counts of a set of sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeTally {
    pub continue_: u64,
    pub excluded_by_scope: u64,
    pub pinned: u64,
    pub teleport: u64,
    pub collect: u64,
    pub execute_action: u64,
    pub exit_scenario: u64,
    pub blocked_by_checkpoint: u64,
}

impl OutcomeTally {
    fn add(&mut self, outcome: &SessionOutcome) {
        let count = match outcome.result.action {
            ReconciliationAction::Continue => &mut self.continue_,
            ReconciliationAction::Teleport => &mut self.teleport,
            ReconciliationAction::Collect => &mut self.collect,
            ReconciliationAction::ExecuteAction => &mut self.execute_action,
            ReconciliationAction::ExitScenario => &mut self.exit_scenario,
        };
        *count += 1;
        self.excluded_by_scope += u64::from(outcome.excluded_by_scope);
        self.pinned += u64::from(outcome.pinned);
        self.blocked_by_checkpoint += u64::from(outcome.result.blocked_by_checkpoint);
    }

    fn counts(&self) -> [u64; 8] {
        [
            self.continue_,
            self.excluded_by_scope,
            self.pinned,
            self.teleport,
            self.collect,
            self.execute_action,
            self.exit_scenario,
            self.blocked_by_checkpoint,
        ]
    }
}

/// The sessions of one stratum that were decided, tallied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StratumTally {
    /// Sessions decided.
    pub sessions: u64,
    pub outcomes: OutcomeTally,
    pub targets: BTreeMap<Uuid, u64>,
    pub fields_missing: BTreeMap<String, u64>,
}

impl StratumTally {
    pub fn add(&mut self, outcome: &SessionOutcome) {
        self.sessions += 1;
        self.outcomes.add(outcome);
        if outcome.result.action == ReconciliationAction::Teleport
            && let Some(target) = outcome.result.target_step_id
        {
            *self.targets.entry(target).or_default() += 1;
        }
        if outcome.result.action == ReconciliationAction::Collect {
            for field in &outcome.result.collect_fields {
                *self.fields_missing.entry(field.clone()).or_default() += 1;
            }
        }
    }
}

/// How much of a stratum was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StratumRead {
    pub stratum: Stratum,
    pub tally: StratumTally,
    /// Every session of the stratum was decided: its counts are exact.
    pub complete: bool,
    /// The stratum's sessions as counted (the store's session counts), which the
    /// sample's proportions are scaled to when it is not complete.
    pub counted: u64,
}

/// Scale one count of a stratum's sample to the stratum, with a 95% interval.
struct Scaler {
    population: u64,
    read: u64,
    complete: bool,
}

impl Scaler {
    fn of(read: &StratumRead) -> Self {
        // A stale count below what was read cannot be the population.
        let population = read.counted.max(read.tally.sessions);
        Scaler {
            population,
            read: read.tally.sessions,
            complete: read.complete || read.tally.sessions >= population,
        }
    }

    /// The count, exact when the stratum was read whole.
    fn count(&self, seen: u64) -> Scaled {
        if self.complete || self.read == 0 {
            return Scaled {
                estimate: seen as f64,
                half: 0.0,
                low: seen,
                high: if self.read == 0 {
                    self.population
                } else {
                    seen
                },
            };
        }
        let (n, big_n) = (self.read as f64, self.population as f64);
        let p = seen as f64 / n;
        let (centre, half) = wilson(p, n);
        // Sampled without replacement: the finite-population correction.
        let fpc = ((big_n - n) / (big_n - 1.0)).max(0.0).sqrt();
        let half = half * fpc;
        // At least what was seen; at most all but the sessions seen without it.
        let floor = seen;
        let ceiling = self.population - (self.read - seen);
        Scaled {
            estimate: p * big_n,
            half: half * big_n,
            low: ((big_n * (centre - half)).floor().max(0.0) as u64).max(floor),
            high: ((big_n * (centre + half)).ceil() as u64).min(ceiling),
        }
    }
}

/// The Wilson score interval of a proportion `p` over `n` draws: (centre, half-width).
fn wilson(p: f64, n: f64) -> (f64, f64) {
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (centre, half)
}

/// One count of a stratum, before it is reported.
#[derive(Debug, Clone, Copy)]
struct Scaled {
    estimate: f64,
    half: f64,
    low: u64,
    high: u64,
}

impl Scaled {
    fn report(self, exact: bool) -> ForecastCount {
        if exact {
            ForecastCount::Exact(self.estimate.round() as u64)
        } else {
            ForecastCount::Estimated(Estimate {
                estimate: (self.estimate.round() as u64).clamp(self.low, self.high),
                low: self.low,
                high: self.high,
            })
        }
    }
}

/// Counts of several strata added up: estimates add, the half-widths of
/// independent strata add in quadrature, the hard bounds add.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    estimate: f64,
    variance: f64,
    ceiling: u64,
    seen: u64,
}

impl Sum {
    fn add(&mut self, scaled: Scaled, seen: u64, population_bound: u64) {
        self.estimate += scaled.estimate;
        self.variance += scaled.half * scaled.half;
        self.ceiling += population_bound;
        self.seen += seen;
    }

    fn report(self, exact: bool) -> ForecastCount {
        if exact {
            return ForecastCount::Exact(self.estimate.round() as u64);
        }
        let half = self.variance.sqrt();
        let low = ((self.estimate - half).floor().max(0.0) as u64).max(self.seen);
        let high = ((self.estimate + half).ceil() as u64)
            .min(self.ceiling)
            .max(low);
        ForecastCount::Estimated(Estimate {
            estimate: (self.estimate.round() as u64).clamp(low, high),
            low,
            high,
        })
    }
}

/// Totals over strata of counts keyed by `K` (targets, fields).
fn keyed<K: Ord + Clone>(
    entries: impl Iterator<Item = (K, Scaled, u64, u64)>,
    exact: bool,
) -> BTreeMap<K, ForecastCount> {
    let mut sums: BTreeMap<K, Sum> = BTreeMap::new();
    for (key, scaled, seen, bound) in entries {
        sums.entry(key).or_default().add(scaled, seen, bound);
    }
    sums.into_iter()
        .map(|(k, sum)| (k, sum.report(exact)))
        .collect()
}

/// The forecast from the strata read. `exact` when every stratum was read
/// whole; otherwise each stratum's counts are scaled to its counted sessions.
pub fn finish(
    plan_id: Uuid,
    plan_revision: u64,
    computed_at: DateTime<Utc>,
    reads: &[StratumRead],
) -> PlanForecast {
    let exact = reads.iter().all(|r| Scaler::of(r).complete);
    let mut outcome_sums = [Sum::default(); 8];
    let mut field_entries = Vec::new();
    let mut by_anchor = Vec::with_capacity(reads.len());
    let mut sessions_considered = 0;
    let mut sample_size = 0;
    for read in reads {
        let scaler = Scaler::of(read);
        let bound = scaler.population;
        sessions_considered += if scaler.complete {
            read.tally.sessions
        } else {
            scaler.population
        };
        sample_size += read.tally.sessions;
        let counts = read.tally.outcomes.counts();
        let scaled: Vec<Scaled> = counts.iter().map(|&c| scaler.count(c)).collect();
        for ((sum, s), &seen) in outcome_sums.iter_mut().zip(&scaled).zip(&counts) {
            sum.add(*s, seen, bound);
        }
        let report = |i: usize| scaled[i].report(exact);
        let targets = read
            .tally
            .targets
            .iter()
            .map(|(k, &n)| (*k, scaler.count(n).report(exact)))
            .collect();
        let fields = read
            .tally
            .fields_missing
            .iter()
            .map(|(k, &n)| (k.clone(), scaler.count(n).report(exact)))
            .collect();
        field_entries.extend(
            read.tally
                .fields_missing
                .iter()
                .map(|(k, &n)| (k.clone(), scaler.count(n), n, bound)),
        );
        let sessions = if scaler.complete {
            ForecastCount::Exact(read.tally.sessions)
        } else {
            ForecastCount::Exact(scaler.population)
        };
        by_anchor.push(AnchorForecast {
            anchor_content_hash: read.stratum.step.anchor_content_hash.clone(),
            anchor_name: read.stratum.step_name.clone(),
            kind: read.stratum.kind,
            version: read.stratum.version,
            v1_step_id: read.stratum.step.step_id,
            sessions,
            outcomes: outcomes_of(report),
            targets,
            fields_missing: fields,
        });
    }
    let fields_missing = keyed(field_entries.into_iter(), exact);
    PlanForecast {
        plan_id,
        plan_revision,
        computed_at,
        exact,
        sessions_considered,
        sample_size,
        outcomes: outcomes_of(|i| outcome_sums[i].report(exact)),
        by_anchor,
        fields_missing,
    }
}

fn outcomes_of(count: impl Fn(usize) -> ForecastCount) -> ForecastOutcomes {
    ForecastOutcomes {
        continue_: count(0),
        excluded_by_scope: count(1),
        pinned: count(2),
        teleport: count(3),
        collect: count(4),
        execute_action: count(5),
        exit_scenario: count(6),
        blocked_by_checkpoint: count(7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_hold_the_proportion_and_narrow_with_the_sample() {
        let (c1, h1) = wilson(0.3, 100.0);
        let (_, h2) = wilson(0.3, 10_000.0);
        assert!(c1 - h1 < 0.3 && 0.3 < c1 + h1);
        assert!(h2 < h1 / 5.0);
        // Nothing seen still leaves room above zero.
        let (c0, h0) = wilson(0.0, 1000.0);
        assert!(c0 + h0 > 0.0);
    }

    #[test]
    fn a_sampled_count_stays_within_what_the_sample_proves() {
        let scaler = Scaler {
            population: 10_000,
            read: 1_000,
            complete: false,
        };
        let all = scaler.count(1_000);
        assert!(all.low >= 1_000 && all.high == 10_000);
        let none = scaler.count(0);
        assert_eq!(none.low, 0);
        assert!(none.high <= 9_000);
        let some = scaler.count(250);
        assert!(some.low <= 2_500 && 2_500 <= some.high);
    }

    #[test]
    fn a_complete_stratum_is_exact() {
        let scaler = Scaler {
            population: 40,
            read: 40,
            complete: true,
        };
        let c = scaler.count(7);
        assert_eq!((c.low, c.high, c.half), (7, 7, 0.0));
        assert_eq!(c.report(true), ForecastCount::Exact(7));
    }
}
