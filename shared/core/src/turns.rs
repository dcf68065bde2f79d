//! The conversation turn, as every channel takes it (the REST handler today; the voice
//! relay and the telephony bridge next): the customer's message is accepted (the agent is
//! ready, the session is open, the customer's turn is stored and the session's lease
//! taken), then answered (the history and the live configuration go to the agent, its
//! reply, tool trace, details, handoff and end are stored and the lease given back), and
//! the tenant's dashboards hear of each stored fact once.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::agents::{self, Agent, AgentError, AgentStatus};
use crate::analytics;
use crate::conversations::{
    self as conv, ConversationError, ConversationSettings, Customer, HISTORY_TURNS, PersonAction, Reply, Role, Session,
    SessionStatus, Turn,
};
use crate::events::{self, Event};
use crate::ids::{AgentId, SessionId, TenantId};
use crate::llm::{Speaker, TextSink};
use crate::mail::Mailer;
use crate::notifications;
use crate::push::Push;
use crate::runtime::{AgentRef, AgentRuntime, HistoryTurn, Invocation, LiveConfig, RuntimeError};
use crate::table::Table;
use crate::tenancy::{Membership, Permission, TenancyError};
use crate::time::now;

/// A customer's message, as a channel received it.
#[derive(Debug, Clone)]
pub struct CustomerMessage {
    pub message: String,
    /// The session to continue; a new one starts without it.
    pub session_id: Option<SessionId>,
    /// Who the customer is (kept with a new session).
    pub customer: Option<Customer>,
    /// `text`, `voice`, `phone`.
    pub channel: &'static str,
}

/// A message accepted: the customer's turn is stored and the session's lease is held.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub session: Session,
    pub turn: Turn,
    agent: Agent,
    lease: String,
    message: String,
}

/// The agent's turn, stored.
#[derive(Debug, Clone)]
pub struct Answered {
    pub session: Session,
    pub turn: Turn,
    /// What people of the tenant wrote since the customer's previous message.
    pub operator_messages: Vec<Turn>,
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("the agent is paused; its organization can resume it")]
    AgentPaused,
    #[error("the agent is {}, not active", .0.as_str())]
    AgentNotReady(AgentStatus),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// A person has the conversation: the customer's turn is stored, the agent is not
    /// asked. `operator_messages` are what people wrote since the customer's previous one.
    #[error("a person has taken this conversation over; the agent answers again once it is handed back")]
    TakenOver { session: Box<Session>, operator_messages: Vec<Turn> },
}

/// The turn service and the ports it holds.
#[derive(Clone)]
pub struct Turns {
    pub table: Arc<dyn Table>,
    pub runtime: Arc<dyn AgentRuntime>,
    pub push: Arc<dyn Push>,
    /// Handoffs are emailed through it, with links into the dashboard at `dashboard_url`.
    pub mailer: Arc<dyn Mailer>,
    pub dashboard_url: Arc<str>,
    pub settings: ConversationSettings,
}

/// The conversation as the agent is given it: people's messages are the assistant's side
/// (the agent carries on from what they said), notes are left out, and one side's turns
/// in a row are one message (models take the two sides in turn).
fn agent_history(turns: impl Iterator<Item = Turn>) -> Vec<HistoryTurn> {
    let mut history: Vec<HistoryTurn> = Vec::new();
    for turn in turns {
        let role = match turn.role {
            Role::Customer => Speaker::User,
            Role::Agent | Role::Operator => Speaker::Assistant,
            Role::System => continue,
        };
        match history.last_mut() {
            Some(last) if last.role == role => {
                last.text.push('\n');
                last.text.push_str(&turn.text);
            }
            _ => history.push(HistoryTurn { role, text: turn.text }),
        }
    }
    history
}

