//! [`Client`]'s calls of the plans group: generate, list, read (whole, summary,
//! forecast, anchors, events, diagram), policies, approve and reject.

use uuid::Uuid;

use super::{Call, Client, DiagramQuery, ListPlans, Page, path_id};
use crate::error::Error;
use crate::model::*;
use crate::operations as ops;

impl Client {
    /// `POST /scenarios/{id}/migration-plan`: plan the move to a new version.
    /// Not retried: after a lost answer a repeat is a 409 naming the plan made.
    pub async fn create_plan(
        &self,
        scenario_id: Uuid,
        request: &GenerateMigrationPlanRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(scenario_id);
        let call = Call::new(&ops::CREATE_PLAN, &[("scenario_id", &id)])
            .json(request)?
            .once();
        self.send(call).await?.json()
    }

    /// `GET /migration-plans`.
    pub async fn list_plans(&self, filter: &ListPlans) -> Result<PlanList, Error> {
        let call = Call::new(&ops::LIST_PLANS, &[])
            .query("scenario_id", filter.scenario_id)
            .query("status", filter.status.map(status_text))
            .query("limit", filter.limit)
            .query("next_token", filter.next_token.as_deref());
        self.send(call).await?.json()
    }

    /// `GET /migration-plans/{id}`.
    pub async fn get_plan(&self, plan_id: Uuid) -> Result<MigrationPlan, Error> {
        self.plan_get(&ops::GET_PLAN, plan_id).await
    }

    /// `GET /migration-plans/{id}/summary`.
    pub async fn get_summary(&self, plan_id: Uuid) -> Result<MigrationSummary, Error> {
        self.plan_get(&ops::GET_SUMMARY, plan_id).await
    }

    /// `GET /migration-plans/{id}/forecast`: what reconcile would answer each
    /// live session if the plan were deployed now.
    pub async fn get_forecast(&self, plan_id: Uuid) -> Result<PlanForecast, Error> {
        self.plan_get(&ops::GET_FORECAST, plan_id).await
    }

    /// `GET /migration-plans/{id}/anchors`: the anchors of a plan too large to
    /// return whole, a page at a time.
    pub async fn get_anchors(&self, plan_id: Uuid, page: &Page) -> Result<AnchorPage, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::GET_ANCHORS, &[("plan_id", &id)])
            .query("limit", page.limit)
            .query("next_token", page.next_token.as_deref());
        self.send(call).await?.json()
    }

    /// `GET /migration-plans/{id}/events`: the migrations applied, a page at a time.
    pub async fn get_events(&self, plan_id: Uuid, page: &Page) -> Result<EventList, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::GET_EVENTS, &[("plan_id", &id)])
            .query("limit", page.limit)
            .query("next_token", page.next_token.as_deref());
        self.send(call).await?.json()
    }

    /// `PUT /migration-plans/{id}/policies` (a pending plan only).
    pub async fn put_policies(
        &self,
        plan_id: Uuid,
        request: &UpdatePoliciesRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::PUT_POLICIES, &[("plan_id", &id)]).json(request)?;
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/approve`. Not retried (a repeat is a 409).
    pub async fn approve_plan(
        &self,
        plan_id: Uuid,
        request: &ApprovePlanRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::APPROVE_PLAN, &[("plan_id", &id)])
            .json(request)?
            .once();
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/reject`. Not retried (a repeat is a 409).
    pub async fn reject_plan(
        &self,
        plan_id: Uuid,
        request: &RejectPlanRequest,
    ) -> Result<MigrationPlan, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::REJECT_PLAN, &[("plan_id", &id)])
            .json(request)?
            .once();
        self.send(call).await?.json()
    }

    /// `GET /migration-plans/{id}/diagram`: the SVG of one side of the plan.
    pub async fn plan_diagram(&self, plan_id: Uuid, query: &DiagramQuery) -> Result<String, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::PLAN_DIAGRAM, &[("plan_id", &id)])
            .query(
                "side",
                query.side.map(|side| match side {
                    DiagramSide::V1 => "v1",
                    DiagramSide::V2 => "v2",
                }),
            )
            .query("anchor", query.anchor.as_deref())
            .query("radius", query.radius);
        let answer = self.send(call).await?;
        String::from_utf8(answer.body).map_err(|e| Error::Unexpected {
            operation: ops::PLAN_DIAGRAM.id,
            message: e.to_string(),
        })
    }
}

pub(super) fn status_text(status: PlanStatus) -> &'static str {
    match status {
        PlanStatus::Pending => "pending",
        PlanStatus::Approved => "approved",
        PlanStatus::Deploying => "deploying",
        PlanStatus::Deployed => "deployed",
        PlanStatus::Paused => "paused",
        PlanStatus::Halted => "halted",
        PlanStatus::Withdrawing => "withdrawing",
        PlanStatus::Withdrawn => "withdrawn",
        PlanStatus::Rejected => "rejected",
        PlanStatus::Superseded => "superseded",
        PlanStatus::Expired => "expired",
    }
}
