//! `migrations serve --store dynamodb`: the session counts come from the
//! sessions table's stream, read here with the DynamoDB Streams API and applied
//! with the same code as the `count-sessions` Lambda (`store::dynamo::counts`).
//! DynamoDB Local serves Streams on its DynamoDB endpoint, so without
//! `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` the DynamoDB endpoint is used.

use std::sync::Arc;
use std::time::Duration;

use store::TableNames;
use store::dynamo::stream::{SharedPoller, StreamPoller};

/// How often the stream is read (records are applied as soon as a pass sees them).
const POLL_EVERY: Duration = Duration::from_millis(500);

/// The stream poller of `serve --store dynamodb`: started here (a pass every
/// [`POLL_EVERY`] until the process ends), and given to the store, which runs a
/// pass before each counts read so that a plan sees the sessions written just
/// before it.
pub fn stream_poller(sdk: &aws_config::SdkConfig, tables: &TableNames) -> Arc<SharedPoller> {
    let poller = SharedPoller::new(StreamPoller::new(
        aws_sdk_dynamodb::Client::new(sdk),
        store::dynamo::stream::streams_client(sdk),
        tables,
    ));
    tokio::spawn(poller.clone().run(POLL_EVERY));
    poller
}

/// `migrations counts`: what the session counts of one scenario version say on
/// DynamoDB (tables from `MIGRATIONS_TABLE` / `SESSIONS_TABLE`), and the latest
/// exact recount. The embedded store's counts are exact by construction (kept in
/// the transaction of every session write), so recounts concern DynamoDB only.
#[derive(Debug, clap::Args)]
pub struct CountsArgs {
    /// The tenant (UUID).
    #[arg(long)]
    pub tenant: uuid::Uuid,
    /// The scenario (UUID).
    #[arg(long)]
    pub scenario: uuid::Uuid,
    /// The scenario version.
    #[arg(long)]
    pub version: i64,
    /// Queue an exact recount (a message on `MARKING_QUEUE_URL`, handled by the
    /// marking worker: the mark-sessions Lambda or `serve --queue sqs`) instead
    /// of printing the counts; print them again once it has run.
    #[arg(long)]
    pub recount: bool,
}

pub fn run(args: CountsArgs) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(counts(args)) {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn counts(args: CountsArgs) -> Result<String, String> {
    use store::Store;
    let config = api::Config::from_env().map_err(|e| e.to_string())?;
    let sdk = api::aws::sdk_config().await;
    if args.recount {
        let url = config
            .marking_queue_url
            .clone()
            .ok_or("--recount needs MARKING_QUEUE_URL (the marking queue)")?;
        let message = api::recount::RecountMessage {
            recount_sessions: api::recount::RecountRequest {
                tenant_id: args.tenant,
                scenario_id: args.scenario,
                version: args.version,
                requested_at: chrono::Utc::now(),
            },
        };
        aws_sdk_sqs::Client::new(&sdk)
            .send_message()
            .queue_url(url)
            .message_body(message.body())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot queue the recount: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })?;
        return Ok(serde_json::json!({ "queued": message.recount_sessions }).to_string());
    }
    let store = store::dynamo::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        api::aws::table_names(&config),
    );
    let counts = store
        .session_counts(args.tenant, args.scenario, args.version)
        .await
        .map_err(|e| e.to_string())?;
    let recount = store
        .get_recount(args.tenant, args.scenario, args.version)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&serde_json::json!({
        "counts": counts,
        "total": counts.total(),
        "recount": recount,
    }))
    .map_err(|e| e.to_string())
}
