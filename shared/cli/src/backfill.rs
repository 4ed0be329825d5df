//! `migrations backfill-step-keys`: the one-off migration to the sharded step
//! index (docs/operations.md, "Migrating an existing deployment").
//!
//! DynamoDB: pages through the sessions table and rewrites every `step_key`
//! that is not `{t}#{scenario}#{version}#{step}#{shard}` for `STEP_INDEX_SHARDS`
//! shards, each with a conditional update (the key and position read), so it
//! is safe alongside live runtimes and can be stopped at any point. After each
//! page it prints one JSON line with the running totals and `resume_after`:
//! pass that to `--resume-after` to go on from there. Embedded: rebuilds the
//! data file's step index in one transaction.

use std::path::PathBuf;
use std::process::ExitCode;

use api::Config;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackfillStore {
    /// DynamoDB (tables from MIGRATIONS_TABLE / SESSIONS_TABLE; endpoint from AWS_ENDPOINT_URL_DYNAMODB).
    Dynamodb,
    /// The redb file under --data-dir.
    Embedded,
}

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    #[arg(long, value_enum, default_value = "dynamodb")]
    pub store: BackfillStore,
    /// Folder of the embedded database file (`migrations.redb`).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Shards to write (default: STEP_INDEX_SHARDS, else 8): the value the
    /// deployment and the runtimes use.
    #[arg(long)]
    pub shards: Option<u32>,
    /// Items read per page (one Scan request).
    #[arg(long, default_value_t = 500)]
    pub page_size: usize,
    /// Conditional updates in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Go on after this `pk` (the `resume_after` of an earlier run's last line).
    #[arg(long)]
    pub resume_after: Option<String>,
    /// Stop after this many pages (default: the whole table).
    #[arg(long)]
    pub max_pages: Option<u64>,
}

pub fn run(args: BackfillArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(backfill(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn backfill(args: BackfillArgs) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let shards = args.shards.unwrap_or(config.step_index_shards);
    if !(1..=store::MAX_STEP_INDEX_SHARDS).contains(&shards) {
        return Err(format!(
            "--shards must be 1..={}",
            store::MAX_STEP_INDEX_SHARDS
        ));
    }
    match args.store {
        BackfillStore::Embedded => {
            let path = args.data_dir.join("migrations.redb");
            let store = store::EmbeddedStore::open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?
                .with_step_index_shards(shards);
            let indexed = store
                .rebuild_step_index()
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::json!({"shards": shards, "sessions_indexed": indexed})
            );
            Ok(())
        }
        BackfillStore::Dynamodb => {
            let sdk = api::aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let tables = api::aws::table_names(&config);
            let mut total = store::dynamo::BackfillPage::default();
            let mut resume_after = args.resume_after;
            let mut pages = 0u64;
            loop {
                let (page, next) = store::dynamo::backfill_step_keys(
                    &client,
                    &tables,
                    shards,
                    resume_after.clone(),
                    args.page_size,
                    args.concurrency,
                )
                .await
                .map_err(|e| format!("{e} (resume with --resume-after {resume_after:?})"))?;
                total += page;
                pages += 1;
                resume_after = next;
                println!(
                    "{}",
                    serde_json::json!({
                        "table": tables.sessions,
                        "shards": shards,
                        "pages": pages,
                        "scanned": total.scanned,
                        "rewritten": total.rewritten,
                        "unchanged": total.unchanged,
                        "raced": total.raced,
                        "skipped": total.skipped,
                        "resume_after": resume_after,
                    })
                );
                if resume_after.is_none() || args.max_pages.is_some_and(|max| pages >= max) {
                    return Ok(());
                }
            }
        }
    }
}
