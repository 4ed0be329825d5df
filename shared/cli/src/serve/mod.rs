//! `migrations serve`: every route in one process — the store, the queue, the
//! background tasks and the routers; the HTTP server that defends itself is [`server`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use api::{AppState, Config};
use store::Store;
use tokio::net::TcpListener;

mod server;

use server::{Limits, Signals, run_server};

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
    /// MiB of memory the embedded store (`--store embedded`) may hold as a cache
    /// of its file's pages, reads and pending writes together.
    #[arg(long, env = "EMBEDDED_CACHE_MB", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub cache_mb: u32,
    #[arg(long, value_enum, default_value = "memory")]
    pub queue: QueueKind,
    /// Create missing DynamoDB tables (and the SQS queue with `--queue sqs`) — for local
    /// emulators; `migrations init` does the same and exits.
    #[arg(long)]
    pub init: bool,
    /// Seconds a client has to send a whole request head (request line and headers),
    /// from the accept, or from the first byte of a later request on the connection.
    #[arg(long, env = "SERVE_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub header_timeout_secs: u64,
    /// Seconds a request body has to arrive in full, counted from the end of its headers.
    #[arg(long, env = "SERVE_BODY_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub body_timeout_secs: u64,
    /// Seconds from the end of a request's headers to its response (body, wait for a
    /// slot and handler together); past it the answer is 408.
    #[arg(long, env = "SERVE_REQUEST_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub request_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "SERVE_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,
    /// Open connections at most (keep it well under `ulimit -n`); at the cap a new
    /// connection replaces the one idle the longest, and later ones wait in the listen backlog.
    #[arg(long, env = "SERVE_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Requests running a handler at once; the others wait for a slot (503 when
    /// none frees within their request timeout).
    #[arg(long, env = "SERVE_MAX_IN_FLIGHT", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Megabytes (MiB) of request bodies buffered at once, across all connections
    /// (never less than one 6 MB body); past it requests wait (503 at their body timeout).
    #[arg(long, env = "SERVE_MAX_BODY_BUFFER_MB", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_body_buffer_mb: u32,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM before the process exits.
    #[arg(long, env = "SERVE_SHUTDOWN_GRACE_SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub shutdown_grace_secs: u64,
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
    let result = runtime.block_on(serve(args));
    // The sweeper, the queue pollers and any connection still open after the
    // grace period stop here; a blocking store call gets a moment to return.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `initialised` gets what `--init` created or found (logged once the address is printed).
async fn open_store(
    args: &ServeArgs,
    config: &Config,
    sdk: Option<&aws_config::SdkConfig>,
    initialised: &mut Vec<crate::init::Outcome>,
) -> Result<Arc<dyn Store>, String> {
    Ok(match args.store {
        StoreKind::Memory => Arc::new(
            store::MemoryStore::new()
                .with_retention(config.retention())
                .with_step_index_shards(config.step_index_shards),
        ),
        StoreKind::Embedded => {
            std::fs::create_dir_all(&args.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
            let path = args.data_dir.join("migrations.redb");
            // Not redb's default cache (1 GiB): it keeps the pages it has read or
            // written, so a long run over a large file would hold up to that much.
            let cache_bytes = args.cache_mb as usize * 1024 * 1024;
            Arc::new(
                store::EmbeddedStore::open_with_cache(&path, cache_bytes)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?
                    .with_retention(config.retention())
                    .with_step_index_shards(config.step_index_shards),
            )
        }
        StoreKind::Dynamodb => {
            let sdk = sdk.ok_or("no AWS configuration")?;
            let client = aws_sdk_dynamodb::Client::new(sdk);
            let tables = api::aws::table_names(config);
            if args.init {
                initialised.extend(crate::init::tables(&client, &tables).await?);
            }
            // The session counts follow the sessions table's stream (the
            // count-sessions Lambda's job on AWS).
            let counts = crate::counts::stream_poller(sdk, &tables);
            Arc::new(
                store::dynamo::DynamoStore::new(client, tables)
                    .with_retention(config.retention())
                    .with_step_index_shards(config.step_index_shards)
                    .with_counts_catch_up(counts),
            )
        }
    })
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    let needs_aws = matches!(args.store, StoreKind::Dynamodb)
        || matches!(args.queue, QueueKind::Sqs)
        || config.event_bus_name.is_some();
    let sdk = if needs_aws {
        Some(api::aws::sdk_config().await)
    } else {
        None
    };
    let mut initialised = Vec::new();
    let store = open_store(&args, &config, sdk.as_ref(), &mut initialised).await?;
    // Lifecycle events to `EVENT_BUS_NAME` when set: announced after each
    // change, and the outbox swept with the deployments below.
    let events = sdk
        .as_ref()
        .and_then(|sdk| api::aws::event_sink(sdk, &config));
    let new_state = |store, config| {
        let state = AppState::new(store, config);
        match events {
            Some(sink) => state.with_events(sink),
            None => state,
        }
    };

    let state = match (args.queue, sdk.as_ref()) {
        (QueueKind::Sqs, Some(sdk)) => {
            let client = aws_sdk_sqs::Client::new(sdk);
            let url = match (&config.marking_queue_url, args.init) {
                (Some(url), _) => url.clone(),
                (None, true) => {
                    let (url, outcome) = crate::init::marking_queue(&client, &config).await?;
                    initialised.push(outcome);
                    url
                }
                (None, false) => {
                    return Err("--queue sqs needs MARKING_QUEUE_URL (or --init)".into());
                }
            };
            config.marking_queue_url = Some(url.clone());
            let state = new_state(store, config).with_queue(Arc::new(api::aws::SqsQueue::new(
                client.clone(),
                url.clone(),
            )));
            tokio::spawn(api::aws::poll_queue(state.clone(), client, url));
            state
        }
        _ => api::local_queue::InProcessQueue::attach(new_state(store, config)),
    };

    // Deploys always finish: what the EventBridge schedule does on AWS.
    tokio::spawn(api::services::deployments::sweep_forever(
        state.deps().clone(),
    ));

    // Before the address is printed: a SIGTERM right after it must drain, not kill.
    let signals = Signals::install()?;
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts wait for this exact line.
    println!("listening on http://{address}");
    for outcome in initialised {
        tracing::info!(%outcome, "--init");
    }
    let limits = Limits::from_args(&args);
    tracing::info!(%address, store = ?args.store, queue = ?args.queue, ?limits, "serving every route");
    // The operator console (pages, assets, diagram route) beside the API routes;
    // `GET /openapi.json` describes the console's diagram route too. `GET /metrics`:
    // this process's metrics as Prometheus text (docs/observability.md).
    let metrics = api::metrics::prometheus::install()?;
    let app = api::routes::app_with(state.clone(), console::openapi)
        .merge(console::router(state))
        .merge(api::metrics::prometheus::router(metrics));
    run_server(listener, app, limits, signals).await;
    Ok(())
}
