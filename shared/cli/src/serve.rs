//! `migrations serve`: every route in one process.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

pub fn run(_args: ServeArgs) -> ExitCode {
    eprintln!("serve: not built yet");
    ExitCode::from(1)
}
