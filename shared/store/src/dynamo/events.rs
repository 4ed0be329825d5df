//! Audit events and the session counts.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use planning::MigrationScenario;
use uuid::Uuid;

use super::DynamoStore;
use super::attr::{bad_item, get_n, get_s, get_time, s};
use super::expr::Expr;
use super::items::ttl_av;
use super::keys::{events_pk, key, migrated_by_pk, page_of, plan_pk, token_item};
use super::ops::sdk_error;
use super::tables::TTL;
use crate::codec::{from_json, time_key, to_json};
use crate::semantics::event_query_id;
use crate::{AuditEvent, EventPage, EventQuery, StoreResult};

impl DynamoStore {
    pub(super) async fn last_event_time(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let out = self
            .client
            .query()
            .table_name(self.main())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(events_pk(tenant, plan_id)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        match out.items.unwrap_or_default().first() {
            Some(item) => Ok(Some(get_time(item, "at")?)),
            None => Ok(None),
        }
    }

    /// The audit event Put and the stats ADD of one applied migration.
    pub(super) fn applied_items(
        &self,
        t: Uuid,
        event: &AuditEvent,
        was_flagged: bool,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let body = String::from_utf8(to_json(event)?).map_err(|_| bad_item("event"))?;
        let mut item = key(
            events_pk(t, event.plan_id),
            &format!("{}#{}", time_key(&event.at), event.event_id),
        );
        item.insert("at".into(), s(time_key(&event.at)));
        item.insert("body".into(), s(body));
        item.insert(TTL.into(), ttl_av(event.at, self.retention.event_days));
        let mut expr = Expr::default();
        expr.add("migrations_applied", 1);
        if was_flagged {
            expr.add("flagged_applied", 1);
        }
        if let Some(scenario) = event.migration_scenario {
            expr.add(scenario_counter(scenario), 1);
        }
        if event.blocked_by_checkpoint {
            expr.add("checkpoint_blocks", 1);
        }
        if event.action == planning::ReconciliationAction::ExitScenario {
            expr.add("exits", 1);
        }
        // Which plan migrated the session and when: what the runtime's outcome
        // report is counted against (a later migration by the same plan starts
        // its outcome afresh).
        let mut migrated = key(
            migrated_by_pk(t, &event.session_id),
            &event.plan_id.to_string(),
        );
        migrated.insert("plan_id".into(), s(event.plan_id.to_string()));
        migrated.insert("at".into(), s(time_key(&event.at)));
        migrated.insert(TTL.into(), ttl_av(event.at, self.retention.event_days));
        let mut items = vec![
            self.tx_put(self.main(), item, Some("attribute_not_exists(pk)"))?,
            self.tx_update(
                self.main(),
                key(plan_pk(t, event.plan_id), "STATS"),
                &expr,
                None,
            )?,
            self.tx_put(self.main(), migrated, None)?,
        ];
        if was_flagged {
            // The drain's per-minute count, kept a day (the status reads the last hour).
            let minute = planning::drain::minute_of(event.at);
            let mut count = Expr::default();
            count.add("applied", 1);
            count.set("minute", s(time_key(&minute)));
            count.set(TTL, ttl_av(minute, 1));
            items.push(self.tx_update(
                self.main(),
                key(
                    plan_pk(t, event.plan_id),
                    &format!("{APPLIED_MINUTE_PREFIX}{}", time_key(&minute)),
                ),
                &count,
                None,
            )?);
        }
        Ok(items)
    }

    /// The plan's per-minute counts from `since` on ([`crate::Store::applied_per_minute`]).
    pub(super) async fn applied_per_minute(
        &self,
        tenant: Uuid,
        plan_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<planning::AppliedInMinute>> {
        let query = self
            .client
            .query()
            .table_name(self.main())
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(plan_pk(tenant, plan_id)))
            .expression_attribute_values(
                ":from",
                s(format!("{APPLIED_MINUTE_PREFIX}{}", time_key(&since))),
            )
            // '~' sorts after every character of a time key.
            .expression_attribute_values(":to", s(format!("{APPLIED_MINUTE_PREFIX}~")))
            .consistent_read(true);
        self.query_all(query)
            .await?
            .iter()
            .map(|item| {
                Ok(planning::AppliedInMinute {
                    minute: get_time(item, "minute")?,
                    applied: get_n(item, "applied")?,
                })
            })
            .collect()
    }
}

/// Sort-key prefix of a plan's per-minute counts of applied flagged migrations.
const APPLIED_MINUTE_PREFIX: &str = "APPLIED#";

pub(super) fn scenario_counter(scenario: MigrationScenario) -> &'static str {
    scenario.as_str()
}

pub(super) async fn session_counts(
    db: &DynamoStore,
    tenant: Uuid,
    scenario_id: Uuid,
    version: i64,
) -> StoreResult<crate::StepCounts> {
    if let Some(catch_up) = &db.counts_catch_up
        && let Err(e) = catch_up.catch_up().await
    {
        // The counters still answer, as fresh as their `counted_at` says.
        tracing::warn!(error = %e, "could not read the sessions stream before counting");
    }
    crate::dynamo::counts::read_counts(&db.client, db.main(), tenant, scenario_id, version).await
}

pub(super) async fn pending_by_activity_day(
    db: &DynamoStore,
    tenant: Uuid,
    plan_id: Uuid,
) -> StoreResult<Vec<planning::PendingOnDay>> {
    // The flag counters follow the sessions stream like the session counts.
    if let Some(catch_up) = &db.counts_catch_up
        && let Err(e) = catch_up.catch_up().await
    {
        tracing::warn!(error = %e, "could not read the sessions stream before counting");
    }
    crate::dynamo::counts::read_flag_counts(&db.client, db.main(), tenant, plan_id).await
}

pub(super) async fn put_recount(db: &DynamoStore, recount: &crate::Recount) -> StoreResult<()> {
    crate::dynamo::counts::put_recount(&db.client, db.main(), recount).await
}

pub(super) async fn get_recount(
    db: &DynamoStore,
    tenant: Uuid,
    scenario_id: Uuid,
    version: i64,
) -> StoreResult<Option<crate::Recount>> {
    crate::dynamo::counts::get_recount(&db.client, db.main(), tenant, scenario_id, version).await
}

pub(super) async fn list_events(db: &DynamoStore, q: &EventQuery) -> StoreResult<EventPage> {
    const KEY: [&str; 2] = ["pk", "sk"];
    let query_id = event_query_id(q);
    let pk = events_pk(q.tenant, q.plan_id);
    let start = q
        .next_token
        .as_deref()
        .map(|token| token_item(token, &query_id, &KEY, |k| k.get("pk") == Some(&pk)))
        .transpose()?;
    let query = db
        .client
        .query()
        .table_name(db.main())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(pk.clone()))
        .consistent_read(true)
        .limit(i32::try_from(q.limit.saturating_add(1)).unwrap_or(i32::MAX));
    let items = db
        .query_some(query, start, q.limit.saturating_add(1))
        .await?;
    let (events, next_token) = page_of(items, q.limit, &KEY, &query_id, |item| {
        from_json::<AuditEvent>(get_s(item, "body")?.as_bytes())
    })?;
    Ok(EventPage { events, next_token })
}
