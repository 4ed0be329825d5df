//! Plans and their lifecycle: the head item, the live-plan slot, listing, transitions, activation.

use aws_sdk_dynamodb::types::{AttributeValue as Av, Delete, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use planning::lifecycle::StampValue;
use planning::{
    AnchorMigrationPolicy, MigrationPlan, MigrationSummary, PartialRollout, PlanStatus,
    ScenarioVersion,
};
use uuid::Uuid;

use super::DynamoStore;
use super::attr::{Item, bad_item, n, s};
use super::body::{BodyRef, PlanBody};
use super::expr::Expr;
use super::items::{
    plan_from_head, plan_head_item, status_str, summary_item, transitions_after, ttl_av,
};
use super::keys::{
    CHAIN_PREFIX, blob_pk, deploying_key, key, page_of, plan_pk, plans_gsi_pk, scenario_pk,
    slot_pk, token_item, version_sk,
};
use super::ops::{
    ALL_OLD_ON_FAILURE, WRITE_ID, built, new_write_id, own_write, retrying, sdk_error,
};
use super::outbox::outbox_write;
use super::tables::{PLANS_INDEX, TTL};
use crate::codec::time_key;
use crate::semantics::plan_query_id;
use crate::{
    ActivationError, PlanActivation, PlanPage, PlanQuery, PlanTransition, StoreError, StoreResult,
};

impl DynamoStore {
    pub(super) async fn load_plan(&self, tenant: Uuid, head: &Item) -> StoreResult<MigrationPlan> {
        let mut plan = plan_from_head(head)?;
        if plan.tenant_id != tenant {
            return Err(bad_item("tenant_id"));
        }
        let body: PlanBody = self
            .load_body(tenant, &BodyRef::read(head, "body")?)
            .await?;
        plan.transformation_map = body.transformation_map;
        plan.summary = body.summary;
        plan.anchor_policies = self.load_body(tenant, &BodyRef::read(head, "pol")?).await?;
        Ok(plan)
    }

    /// Give the rest of a deployed plan (chains, failed-page records, body parts)
    /// the head's `ttl`. Best effort: an item missed is kept, never lost early.
    pub(super) async fn expire_plan_parts(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        head: &Item,
        at: DateTime<Utc>,
    ) {
        let ttl = ttl_av(at, self.retention.deployed_plan_days);
        let mut keys = Vec::new();
        for prefix in [CHAIN_PREFIX, "FAILED#"] {
            let query = self
                .client
                .query()
                .table_name(self.main())
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(plan_pk(tenant, plan_id)))
                .expression_attribute_values(":p", s(prefix))
                .projection_expression("pk, sk");
            match self.query_all(query).await {
                Ok(items) => keys.extend(items),
                Err(e) => {
                    tracing::warn!(error = %e, %plan_id, "could not list a deployed plan's items for retention")
                }
            }
        }
        for name in ["body", "pol", "tgt", "sum"] {
            if let Ok(BodyRef::Blob { id, parts }) = BodyRef::read(head, name) {
                for part in 0..parts {
                    keys.push(key(blob_pk(tenant, &id), &format!("P#{part:05}")));
                }
            }
        }
        for item_key in keys {
            let request = self
                .client
                .update_item()
                .table_name(self.main())
                .set_key(Some(item_key))
                .update_expression("SET #ttl = :ttl")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":ttl", ttl.clone());
            if let Err(e) = retrying(|| request.clone().send()).await.map_err(sdk_error)
                && !matches!(e, StoreError::Conflict(_))
            {
                tracing::warn!(error = %e, %plan_id, "could not set retention on a deployed plan's item");
            }
        }
    }

    pub(super) async fn plan_head(&self, tenant: Uuid, plan_id: Uuid) -> StoreResult<Option<Item>> {
        self.get_item(self.main(), key(plan_pk(tenant, plan_id), "HEAD"))
            .await
    }

    pub(super) fn plans_query(
        &self,
        q: &PlanQuery,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut filters = Vec::new();
        let mut query = self
            .client
            .query()
            .table_name(self.main())
            .index_name(PLANS_INDEX)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(plans_gsi_pk(q.tenant)))
            .scan_index_forward(false);
        if let Some(sid) = q.scenario_id {
            filters.push("scenario_id = :sid");
            query = query.expression_attribute_values(":sid", s(sid.to_string()));
        }
        if let Some(status) = q.status {
            filters.push("#st = :st");
            query = query
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", s(status_str(status)));
        }
        if !filters.is_empty() {
            query = query.filter_expression(filters.join(" AND "));
        }
        query
    }

    pub(super) async fn load_plan_without_policies(
        &self,
        tenant: Uuid,
        head: &Item,
    ) -> StoreResult<MigrationPlan> {
        let mut plan = plan_from_head(head)?;
        let body: PlanBody = self
            .load_body(tenant, &BodyRef::read(head, "body")?)
            .await?;
        plan.transformation_map = body.transformation_map;
        plan.summary = body.summary;
        Ok(plan)
    }
}

