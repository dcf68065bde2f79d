//! Oratio's handlers: one axum router per REST area and one event handler per WebSocket
//! API, shared verbatim by the Lambda binaries (`src/bin/`) and the embedded platform.

pub mod dashboard_socket;
pub mod error;
pub mod logging;
pub mod openapi;
pub mod platform;
pub mod request;
pub mod socket;

#[cfg(feature = "lambda")]
pub mod aws;
