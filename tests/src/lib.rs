//! Oratio's black-box test kit: the port contract suites (run against every adapter by the
//! files in `tests/`), the moto harness for the AWS adapters, and helpers to start the
//! embedded platform.

pub mod contract;
pub mod embeddings;
pub mod fixtures;
pub mod history;
pub mod hostile;
pub mod moto;
pub mod platform;
pub mod scripted_model;
pub mod sonic;
pub mod speech;
pub mod twilio;

/// Logs stay silent unless `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        oratio_functions::logging::init();
    }
}
