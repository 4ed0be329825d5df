//! `migrations plan --from V1.json --to V2.json [--format json|text|mermaid]`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The current version (ScenarioInput JSON).
    #[arg(long)]
    pub from: PathBuf,
    /// The proposed version (ScenarioInput JSON).
    #[arg(long)]
    pub to: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Json,
    Text,
    Mermaid,
}

pub fn run(_args: PlanArgs) -> ExitCode {
    eprintln!("plan: not built yet");
    ExitCode::from(2)
}
