//! Tracing setup shared by every binary.

use tracing_subscriber::EnvFilter;

/// JSON logs on Lambda (CloudWatch parses them), plain text elsewhere. `RUST_LOG` filters.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = if json {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
}