/// Whether the agent takes conversations now.
fn ready(agent: &Agent) -> Result<(), TurnError> {
    match agent.status {
        AgentStatus::Active => Ok(()),
        AgentStatus::Archived => Err(AgentError::NotFound.into()),
        AgentStatus::Paused => Err(TurnError::AgentPaused),
        other => Err(TurnError::AgentNotReady(other)),
    }
}

impl Turns {
    /// Tells the dashboards something that is not stored (a voice partial), without
    /// waiting for them.
    pub fn announce(&self, tenant: &TenantId, event: Event) {
        let (turns, tenant) = (self.clone(), tenant.clone());
        tokio::spawn(async move { turns.publish(&tenant, &[event]).await });
    }

    async fn publish(&self, tenant: &TenantId, news: &[Event]) {
        events::publish(self.table.as_ref(), self.push.as_ref(), tenant, news).await;
    }

    /// Everything before the agent is called. A refused message has written nothing; only
    /// an idle session found here is ended on the spot.
    pub async fn accept(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        message: CustomerMessage,
    ) -> Result<Accepted, TurnError> {
        let text = conv::validate_message(&message.message)?.to_owned();
        let agent = agents::load(self.table.as_ref(), tenant, agent).await?;
        ready(&agent)?;
        let at = now();
        let mut news = Vec::new();
        let table = self.table.as_ref();
        let session = match &message.session_id {
            Some(id) => match conv::open(table, tenant, &agent.agent_id, id, self.settings.idle, at).await? {
                Ok(session) => session,
                Err(ended) => {
                    if let Some(ended) = ended {
                        self.closed(&ended, at).await;
                    }
                    return Err(ConversationError::SessionEnded.into());
                }
            },
            None => {
                let customer = message.customer.unwrap_or_default();
                let session = conv::start(table, tenant, &agent.agent_id, message.channel, customer, at).await?;
                news.push(Event::SessionStarted {
                    agent_id: session.agent_id.clone(),
                    session_id: session.session_id.clone(),
                    channel: session.channel.clone(),
                    customer: session.customer.clone(),
                    at,
                });
                session
            }
        };
        let lease = ulid::Ulid::new().to_string();
        let (session, turn) = conv::begin_turn(table, &session, &lease, &text, at).await?;
        news.push(Event::TurnAdded {
            agent_id: session.agent_id.clone(),
            session_id: session.session_id.clone(),
            turn: turn.clone(),
        });
        self.publish(tenant, &news).await;
        Ok(Accepted { session, turn, agent, lease, message: text })
    }

    /// The tenant's tools the agent is offered; without them (the read failed) the agent
    /// still answers, with its own tools only.
    async fn tools_of(&self, session: &Session) -> Vec<crate::llm::ToolSpec> {
        match crate::tools::for_agent(self.table.as_ref(), &session.tenant_id, &session.agent_id).await {
            Ok(tools) => tools,
            Err(e) => {
                tracing::warn!(cause = %e, "the tenant's tools could not be read; the agent answers without them");
                Vec::new()
            }
        }
    }

