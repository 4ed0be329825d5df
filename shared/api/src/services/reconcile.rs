//! Just-in-time reconcile: applying a migration when the customer's next message arrives.
//!
//! The decision is pure (`planning::reconcile::decide`); this module loads what it
//! needs (cached per process: deployed plans and scenario versions are immutable),
//! and applies the outcome in one conditional write with its audit event and the
//! plan counters, so a retried or concurrent call applies a migration once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use chrono::{DateTime, Utc};
use planning::reconcile::{
    Decision, PlanLink, PreparedPlan, PreparedScenario, ReconcileContext, already_migrated, decide,
};
use planning::{KnownField, PlanStatus, ReconcileRequest, ReconciliationResult, Session};
use store::{
    AppliedMigration, AuditEvent, EventPage, EventQuery, NewPosition, SessionChange,
    SessionExpectation, Store, StoreError,
};
use uuid::Uuid;

use crate::services::error::{Input, Issue, ServiceError, ServiceResult};
use crate::services::plans::{PageQuery, checked_limit, load_header, plans_of};

/// Entries each cache keeps (approximately); bounds a Lambda's memory, and a
/// Lambda instance mostly serves a handful of scenarios.
const CACHE_ENTRIES: usize = 64;

/// Deployed plans and scenario versions, prepared for decisions, per process.
pub struct PlanCache {
    plans: Cache<(Uuid, Uuid), Arc<PreparedPlan>>,
    scenarios: Cache<(Uuid, Uuid, i64), Arc<PreparedScenario>>,
    /// (tenant, scenario, from_version) → the activated plan leaving that
    /// version, and when it was found: trusted for [`SUCCESSOR_RECHECK`] (a
    /// withdrawn plan leaves the chain; every write checks the plans it moves
    /// a session through, so a stale entry can only delay a migration).
    successors: Cache<(Uuid, Uuid, i64), (Uuid, Instant)>,
    /// Plans found not applying migrations (paused) by a write that required
    /// them to, with when: for [`STOPPED_RECHECK`], reconciles through them
    /// answer at once instead of trying a write that would fail.
    stopped: Cache<(Uuid, Uuid), (Instant, PlanStatus)>,
}

/// How long a process trusts that a plan it found paused still is: a resume is
/// seen by every process within this time.
const STOPPED_RECHECK: Duration = Duration::from_secs(2);

/// How long a process trusts which plan leaves a version.
const SUCCESSOR_RECHECK: Duration = Duration::from_secs(30);

impl Default for PlanCache {
    fn default() -> Self {
        PlanCache {
            plans: Cache::new(CACHE_ENTRIES),
            scenarios: Cache::new(CACHE_ENTRIES),
            successors: Cache::new(CACHE_ENTRIES),
            stopped: Cache::new(CACHE_ENTRIES),
        }
    }
}

