//! [`Store`] for [`DynamoStore`]: each operation lives in the module of its aggregate.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use planning::{
    AnchorMigrationPolicy, MigrationPlan, MigrationSummary, PendingMigration, ScenarioVersion,
    Session,
};
use uuid::Uuid;

use super::{DynamoStore, events, marking, outbox, outcomes, plans, scenarios, sessions};
use crate::{
    ActivationError, ChainKey, ChainStart, ChainState, EventPage, EventQuery, MarkedPage,
    PageClaim, PlanActivation, PlanPage, PlanQuery, PlanStats, PlanTransition, ScenarioHead,
    SessionChange, SessionMark, SessionPage, SessionPosition, SessionWrite, SessionWriteError,
    StepQuery, Store, StoreResult, WrittenSession,
};

#[async_trait]
impl Store for DynamoStore {
    async fn create_scenario(&self, scenario: &ScenarioVersion) -> StoreResult<()> {
        scenarios::create_scenario(self, scenario).await
    }

    async fn get_scenario_head(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioHead>> {
        scenarios::get_scenario_head(self, tenant, scenario_id).await
    }

    async fn get_current_scenario(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        scenarios::get_current_scenario(self, tenant, scenario_id).await
    }

    async fn get_scenario_version(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<ScenarioVersion>> {
        scenarios::get_scenario_version(self, tenant, scenario_id, version).await
    }

    async fn create_plan(&self, plan: &MigrationPlan, target: &ScenarioVersion) -> StoreResult<()> {
        plans::create_plan(self, plan, target).await
    }

    async fn get_plan(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<MigrationPlan>> {
        plans::get_plan(self, tenant, plan_id).await
    }

    async fn get_plan_header(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationPlan>> {
        plans::get_plan_header(self, tenant, plan_id).await
    }

    async fn get_plan_summary(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<MigrationSummary>> {
        plans::get_plan_summary(self, tenant, plan_id).await
    }

    async fn get_plan_target(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<ScenarioVersion>> {
        plans::get_plan_target(self, tenant, plan_id).await
    }

    async fn list_plans(&self, q: &PlanQuery) -> StoreResult<PlanPage> {
        plans::list_plans(self, q).await
    }

    async fn update_plan_policies(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        expected_revision: u64,
        policies: &std::collections::BTreeMap<String, AnchorMigrationPolicy>,
    ) -> StoreResult<MigrationPlan> {
        plans::update_plan_policies(self, tenant, plan_id, expected_revision, policies).await
    }

    async fn transition_plan(&self, change: &PlanTransition) -> StoreResult<MigrationPlan> {
        plans::transition_plan(self, change).await
    }

    async fn activate_plan(&self, a: &PlanActivation) -> Result<MigrationPlan, ActivationError> {
        plans::activate_plan(self, a).await
    }

    async fn get_plan_stats(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        marking::get_plan_stats(self, tenant, plan_id).await
    }

    async fn get_plan_counters(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<PlanStats> {
        marking::get_plan_counters(self, tenant, plan_id).await
    }

    async fn applied_per_minute(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<planning::AppliedInMinute>> {
        DynamoStore::applied_per_minute(self, tenant, plan_id, since).await
    }

    async fn start_marking(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        pass: u32,
        chains: &[ChainStart],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        marking::start_marking(self, tenant, plan_id, pass, chains, at).await
    }

    fn step_index_shards(&self) -> u32 {
        self.step_shards
    }

    async fn list_chains(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Vec<ChainState>> {
        marking::list_chains(self, tenant, plan_id).await
    }

    async fn claim_chain(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        chain: ChainKey,
        seen_updated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        marking::claim_chain(self, tenant, plan_id, chain, seen_updated_at, at).await
    }

    async fn list_deploying(&self, limit: usize) -> StoreResult<Vec<(Uuid, Uuid)>> {
        marking::list_deploying(self, limit).await
    }

    async fn pending_by_activity_day(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Vec<planning::PendingOnDay>> {
        events::pending_by_activity_day(self, tenant, plan_id).await
    }

    async fn list_outbox(&self, limit: usize) -> StoreResult<Vec<crate::OutboxEntry>> {
        outbox::list_outbox(self, limit).await
    }

    async fn get_outbox(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<crate::OutboxEntry>> {
        outbox::get_outbox(self, tenant, plan_id).await
    }

    async fn settle_outbox(
        &self,
        entry: &crate::OutboxEntry,
        published: u64,
        finished: bool,
    ) -> StoreResult<()> {
        outbox::settle_outbox(self, entry, published, finished).await
    }

    async fn record_marking_page(&self, page: &MarkedPage) -> StoreResult<bool> {
        marking::record_marking_page(self, page).await
    }

    async fn record_failed_page(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        page_id: &str,
    ) -> StoreResult<bool> {
        marking::record_failed_page(self, tenant, plan_id, page_id).await
    }

    async fn put_session(&self, session: &Session) -> StoreResult<()> {
        sessions::put_session(self, session).await
    }

    async fn write_session(
        &self,
        write: &SessionWrite,
    ) -> Result<WrittenSession, SessionWriteError> {
        sessions::write_session(self, write).await
    }

    async fn get_session(&self, tenant: Uuid, session_id: &str) -> StoreResult<Option<Session>> {
        sessions::get_session(self, tenant, session_id).await
    }

    async fn sessions_at_step(&self, q: &StepQuery) -> StoreResult<SessionPage> {
        sessions::sessions_at_step(self, q).await
    }

    async fn whole_sessions_at_step(&self, q: &StepQuery) -> StoreResult<SessionPage> {
        sessions::whole_sessions_at_step(self, q).await
    }

    async fn get_sessions(&self, tenant: Uuid, ids: &[String]) -> StoreResult<Vec<Session>> {
        sessions::get_sessions(self, tenant, ids).await
    }

    async fn count_sessions_at_step(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
        step_id: Uuid,
    ) -> StoreResult<u64> {
        sessions::count_sessions_at_step(self, tenant, scenario_id, version, step_id).await
    }

    async fn mark_session(
        &self,
        tenant: Uuid,
        session_id: &str,
        expected: &SessionPosition,
        pending: &PendingMigration,
        mark_id: &str,
    ) -> StoreResult<bool> {
        sessions::mark_session(self, tenant, session_id, expected, pending, mark_id).await
    }

    async fn claim_page(&self, claim: &PageClaim) -> StoreResult<PageClaim> {
        marking::claim_page(self, claim).await
    }

    async fn mark_sessions(
        &self,
        tenant: Uuid,
        marks: &[SessionMark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        sessions::mark_sessions(self, tenant, marks, concurrency).await
    }

    async fn apply_session_change(&self, change: &SessionChange) -> StoreResult<bool> {
        sessions::apply_session_change(self, change).await
    }

    async fn session_counts(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<crate::StepCounts> {
        events::session_counts(self, tenant, scenario_id, version).await
    }

    async fn put_recount(&self, recount: &crate::Recount) -> StoreResult<()> {
        events::put_recount(self, recount).await
    }

    async fn get_recount(
        &self,
        tenant: Uuid,
        scenario_id: Uuid,
        version: i64,
    ) -> StoreResult<Option<crate::Recount>> {
        events::get_recount(self, tenant, scenario_id, version).await
    }

    async fn unmark_sessions(
        &self,
        tenant: Uuid,
        unmarks: &[crate::SessionUnmark],
        concurrency: usize,
    ) -> StoreResult<Vec<bool>> {
        sessions::unmark_sessions(self, tenant, unmarks, concurrency).await
    }

    async fn report_outcome(
        &self,
        report: &crate::OutcomeReport,
    ) -> StoreResult<crate::OutcomeRecorded> {
        outcomes::report_outcome(self, report).await
    }

    async fn list_events(&self, q: &EventQuery) -> StoreResult<EventPage> {
        events::list_events(self, q).await
    }
}