    /// Calls the agent with the conversation so far and stores its reply. With `text`,
    /// the reply's pieces go there as the agent streams them. On failure the lease is
    /// given back; the customer's turn stays.
    pub async fn answer(&self, accepted: &Accepted, text: Option<&TextSink<'_>>) -> Result<Answered, TurnError> {
        let table = self.table.as_ref();
        let session = &accepted.session;
        let earlier = conv::history(table, session, HISTORY_TURNS + 1).await?;
        let operator_messages = conv::operator_messages_since(&earlier, accepted.turn.turn);
        if session.status == SessionStatus::TakenOver {
            conv::abandon_turn(table, session, &accepted.lease).await?;
            return Err(TurnError::TakenOver { session: Box::new(session.clone()), operator_messages });
        }
        let history = agent_history(earlier.into_iter().filter(|t| t.turn < accepted.turn.turn));
        let invocation = Invocation {
            message: accepted.message.clone(),
            history,
            session_id: session.session_id.to_string(),
            customer: session.customer.clone(),
            details: session.details.clone(),
            config: LiveConfig {
                greeting: accepted.agent.greeting.clone(),
                handoff_conditions: accepted.agent.handoff_conditions.clone(),
                tools: self.tools_of(session).await,
            },
        };
        let agent = AgentRef { tenant: session.tenant_id.clone(), agent: session.agent_id.clone() };
        let started = Instant::now();
        let invoked = tokio::time::timeout(
            self.settings.agent_timeout,
            self.runtime.invoke(&agent, session.session_id.as_str(), &invocation, text),
        )
        .await
        .unwrap_or(Err(RuntimeError::Timeout));
        let answer = match invoked {
            Ok(answer) => answer,
            Err(e) => {
                conv::abandon_turn(table, session, &accepted.lease).await?;
                return Err(e.into());
            }
        };
        let reply = Reply::of(answer, started.elapsed().as_millis() as u64);
        let at = Utc::now();
        let (session, turn, notification) = conv::finish_turn(table, session, &accepted.lease, &reply, at).await?;
        let mut news = vec![Event::TurnAdded {
            agent_id: session.agent_id.clone(),
            session_id: session.session_id.clone(),
            turn: turn.clone(),
        }];
        if let Some(notification) = &notification {
            news.push(Event::HandoffRequested {
                agent_id: session.agent_id.clone(),
                session_id: session.session_id.clone(),
                notification_id: notification.notification_id.clone(),
                reason: notification.reason.clone(),
                summary: notification.summary.clone(),
                at,
            });
        }
        self.publish(&session.tenant_id, &news).await;
        if reply.end.is_some() {
            self.closed(&session, at).await;
        }
        if let Some(notification) = &notification {
            notifications::email(table, self.mailer.as_ref(), notification, &self.dashboard_url).await;
        }
        Ok(Answered { session, turn, operator_messages })
    }

    /// Opens a session before its first message (a voice call is a session from its
    /// first second), if the agent takes conversations now.
    pub async fn open(&self, agent: &Agent, channel: &'static str, customer: Customer) -> Result<Session, TurnError> {
        ready(agent)?;
        let (tenant, at) = (&agent.tenant_id, now());
        let session = conv::start(self.table.as_ref(), tenant, &agent.agent_id, channel, customer, at).await?;
        let event = Event::SessionStarted {
            agent_id: session.agent_id.clone(),
            session_id: session.session_id.clone(),
            channel: session.channel.clone(),
            customer: session.customer.clone(),
            at,
        };
        self.publish(tenant, &[event]).await;
        Ok(session)
    }

    /// A person takes a conversation over, writes to its customer, or hands it back:
    /// stored with who did it, and told to the dashboards (`turn.added`, and
    /// `session.status` when the status changes).
    pub async fn person(
        &self,
        actor: &Membership,
        session: &SessionId,
        action: PersonAction,
        text: &str,
    ) -> Result<(Session, Turn), TurnError> {
        actor.require(Permission::ManageSessions)?;
        let table = self.table.as_ref();
        let text = match action {
            PersonAction::Write => conv::validate_message(text)?,
            _ => "",
        };
        let current = conv::of_tenant(table, &actor.tenant_id, session).await?;
        let at = now();
        let (session, turn) = conv::person_turn(table, &current, action, actor.email.as_str(), text, at).await?;
        let mut news = vec![Event::TurnAdded {
            agent_id: session.agent_id.clone(),
            session_id: session.session_id.clone(),
            turn: turn.clone(),
        }];
        if action != PersonAction::Write {
            news.push(Event::SessionStatus {
                agent_id: session.agent_id.clone(),
                session_id: session.session_id.clone(),
                status: session.status.as_str().into(),
                by: actor.email.to_string(),
                at,
            });
        }
        self.publish(&session.tenant_id, &news).await;
        Ok((session, turn))
    }