pub(super) async fn create_plan(
    db: &DynamoStore,
    plan: &MigrationPlan,
    target: &ScenarioVersion,
) -> StoreResult<()> {
    let t = plan.tenant_id;
    let body = db
        .store_body(
            t,
            &PlanBody {
                transformation_map: plan.transformation_map.clone(),
                summary: plan.summary.clone(),
            },
        )
        .await?;
    let policies = db.store_body(t, &plan.anchor_policies).await?;
    let tgt = db.store_body(t, target).await?;
    // The summary again on its own, so the summary route reads kilobytes, not
    // the whole transformation map.
    let summary = db.store_body(t, &plan.summary).await?;
    let mut slot = key(
        slot_pk(t, plan.scenario_id, plan.from_version, plan.to_version),
        "SLOT",
    );
    slot.insert("plan_id".into(), s(plan.id.to_string()));
    let mut head = plan_head_item(plan, &body, &policies, &tgt)?;
    summary.write_into(&mut head, "sum");
    let write_id = new_write_id();
    head.insert(WRITE_ID.into(), s(write_id.clone()));
    let items = vec![
        db.tx_put(db.main(), slot, Some("attribute_not_exists(pk)"))?,
        db.tx_put(db.main(), head, Some("attribute_not_exists(pk)"))?,
        outbox_write(db, t, plan.id, plan.revision, true)?,
    ];
    if let Err(e) = db.transact(items).await {
        if e.own_write_at(1, &write_id) {
            return Ok(());
        }
        // The bodies go only when the transaction surely did not commit: after
        // an error with no answer it may have, and its head would point at them.
        if e.cancelled() {
            for b in [&body, &policies, &tgt, &summary] {
                db.delete_body(t, b).await;
            }
        }
        return Err(e.into_store("a live plan exists for this version pair"));
    }
    Ok(())
}

