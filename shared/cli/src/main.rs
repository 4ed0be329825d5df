//! `migrations`: the local face of focal-migrations.
//!
//! - `migrations serve` runs every HTTP route in one process (embedded store by default);
//! - `migrations plan` computes a migration plan for two scenario files, offline;
//! - `migrations init` creates the DynamoDB tables (and the SQS queue) on local emulators;
//! - `migrations openapi` prints the API's OpenAPI 3.1 document (what `GET /openapi.json` serves).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backfill;
mod counts;
mod init;
mod plan;
mod serve;

#[derive(Debug, Parser)]
#[command(
    name = "migrations",
    version,
    about = "Plan and apply scenario migrations for in-flight sessions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every route of the HTTP API in one process.
    Serve(serve::ServeArgs),
    /// Create the DynamoDB tables (MIGRATIONS_TABLE, SESSIONS_TABLE) that are missing — and
    /// the SQS marking queue with `--queue sqs` — on local emulators, print what was created
    /// or found, and exit: what `serve --init` does before it serves.
    Init(init::InitArgs),
    /// Compute the migration plan between two scenario versions (ScenarioInput JSON files).
    Plan(plan::PlanArgs),
    /// One-off migration to the sharded step index: rewrite every session's
    /// `step_key` for STEP_INDEX_SHARDS shards (resumable; see docs/operations.md).
    BackfillStepKeys(backfill::BackfillArgs),
    /// Session counts of one scenario version on DynamoDB (the counters and the
    /// latest exact recount); `--recount` queues an exact recount.
    Counts(counts::CountsArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (JSON), as `GET /openapi.json` serves it.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Init(args) => init::run(args),
        Command::Plan(args) => plan::run(args),
        Command::BackfillStepKeys(args) => backfill::run(args),
        Command::Counts(args) => counts::run(args),
        Command::Openapi => {
            let document = api::openapi::document_with(console::openapi());
            println!("{}", api::openapi::document_text(&document));
            ExitCode::SUCCESS
        }
    }
}
