//! `Push` through API Gateway's `@connections` management API.

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::DisplayErrorContext;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use oratio_core::health::HealthCheck;
use oratio_core::ids::ConnectionId;
use oratio_core::push::{Push, PushError, check_frame};

/// Pushes to the clients of one WebSocket API stage. The client's endpoint must be the
/// stage's management URL (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
#[derive(Clone)]
pub struct ApiGatewayPush {
    client: Client,
}

impl ApiGatewayPush {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Push for ApiGatewayPush {
    async fn send(&self, connection: &ConnectionId, message: &str) -> Result<(), PushError> {
        check_frame(message)?;
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(message.as_bytes()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => Err(PushError::Gone),
            Err(e) => Err(PushError::Backend(anyhow!("{}", DisplayErrorContext(e)))),
        }
    }

    async fn close(&self, connection: &ConnectionId) -> Result<(), PushError> {
        let closed = self.client.delete_connection().connection_id(connection.as_str()).send().await;
        match closed {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => Err(PushError::Gone),
            Err(e) => Err(PushError::Backend(anyhow!("{}", DisplayErrorContext(e)))),
        }
    }
}

#[async_trait]
impl HealthCheck for ApiGatewayPush {
    fn name(&self) -> &'static str {
        "push"
    }

    fn backend(&self) -> &'static str {
        "apigateway-management"
    }

    /// API Gateway has no cheap probe that needs no connection; configuration errors
    /// show up as failed pushes in the logs.
    async fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}
