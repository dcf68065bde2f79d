//! `Push` in process: the embedded WebSocket emulation registers each open socket here,
//! and handlers push to it exactly as they would through API Gateway's `@connections`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oratio_core::health::HealthCheck;
use oratio_core::ids::ConnectionId;
use oratio_core::push::{Push, PushError, check_frame};
use tokio::sync::mpsc;

/// What the socket task is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(String),
    Close,
}

/// Open connections of this process.
#[derive(Clone, Default)]
pub struct ConnectionRegistry {
    open: Arc<Mutex<HashMap<ConnectionId, mpsc::UnboundedSender<Outbound>>>>,
}

impl ConnectionRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a socket; messages for it arrive on the returned receiver.
    pub fn register(&self, id: ConnectionId) -> mpsc::UnboundedReceiver<Outbound> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(id, tx);
        rx
    }

    pub fn unregister(&self, id: &ConnectionId) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, mpsc::UnboundedSender<Outbound>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, id: &ConnectionId, message: Outbound) -> Result<(), PushError> {
        let sender = self.lock().get(id).cloned().ok_or(PushError::Gone)?;
        sender.send(message).map_err(|_| {
            self.unregister(id);
            PushError::Gone
        })
    }
}

#[async_trait]
impl Push for ConnectionRegistry {
    async fn send(&self, connection: &ConnectionId, message: &str) -> Result<(), PushError> {
        check_frame(message)?;
        self.deliver(connection, Outbound::Text(message.to_owned()))
    }

    async fn close(&self, connection: &ConnectionId) -> Result<(), PushError> {
        self.deliver(connection, Outbound::Close)
    }
}

#[async_trait]
impl HealthCheck for ConnectionRegistry {
    fn name(&self) -> &'static str {
        "push"
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}
