//! `migrations serve`: every route in one process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use api::{AppState, Config};
use store::Store;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one; the chosen address is printed).
    #[arg(long, default_value_t = 8080, env = "PORT")]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, value_enum, default_value = "embedded")]
    pub store: StoreKind,
    /// Folder of the embedded database file (`migrations.redb`).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value = "memory")]
    pub queue: QueueKind,
    /// Create missing DynamoDB tables (and the SQS queue with `--queue sqs`) — for local emulators.
    #[arg(long)]
    pub init: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StoreKind {
    /// A single-file redb database under --data-dir (persistent).
    Embedded,
    /// In memory; gone when the process stops.
    Memory,
    /// DynamoDB (tables from MIGRATIONS_TABLE / SESSIONS_TABLE; endpoint from AWS_ENDPOINT_URL_DYNAMODB).
    Dynamodb,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum QueueKind {
    /// In-process queue with at-least-once delivery and retries.
    Memory,
    /// SQS at MARKING_QUEUE_URL (endpoint from AWS_ENDPOINT_URL_SQS), polled by an in-process worker.
    Sqs,
}

pub fn run(args: ServeArgs) -> ExitCode {
    api::telemetry::init(false);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn open_store(
    args: &ServeArgs,
    config: &Config,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Arc<dyn Store>, String> {
    Ok(match args.store {
        StoreKind::Memory => {
            Arc::new(store::memory::MemoryStore::new().with_retention(config.retention()))
        }
        StoreKind::Embedded => {
            std::fs::create_dir_all(&args.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
            let path = args.data_dir.join("migrations.redb");
            Arc::new(
                store::embedded::EmbeddedStore::open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?
                    .with_retention(config.retention()),
            )
        }
        StoreKind::Dynamodb => {
            let sdk = sdk.ok_or("no AWS configuration")?;
            let client = aws_sdk_dynamodb::Client::new(sdk);
            let tables = api::aws::table_names(config);
            if args.init {
                store::dynamo::create_tables(&client, &tables)
                    .await
                    .map_err(|e| format!("cannot create tables: {e}"))?;
            }
            Arc::new(
                store::dynamo::DynamoStore::new(client, tables).with_retention(config.retention()),
            )
        }
    })
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    let needs_aws =
        matches!(args.store, StoreKind::Dynamodb) || matches!(args.queue, QueueKind::Sqs);
    let sdk = if needs_aws {
        Some(api::aws::sdk_config().await)
    } else {
        None
    };
    let store = open_store(&args, &config, sdk.as_ref()).await?;

    let state = match (args.queue, sdk.as_ref()) {
        (QueueKind::Sqs, Some(sdk)) => {
            let client = aws_sdk_sqs::Client::new(sdk);
            let url = match (&config.marking_queue_url, args.init) {
                (Some(url), _) => url.clone(),
                (None, true) => {
                    api::aws::ensure_queue(&client, "focal-marking", config.mark_max_receives)
                        .await
                        .map_err(|e| e.to_string())?
                }
                (None, false) => {
                    return Err("--queue sqs needs MARKING_QUEUE_URL (or --init)".into());
                }
            };
            config.marking_queue_url = Some(url.clone());
            let state = AppState::new(store, config).with_queue(Arc::new(api::aws::SqsQueue::new(
                client.clone(),
                url.clone(),
            )));
            tokio::spawn(api::aws::poll_queue(state.clone(), client, url));
            state
        }
        _ => api::local_queue::InProcessQueue::attach(AppState::new(store, config)),
    };

    // Deploys always finish: what the EventBridge schedule does on AWS.
    tokio::spawn(api::services::deployments::sweep_forever(state.clone()));

    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts wait for this exact line.
    println!("listening on http://{address}");
    tracing::info!(%address, store = ?args.store, queue = ?args.queue, "serving every route");
    axum::serve(listener, api::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
