//! [`Client`]'s calls of the deployments group: deploy, pause, resume, withdraw
//! and the deployment status.

use uuid::Uuid;

use super::{Call, Client, path_id};
use crate::error::Error;
use crate::model::*;
use crate::operations as ops;

impl Client {
    /// `GET /migration-plans/{id}/deployment-status`.
    pub async fn deployment_status(&self, plan_id: Uuid) -> Result<DeploymentStatus, Error> {
        self.plan_get(&ops::DEPLOYMENT_STATUS, plan_id).await
    }

    /// `POST /migration-plans/{id}/deploy`: activate the new version and mark
    /// the sessions to migrate — inline (`status: deployed`, 200) or fanned
    /// out (`status: deploying`, 202; follow [`Client::deployment_status`]).
    /// Retried: a repeated deploy resumes the one under way.
    pub async fn deploy_plan(&self, plan_id: Uuid) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        self.send(Call::new(&ops::DEPLOY_PLAN, &[("plan_id", &id)]))
            .await?
            .json()
    }

    /// `POST /migration-plans/{id}/deploy` with a body (a rollout guard).
    /// Retried like [`Client::deploy_plan`]: a repeat resumes or reports progress.
    pub async fn deploy_plan_with(
        &self,
        plan_id: Uuid,
        request: &DeployRequest,
    ) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::DEPLOY_PLAN, &[("plan_id", &id)]).json(request)?;
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/pause`: stop marking and applying a
    /// rollout; reconcile answers `continue` meanwhile and sessions keep
    /// their flags. Not retried: a repeat is a 409.
    pub async fn pause_plan(&self, plan_id: Uuid) -> Result<DeploymentStatus, Error> {
        self.pause_plan_with(plan_id, &RolloutCommandRequest::default())
            .await
    }

    /// [`Client::pause_plan`] naming who asks (the plan's `transitions` keep it).
    pub async fn pause_plan_with(
        &self,
        plan_id: Uuid,
        request: &RolloutCommandRequest,
    ) -> Result<DeploymentStatus, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::PAUSE_PLAN, &[("plan_id", &id)])
            .once()
            .json(request)?;
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/resume`: back to the status it was paused
    /// in (marking goes on: 200 when done inline, 202 while it fans out). Not
    /// retried: a repeat is a 409.
    pub async fn resume_plan(&self, plan_id: Uuid) -> Result<DeploymentResult, Error> {
        self.resume_plan_with(plan_id, &RolloutCommandRequest::default())
            .await
    }

    /// [`Client::resume_plan`] naming who asks (the plan's `transitions` keep it).
    pub async fn resume_plan_with(
        &self,
        plan_id: Uuid,
        request: &RolloutCommandRequest,
    ) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::RESUME_PLAN, &[("plan_id", &id)])
            .once()
            .json(request)?;
        self.send(call).await?.json()
    }

    /// `POST /migration-plans/{id}/withdraw`: take the rollout back (every
    /// unapplied flag cleared). Sent once: a repeat while withdrawing resumes
    /// and reports progress, from any other status it is a 409.
    pub async fn withdraw_plan(&self, plan_id: Uuid) -> Result<DeploymentResult, Error> {
        self.withdraw_plan_with(plan_id, &RolloutCommandRequest::default())
            .await
    }

    /// [`Client::withdraw_plan`] naming who asks (the plan's `transitions` keep it).
    pub async fn withdraw_plan_with(
        &self,
        plan_id: Uuid,
        request: &RolloutCommandRequest,
    ) -> Result<DeploymentResult, Error> {
        let id = path_id(plan_id);
        let call = Call::new(&ops::WITHDRAW_PLAN, &[("plan_id", &id)])
            .once()
            .json(request)?;
        self.send(call).await?.json()
    }
}
