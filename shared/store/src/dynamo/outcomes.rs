//! The runtime's outcome reports: counted once per session and plan against
//! the plan that last migrated the session.

use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::DynamoStore;
use super::attr::{Item, get_time, get_uuid, s};
use super::expr::Expr;
use super::keys::{key, migrated_by_pk, plan_pk};
use super::ops::{WRITE_ID, new_write_id};
use crate::codec::time_key;
use crate::{OutcomeRecorded, OutcomeReport, StoreError, StoreResult};

/// Reads and conditional writes one report tries: each lost race is another
/// report of the same session, or a new migration of it, in between.
const ATTEMPTS: usize = 4;

pub(super) async fn report_outcome(
    db: &DynamoStore,
    report: &OutcomeReport,
) -> StoreResult<OutcomeRecorded> {
    let pk = migrated_by_pk(report.tenant, &report.session_id);
    for _ in 0..ATTEMPTS {
        let query = db
            .client
            .query()
            .table_name(db.main())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .consistent_read(true);
        let entries = db.query_all(query).await?;
        let mut last: Option<(&Item, chrono::DateTime<chrono::Utc>)> = None;
        for item in &entries {
            let at = get_time(item, "at")?;
            if last.is_none_or(|(_, l)| at > l) {
                last = Some((item, at));
            }
        }
        let Some((item, at)) = last.filter(|(_, at)| *at >= report.window_start) else {
            return Ok(OutcomeRecorded::NoRecentMigration);
        };
        let plan_id = get_uuid(item, "plan_id")?;
        if item.contains_key("outcome") {
            return Ok(OutcomeRecorded::AlreadyReported { plan_id });
        }
        let write_id = new_write_id();
        let mut entry = Expr::default();
        entry.set("outcome", Av::Bool(report.ok));
        entry.set(WRITE_ID, s(write_id.clone()));
        let (outcome, when) = (entry.name("outcome"), entry.name("at"));
        let same = entry.value(s(time_key(&at)));
        let condition = format!("attribute_not_exists({outcome}) AND {when} = {same}");
        let mut stats = Expr::default();
        stats.add("reported_outcomes", 1);
        if !report.ok {
            stats.add("reported_failures", 1);
        }
        let items = vec![
            db.tx_update(
                db.main(),
                key(pk.clone(), &plan_id.to_string()),
                &entry,
                Some(condition),
            )?,
            db.tx_update(
                db.main(),
                key(plan_pk(report.tenant, plan_id), "STATS"),
                &stats,
                None,
            )?,
        ];
        match db.transact_same_write(items).await {
            Ok(()) => return Ok(OutcomeRecorded::Counted { plan_id }),
            // Counted by this very call on an attempt whose answer was lost.
            Err(e) if e.own_write_at(0, &write_id) => {
                return Ok(OutcomeRecorded::Counted { plan_id });
            }
            // Reported or migrated again in between: read again.
            Err(e) if e.failed_at(0) => continue,
            Err(e) => return Err(e.into_store("report outcome")),
        }
    }
    Err(StoreError::Conflict(
        "the session's outcome is being reported concurrently; retry".into(),
    ))
}
