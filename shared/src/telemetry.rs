//! Structured logs through `tracing`: JSON in Lambda (CloudWatch), compact text locally. The
//! level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        // Lambda adds its own timestamps and request ids to each line.
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .with_ansi(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests, the local server) keeps the first subscriber.
    drop(result);
}