    /// Cuts the agent's stored turn to what the caller heard (voice barge-in), and tells
    /// the dashboards the turn as it now stands.
    pub async fn cut(&self, session: &Session, turn: u32, heard: &str) -> Result<Turn, TurnError> {
        let turn = conv::cut_turn(self.table.as_ref(), session, turn, heard).await?;
        let event = Event::TurnAdded {
            agent_id: session.agent_id.clone(),
            session_id: session.session_id.clone(),
            turn: turn.clone(),
        };
        self.publish(&session.tenant_id, &[event]).await;
        Ok(turn)
    }

    /// Ends a session (`customer`: at the customer's request; `disconnected`: a voice
    /// call that did not come back); `SessionEnded` if it had ended.
    pub async fn end(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        session: &SessionId,
        reason: &str,
    ) -> Result<Session, TurnError> {
        let session = conv::get(self.table.as_ref(), tenant, agent, session).await?;
        let at = now();
        let ended =
            conv::end(self.table.as_ref(), &session, reason, at).await?.ok_or(ConversationError::SessionEnded)?;
        self.closed(&ended, at).await;
        Ok(ended)
    }

    /// Ends every session of every tenant that has been idle for the idle timeout (the
    /// sweeper's round: every minute in `oratio up`, an EventBridge schedule in AWS).
    /// Returns how many it ended.
    pub async fn sweep_idle(&self) -> Result<usize, TurnError> {
        let at = now();
        let table = self.table.as_ref();
        let mut ended = 0;
        for session in conv::idle_sessions(table, self.settings.idle, at).await? {
            if let Some(session) = conv::end(table, &session, "idle", at).await? {
                self.closed(&session, at).await;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// What follows a session's end: the dashboards are told, and it is counted in the
    /// analytics rollups (best effort, like the events: the session is stored ended).
    async fn closed(&self, session: &Session, at: chrono::DateTime<Utc>) {
        let event = Event::SessionEnded {
            agent_id: session.agent_id.clone(),
            session_id: session.session_id.clone(),
            reason: session.end_reason.clone().unwrap_or_default(),
            at,
        };
        self.publish(&session.tenant_id, &[event]).await;
        let table = self.table.as_ref();
        let counted = match conv::transcript(table, session).await {
            Ok(turns) => analytics::record(table, session, &turns).await.map_err(ConversationError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = counted {
            tracing::warn!(cause = %e, session = %session.session_id, "counting an ended session in the analytics failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(n: u32, role: Role, text: &str) -> Turn {
        let mut turn = Turn::plain(n, role, text, Utc::now());
        turn.author = (role != Role::Customer && role != Role::Agent).then(|| "ada@example.com".into());
        turn
    }

    #[test]
    fn the_agent_carries_on_from_what_people_wrote_with_the_sides_in_turn() {
        let turns = vec![
            turn(1, Role::Customer, "refund please"),
            turn(2, Role::Agent, "passing you to a colleague"),
            turn(3, Role::System, "ada took the conversation over"),
            turn(4, Role::Operator, "refund sent"),
            turn(5, Role::Customer, "thanks"),
            turn(6, Role::Customer, "got it"),
            turn(7, Role::System, "ada handed the conversation back"),
        ];
        let history = agent_history(turns.clone().into_iter());
        let sides: Vec<(Speaker, &str)> = history.iter().map(|t| (t.role, t.text.as_str())).collect();
        assert_eq!(
            sides,
            [
                (Speaker::User, "refund please"),
                (Speaker::Assistant, "passing you to a colleague\nrefund sent"),
                (Speaker::User, "thanks\ngot it"),
            ]
        );
        // What the customer had not had when they wrote turn 5, then turn 8.
        let texts = |n| conv::operator_messages_since(&turns, n).into_iter().map(|t| t.text).collect::<Vec<_>>();
        assert_eq!(texts(5), ["refund sent"]);
        assert!(texts(8).is_empty());
    }
}
