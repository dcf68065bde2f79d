//! The `Push` port: sends a message down an open WebSocket connection (API Gateway's
//! `@connections` in AWS, an in-process registry embedded).

use async_trait::async_trait;

use crate::ids::ConnectionId;

/// Largest frame API Gateway delivers to a client.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection is closed; forget it.
    #[error("connection is gone")]
    Gone,
    #[error("message of {0} bytes exceeds the {MAX_FRAME_BYTES} byte frame limit")]
    TooLarge(usize),
    #[error("push failed")]
    Backend(#[source] anyhow::Error),
}

#[async_trait]
pub trait Push: Send + Sync {
    /// Sends one text message to the connection.
    async fn send(&self, connection: &ConnectionId, message: &str) -> Result<(), PushError>;

    /// Closes the connection from the server side.
    async fn close(&self, connection: &ConnectionId) -> Result<(), PushError>;
}

pub fn check_frame(message: &str) -> Result<(), PushError> {
    if message.len() > MAX_FRAME_BYTES { Err(PushError::TooLarge(message.len())) } else { Ok(()) }
}
