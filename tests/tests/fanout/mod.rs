//! Deploy fan-out end to end: a deployment above the inline threshold
//! answers 202, pages of sessions travel through a queue to the marking worker,
//! and every eligible session is flagged exactly once — on the embedded store
//! with the in-process queue, and on DynamoDB Local with SQS from moto (the
//! worker polling it the way `migrations serve --queue sqs` does).
//!
//! Faults are injected by a store decorator, `store::testing::FaultyStore`, with
//! the hooks in `rig` (no SDK mocks): duplicate deliveries, a crash between
//! marking and recording, a throttled write, and a poison page that lands in the
//! dead-letter queue and is re-driven. In every case
//! the counts are exact and nothing but `pending_migration` changes on a session.
//!
//! Waits poll the deployment status; the only deadline is a hang guard.

mod delivered_by_hand;
pub(crate) mod deployment;
pub(crate) mod rig;
mod through_the_queue;

use crate::common::Backend;
use delivered_by_hand::*;
use rig::Rig;
use through_the_queue::*;

store::backend_matrix! {
    backends: [embedded => Rig::Embedded, dynamodb_sqs => Rig::DynamoSqs],
    tests: [
        fan_out_marks_every_eligible_session_once,
        redelivered_pages_count_once,
        crash_between_marking_and_recording_is_retried_exactly,
        throttled_write_is_retried_exactly,
        poison_page_shows_in_status,
        inline_deploy_failing_mid_marking_finishes_after_resume,
        a_withdrawal_through_the_queue_clears_each_flag_once,
    ],
}

store::backend_matrix! {
    backends: [
        embedded_manual_queue => Backend::Embedded,
        dynamodb_manual_queue => Backend::Dynamo,
    ],
    tests: [
        same_message_delivered_twice_counts_once,
        lambda_batch_reports_only_the_failing_message,
        a_batch_walks_its_chains_in_process_within_its_budget,
        a_page_failing_mid_walk_goes_back_to_the_queue_alone,
        a_withdrawal_overtaking_a_page_in_flight_leaves_no_flag,
    ],
}
