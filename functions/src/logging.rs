//! Structured JSON logs through `tracing`, one line per event, carrying the fields of the
//! spans it happens in (request id, tenant id, agent id).

use tracing_subscriber::EnvFilter;

/// Installs the JSON logger; `RUST_LOG` filters (default `info`). Safe to call twice.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .try_init();
}
