//! The one path by which the platform tells a tenant what is happening: every event is
//! pushed to each of the tenant's open dashboards (through API Gateway's `@connections`
//! in AWS, the in-process registry on one machine). Connections found closed are forgotten.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::connections;
use crate::conversations::{Customer, Turn};
use crate::ids::{AgentId, NotificationId, SessionId, TenantId};
use crate::push::{Push, PushError};
use crate::table::Table;

/// What a tenant's dashboards are told, as `{"type": "<kind>", ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "agent.progress")]
    AgentProgress { agent_id: AgentId, status: String, step: Value },
    #[serde(rename = "session.started")]
    SessionStarted { agent_id: AgentId, session_id: SessionId, channel: String, customer: Customer, at: DateTime<Utc> },
    #[serde(rename = "turn.added")]
    TurnAdded { agent_id: AgentId, session_id: SessionId, turn: Turn },
    /// The caller's words so far in a voice turn (at most one a second per session).
    #[serde(rename = "transcript.partial")]
    TranscriptPartial { agent_id: AgentId, session_id: SessionId, text: String, at: DateTime<Utc> },
    #[serde(rename = "handoff.requested")]
    HandoffRequested {
        agent_id: AgentId,
        session_id: SessionId,
        notification_id: NotificationId,
        reason: String,
        summary: Option<String>,
        at: DateTime<Utc>,
    },
    /// A person took the conversation over (`taken_over`) or handed it back (`active`).
    #[serde(rename = "session.status")]
    SessionStatus { agent_id: AgentId, session_id: SessionId, status: String, by: String, at: DateTime<Utc> },
    #[serde(rename = "session.ended")]
    SessionEnded { agent_id: AgentId, session_id: SessionId, reason: String, at: DateTime<Utc> },
}

/// Pushes `events` to every open dashboard of `tenant`. Best effort: an event nobody can
/// receive now is not an error of the request that caused it (the table has the record).
pub async fn publish(table: &dyn Table, push: &dyn Push, tenant: &TenantId, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let open = match connections::of_tenant(table, tenant).await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(cause = %e, "listing the tenant's dashboards failed; events not pushed");
            return;
        }
    };
    for connection in open {
        for event in events {
            let message = serde_json::to_string(event).expect("events serialize");
            match push.send(&connection.connection_id, &message).await {
                Ok(()) => {}
                Err(PushError::Gone) => {
                    let _ = connections::close(table, &connection.connection_id).await;
                    break;
                }
                Err(e) => {
                    tracing::warn!(cause = %e, connection = %connection.connection_id, "pushing an event failed");
                    break;
                }
            }
        }
    }
}
