//! `migrations`: the local face of focal-migrations.
//!
//! - `migrations serve` runs every HTTP route in one process (embedded store by default);
//! - `migrations plan` computes a migration plan for two scenario files, offline.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Compute the migration plan between two scenario versions (ScenarioInput JSON files).
    Plan(plan::PlanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Plan(args) => plan::run(args),
    }
}
