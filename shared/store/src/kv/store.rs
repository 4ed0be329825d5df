//! [`Store`] for [`KvStore`]: each operation one backend transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use planning::{
    AnchorMigrationPolicy, MigrationPlan, MigrationSummary, PendingMigration, ScenarioVersion,
    Session,
};
use uuid::Uuid;

use crate::codec::version_key;
use chrono::{DateTime, Utc};

use super::counts;
use super::keys::{
    plan_header_key, plan_key, plan_summary_key, plan_target_key, prefix_end, scenario_version_key,
    session_key, step_prefix,
};
use super::marking::{
    claim_chain, claim_page, list_chains, list_deploying, load_stats, record_failed_page,
    record_marking_page, start_marking,
};
use super::outbox::{get_outbox, list_outbox, settle_outbox};
use super::plans::{
    activate_plan, create_plan, create_scenario, get_current_scenario, get_scenario_head,
    list_plans, transition_plan, update_plan_policies,
};
use super::retention::sweep_expired;
use super::sessions::{
    apply_session_change, list_events, mark_session, put_session, report_outcome, sessions_at_step,
    write_session,
};
use super::values::load;
use super::{KvBackend, KvStore};
use crate::plan_header;
use crate::{
    ActivationError, ChainKey, ChainStart, ChainState, EventPage, EventQuery, MarkedPage,
    OutboxEntry, PageClaim, PlanActivation, PlanPage, PlanQuery, PlanStats, PlanTransition,
    ScenarioHead, SessionChange, SessionMark, SessionPage, SessionPosition, SessionWrite,
    SessionWriteError, StepQuery, Store, StoreResult, WrittenSession,
};

#[async_trait]
impl<B: KvBackend> Store for KvStore<B> {
    async fn create_scenario(&self, scenario: &ScenarioVersion) -> StoreResult<()> {
        let s = scenario.clone();
        self.backend.write(move |kv| create_scenario(kv, &s)).await
    }