pub(super) async fn get_plan(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Option<MigrationPlan>> {
    match db.plan_head(tenant, plan_id).await? {
        Some(head) => Ok(Some(db.load_plan(tenant, &head).await?)),
        None => Ok(None),
    }
}

pub(super) async fn get_plan_header(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Option<MigrationPlan>> {
    let Some(head) = db.plan_head(tenant, plan_id).await? else {
        return Ok(None);
    };
    let plan = plan_from_head(&head)?;
    if plan.tenant_id != tenant {
        return Err(bad_item("tenant_id"));
    }
    Ok(Some(plan))
}

pub(super) async fn get_plan_summary(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Option<MigrationSummary>> {
    let Some(head) = db.plan_head(tenant, plan_id).await? else {
        return Ok(None);
    };
    match BodyRef::read(&head, "sum") {
        Ok(summary) => Ok(Some(db.load_body(tenant, &summary).await?)),
        // Stored before the summary was kept apart.
        Err(_) => {
            let body: PlanBody = db.load_body(tenant, &BodyRef::read(&head, "body")?).await?;
            Ok(Some(body.summary))
        }
    }
}

pub(super) async fn get_plan_target(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Option<ScenarioVersion>> {
    match db.plan_head(tenant, plan_id).await? {
        Some(head) => Ok(Some(
            db.load_body(tenant, &BodyRef::read(&head, "tgt")?).await?,
        )),
        None => Ok(None),
    }
}

pub(super) async fn list_plans(db: &DynamoStore, q: &PlanQuery) -> StoreResult<PlanPage> {
    const KEY: [&str; 4] = ["pk", "sk", "gsi1pk", "gsi1sk"];
    let query_id = plan_query_id(q);
    let gsi_pk = plans_gsi_pk(q.tenant);
    let start = q
        .next_token
        .as_deref()
        .map(|token| {
            token_item(token, &query_id, &KEY, |k| {
                k.get("gsi1pk") == Some(&gsi_pk)
                    && k.get("pk")
                        .is_some_and(|pk| pk.starts_with(&format!("{}#", q.tenant)))
            })
        })
        .transpose()?;
    let filtered = q.scenario_id.is_some() || q.status.is_some();
    let page_size = if filtered {
        100
    } else {
        q.limit.saturating_add(1)
    };
    let query = db.plans_query(q);
    let items = db
        .query_some(
            query.clone().limit(i32::try_from(page_size).unwrap_or(100)),
            start,
            q.limit.saturating_add(1),
        )
        .await?;
    let (plans, next_token) = page_of(items, q.limit, &KEY, &query_id, summary_item)?;
    let total = db.count_all(query).await?;
    Ok(PlanPage {
        plans,
        total,
        next_token,
    })
}

pub(super) async fn update_plan_policies(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
    expected_revision: u64,
    policies: &std::collections::BTreeMap<String, AnchorMigrationPolicy>,
) -> StoreResult<MigrationPlan> {
    let head = db
        .plan_head(tenant, plan_id)
        .await?
        .ok_or_else(|| StoreError::Conflict("plan not found".into()))?;
    let current = plan_from_head(&head)?;
    if current.status != PlanStatus::Pending || current.revision != expected_revision {
        return Err(StoreError::Conflict(
            "plan is not pending at the expected revision".into(),
        ));
    }
    let old = BodyRef::read(&head, "pol")?;
    let new = db.store_body(tenant, policies).await?;
    let mut expr = Expr::default();
    new.write_expr(&mut expr, "pol");
    expr.set("revision", n(expected_revision + 1));
    let write_id = new_write_id();
    expr.set(WRITE_ID, s(write_id.clone()));
    let (st, rev) = (expr.name("status"), expr.name("revision"));
    let (pending, expected) = (
        expr.value(s(status_str(PlanStatus::Pending))),
        expr.value(n(expected_revision)),
    );
    let request = db
        .client
        .update_item()
        .table_name(db.main())
        .set_key(Some(key(plan_pk(tenant, plan_id), "HEAD")))
        .update_expression(expr.update_expression())
        .condition_expression(format!("{st} = {pending} AND {rev} = {expected}"))
        .return_values_on_condition_check_failure(ALL_OLD_ON_FAILURE)
        .set_expression_attribute_names(expr.names())
        .set_expression_attribute_values(expr.values())
        .return_values(ReturnValue::AllNew);
    let head = match retrying(|| request.clone().send()).await {
        Ok(out) => out.attributes.ok_or_else(|| bad_item("plan head"))?,
        Err(e) => match own_write(&e, &write_id) {
            // Our own update, applied with its answer lost: the head found is ours.
            Some(head) => head.clone(),
            None => {
                // Only a failed condition surely left the head alone; after an
                // error with no answer the head may point at the new body.
                let error = sdk_error(e);
                if matches!(error, StoreError::Conflict(_)) {
                    db.delete_body(tenant, &new).await;
                }
                return Err(error);
            }
        },
    };
    db.delete_body(tenant, &old).await;
    let mut plan = db.load_plan_without_policies(tenant, &head).await?;
    plan.anchor_policies = policies.clone();
    Ok(plan)
}

pub(super) async fn transition_plan(
    db: &DynamoStore,
    transition: &PlanTransition,
) -> StoreResult<MigrationPlan> {
    let (t, change) = (transition.tenant, &transition.change);
    // Read first: the history is written whole (its bound drops the oldest
    // record), and the write below holds only at the revision read here.
    let head = db
        .plan_head(t, transition.plan_id)
        .await?
        .ok_or_else(|| StoreError::Conflict("plan not found".into()))?;
    let current = plan_from_head(&head)?;
    if current.status != change.from || current.revision != transition.expected_revision {
        return Err(StoreError::Conflict("plan changed concurrently".into()));
    }
    let mut expr = Expr::default();
    expr.set_or_remove(
        "transitions",
        transitions_after(
            &current.transitions,
            change.record(transition.expected_revision + 1),
        )?,
    );
    expr.set("status", s(status_str(change.to)));
    expr.set("revision", n(transition.expected_revision + 1));
    // A retry after a lost answer recognises its own transition by this id
    // (a 409 for a transition that happened would send the operator astray).
    let write_id = new_write_id();
    expr.set(WRITE_ID, s(write_id.clone()));
    // The side fields `planning::lifecycle` stamps (a missing value removes the attribute).
    for field in change.stamped_fields() {
        let value = field.value.map(|value| match value {
            StampValue::Time(at) => s(time_key(&at)),
            StampValue::Text(text) => s(text),
            StampValue::Number(number) => n(number),
        });
        expr.set_or_remove(field.name, value);
    }
    // Retention is storage policy, not a stamp: a deployed plan's head expires.
    if change.to == PlanStatus::Deployed {
        expr.set(TTL, ttl_av(change.at, db.retention.deployed_plan_days));
    }
    let (st, rev) = (expr.name("status"), expr.name("revision"));
    let (from, expected) = (
        expr.value(s(status_str(change.from))),
        expr.value(n(transition.expected_revision)),
    );
    let condition = format!("{st} = {from} AND {rev} = {expected}");
    let head_key = key(plan_pk(t, transition.plan_id), "HEAD");

    // Leaving the live states frees the version-pair slot, and leaving
    // `deploying` the sweep's registry entry, atomically.
    let delete = built(
        Delete::builder()
            .table_name(db.main())
            .set_key(Some(key(
                slot_pk(
                    t,
                    current.scenario_id,
                    current.from_version,
                    current.to_version,
                ),
                "SLOT",
            )))
            .condition_expression("attribute_not_exists(pk) OR plan_id = :pid")
            .expression_attribute_values(":pid", s(transition.plan_id.to_string()))
            .build(),
    )?;
    // Every change is a transaction: the plan's outbox entry is written with it,
    // so that its lifecycle event is sent even if this process dies right after.
    let mut items = vec![
        db.tx_update(db.main(), head_key, &expr, Some(condition))?,
        outbox_write(
            db,
            t,
            transition.plan_id,
            transition.expected_revision + 1,
            false,
        )?,
    ];
    if let Some(ramp) = &transition.rollout
        && let Some(item) = rollout_move(db, t, transition.plan_id, ramp).await?
    {
        items.push(item);
    }
    if change.frees_version_pair() {
        items.push(TransactWriteItem::builder().delete(delete).build());
    }
    if change.to == PlanStatus::Deployed {
        let mut stats = Expr::default();
        stats.set(TTL, ttl_av(change.at, db.retention.deployed_plan_days));
        items.push(db.tx_update(
            db.main(),
            key(plan_pk(t, transition.plan_id), "STATS"),
            &stats,
            None,
        )?);
    }
    if change.leaves_deploying() {
        // Off the sweep's list in the same step.
        let delete = built(
            Delete::builder()
                .table_name(db.main())
                .set_key(Some(deploying_key(t, transition.plan_id)))
                .build(),
        )?;
        items.push(TransactWriteItem::builder().delete(delete).build());
    }
    if change.enters_deploying() {
        // A resumed deployment is the sweep's again, in the same step.
        let mut registry = deploying_key(t, transition.plan_id);
        registry.insert("tenant_id".into(), s(t.to_string()));
        registry.insert("plan_id".into(), s(transition.plan_id.to_string()));
        items.push(db.tx_put(db.main(), registry, None)?);
    }
    // The head's condition fails on a replay of a committed attempt, and its
    // write id says so: retried, as it is, even after an error with no answer.
    match db.transact_same_write(items).await {
        Ok(()) => {}
        Err(e) if e.own_write_at(0, &write_id) => {}
        Err(e) => return Err(e.into_store("plan changed concurrently")),
    }
    if change.to == PlanStatus::Deployed {
        db.expire_plan_parts(t, transition.plan_id, &head, change.at)
            .await;
    }
    let mut plan = db.load_plan(t, &head).await?;
    change.apply(&mut plan);
    Ok(plan)
}

pub(super) async fn activate_plan(
    db: &DynamoStore,
    a: &PlanActivation,
) -> Result<MigrationPlan, ActivationError> {
    let t = a.tenant;
    let head = db
        .plan_head(t, a.plan_id)
        .await?
        .ok_or(ActivationError::PlanChanged)?;
    let mut plan = db.load_plan(t, &head).await?;
    if plan.status != PlanStatus::Approved || plan.revision != a.expected_revision {
        return Err(ActivationError::PlanChanged);
    }
    let body = db.store_body(t, &a.target).await?;

    let mut plan_expr = Expr::default();
    plan_expr.set("status", s(status_str(PlanStatus::Deploying)));
    plan_expr.set("revision", n(a.expected_revision + 1));
    if let Some(guard) = &a.guard {
        let json = serde_json::to_string(guard).map_err(|_| bad_item("guard"))?;
        plan_expr.set("guard", s(json));
    }
    plan_expr.set_or_remove(
        "transitions",
        transitions_after(&plan.transitions, a.record(a.expected_revision + 1))?,
    );
    let write_id = new_write_id();
    plan_expr.set(WRITE_ID, s(write_id.clone()));
    let (st, rev) = (plan_expr.name("status"), plan_expr.name("revision"));
    let (approved, expected) = (
        plan_expr.value(s(status_str(PlanStatus::Approved))),
        plan_expr.value(n(a.expected_revision)),
    );
    if a.percent < 100 {
        plan_expr.set("percent", n(a.percent));
    }
    // Below 100 percent the current version stays and the partial rollout is
    // recorded beside it; either way no other partial rollout may be there.
    let mut scenario_expr = Expr::default();
    if a.percent < 100 {
        scenario_expr.set(
            "rollout",
            rollout_av(a.plan_id, a.target.version, a.percent)?,
        );
        scenario_expr.set("rollout_plan", s(a.plan_id.to_string()));
    } else {
        scenario_expr.set("current_version", n(a.target.version));
    }
    let (cv, from, other) = (
        scenario_expr.name("current_version"),
        scenario_expr.value(n(a.from_version)),
        scenario_expr.name("rollout_plan"),
    );
    let pk = scenario_pk(t, a.scenario_id);
    let mut version = key(pk.clone(), &version_sk(a.target.version));
    version.insert("version".into(), n(a.target.version));
    body.write_into(&mut version, "body");
    let mut registry = deploying_key(t, a.plan_id);
    registry.insert("tenant_id".into(), s(t.to_string()));
    registry.insert("plan_id".into(), s(a.plan_id.to_string()));
    let items = vec![
        db.tx_update(
            db.main(),
            key(plan_pk(t, a.plan_id), "HEAD"),
            &plan_expr,
            Some(format!("{st} = {approved} AND {rev} = {expected}")),
        )?,
        db.tx_update(
            db.main(),
            key(pk, "HEAD"),
            &scenario_expr,
            Some(format!("{cv} = {from} AND attribute_not_exists({other})")),
        )?,
        db.tx_put(db.main(), version, None)?,
        db.tx_put(db.main(), registry, None)?,
        outbox_write(db, t, a.plan_id, a.expected_revision + 1, false)?,
    ];
    if let Err(e) = db.transact(items).await
        && !e.own_write_at(0, &write_id)
    {
        // Only a cancelled transaction surely wrote nothing that points at the body.
        if e.cancelled() {
            db.delete_body(t, &body).await;
        }
        return Err(if e.failed_at(0) {
            ActivationError::PlanChanged
        } else if e.failed_at(1) {
            ActivationError::ScenarioMoved
        } else {
            ActivationError::Store(e.into_store("activation"))
        });
    }
    plan.status = PlanStatus::Deploying;
    plan.revision = a.expected_revision + 1;
    plan.guard = a.guard.clone();
    plan.percent = (a.percent < 100).then_some(a.percent);
    a.record(plan.revision).append_to(&mut plan.transitions);
    Ok(plan)
}

/// A ramp's change to the scenario head ([`crate::RolloutMove`]), conditioned
/// on the scenario standing at the plan's from-version with this plan's
/// partial rollout.
async fn rollout_move(
    db: &DynamoStore,
    t: Uuid,
    plan_id: Uuid,
    ramp: &crate::RolloutMove,
) -> StoreResult<Option<TransactWriteItem>> {
    if ramp.withdraw {
        return withdrawal_move(db, t, plan_id, ramp).await;
    }
    let mut expr = Expr::default();
    if ramp.percent < 100 {
        expr.set(
            "rollout",
            rollout_av(plan_id, ramp.to_version, ramp.percent)?,
        );
    } else {
        expr.set("current_version", n(ramp.to_version));
        expr.set_or_remove("rollout", None);
        expr.set_or_remove("rollout_plan", None);
    }
    let (cv, from) = (
        expr.name("current_version"),
        expr.value(n(ramp.from_version)),
    );
    let (owner, ours) = (
        expr.name("rollout_plan"),
        expr.value(s(plan_id.to_string())),
    );
    db.tx_update(
        db.main(),
        key(scenario_pk(t, ramp.scenario_id), "HEAD"),
        &expr,
        Some(format!("{cv} = {from} AND {owner} = {ours}")),
    )
    .map(Some)
}

/// The partial rollout as the scenario head stores it (JSON text; its plan id
/// also stands alone in `rollout_plan`, for conditions).
fn rollout_av(plan_id: Uuid, to_version: i64, percent: u8) -> StoreResult<Av> {
    let rollout = PartialRollout {
        plan_id,
        to_version,
        percent,
    };
    let json = serde_json::to_string(&rollout).map_err(|_| bad_item("rollout"))?;
    Ok(s(json))
}

/// The end of a withdrawal on the scenario head, as read now: the plan's
/// partial rollout removed, or its version (current since) back to the
/// from-version — conditioned on the head still being as read. `None` when
/// the scenario moved on (nothing to restore).
async fn withdrawal_move(
    db: &DynamoStore,
    t: Uuid,
    plan_id: Uuid,
    ramp: &crate::RolloutMove,
) -> StoreResult<Option<TransactWriteItem>> {
    let head_key = key(scenario_pk(t, ramp.scenario_id), "HEAD");
    let Some(item) = db.get_item(db.main(), head_key.clone()).await? else {
        return Ok(None);
    };
    let head = super::scenarios::scenario_head_from(&item)?;
    let mut expr = Expr::default();
    let condition = if head.rollout.as_ref().is_some_and(|r| r.plan_id == plan_id) {
        expr.set_or_remove("rollout", None);
        expr.set_or_remove("rollout_plan", None);
        let (owner, ours) = (
            expr.name("rollout_plan"),
            expr.value(s(plan_id.to_string())),
        );
        format!("{owner} = {ours}")
    } else if head.current_version == ramp.to_version && head.rollout.is_none() {
        expr.set("current_version", n(ramp.from_version));
        let (cv, to, other) = (
            expr.name("current_version"),
            expr.value(n(ramp.to_version)),
            expr.name("rollout_plan"),
        );
        format!("{cv} = {to} AND attribute_not_exists({other})")
    } else {
        return Ok(None);
    };
    db.tx_update(db.main(), head_key, &expr, Some(condition))
        .map(Some)
}
