//! The voice socket's serverless shape: the relay behind API Gateway's voice WebSocket API
//! (`wss://{api}.execute-api.{region}.amazonaws.com/{stage}?agent_id=…`; on one machine,
//! `/ws/voice?agent_id=…`). Every route of that API reaches this handler: `$connect`
//! checks the agent's key when it is shown (`X-Api-Key`, a bearer token, or the
//! subprotocol `oratio-key.<key>` beside `oratio.voice.v1`), `$disconnect` tells the call,
//! and each message goes to its call's inbox, where the voice worker
//! ([`oratio_core::voice::relay::Worker`]) reads it. The protocol is the voice gateway's.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use oratio_core::ids::{AgentId, ConnectionId};
use oratio_core::push::{MAX_FRAME_BYTES, Push};
use oratio_core::voice::relay::{self, BeginError, Begun, Posted, VoiceWorkers};
use oratio_core::voice::{ClientEvent, PROTOCOL, Refusal, ServerEvent};
use tracing::Instrument;

use crate::auth::{api_key, customer_of};
use crate::deps::Deps;
use crate::request::within_request;
use crate::socket::{CONNECT, DISCONNECT, SocketApi, SocketEvent, reply};
use crate::voice_api::subprotocol_key;

pub struct VoiceRelay {
    pub deps: Arc<Deps>,
    /// The voice WebSocket API's `@connections`.
    pub push: Arc<dyn Push>,
    pub workers: Arc<dyn VoiceWorkers>,
}

impl VoiceRelay {
    async fn connect(&self, event: &SocketEvent, raw: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(agent) = raw.query_string_parameters.first("agent_id").and_then(|a| a.parse::<AgentId>().ok()) else {
            return reply(404, None);
        };
        let shown = api_key(&raw.headers).map(str::to_owned).or_else(|| subprotocol_key(&raw.headers));
        let tenant = match shown {
            Some(key) => match customer_of(&self.deps, Some(&key), Some(&agent)).await {
                Ok(principal) => Some(principal.tenant_id),
                Err(refused) => return reply(refused.status().as_u16(), None),
            },
            None => None,
        };
        if let Err(e) = relay::connected(self.deps.table.as_ref(), &event.connection, agent, tenant).await {
            tracing::error!(cause = %format!("{e:#}"), "recording a voice connection failed");
            return reply(500, None);
        }
        let mut answer = reply(200, None);
        let offered = raw.headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if offered.split(',').any(|p| p.trim() == PROTOCOL) {
            answer.headers.insert("sec-websocket-protocol", PROTOCOL.parse().expect("a header value"));
        }
        answer
    }

    async fn message(&self, event: &SocketEvent, binary: bool) -> ApiGatewayProxyResponse {
        let connection = &event.connection;
        let text = event.body.clone().unwrap_or_default();
        if binary {
            let refusal = Refusal::new(
                "binary_not_supported",
                "send JSON text frames; audio goes base64 in input_audio_buffer.append",
            );
            let _ = self.push.send(connection, &ServerEvent::error(refusal).sequenced(0)).await;
            return reply(200, None);
        }
        if text.len() > MAX_FRAME_BYTES {
            let refusal = Refusal::new("message_too_large", format!("messages are at most {MAX_FRAME_BYTES} bytes"));
            return self.refuse(connection, refusal).await;
        }
        let table = self.deps.table.as_ref();
        let caller = match relay::caller(table, connection).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return reply(410, None),
            Err(e) => return failed(&e),
        };
        if let Some(inbox) = caller.inbox {
            return match relay::post(table, &inbox, &Posted::Message { connection: connection.clone(), text }).await {
                Ok(_) => reply(200, None),
                Err(e) => failed(&e),
            };
        }
        let start = match ClientEvent::parse(&text) {
            Ok(ClientEvent::Start(start)) => start,
            Ok(_) => {
                return self
                    .refuse(connection, Refusal::new("session_start_expected", "the first message is session.start"))
                    .await;
            }
            Err(refusal) => {
                return self.refuse(connection, Refusal::new("session_start_expected", refusal.message)).await;
            }
        };
        let tenant = match caller.tenant_id {
            Some(tenant) => tenant,
            None => match customer_of(&self.deps, start.api_key.as_deref(), Some(&caller.agent_id)).await {
                Ok(principal) => principal.tenant_id,
                Err(refused) => return self.refuse(connection, Refusal::new(refused.code(), refused.message())).await,
            },
        };
        let resume = start.session_id.as_deref();
        match relay::begin(table, connection, tenant, caller.agent_id, resume, text).await {
            Ok(Begun::New) => match self.workers.start(connection).await {
                Ok(()) => reply(200, None),
                Err(e) => {
                    tracing::error!(cause = %format!("{e:#}"), "starting a voice worker failed");
                    let refusal = Refusal::new("temporarily_unavailable", "the call could not start; try again");
                    self.refuse(connection, refusal).await
                }
            },
            Ok(Begun::Resumed) => reply(200, None),
            Err(BeginError::NotResumable) => {
                self.refuse(connection, Refusal::new("session_not_resumable", BeginError::NotResumable.to_string()))
                    .await
            }
            Err(BeginError::Table(e)) if e.is_condition_failed() => {
                // Two starts raced: the one that lost goes to the session, which refuses it.
                self.refuse(connection, Refusal::new("session_already_started", "session.start comes once, first"))
                    .await
            }
            Err(BeginError::Table(e)) => failed(&e),
        }
    }

    async fn refuse(&self, connection: &ConnectionId, refusal: Refusal) -> ApiGatewayProxyResponse {
        relay::refuse(self.push.as_ref(), connection, refusal).await;
        reply(200, None)
    }

    async fn route(&self, event: SocketEvent, raw: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        match event.route.as_str() {
            CONNECT => self.connect(&event, raw).await,
            DISCONNECT => match relay::disconnected(self.deps.table.as_ref(), &event.connection).await {
                Ok(()) => reply(200, None),
                Err(e) => failed(&e),
            },
            _ => self.message(&event, raw.is_base64_encoded).await,
        }
    }
}

fn failed(e: &dyn std::error::Error) -> ApiGatewayProxyResponse {
    tracing::error!(cause = %e, "the voice relay failed");
    reply(500, None)
}

#[async_trait]
impl SocketApi for VoiceRelay {
    fn routes(&self) -> &'static [&'static str] {
        &[]
    }

    async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(parsed) = SocketEvent::parse(&event) else {
            tracing::warn!("a voice socket event without route or connection id");
            return reply(400, None);
        };
        let span = tracing::info_span!(
            "voice_relay",
            request_id = %parsed.request_id,
            route = %parsed.route,
            connection_id = %parsed.connection,
            tenant_id = tracing::field::Empty,
            agent_id = tracing::field::Empty,
        );
        within_request(parsed.request_id.clone(), self.route(parsed, &event)).instrument(span).await
    }
}