impl PlanCache {
    /// The status of a plan this process recently found not applying migrations.
    fn stopped(&self, tenant: Uuid, plan_id: Uuid) -> Option<PlanStatus> {
        self.stopped
            .get(&(tenant, plan_id))
            .filter(|(seen, _)| seen.elapsed() < STOPPED_RECHECK)
            .map(|(_, status)| status)
    }
    async fn scenario(
        &self,
        store: &dyn Store,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> ServiceResult<Option<Arc<PreparedScenario>>> {
        let key = (tenant, scenario_id, version);
        if let Some(found) = self.scenarios.get(&key) {
            return Ok(Some(found));
        }
        let Some(stored) = store
            .get_scenario_version(tenant, scenario_id, version)
            .await?
        else {
            return Ok(None);
        };
        let prepared = Arc::new(PreparedScenario::new(stored.definition()));
        self.scenarios.insert(key, prepared.clone());
        Ok(Some(prepared))
    }

    async fn plan(
        &self,
        store: &dyn Store,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> ServiceResult<Option<Arc<PreparedPlan>>> {
        if let Some(found) = self.plans.get(&(tenant, plan_id)) {
            return Ok(Some(found));
        }
        let Some(plan) = store.get_plan(tenant, plan_id).await? else {
            return Ok(None);
        };
        // Only activated plans are immutable (policies are frozen at approval and
        // the transformation map never changes); only those drive migrations.
        // A paused one is cached too: whether it applies is decided by the
        // write, which checks its status ([`SessionChange::require_applying`]).
        if !plan.status.is_activated() {
            return Ok(None);
        }
        let prepared = Arc::new(PreparedPlan::new(plan));
        self.plans.insert((tenant, plan_id), prepared.clone());
        Ok(Some(prepared))
    }

    /// The activated plan that left `from_version` of a scenario.
    async fn successor(
        &self,
        store: &dyn Store,
        tenant: Uuid,
        scenario_id: Uuid,
        from_version: i64,
    ) -> ServiceResult<Option<Uuid>> {
        let key = (tenant, scenario_id, from_version);
        if let Some((id, found)) = self.successors.get(&key)
            && found.elapsed() < SUCCESSOR_RECHECK
        {
            return Ok(Some(id));
        }
        let activated = plans_of(
            store,
            tenant,
            scenario_id,
            &[
                PlanStatus::Deployed,
                PlanStatus::Deploying,
                PlanStatus::Paused,
                PlanStatus::Halted,
                PlanStatus::Withdrawing,
            ],
        )
        .await?;
        if let Some(item) = activated.iter().find(|p| p.from_version == from_version) {
            self.successors.insert(key, (item.id, Instant::now()));
            return Ok(Some(item.id));
        }
        Ok(None)
    }
}

/// Everything a decision needs, loaded.
struct Loaded {
    current: Arc<PreparedScenario>,
    session_version: Option<Arc<PreparedScenario>>,
    links: Vec<(Arc<PreparedPlan>, Arc<PreparedScenario>)>,
    /// The session is at the scenario's current version and a partial
    /// rollout leaving it does not reach the session: it stays.
    outside_cohort: bool,
    /// The scenario head the decision is made on.
    head: store::ScenarioHead,
}

/// Whether a partial rollout reaches a session: its cohort bucket, or a flag
/// its marking set, or the session already on (or past) its version.
fn reached_by(rollout: &planning::PartialRollout, session: &Session) -> bool {
    session
        .pending_migration
        .as_ref()
        .is_some_and(|flag| flag.migration_plan_id == rollout.plan_id)
        || session.active_scenario_version >= rollout.to_version
        || rollout.reaches(&session.session_id)
}

async fn load_context(
    cache: &PlanCache,
    store: &dyn Store,
    session: &Session,
) -> ServiceResult<Loaded> {
    let tenant = session.tenant_id;
    let scenario_id = session.active_scenario_id;
    // The head only (no definition): the current version and a partial rollout.
    let head = store
        .get_scenario_head(tenant, scenario_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Scenario", scenario_id))?;
    // During a partial rollout the sessions it reaches migrate to its version;
    // the others stay on the current one.
    let (current_version, outside_cohort) = match &head.rollout {
        Some(rollout) if reached_by(rollout, session) => (rollout.to_version, false),
        Some(_) => (
            head.current_version,
            session.active_scenario_version == head.current_version
                && session.pinned_version.is_none(),
        ),
        None => (head.current_version, false),
    };
    let current = cache
        .scenario(store, tenant, scenario_id, current_version)
        .await?
        .ok_or_else(|| ServiceError::Unexpected("current scenario version vanished".into()))?;
    let mut links = Vec::new();
    let mut session_version = None;
    if session.active_scenario_version < current_version && session.pinned_version.is_none() {
        session_version = cache
            .scenario(store, tenant, scenario_id, session.active_scenario_version)
            .await?;
        // Walk the activated plans version by version; a gap leaves a broken chain,
        // which the decision handles by relocating on content hash.
        let mut version = session.active_scenario_version;
        let mut first = session
            .pending_migration
            .as_ref()
            .map(|f| f.migration_plan_id);
        while version < current_version {
            let plan_id = match first.take() {
                Some(id) => Some(id),
                None => cache.successor(store, tenant, scenario_id, version).await?,
            };
            let Some(plan_id) = plan_id else { break };
            let Some(plan) = cache.plan(store, tenant, plan_id).await? else {
                break;
            };
            if plan.plan().from_version != version || plan.plan().to_version <= version {
                break;
            }
            let to_version = plan.plan().to_version;
            let Some(to) = cache
                .scenario(store, tenant, scenario_id, to_version)
                .await?
            else {
                break;
            };
            links.push((plan, to));
            version = to_version;
        }
    }
    Ok(Loaded {
        current,
        session_version,
        links,
        outside_cohort,
        head,
    })
}

fn change_for(
    session: &Session,
    decision: &Decision,
    loaded: &Loaded,
    now: DateTime<Utc>,
) -> SessionChange {
    let links = &loaded.links;
    let expect = match session.pending_migration.as_ref() {
        Some(flag) => SessionExpectation::FlaggedBy(flag.migration_plan_id),
        None => SessionExpectation::UnflaggedAt {
            version: session.active_scenario_version,
        },
    };
    let new_position = decision.new_position.as_ref().map(|p| NewPosition {
        version: p.version,
        step_id: p.step_id,
        checksum: p.checksum.clone(),
    });
    // Counted on the plan operators watch: the one that flagged the session,
    // else the plan whose version it lands on.
    let counted_plan = decision.flag_plan_id.or(decision.plan_id);
    let applied = match (decision.applies_migration, counted_plan) {
        (true, Some(plan_id)) => Some(AppliedMigration {
            was_flagged: decision.flag_plan_id.is_some(),
            event: AuditEvent {
                event_id: Uuid::new_v4(),
                tenant_id: session.tenant_id,
                plan_id,
                session_id: session.session_id.clone(),
                scenario_id: session.active_scenario_id,
                from_version: session.active_scenario_version,
                to_version: new_position
                    .as_ref()
                    .map_or(session.active_scenario_version, |p| p.version),
                migration_scenario: decision.result.migration_scenario,
                action: decision.result.action,
                step_before: session.active_step_id,
                step_after: new_position
                    .as_ref()
                    .map_or(session.active_step_id, |p| p.step_id),
                fields_filled: decision.fields_filled.clone(),
                fields_asked: decision.fields_asked.clone(),
                blocked_by_checkpoint: decision.result.blocked_by_checkpoint,
                at: now,
            },
        }),
        _ => None,
    };
    // Every plan the session moves through must still be applying when the
    // write lands: a pause between this decision and the write stops it.
    let mut require_applying = Vec::new();
    if applied.is_some() {
        let landing = new_position
            .as_ref()
            .map_or(session.active_scenario_version, |p| p.version);
        let traversed = links
            .iter()
            .map(|(plan, _)| plan.plan())
            .filter(|plan| plan.to_version <= landing)
            .map(|plan| plan.id);
        // Only plans the walk loaded: a plan deleted by retention (the session is
        // relocated by content hash) can be neither paused nor checked.
        for plan_id in traversed {
            if !require_applying.contains(&plan_id) {
                require_applying.push(plan_id);
            }
        }
    }
    SessionChange {
        tenant: session.tenant_id,
        session_id: session.session_id.clone(),
        expect,
        expected_revision: session.revision,
        new_position,
        pin_version: decision.pin_version,
        clear_flag: decision.clear_flag,
        set_variables: decision.set_variables.clone(),
        at: now,
        applied,
        require_applying,
        // A move to another version holds only on the head it was decided on:
        // a withdrawal finishing in between (the version no longer current,
        // its plan no longer in the chain) makes this decide again.
        expect_head: decision
            .new_position
            .as_ref()
            .filter(|p| p.version != session.active_scenario_version)
            .map(|_| store::HeadExpectation {
                scenario_id: session.active_scenario_id,
                current_version: loaded.head.current_version,
                rollout_plan: loaded.head.rollout.as_ref().map(|r| r.plan_id),
            }),
    }
}

/// What a reconcile answered, with the session's revision after it (the `ETag`).
#[derive(Debug)]
pub struct Reconciled {
    pub result: ReconciliationResult,
    pub revision: u64,
    /// The plan whose rollout guard this reconcile's migration made halt.
    pub halted: Option<Uuid>,
}

/// Reads, decisions and conditional writes one call makes at most before it
/// gives up with a 409: each lost race means someone else wrote the session in
/// the few milliseconds between our read and our write.
const RECONCILE_ATTEMPTS: usize = 8;

/// Remove a flag whose plan belongs to another scenario than the session's
/// (a session the runtime moved between scenarios through the table directly).
fn clear_stale_flag(session: &Session, plan_id: Uuid, now: DateTime<Utc>) -> SessionChange {
    SessionChange {
        tenant: session.tenant_id,
        session_id: session.session_id.clone(),
        expect: SessionExpectation::FlaggedBy(plan_id),
        expected_revision: session.revision,
        new_position: None,
        pin_version: None,
        clear_flag: true,
        set_variables: Default::default(),
        at: now,
        applied: None,
        require_applying: Vec::new(),
        expect_head: None,
    }
}

/// After a migration is applied: the guard of the plan it is counted on, if
/// any, may halt the rollout now (the plan, when it did). A failure here is
/// logged, not the caller's: the migration is applied, and the next one
/// checks again.
async fn enforce_guards(
    store: &dyn Store,
    tenant: Uuid,
    decision: &Decision,
    links: &[(Arc<PreparedPlan>, Arc<PreparedScenario>)],
    now: DateTime<Utc>,
) -> Option<Uuid> {
    let counted = decision.flag_plan_id.or(decision.plan_id)?;
    let guard = links
        .iter()
        .map(|(plan, _)| plan.plan())
        .find(|plan| plan.id == counted)
        .and_then(|plan| plan.guard.as_ref())?;
    match crate::services::deployments::enforce_guard(store, tenant, counted, guard, now).await {
        Ok(true) => Some(counted),
        Ok(false) => None,
        Err(error) => {
            tracing::error!(%error, plan_id = %counted, "could not check the rollout guard");
            None
        }
    }
}

/// Why a session whose way to the current version crosses a plan in `status`
/// stays where it is.
fn stopped_reason(status: PlanStatus) -> &'static str {
    match status {
        PlanStatus::Paused => "rollout paused",
        PlanStatus::Halted => "rollout halted",
        PlanStatus::Withdrawing | PlanStatus::Withdrawn => "rollout withdrawn",
        _ => "rollout not applying migrations",
    }
}

/// Extraction candidates must say what they are: a confidence is a number in
/// [0, 1]; an object with `value` plus `confidence`/`source` that is not a valid
/// candidate is refused rather than taken as a plain (object) value.
fn check_known_fields(request: &ReconcileRequest) -> ServiceResult<()> {
    let mut problems = Vec::new();
    for (name, field) in &request.known_fields {
        let at = ["known_fields", name.as_str(), "confidence"];
        match field {
            KnownField::Candidate {
                confidence: Some(c),
                ..
            } if !(0.0..=1.0).contains(c) => problems.push(Issue::new(
                &at,
                "confidence must be a number from 0 to 1",
                "value_error.number.range",
            )),
            KnownField::Plain(serde_json::Value::Object(m))
                if m.contains_key("value")
                    && (m.contains_key("confidence") || m.contains_key("source")) =>
            {
                problems.push(Issue::new(
                    &at[..2],
                    "a candidate is {value, source?: string, confidence?: number from 0 to 1}",
                    "value_error.candidate",
                ))
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Invalid {
            input: Input::Document,
            issues: problems,
        })
    }
}

/// `POST /sessions/{session_id}/reconcile`.
///
/// With `dry_run` it is a preview: the same reads and the same decision, and the
/// answer a real call would give now, but no write of any kind (session, audit
/// event, plan counters); the `ETag` is the session's unchanged revision.
///
/// Every write is conditioned on the revision the decision was made on, so a
/// runtime write, a marking or another reconcile in between makes it fail; the
/// session is then read and decided again. A migration is therefore applied
/// once, on the session as it really is.
pub async fn reconcile(
    store: &dyn Store,
    cache: &PlanCache,
    tenant: Uuid,
    session_id: &str,
    request: ReconcileRequest,
    now: DateTime<Utc>,
) -> ServiceResult<Reconciled> {
    check_known_fields(&request)?;
    let mut lost_a_race = false;
    for _ in 0..RECONCILE_ATTEMPTS {
        let mut session = store
            .get_session(tenant, session_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("Session", session_id))?;
        let stale_flag = match &session.pending_migration {
            Some(flag) => cache
                .plan(store, tenant, flag.migration_plan_id)
                .await?
                .filter(|p| p.plan().scenario_id != session.active_scenario_id)
                .map(|_| flag.migration_plan_id),
            None => None,
        };
        if let Some(flag_plan_id) = stale_flag {
            if request.dry_run {
                // A real call clears the stale flag and decides again on the
                // session without it; the preview decides on that session now.
                session.pending_migration = None;
            } else {
                tracing::info!(
                    %tenant,
                    scenario_id = %session.active_scenario_id,
                    plan_id = %flag_plan_id,
                    "clearing a flag set by a plan of another scenario"
                );
                let change = clear_stale_flag(&session, flag_plan_id, now);
                lost_a_race |= !store.apply_session_change(&change).await?;
                continue;
            }
        }
        let loaded = load_context(cache, store, &session).await?;
        // A paused plan on the session's way to the current version: it stays
        // where it is, its flag kept, until the rollout resumes.
        if let Some(status) = loaded
            .links
            .iter()
            .find_map(|(plan, _)| cache.stopped(tenant, plan.plan().id))
        {
            return Ok(Reconciled {
                result: ReconciliationResult::continue_with(stopped_reason(status)),
                revision: session.revision,
                halted: None,
            });
        }
        if loaded.outside_cohort {
            return Ok(Reconciled {
                result: ReconciliationResult::continue_with("outside the rollout cohort"),
                revision: session.revision,
                halted: None,
            });
        }
        let chain: Vec<PlanLink<'_>> = loaded
            .links
            .iter()
            .map(|(plan, to)| PlanLink { plan, to })
            .collect();
        let decision = decide(&ReconcileContext {
            session: &session,
            current: &loaded.current,
            chain: &chain,
            session_version: loaded.session_version.as_deref(),
            known_fields: &request.known_fields,
            now,
        });
        if request.dry_run {
            // The preview: the decision a real call would apply now, nothing written.
            return Ok(Reconciled {
                result: decision.result,
                revision: session.revision,
                halted: None,
            });
        }
        if !decision.writes_session() {
            // After a lost race, "nothing to do" means the winner migrated it.
            let result = if lost_a_race
                && decision.result.action == planning::ReconciliationAction::Continue
            {
                already_migrated()
            } else {
                decision.result
            };
            return Ok(Reconciled {
                result,
                revision: session.revision,
                halted: None,
            });
        }
        let applied = match store
            .apply_session_change(&change_for(&session, &decision, &loaded, now))
            .await
        {
            Ok(applied) => applied,
            Err(StoreError::PlanNotApplying(plan_id)) => {
                // Paused since the decision: decide again, answering from the cache.
                // (A plan that applies again, or is gone, was a race: decide again.)
                if let Some(plan) = store.get_plan_header(tenant, plan_id).await?
                    && !plan.status.applies_migrations()
                {
                    cache
                        .stopped
                        .insert((tenant, plan_id), (Instant::now(), plan.status));
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if applied {
            let halted = if decision.applies_migration {
                enforce_guards(store, tenant, &decision, &loaded.links, now).await
            } else {
                None
            };
            if decision.checksum_mismatch {
                tracing::warn!(
                    %tenant,
                    scenario_id = %session.active_scenario_id,
                    version = session.active_scenario_version,
                    action = ?decision.result.action,
                    "session checksum did not match its version; repositioned"
                );
            }
            if decision.result.blocked_by_checkpoint {
                tracing::warn!(
                    %tenant,
                    scenario_id = %session.active_scenario_id,
                    plan_id = ?decision.plan_id,
                    warning = decision.result.checkpoint_warning.as_deref().unwrap_or(""),
                    "migration blocked by a checkpoint"
                );
            }
            return Ok(Reconciled {
                result: decision.result,
                revision: session.revision + 1,
                halted,
            });
        }
        lost_a_race = true;
    }
    Err(ServiceError::Conflict(
        "Session is being written concurrently; retry the reconcile".into(),
    ))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventList {
    #[schema(value_type = Vec<AuditEventSchema>)]
    pub events: Vec<AuditEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `GET /migration-plans/{plan_id}/events`.
pub async fn events(
    store: &dyn Store,
    tenant: Uuid,
    plan_id: Uuid,
    query: PageQuery,
) -> ServiceResult<EventList> {
    let limit = checked_limit(query.limit, 50, 100)?;
    load_header(store, tenant, plan_id).await?;
    let EventPage { events, next_token } = store
        .list_events(&EventQuery {
            tenant,
            plan_id,
            limit,
            next_token: query.next_token,
        })
        .await?;
    Ok(EventList { events, next_token })
}

/// One applied migration (the store's `AuditEvent`, as `GET …/events` returns
/// it); a test of the OpenAPI document (`audit_event_schema_matches_the_store_type`) keeps the two in step.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = AuditEvent)]
#[allow(dead_code)]
pub struct AuditEventSchema {
    event_id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    plan_id: uuid::Uuid,
    session_id: String,
    scenario_id: uuid::Uuid,
    from_version: i64,
    to_version: i64,
    migration_scenario: Option<planning::MigrationScenario>,
    action: planning::ReconciliationAction,
    step_before: uuid::Uuid,
    step_after: uuid::Uuid,
    /// field → where its value came from (`known_fields`, `extraction`, `variables`).
    fields_filled: std::collections::BTreeMap<String, String>,
    fields_asked: Vec<String>,
    blocked_by_checkpoint: bool,
    at: chrono::DateTime<chrono::Utc>,
}
