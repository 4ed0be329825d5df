//! Scenarios: the head (current version) and the versions.

use planning::{PartialRollout, ScenarioVersion};
use uuid::Uuid;

use super::DynamoStore;
use super::attr::{Item, bad_item, get_n, n, opt_s, s};
use super::body::BodyRef;
use super::keys::{key, scenario_pk, version_sk};
use super::ops::{WRITE_ID, new_write_id};
use crate::{ScenarioHead, Store, StoreResult};

pub(super) async fn create_scenario(
    db: &DynamoStore,
    scenario: &ScenarioVersion,
) -> StoreResult<()> {
    let t = scenario.tenant_id;
    let body = db.store_body(t, scenario).await?;
    let pk = scenario_pk(t, scenario.id);
    let mut head = key(pk.clone(), "HEAD");
    head.insert("current_version".into(), n(scenario.version));
    let write_id = new_write_id();
    head.insert(WRITE_ID.into(), s(write_id.clone()));
    let mut version = key(pk, &version_sk(scenario.version));
    version.insert("version".into(), n(scenario.version));
    body.write_into(&mut version, "body");
    let items = vec![
        db.tx_put(db.main(), head, Some("attribute_not_exists(pk)"))?,
        db.tx_put(db.main(), version, None)?,
    ];
    if let Err(e) = db.transact(items).await {
        // Created by this very call on an attempt whose answer was lost.
        if e.own_write_at(0, &write_id) {
            return Ok(());
        }
        // Only a cancelled transaction surely left no version pointing at the body.
        if e.cancelled() {
            db.delete_body(t, &body).await;
        }
        return Err(e.into_store("scenario already exists"));
    }
    Ok(())
}

pub(super) async fn get_current_scenario(
    db: &DynamoStore,
    tenant: Uuid,
    scenario_id: Uuid,
) -> StoreResult<Option<ScenarioVersion>> {
    let head = db
        .get_item(db.main(), key(scenario_pk(tenant, scenario_id), "HEAD"))
        .await?;
    match head {
        Some(head) => {
            let v = get_n(&head, "current_version")?;
            db.get_scenario_version(tenant, scenario_id, v).await
        }
        None => Ok(None),
    }
}

pub(super) async fn get_scenario_head(
    db: &DynamoStore,
    tenant: Uuid,
    scenario_id: Uuid,
) -> StoreResult<Option<ScenarioHead>> {
    let head = db
        .get_item(db.main(), key(scenario_pk(tenant, scenario_id), "HEAD"))
        .await?;
    head.as_ref().map(scenario_head_from).transpose()
}

/// The scenario head: `current_version`, and while a rollout is partial,
/// `rollout` (its JSON) beside `rollout_plan` (its plan id, for conditions).
pub(super) fn scenario_head_from(item: &Item) -> StoreResult<ScenarioHead> {
    let rollout = opt_s(item, "rollout")?
        .map(|json| {
            serde_json::from_str::<PartialRollout>(json).map_err(|_| bad_item("scenario rollout"))
        })
        .transpose()?;
    Ok(ScenarioHead {
        current_version: get_n(item, "current_version")?,
        rollout,
    })
}

pub(super) async fn get_scenario_version(
    db: &DynamoStore,
    tenant: Uuid,
    scenario_id: Uuid,
    version: i64,
) -> StoreResult<Option<ScenarioVersion>> {
    let item = db
        .get_item(
            db.main(),
            key(scenario_pk(tenant, scenario_id), &version_sk(version)),
        )
        .await?;
    match item {
        Some(item) => Ok(Some(
            db.load_body(tenant, &BodyRef::read(&item, "body")?).await?,
        )),
        None => Ok(None),
    }
}
