//! Writes a generated scenario pair for timing `migrations plan` as a whole process:
//!
//! ```sh
//! cargo run --release -p planning --example plan_fixtures -- /tmp/plan-10k 10000 10
//! /usr/bin/time -v target/release/migrations plan \
//!     --from /tmp/plan-10k/v1.json --to /tmp/plan-10k/v2.json --format json > /dev/null
//! ```
//!
//! Arguments: output directory, steps (default 10,000), edited steps (default 10).
//! V1 gets `steps - edits` steps so that V2 (which may gain up to `edits` steps) stays
//! within the validation limit of 10,000 steps.

use std::path::PathBuf;
use std::process::ExitCode;

use planning::testkit::{conversation, edit};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "plan-fixtures".into()));
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let edits: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    // Edits may insert steps: leave room so V2 stays within the 10,000-step limit.
    let v1 = conversation(steps.saturating_sub(edits).max(1), 42);
    let v2 = edit(&v1, edits, 7);
    let write = |name: &str, value: &planning::model::ScenarioInput| -> Result<(), String> {
        let path = dir.join(name);
        let json = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))
    };
    let result = std::fs::create_dir_all(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|()| write("v1.json", &v1))
        .and_then(|()| write("v2.json", &v2));
    match result {
        Ok(()) => {
            println!("{}/v1.json {}/v2.json", dir.display(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
