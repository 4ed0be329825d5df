//! The session-counting Lambda: consumes the sessions table's stream
//! (`NEW_AND_OLD_IMAGES`) and keeps the per-step session counts that plan
//! generation, the summary and deploy read (`store::dynamo::counts` has the
//! design). Each invocation holds records of one stream shard; the event source
//! mapping runs with a tumbling window so that every event names its shard
//! (`shardId`), which keys the shard's checkpoint. The window's state is not
//! used: each batch is applied at once, and the answer carries an empty state.
//!
//! A failure (DynamoDB unavailable, throttled past the retries) fails the
//! invocation: Lambda retries the whole batch (the template sets no bisecting),
//! and the checkpoint makes a retry count nothing twice.

use aws_lambda_events::event::dynamodb::{EventRecord, TimeWindowEvent, TimeWindowEventResponse};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use store::counts::{ChangeRecord, CountKey, FlagKey};
use store::dynamo::counts::CountsApplier;

/// A Lambda stream record as a change of a session's position and flag
/// (`None` without a sequence number: nothing to order it by).
fn change_record(record: &EventRecord) -> Option<ChangeRecord> {
    let change = &record.change;
    Some(ChangeRecord {
        sequence_number: change.sequence_number.clone()?,
        at: change.approximate_creation_date_time,
        old: CountKey::of_image(&change.old_image),
        new: CountKey::of_image(&change.new_image),
        old_flag: FlagKey::of_image(&change.old_image),
        new_flag: FlagKey::of_image(&change.new_image),
    })
}

async fn handle(
    applier: &CountsApplier,
    event: TimeWindowEvent,
) -> Result<TimeWindowEventResponse, Error> {
    let records: Vec<ChangeRecord> = event
        .dynamo_db_event
        .records
        .iter()
        .filter_map(change_record)
        .collect();
    if !records.is_empty() {
        let shard = event.time_window_properties.shard_id.as_deref().ok_or(
            "the event names no shardId: configure the event source mapping with a tumbling window",
        )?;
        let applied = applier.apply(shard, &records).await?;
        // How far behind the table the counts were: the batch's last change.
        if let Some(last) = records.iter().map(|r| r.at).max() {
            api::metrics::stream_lag((chrono::Utc::now() - last).as_seconds_f64());
        }
        tracing::info!(
            records = records.len(),
            counted = applied.records,
            transactions = applied.transactions,
            counter_writes = applied.counter_writes,
            "session counts updated"
        );
    }
    Ok(TimeWindowEventResponse::default())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    api::telemetry::init(true);
    api::metrics::emf::install();
    let config = api::Config::from_env()?;
    let sdk = api::aws::sdk_config().await;
    let applier = CountsApplier::new(aws_sdk_dynamodb::Client::new(&sdk), config.main_table);
    lambda_runtime::run(service_fn(|event: LambdaEvent<TimeWindowEvent>| {
        let applier = &applier;
        async move {
            let answer = handle(applier, event.payload).await;
            api::metrics::emf::flush();
            answer
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_event_becomes_moves() {
        let t = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
        let s = "4b7a5c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
        let (a, b) = (
            "00000000-0000-4000-8000-00000000000a",
            "00000000-0000-4000-8000-00000000000b",
        );
        let plan = "00000000-0000-4000-8000-0000000000f1";
        let image = |step: &str, flag: &str| {
            format!(
                r#"{{"pk": {{"S": "{t}#wa-42"}}, "active_scenario_id": {{"S": "{s}"}},
                   "active_scenario_version": {{"N": "1"}}, "active_step_id": {{"S": "{step}"}},
                   "updated_at": {{"S": "2026-12-03T23:59:59Z"}}{flag}}}"#
            )
        };
        let flagged = format!(
            r#", "pending_migration": {{"M": {{"migration_plan_id": {{"S": "{plan}"}}}}}}"#
        );
        let body = format!(
            r#"{{"Records": [{{"eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb",
                 "awsRegion": "eu-west-1",
                 "dynamodb": {{"ApproximateCreationDateTime": 1700000000, "Keys": {{"pk": {{"S": "{t}#wa-42"}}}},
                   "OldImage": {}, "NewImage": {},
                   "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"}}}}],
               "window": {{"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"}},
               "state": {{}}, "shardId": "shardId-000001", "eventSourceARN": "arn",
               "isFinalInvokeForWindow": false, "isWindowTerminatedEarly": false}}"#,
            image(a, ""),
            image(b, &flagged)
        );
        let event: TimeWindowEvent = serde_json::from_str(&body).expect("event");
        assert_eq!(
            event.time_window_properties.shard_id.as_deref(),
            Some("shardId-000001")
        );
        let record = change_record(&event.dynamo_db_event.records[0]).expect("record");
        assert_eq!(record.sequence_number, "111");
        assert_eq!(record.old.unwrap().step_id.to_string(), a);
        assert_eq!(record.new.unwrap().step_id.to_string(), b);
        assert_eq!(record.new.unwrap().tenant.to_string(), t);
        // The runtime's write flagged it: its plan's drain counts it on its day.
        assert_eq!(record.old_flag, None);
        let flag = record.new_flag.expect("the new image's flag");
        assert_eq!(flag.plan_id.to_string(), plan);
        assert_eq!(flag.day.to_string(), "2026-12-03");
    }
}