    async fn get_scenario_head(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioHead>> {
        self.backend
            .read(move |kv| get_scenario_head(kv, tenant, scenario_id))
            .await
    }

    async fn get_current_scenario(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        self.backend
            .read(move |kv| get_current_scenario(kv, tenant, scenario_id))
            .await
    }

    async fn get_scenario_version(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ScenarioVersion>> {
        let key = scenario_version_key(tenant, scenario_id, version);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn create_plan(&self, plan: &MigrationPlan, target: &ScenarioVersion) -> StoreResult<()> {
        let (p, t) = (plan.clone(), target.clone());
        self.backend.write(move |kv| create_plan(kv, &p, &t)).await
    }

    async fn get_plan(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<MigrationPlan>> {
        let key = plan_key(tenant, plan_id);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn get_plan_target(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        let key = plan_target_key(tenant, plan_id);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn get_plan_header(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationPlan>> {
        self.backend
            .read(
                move |kv| match load(kv, &plan_header_key(tenant, plan_id))? {
                    Some(header) => Ok(Some(header)),
                    // Written before headers were kept apart.
                    None => Ok(load::<MigrationPlan>(kv, &plan_key(tenant, plan_id))?
                        .map(|plan| plan_header(&plan))),
                },
            )
            .await
    }

    async fn get_plan_summary(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationSummary>> {
        self.backend
            .read(
                move |kv| match load(kv, &plan_summary_key(tenant, plan_id))? {
                    Some(summary) => Ok(Some(summary)),
                    None => Ok(load::<MigrationPlan>(kv, &plan_key(tenant, plan_id))?
                        .map(|plan| plan.summary)),
                },
            )
            .await
    }

    async fn list_plans(&self, query: &PlanQuery) -> StoreResult<PlanPage> {
        let q = query.clone();
        self.backend.read(move |kv| list_plans(kv, &q)).await
    }

    async fn update_plan_policies(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        expected_revision: u64,
        policies: &BTreeMap<String, AnchorMigrationPolicy>,
    ) -> StoreResult<MigrationPlan> {
        let p = policies.clone();
        self.backend
            .write(move |kv| update_plan_policies(kv, tenant, plan_id, expected_revision, &p))
            .await
    }

    async fn transition_plan(&self, change: &PlanTransition) -> StoreResult<MigrationPlan> {
        let (c, retention) = (change.clone(), self.retention);
        self.backend
            .write(move |kv| transition_plan(kv, &c, retention))
            .await
    }

    async fn activate_plan(
        &self,
        activation: &PlanActivation,
    ) -> Result<MigrationPlan, ActivationError> {
        let a = activation.clone();
        self.backend.write(move |kv| activate_plan(kv, &a)).await
    }

    async fn get_plan_stats(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        self.backend
            .read(move |kv| load_stats(kv, tenant, plan_id))
            .await
    }

    async fn applied_per_minute(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<planning::AppliedInMinute>> {
        self.backend
            .read(move |kv| super::sessions::applied_per_minute(kv, tenant, plan_id, since))
            .await
    }

    async fn start_marking(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        pass: u32,
        chains: &[ChainStart],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let chains = chains.to_vec();
        self.backend
            .write(move |kv| start_marking(kv, tenant, plan_id, pass, &chains, at))
            .await
    }

    fn step_index_shards(&self) -> u32 {
        self.step_shards
    }

    async fn list_chains(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Vec<ChainState>> {
        self.backend
            .read(move |kv| list_chains(kv, tenant, plan_id))
            .await
    }

    async fn claim_chain(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        chain: ChainKey,
        seen_updated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.backend
            .write(move |kv| claim_chain(kv, tenant, plan_id, chain, seen_updated_at, at))
            .await
    }

    async fn list_deploying(&self, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
        self.backend.read(move |kv| list_deploying(kv, limit)).await
    }

    async fn pending_by_activity_day(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Vec<planning::PendingOnDay>> {
        self.backend
            .read(move |kv| super::counts::flag_counts(kv, tenant, plan_id))
            .await
    }

    async fn list_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        self.backend.read(move |kv| list_outbox(kv, limit)).await
    }

    async fn get_outbox(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<OutboxEntry>> {
        self.backend
            .read(move |kv| get_outbox(kv, tenant, plan_id))
            .await
    }

    async fn settle_outbox(
        &self,
        entry: &OutboxEntry,
        published: u64,
        finished: bool,
    ) -> StoreResult<()> {
        let entry = *entry;
        self.backend
            .write(move |kv| settle_outbox(kv, &entry, published, finished))
            .await
    }

    async fn record_marking_page(&self, page: &MarkedPage) -> StoreResult<bool> {
        let (p, retention) = (page.clone(), self.retention);
        self.backend
            .write(move |kv| record_marking_page(kv, &p, retention))
            .await
    }

    async fn record_failed_page(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &str,
    ) -> StoreResult<bool> {
        let page = page_id.to_owned();
        self.backend
            .write(move |kv| record_failed_page(kv, tenant, plan_id, &page))
            .await
    }

    async fn put_session(&self, session: &Session) -> StoreResult<()> {
        let (s, shards) = (session.clone(), self.step_shards);
        self.backend
            .write(move |kv| put_session(kv, &s, shards))
            .await
    }

    async fn write_session(
        &self,
        write: &SessionWrite,
    ) -> Result<WrittenSession, SessionWriteError> {
        let (w, shards) = (write.clone(), self.step_shards);
        self.backend
            .write(move |kv| write_session(kv, &w, shards))
            .await
    }

    async fn get_session(&self, tenant: Uuid, session_id: &str) -> StoreResult<Option<Session>> {
        let key = session_key(tenant, session_id);
        self.backend.read(move |kv| load(kv, &key)).await
    }

    async fn sessions_at_step(&self, query: &StepQuery) -> StoreResult<SessionPage> {
        let q = query.clone();
        self.backend.read(move |kv| sessions_at_step(kv, &q)).await
    }

    async fn count_sessions_at_step(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        step_id: Uuid,
    ) -> StoreResult<u64> {
        let prefix = step_prefix(tenant, scenario_id, version, step_id);
        self.backend
            .read(move |kv| {
                let entries = kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)?;
                Ok(entries.len() as u64)
            })
            .await
    }

    /// One read of the version's part of the step index, whatever the number of steps.
    async fn count_sessions_at_steps(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        steps: &[Uuid],
        _concurrency: usize,
    ) -> StoreResult<BTreeMap<Uuid, u64>> {
        let wanted: std::collections::BTreeSet<Uuid> = steps.iter().copied().collect();
        let prefix = format!("{tenant}/STEP/{scenario_id}/{}/", version_key(version));
        self.backend
            .read(move |kv| {
                let mut counts = BTreeMap::new();
                for (key, _) in kv.range(&prefix, &prefix_end(&prefix), false, usize::MAX)? {
                    let step = key[prefix.len()..]
                        .split('/')
                        .next()
                        .and_then(|s| Uuid::parse_str(s).ok());
                    if let Some(step) = step.filter(|s| wanted.contains(s)) {
                        *counts.entry(step).or_insert(0u64) += 1;
                    }
                }
                Ok(counts)
            })
            .await
    }

    async fn mark_session(
        &self,
        tenant: Uuid,
        session_id: &str,
        expected: &SessionPosition,
        pending: &PendingMigration,
        mark_id: &str,
    ) -> StoreResult<bool> {
        let (id, e, p) = (session_id.to_owned(), expected.clone(), pending.clone());
        let mark_id = mark_id.to_owned();
        self.backend
            .write(move |kv| mark_session(kv, tenant, &id, &e, &p, &mark_id))
            .await
    }

    async fn claim_page(&self, claim: &PageClaim) -> StoreResult<PageClaim> {
        let (c, retention) = (claim.clone(), self.retention);
        self.backend
            .write(move |kv| claim_page(kv, &c, retention))
            .await
    }

    /// One transaction for the whole page: `concurrency` has nothing to bound.
    async fn mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        _concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        let marks = marks.to_vec();
        self.backend
            .write(move |kv| {
                marks
                    .iter()
                    .map(|m| {
                        mark_session(
                            kv,
                            tenant,
                            &m.session_id,
                            &m.expected,
                            &m.pending,
                            &m.mark_id,
                        )
                    })
                    .collect()
            })
            .await
    }

    async fn apply_session_change(&self, change: &SessionChange) -> StoreResult<bool> {
        let (c, retention, shards) = (change.clone(), self.retention, self.step_shards);
        self.backend
            .write(move |kv| apply_session_change(kv, &c, retention, shards))
            .await
    }

    async fn session_counts(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<crate::StepCounts> {
        self.backend
            .read(move |kv| counts::session_counts(kv, tenant, scenario_id, version))
            .await
    }

    async fn put_recount(&self, recount: &crate::Recount) -> StoreResult<()> {
        let r = recount.clone();
        self.backend
            .write(move |kv| counts::put_recount(kv, &r))
            .await
    }

    async fn get_recount(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<crate::Recount>> {
        self.backend
            .read(move |kv| counts::get_recount(kv, tenant, scenario_id, version))
            .await
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        let q = query.clone();
        self.backend.read(move |kv| list_events(kv, &q)).await
    }

    async fn unmark_sessions(
        &self,
        tenant: Uuid,
        unmarks: &[crate::SessionUnmark],
        _concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        let unmarks = unmarks.to_vec();
        // One transaction for the page, as for marking.
        self.backend
            .write(move |kv| {
                unmarks
                    .iter()
                    .map(|u| super::sessions::unmark_session(kv, tenant, u))
                    .collect()
            })
            .await
    }

    async fn report_outcome(
        &self,
        report: &crate::OutcomeReport,
    ) -> StoreResult<crate::OutcomeRecorded> {
        let report = report.clone();
        self.backend
            .write(move |kv| report_outcome(kv, &report))
            .await
    }

    async fn sweep_expired(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<u64> {
        self.backend
            .write(move |kv| sweep_expired(kv, now, limit))
            .await
    }
}
