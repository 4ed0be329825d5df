//! [`Client`]'s calls of the scenarios group: publish a version, read one.

use uuid::Uuid;

use super::{Call, Client, path_id};
use crate::error::Error;
use crate::model::*;
use crate::operations as ops;

impl Client {
    /// `PUT /scenarios/{id}`: publish a version (the first, or the next one
    /// for a scenario without a live plan).
    pub async fn put_scenario(
        &self,
        scenario_id: Uuid,
        scenario: &ScenarioInput,
    ) -> Result<ScenarioVersion, Error> {
        let id = path_id(scenario_id);
        let call = Call::new(&ops::PUT_SCENARIO, &[("scenario_id", &id)]).json(scenario)?;
        self.send(call).await?.json()
    }

    /// `GET /scenarios/{id}`: the current version.
    pub async fn get_scenario(&self, scenario_id: Uuid) -> Result<ScenarioVersion, Error> {
        let id = path_id(scenario_id);
        self.send(Call::new(&ops::GET_SCENARIO, &[("scenario_id", &id)]))
            .await?
            .json()
    }

    /// `GET /scenarios/{id}?session_id=…`: the version a new session starts on
    /// (during a partial rollout, the rollout's version when the session is in
    /// its cohort — [`crate::cohort::in_cohort`] computes the same locally).
    pub async fn get_scenario_for_session(
        &self,
        scenario_id: Uuid,
        session_id: &str,
    ) -> Result<ScenarioVersion, Error> {
        let id = path_id(scenario_id);
        let call = Call::new(&ops::GET_SCENARIO, &[("scenario_id", &id)])
            .query("session_id", Some(session_id));
        self.send(call).await?.json()
    }

    /// `GET /scenarios/{id}/versions/{version}`.
    pub async fn get_scenario_version(
        &self,
        scenario_id: Uuid,
        version: i64,
    ) -> Result<ScenarioVersion, Error> {
        let (id, version) = (path_id(scenario_id), version.to_string());
        let call = Call::new(
            &ops::GET_SCENARIO_VERSION,
            &[("scenario_id", &id), ("version", &version)],
        );
        self.send(call).await?.json()
    }
}
