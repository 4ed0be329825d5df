//! `migrations init`: create the DynamoDB tables (and, with `--queue sqs`, the
//! marking queue) on local emulators, then exit — what `migrations serve --init`
//! does before it serves, for workflows that run something else against them
//! (`cargo lambda watch`, docs/operations.md, "Local Lambda workflow").
//!
//! [`tables`] and [`marking_queue`] are also what `serve --init` calls. Both are
//! idempotent: what exists is reported as found (the tables' stream and TTL are
//! still turned on when they are off).

use std::fmt;
use std::process::ExitCode;

use api::Config;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use store::dynamo::TableNames;

/// The marking queue `--init` creates when `MARKING_QUEUE_URL` is unset (its
/// dead-letter queue is `focal-marking-dlq`).
const MARKING_QUEUE: &str = "focal-marking";

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The queue `serve --queue` will use: what `serve --queue sqs --init` creates besides the tables.
    #[arg(long, value_enum, default_value = "memory")]
    pub queue: InitQueue,
}

/// The values of `serve --queue`, as far as `init` is concerned (its own type: `serve --init`
/// calls this module).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum InitQueue {
    /// No queue: the in-process queue of `serve` needs nothing.
    Memory,
    /// The marking queue `focal-marking` and its dead-letter queue (endpoint from AWS_ENDPOINT_URL_SQS).
    Sqs,
}

/// What `init` did about one table or queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `table` or `queue`.
    pub kind: &'static str,
    pub name: String,
    /// Created now (else it existed).
    pub created: bool,
    /// Where it comes from (the variable naming it) and, for a queue, its URL.
    pub detail: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.created { "created" } else { "found" };
        write!(f, "{} {}: {what} ({})", self.kind, self.name, self.detail)
    }
}

pub fn run(args: InitArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(init(args)) {
        Ok(outcomes) => {
            for outcome in outcomes {
                println!("{outcome}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn init(args: InitArgs) -> Result<Vec<Outcome>, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let sdk = api::aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let mut outcomes = tables(&client, &api::aws::table_names(&config)).await?;
    if matches!(args.queue, InitQueue::Sqs) {
        let client = aws_sdk_sqs::Client::new(&sdk);
        outcomes.push(marking_queue(&client, &config).await?.1);
    }
    Ok(outcomes)
}

/// Create the tables that are missing ([`store::dynamo::create_tables`]: indexes,
/// stream, TTL) and say, per table, whether it was created or found.
pub async fn tables(
    client: &aws_sdk_dynamodb::Client,
    tables: &TableNames,
) -> Result<Vec<Outcome>, String> {
    let named = [
        (&tables.main, "MIGRATIONS_TABLE"),
        (&tables.sessions, "SESSIONS_TABLE"),
    ];
    let mut existed = Vec::with_capacity(named.len());
    for (name, _) in named {
        existed.push(table_exists(client, name).await?);
    }
    store::dynamo::create_tables(client, tables)
        .await
        .map_err(|e| format!("cannot create tables: {e}"))?;
    Ok(named
        .into_iter()
        .zip(existed)
        .map(|((name, variable), existed)| Outcome {
            kind: "table",
            name: name.clone(),
            created: !existed,
            detail: format!("{variable}; stream and TTL on"),
        })
        .collect())
}

async fn table_exists(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<bool, String> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(false),
        Err(SdkError::ServiceError(e)) => Err(format!(
            "cannot read table {name}: {}",
            service_error(e.err())
        )),
        Err(e) => Err(format!(
            "cannot read table {name}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        )),
    }
}

/// The marking queue's URL: `MARKING_QUEUE_URL` when set (nothing is created),
/// else the queue [`MARKING_QUEUE`] and its dead-letter queue, created when
/// missing ([`api::aws::ensure_queue`]).
pub async fn marking_queue(
    client: &aws_sdk_sqs::Client,
    config: &Config,
) -> Result<(String, Outcome), String> {
    if let Some(url) = &config.marking_queue_url {
        let outcome = Outcome {
            kind: "queue",
            name: url.clone(),
            created: false,
            detail: "MARKING_QUEUE_URL; not checked".into(),
        };
        return Ok((url.clone(), outcome));
    }
    let existed = match client
        .get_queue_url()
        .queue_name(MARKING_QUEUE)
        .send()
        .await
    {
        Ok(_) => true,
        Err(aws_sdk_sqs::error::SdkError::ServiceError(e)) if e.err().is_queue_does_not_exist() => {
            false
        }
        Err(aws_sdk_sqs::error::SdkError::ServiceError(e)) => {
            return Err(format!(
                "cannot read queue {MARKING_QUEUE}: {}",
                service_error(e.err())
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot read queue {MARKING_QUEUE}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ));
        }
    };
    let url = api::aws::ensure_queue(client, MARKING_QUEUE, config.mark_max_receives)
        .await
        .map_err(|e| format!("cannot create queue {MARKING_QUEUE}: {e}"))?;
    let outcome = Outcome {
        kind: "queue",
        name: MARKING_QUEUE.into(),
        created: !existed,
        detail: format!("dead-letter queue {MARKING_QUEUE}-dlq; MARKING_QUEUE_URL={url}"),
    };
    Ok((url, outcome))
}

/// A service's answer as `Code: message` (the SDK's `Display` of an error it does
/// not model leaves the message out).
fn service_error(error: &impl ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        error.code().unwrap_or("unknown error"),
        error.message().unwrap_or("(no message)")
    )
}
