//! `migrations plan --from V1.json --to V2.json [--format json|text|mermaid]`.
//!
//! Offline: no session store, so the summary carries no session counts. Exit codes:
//! 0 plan printed, 2 unreadable or invalid input (every problem on stderr), 1 output
//! could not be written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use planning::model::ScenarioInput;
use planning::plan::{SessionCounts, compute_plan};
use planning::validate::validate_scenario;

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

pub fn run(args: PlanArgs) -> ExitCode {
    // Read and check both files before giving up, so one run shows every problem.
    let v1 = load(&args.from);
    let v2 = load(&args.to);
    let (Some(v1), Some(v2)) = (v1, v2) else {
        return ExitCode::from(2);
    };

    let plan = compute_plan(&v1, &v2, &SessionCounts::new());
    let rendered = match args.format {
        Format::Json => match serde_json::to_string_pretty(&plan) {
            Ok(mut s) => {
                s.push('\n');
                s
            }
            Err(e) => {
                eprintln!("error: could not serialise the plan: {e}");
                return ExitCode::from(1);
            }
        },
        Format::Text => planning::render::text(&plan, &v1, &v2),
        Format::Mermaid => planning::render::mermaid(&plan, &v2),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: could not write the plan: {e}");
            ExitCode::from(1)
        }
    }
}

/// The scenario in `path`, or `None` after printing every problem with it.
fn load(path: &Path) -> Option<ScenarioInput> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{shown}: cannot read: {e}");
            return None;
        }
    };
    let scenario: ScenarioInput = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{shown}: not a valid ScenarioInput: {e}");
            return None;
        }
    };
    match validate_scenario(&scenario) {
        Ok(()) => Some(scenario),
        Err(issues) => {
            for issue in &issues {
                eprintln!("{shown}: {issue}");
            }
            eprintln!("{shown}: {} problem(s)", issues.len());
            None
        }
    }
}
