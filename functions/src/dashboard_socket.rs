//! The dashboard WebSocket API: a tenant's browsers connect here to receive live events.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use oratio_core::connections::{self, Channel};
use oratio_core::push::Push;
use serde_json::json;
use tracing::Instrument;

use crate::auth::member_of;
use crate::deps::Deps;
use crate::request::within_request;
use crate::socket::{CONNECT, DISCONNECT, SocketApi, SocketEvent, reply};

pub struct DashboardSocket {
    pub deps: Arc<Deps>,
    pub push: Arc<dyn Push>,
}

impl DashboardSocket {
    async fn route(&self, event: SocketEvent) -> ApiGatewayProxyResponse {
        let table = self.deps.table.as_ref();
        match event.route.as_str() {
            CONNECT => {
                // A browser cannot set headers on a WebSocket: the access token comes in the query.
                let member = match member_of(&self.deps, event.token.as_deref()).await {
                    Ok(member) => member,
                    Err(refused) => return reply(refused.status().as_u16(), None),
                };
                tracing::Span::current().record("tenant_id", tracing::field::display(&member.tenant_id));
                let opened = connections::open(
                    table,
                    event.connection.clone(),
                    Channel::Dashboard,
                    member.tenant_id,
                    member.user_id,
                )
                .await;
                match opened {
                    Ok(_) => reply(200, None),
                    Err(e) => {
                        tracing::error!(cause = %format!("{e:#}"), "recording a dashboard connection failed");
                        reply(500, None)
                    }
                }
            }
            DISCONNECT => {
                if let Err(e) = connections::close(table, &event.connection).await {
                    tracing::warn!(cause = %format!("{e:#}"), "forgetting a dashboard connection failed");
                }
                reply(200, None)
            }
            "ping" => {
                let pong = json!({"type": "pong", "connection_id": event.connection, "request_id": event.request_id});
                self.send(&event, pong).await
            }
            _ => {
                let error = json!({
                    "type": "error",
                    "code": "unknown_action",
                    "error": "send JSON with an `action` this socket knows: ping",
                    "request_id": event.request_id,
                });
                self.send(&event, error).await
            }
        }
    }

    async fn send(&self, event: &SocketEvent, message: serde_json::Value) -> ApiGatewayProxyResponse {
        match self.push.send(&event.connection, &message.to_string()).await {
            Ok(()) => reply(200, None),
            Err(e) => {
                tracing::warn!(cause = %e, "pushing to a dashboard connection failed");
                reply(410, None)
            }
        }
    }
}

#[async_trait]
impl SocketApi for DashboardSocket {
    fn routes(&self) -> &'static [&'static str] {
        &["ping"]
    }

    async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(event) = SocketEvent::parse(&event) else {
            tracing::warn!("a dashboard socket event without route or connection id");
            return reply(400, None);
        };
        let span = tracing::info_span!(
            "socket",
            request_id = %event.request_id,
            route = %event.route,
            connection_id = %event.connection,
            tenant_id = tracing::field::Empty,
        );
        within_request(event.request_id.clone(), self.route(event)).instrument(span).await
    }
}
