//! Conversations: a session of a customer with an agent, and its turns, in order.
//!
//! Layout: the session is `TENANT#<t>` / `SESSION#<s>`; turns are
//! `TENANT#<t>#SESSION#<s>` / `TURN#<000001>`. The session is in every index, each for one
//! way of finding it (sort keys `<started_at>#<s>` unless said):
//!
//! * `gsi1` `SESSIONS#<t>#<a>`: the agent's sessions;
//! * `gsi2` `SESSIONS#<t>#ACTIVE` while it is live (the tenant's live sessions), then
//!   `SESSIONS#<t>#ENDED` (the tenant's history by start);
//! * `gsi3` `SESSIONS#LIVE#<shard>` while it is live (every tenant's, in 16 shards, for the
//!   idle sweeper; sort key `<started_at>#<t>#<s>`), then `SESSIONS#<t>#DURATION` (the
//!   history by duration; sort key `<duration ms, 12 digits>#<s>`);
//! * `gsi4` `CUSTOMERS#<t>#<customer id>`, when the application names the customer.
//!
//! One turn at a time: a message takes the session's lease in the same transaction that
//! writes the customer's turn, and gives it back in the transaction that writes the
//! agent's reply. A second message while the lease is held is refused (`SessionBusy`),
//! never interleaved; a request that dies holding the lease loses it when it expires. The
//! customer's turn is written before the agent is called, so an agent that fails loses
//! nothing the customer said.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, SessionId, TenantId};
use crate::knowledge::Passage;
use crate::notifications::{self, Notification};
use crate::runtime::{AgentAnswer, Handoff, ToolTrace};
use crate::table::{Condition, Cursor, Index, Item, Key, Page, Query, SortKey, Table, TableError, Update, Write};

/// The longest message a customer may send, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// How many earlier turns an agent is given with each message.
pub const HISTORY_TURNS: usize = 20;
/// How long a turn may hold its session before another message may take it.
pub const TURN_LEASE: Duration = Duration::from_secs(60);
/// Citations carry this much of a passage.
pub const EXCERPT_CHARS: usize = 300;
/// A session keeps at most this many details, each name at most 64 characters and each
/// value at most 500; an agent's details beyond these are dropped.
pub const MAX_DETAILS: usize = 50;

/// How conversations behave.
#[derive(Debug, Clone, Copy)]
pub struct ConversationSettings {
    /// A session without a message for this long has ended.
    pub idle: Duration,
    /// How long an agent may take to answer a message (then `agent_timeout`).
    pub agent_timeout: Duration,
    /// A customer's event stream reads the session this often...
    pub events_poll: Duration,
    /// ...and ends after this long (the client reconnects with `Last-Event-ID`).
    pub events_stream: Duration,
    /// How often `oratio up` ends the sessions idle past `idle` (in AWS, the schedule of
    /// the sweeper Lambda in `template.yaml`).
    pub sweep_every: Duration,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            // API Gateway gives an integration 29 s: the agent gets 25 of them.
            agent_timeout: Duration::from_secs(25),
            events_poll: Duration::from_millis(500),
            // Within the streaming function's 60 s.
            events_stream: Duration::from_secs(50),
            sweep_every: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    /// The agent asked for a person; the conversation goes on until one takes over.
    HandoffRequested,
    /// A person has taken the conversation over: the agent does not answer until they
    /// hand it back.
    TakenOver,
    Ended,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::HandoffRequested => "handoff_requested",
            Self::TakenOver => "taken_over",
            Self::Ended => "ended",
        }
    }
}

/// Who the customer is, as the tenant's application says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the application met the customer (`web`, `app`, `whatsapp`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Customer {
    pub fn validate(&self) -> Result<(), ConversationError> {
        let short = |what: &str, value: &Option<String>| match value {
            Some(v) if v.chars().count() > 200 => {
                Err(ConversationError::Invalid(format!("customer.{what} is longer than 200 characters")))
            }
            _ => Ok(()),
        };
        short("id", &self.id)?;
        short("name", &self.name)?;
        short("channel", &self.channel)?;
        if self.attributes.len() > 20 {
            return Err(ConversationError::Invalid("customer.attributes holds more than 20 entries".into()));
        }
        if let Some((k, _)) =
            self.attributes.iter().find(|(k, v)| k.is_empty() || k.len() > 64 || v.chars().count() > 500)
        {
            return Err(ConversationError::Invalid(format!(
                "customer.attributes.{k:?}: names are 1 to 64 characters, values at most 500"
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    /// `text` for REST conversations.
    pub channel: String,
    pub status: SessionStatus,
    pub customer: Customer,
    pub started_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    /// Turns written so far (customer and agent).
    pub turns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_reason: Option<String>,
    /// What the agent told the person taking over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_summary: Option<String>,
    /// What the customer gave the agent (`save_details`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Who has the conversation now (a member's email), while it is taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_at: Option<DateTime<Utc>>,
    /// What the person who took the handoff did (the notification's outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// From its start to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `customer`, `idle`, `agent` (it ended the conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl Session {
    /// Whether no message came for `idle`.
    pub fn is_idle(&self, idle: Duration, now: DateTime<Utc>) -> bool {
        self.status != SessionStatus::Ended
            && now.signed_duration_since(self.last_activity_at).to_std().is_ok_and(|quiet| quiet >= idle)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Agent,
    /// A person of the tenant, writing after taking the conversation over.
    Operator,
    /// A note of what happened (a take-over, a return to the agent), written by `author`.
    System,
}

/// A document passage an answer used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub document_id: String,
    pub title: String,
    pub location: String,
    pub excerpt: String,
    pub score: f32,
}

impl From<Passage> for Source {
    fn from(p: Passage) -> Self {
        let text = p.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let excerpt = match text.char_indices().nth(EXCERPT_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        };
        Self { document_id: p.document_id, title: p.title, location: p.location, excerpt, score: p.score }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub turn: u32,
    pub role: Role,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    pub at: DateTime<Utc>,
    /// How long the agent took (agent turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    /// The tools the agent called for this turn, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolTrace>,
    /// The model that answered (agent turns, when the agent says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The primary model was unavailable and the fallback answered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback_used: bool,
    /// The caller spoke over the agent (voice): `text` is what they heard, cut there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Who wrote an operator's or a system turn (a member's email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The agent handed the conversation to a person with this turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handed_off: bool,
}

impl Turn {
    /// A turn of `role` with nothing but its text.
    pub(crate) fn plain(turn: u32, role: Role, text: &str, at: DateTime<Utc>) -> Self {
        Self {
            turn,
            role,
            text: text.into(),
            sources: Vec::new(),
            at,
            latency_ms: None,
            input_tokens: None,
            output_tokens: None,
            tool_calls: Vec::new(),
            model: None,
            fallback_used: false,
            interrupted: false,
            author: None,
            handed_off: false,
        }
    }
}

/// The agent's answer to one message, as the session keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub sources: Vec<Source>,
    pub handoff: Option<Handoff>,
    pub details: BTreeMap<String, String>,
    pub tool_calls: Vec<ToolTrace>,
    /// The agent ended the conversation, for this reason.
    pub end: Option<String>,
    pub latency_ms: u64,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    pub model: Option<String>,
    pub fallback_used: bool,
}

impl Reply {
    pub fn of(answer: AgentAnswer, latency_ms: u64) -> Self {
        Self {
            text: answer.reply,
            sources: answer.sources.into_iter().map(Source::from).collect(),
            handoff: answer.handoff,
            details: answer.details,
            tool_calls: answer.tool_calls.into_iter().map(ToolTrace::bounded).collect(),
            end: answer.end,
            latency_ms,
            input_tokens: answer.usage.input_tokens,
            output_tokens: answer.usage.output_tokens,
            model: answer.usage.model,
            fallback_used: answer.usage.fallback_used,
        }
    }
}

/// `current` with `new` merged in, within [`MAX_DETAILS`] and the size bounds.
fn merge_details(current: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut merged = current.clone();
    for (name, value) in new {
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.chars().count() > 64 || value.is_empty() {
            continue;
        }
        if merged.len() >= MAX_DETAILS && !merged.contains_key(name) {
            break;
        }
        merged.insert(name.to_owned(), value.chars().take(500).collect());
    }
    merged
}

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("{0}")]
    Invalid(String),
    #[error("the message is longer than {MAX_MESSAGE_CHARS} characters")]
    MessageTooLong,
    #[error("no such session")]
    SessionNotFound,
    #[error("the session has ended; start a new one by sending a message without session_id")]
    SessionEnded,
    #[error("another message of this session is being answered; send this one when it is done")]
    SessionBusy,
    #[error("{by} has this conversation already")]
    AlreadyTakenOver { by: String },
    #[error("the conversation is not taken over: take it over first")]
    NotTakenOver,
    #[error(transparent)]
    Table(#[from] TableError),
}

fn session_key(tenant: &TenantId, session: &SessionId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("SESSION#{session}"))
}

fn turns_partition(tenant: &TenantId, session: &SessionId) -> String {
    format!("TENANT#{tenant}#SESSION#{session}")
}

fn turn_key(tenant: &TenantId, session: &SessionId, turn: u32) -> Key {
    Key::new(turns_partition(tenant, session), format!("TURN#{turn:06}"))
}

pub(crate) fn agent_sessions(tenant: &TenantId, agent: &AgentId) -> String {
    format!("SESSIONS#{tenant}#{agent}")
}

fn active_sessions(tenant: &TenantId) -> String {
    format!("SESSIONS#{tenant}#ACTIVE")
}

/// How many partitions the live sessions of every tenant are spread over.
pub const LIVE_SHARDS: u32 = 16;

pub(crate) fn live_shard(session: &SessionId) -> String {
    let hash = session.as_str().bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("SESSIONS#LIVE#{:02}", hash % LIVE_SHARDS)
}

pub(crate) fn ended_sessions(tenant: &TenantId) -> String {
    format!("SESSIONS#{tenant}#ENDED")
}

pub(crate) fn sessions_by_duration(tenant: &TenantId) -> String {
    format!("SESSIONS#{tenant}#DURATION")
}

pub(crate) fn customer_sessions(tenant: &TenantId, customer: &str) -> String {
    format!("CUSTOMERS#{tenant}#{customer}")
}

fn started_key(session: &Session) -> String {
    format!("{}#{}", session.started_at.to_rfc3339(), session.session_id)
}

/// A session as the table holds it, in the indexes of its state (live or ended): how
/// sessions are stored when they start, and how tests and benchmarks seed a history.
pub fn session_item(session: &Session) -> Result<Item, TableError> {
    let (tenant, id) = (&session.tenant_id, &session.session_id);
    let started = started_key(session);
    let mut item = Item::from_record(session_key(tenant, id), session)?.in_index(
        Index::Gsi1,
        agent_sessions(tenant, &session.agent_id),
        started.clone(),
    );
    item = match (session.status, session.duration_ms) {
        (SessionStatus::Ended, Some(duration)) => item
            .in_index(Index::Gsi2, ended_sessions(tenant), started.clone())
            .in_index(Index::Gsi3, sessions_by_duration(tenant), format!("{duration:012}#{id}")),
        _ => item.in_index(Index::Gsi2, active_sessions(tenant), started.clone()).in_index(
            Index::Gsi3,
            live_shard(id),
            format!("{}#{tenant}#{id}", session.started_at.to_rfc3339()),
        ),
    };
    if let Some(customer) = session.customer.id.as_deref().filter(|id| !id.is_empty()) {
        item = item.in_index(Index::Gsi4, customer_sessions(tenant, customer), started);
    }
    Ok(item)
}

/// What ending changes in a session: its status, end and duration, and its indexes (out
/// of the live ones, into the history's).
fn ending(update: Update, session: &Session, reason: &str, now: DateTime<Utc>) -> Update {
    let duration = (now - session.started_at).num_milliseconds().max(0);
    update
        .set("status", SessionStatus::Ended.as_str())
        .set("ended_at", now.to_rfc3339())
        .set("end_reason", reason)
        .set("duration_ms", duration)
        .set(Index::Gsi2.key_names().0, ended_sessions(&session.tenant_id))
        .set(Index::Gsi2.key_names().1, started_key(session))
        .set(Index::Gsi3.key_names().0, sessions_by_duration(&session.tenant_id))
        .set(Index::Gsi3.key_names().1, format!("{duration:012}#{}", session.session_id))
}

/// Checks a message before anything is written.
pub fn validate_message(message: &str) -> Result<&str, ConversationError> {
    let message = message.trim();
    if message.is_empty() {
        return Err(ConversationError::Invalid("message is empty".into()));
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ConversationError::MessageTooLong);
    }
    Ok(message)
}

/// Opens a new session.
pub async fn start(
    table: &dyn Table,
    tenant: &TenantId,
    agent: &AgentId,
    channel: &str,
    customer: Customer,
    now: DateTime<Utc>,
) -> Result<Session, ConversationError> {
    customer.validate()?;
    let session = Session {
        session_id: SessionId::generate(),
        tenant_id: tenant.clone(),
        agent_id: agent.clone(),
        channel: channel.into(),
        status: SessionStatus::Active,
        customer,
        started_at: now,
        last_activity_at: now,
        turns: 0,
        handoff_reason: None,
        handoff_summary: None,
        details: BTreeMap::new(),
        taken_over_by: None,
        taken_over_at: None,
        handoff_outcome: None,
        ended_at: None,
        duration_ms: None,
        end_reason: None,
    };
    table.put(session_item(&session)?, Some(Condition::NotExists)).await?;
    Ok(session)
}

/// A session of this tenant's agent, as stored.
pub async fn get(
    table: &dyn Table,
    tenant: &TenantId,
    agent: &AgentId,
    session: &SessionId,
) -> Result<Session, ConversationError> {
    let item = table.get(&session_key(tenant, session)).await?.ok_or(ConversationError::SessionNotFound)?;
    let session: Session = item.record()?;
    if &session.agent_id != agent {
        return Err(ConversationError::SessionNotFound);
    }
    Ok(session)
}

/// A session of this tenant (any of its agents), as stored.
pub async fn of_tenant(
    table: &dyn Table,
    tenant: &TenantId,
    session: &SessionId,
) -> Result<Session, ConversationError> {
    let item = table.get(&session_key(tenant, session)).await?.ok_or(ConversationError::SessionNotFound)?;
    Ok(item.record()?)
}

/// A session that can take a message now: ended sessions are refused, and a session idle
/// for `idle` is ended on the spot (returned as `Err(SessionEnded)` with the ended session
/// in `ended`, so the caller can tell the dashboards).
pub async fn open(
    table: &dyn Table,
    tenant: &TenantId,
    agent: &AgentId,
    session: &SessionId,
    idle: Duration,
    now: DateTime<Utc>,
) -> Result<Result<Session, Option<Session>>, ConversationError> {
    let session = get(table, tenant, agent, session).await?;
    if session.status == SessionStatus::Ended {
        return Ok(Err(None));
    }
    if session.is_idle(idle, now) {
        return Ok(Err(end(table, &session, "idle", now).await?));
    }
    Ok(Ok(session))
}

/// Ends a session; `None` when it had already ended.
pub async fn end(
    table: &dyn Table,
    session: &Session,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, ConversationError> {
    let update = ending(Update::new().remove("lease").remove("lease_until"), session, reason, now);
    let condition = Condition::NotEquals("status".into(), SessionStatus::Ended.as_str().into());
    match table.update(&session_key(&session.tenant_id, &session.session_id), update, Some(condition)).await {
        Ok(item) => Ok(Some(item.record()?)),
        Err(e) if e.is_condition_failed() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The customer's turn is written and the session's lease taken, in one transaction.
/// Returns the session as it now is and the turn.
pub async fn begin_turn(
    table: &dyn Table,
    session: &Session,
    lease: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(Session, Turn), ConversationError> {
    let number = session.turns + 1;
    let turn = Turn::plain(number, Role::Customer, text, now);
    let key = session_key(&session.tenant_id, &session.session_id);
    let lease_until = now.timestamp() + TURN_LEASE.as_secs() as i64;
    let writes = vec![
        Write::Update {
            key: key.clone(),
            update: Update::new()
                .set("lease", lease)
                .set("lease_until", lease_until)
                .set("last_activity_at", now.to_rfc3339())
                .set("turns", number as i64),
            condition: Some(Condition::And(vec![
                Condition::NotEquals("status".into(), SessionStatus::Ended.as_str().into()),
                Condition::equals("turns", session.turns as i64),
                Condition::Or(vec![
                    Condition::AttributeNotExists("lease".into()),
                    Condition::LessThan("lease_until".into(), now.timestamp().into()),
                ]),
            ])),
        },
        Write::Put {
            item: Item::from_record(turn_key(&session.tenant_id, &session.session_id, number), &turn)?,
            condition: Some(Condition::NotExists),
        },
    ];
    match table.transact(writes).await {
        Ok(()) => {}
        Err(e) if e.is_condition_failed() => {
            let current = get(table, &session.tenant_id, &session.agent_id, &session.session_id).await?;
            return Err(if current.status == SessionStatus::Ended {
                ConversationError::SessionEnded
            } else {
                ConversationError::SessionBusy
            });
        }
        Err(e) => return Err(e.into()),
    }
    let mut session = session.clone();
    session.turns = number;
    session.last_activity_at = now;
    Ok((session, turn))
}

/// The agent's reply is written and the lease given back, in one transaction, with what
/// the reply changes in the session: its details, a handoff, its end.
pub async fn finish_turn(
    table: &dyn Table,
    session: &Session,
    lease: &str,
    reply: &Reply,
    now: DateTime<Utc>,
) -> Result<(Session, Turn, Option<Notification>), ConversationError> {
    let number = session.turns + 1;
    let turn = Turn {
        turn: number,
        role: Role::Agent,
        text: reply.text.clone(),
        sources: reply.sources.clone(),
        at: now,
        latency_ms: Some(reply.latency_ms),
        input_tokens: reply.input_tokens,
        output_tokens: reply.output_tokens,
        tool_calls: reply.tool_calls.clone(),
        model: reply.model.clone(),
        fallback_used: reply.fallback_used,
        interrupted: false,
        author: None,
        handed_off: reply.handoff.is_some(),
    };
    let mut update = Update::new()
        .remove("lease")
        .remove("lease_until")
        .set("last_activity_at", now.to_rfc3339())
        .set("turns", number as i64);
    let mut session = session.clone();
    if !reply.details.is_empty() {
        session.details = merge_details(&session.details, &reply.details);
        update = update.set("details", serde_json::json!(session.details));
    }
    if let Some(handoff) = &reply.handoff {
        update = update
            .set("status", SessionStatus::HandoffRequested.as_str())
            .set("handoff_reason", handoff.reason.as_str());
        if let Some(summary) = &handoff.summary {
            update = update.set("handoff_summary", summary.as_str());
        }
        session.status = SessionStatus::HandoffRequested;
        session.handoff_reason = Some(handoff.reason.clone());
        session.handoff_summary = handoff.summary.clone();
    }
    if let Some(reason) = &reply.end {
        update = ending(update, &session, "agent", now);
        session.status = SessionStatus::Ended;
        session.ended_at = Some(now);
        session.duration_ms = Some((now - session.started_at).num_milliseconds().max(0) as u64);
        session.end_reason = Some("agent".into());
        tracing::debug!(%reason, "the agent ended the conversation");
    }
    let mut writes = vec![
        Write::Update {
            key: session_key(&session.tenant_id, &session.session_id),
            update,
            condition: Some(Condition::equals("lease", lease)),
        },
        Write::Put {
            item: Item::from_record(turn_key(&session.tenant_id, &session.session_id, number), &turn)?,
            condition: Some(Condition::NotExists),
        },
    ];
    // A handoff is stored with its notification, or not at all.
    let mut notification = None;
    if let Some(handoff) = &reply.handoff {
        let (record, item) = notifications::of_handoff(&session, handoff, now)?;
        writes.push(Write::Put { item, condition: Some(Condition::NotExists) });
        notification = Some(record);
    }
    match table.transact(writes).await {
        Ok(()) => {}
        // The lease expired and another message took the session: this reply is dropped.
        Err(e) if e.is_condition_failed() => return Err(ConversationError::SessionBusy),
        Err(e) => return Err(e.into()),
    }
    session.turns = number;
    session.last_activity_at = now;
    Ok((session, turn, notification))
}

/// What a person does to a conversation they have (or take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonAction {
    /// Take it over from the agent.
    TakeOver,
    /// Write to the customer.
    Write,
    /// Hand it back to the agent.
    Release,
}

/// A person's turn: a take-over or a return (a `system` note), or a message (`operator`),
/// written with what it changes in the session, in one transaction. A take-over waits
/// for no agent: one answering now holds the lease, and the take-over is `SessionBusy`
/// until it is done. Returns the session as it now is and the turn.
pub async fn person_turn(
    table: &dyn Table,
    session: &Session,
    action: PersonAction,
    author: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(Session, Turn), ConversationError> {
    let mut session = session.clone();
    // A customer's message may land between reading the session and writing: read again.
    for _ in 0..5 {
        let number = session.turns + 1;
        let (role, text) = match action {
            PersonAction::TakeOver => (Role::System, format!("{author} took the conversation over")),
            PersonAction::Release => (Role::System, format!("{author} handed the conversation back to the agent")),
            PersonAction::Write => (Role::Operator, text.to_owned()),
        };
        let mut turn = Turn::plain(number, role, &text, now);
        turn.author = Some(author.to_owned());
        let mut update = Update::new().set("turns", number as i64).set("last_activity_at", now.to_rfc3339());
        // The session as the writes leave it.
        let mut next = Session { turns: number, last_activity_at: now, ..session.clone() };
        let state = match action {
            PersonAction::TakeOver => {
                next.status = SessionStatus::TakenOver;
                (next.taken_over_by, next.taken_over_at) = (Some(author.to_owned()), Some(now));
                update = update
                    .set("status", SessionStatus::TakenOver.as_str())
                    .set("taken_over_by", author)
                    .set("taken_over_at", now.to_rfc3339());
                Condition::And(vec![
                    Condition::NotEquals("status".into(), SessionStatus::Ended.as_str().into()),
                    Condition::NotEquals("status".into(), SessionStatus::TakenOver.as_str().into()),
                    Condition::Or(vec![
                        Condition::AttributeNotExists("lease".into()),
                        Condition::LessThan("lease_until".into(), now.timestamp().into()),
                    ]),
                ])
            }
            PersonAction::Write => Condition::equals("status", SessionStatus::TakenOver.as_str()),
            PersonAction::Release => {
                next.status = SessionStatus::Active;
                (next.taken_over_by, next.taken_over_at) = (None, None);
                update = update
                    .set("status", SessionStatus::Active.as_str())
                    .remove("taken_over_by")
                    .remove("taken_over_at");
                Condition::equals("status", SessionStatus::TakenOver.as_str())
            }
        };
        let writes = vec![
            Write::Update {
                key: session_key(&session.tenant_id, &session.session_id),
                update,
                condition: Some(Condition::And(vec![state, Condition::equals("turns", session.turns as i64)])),
            },
            Write::Put {
                item: Item::from_record(turn_key(&session.tenant_id, &session.session_id, number), &turn)?,
                condition: Some(Condition::NotExists),
            },
        ];
        match table.transact(writes).await {
            Ok(()) => return Ok((next, turn)),
            Err(e) if e.is_condition_failed() => {}
            Err(e) => return Err(e.into()),
        }
        let current = of_tenant(table, &session.tenant_id, &session.session_id).await?;
        let leased = current.turns == session.turns;
        session = current;
        match (session.status, action) {
            (SessionStatus::Ended, _) => return Err(ConversationError::SessionEnded),
            (SessionStatus::TakenOver, PersonAction::TakeOver) => {
                return Err(ConversationError::AlreadyTakenOver { by: session.taken_over_by.unwrap_or_default() });
            }
            (SessionStatus::Active | SessionStatus::HandoffRequested, PersonAction::Write | PersonAction::Release) => {
                return Err(ConversationError::NotTakenOver);
            }
            // Same turns, same state: the agent is answering.
            _ if leased && action == PersonAction::TakeOver => return Err(ConversationError::SessionBusy),
            _ => {}
        }
    }
    Err(ConversationError::SessionBusy)
}

/// The people's messages (operator turns) after the customer's turn before `turn`: what
/// the customer may not have seen, given with the answer to their next message.
pub fn operator_messages_since(turns: &[Turn], turn: u32) -> Vec<Turn> {
    let previous = turns.iter().filter(|t| t.role == Role::Customer && t.turn < turn).map(|t| t.turn).max();
    turns
        .iter()
        .filter(|t| t.role == Role::Operator && t.turn < turn && previous.is_none_or(|p| t.turn > p))
        .cloned()
        .collect()
}

/// The turns after `turn`, in order (at most `limit`).
pub async fn turns_after(
    table: &dyn Table,
    session: &Session,
    turn: u32,
    limit: usize,
) -> Result<Vec<Turn>, ConversationError> {
    let query = Query::partition(Index::Primary, turns_partition(&session.tenant_id, &session.session_id))
        .sort(SortKey::GreaterThan(format!("TURN#{turn:06}")))
        .limit(limit);
    Ok(table.query(query).await?.records()?)
}

/// What a customer's stream of a session says.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionNews {
    /// A turn, of any side, in order.
    Turn(Turn),
    /// The session's status, first as it is and then each time it changes.
    Status { status: SessionStatus, taken_over_by: Option<String> },
}

/// Follows a session for its customer: every turn after `after`, and its status, read
/// every `poll` for `life` (or until it ends, or the receiver is dropped). Reading the
/// table (not a process's memory) is what lets a stream served by any process, or any
/// Lambda, see what a person wrote in another.
pub fn follow(
    table: std::sync::Arc<dyn Table>,
    session: Session,
    after: u32,
    poll: Duration,
    life: Duration,
) -> tokio::sync::mpsc::Receiver<Result<SessionNews, ConversationError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + life;
        let (mut seen, mut status) = (after, None);
        let mut session = session;
        loop {
            if session.turns > seen {
                match turns_after(table.as_ref(), &session, seen, 100).await {
                    Ok(turns) => {
                        for turn in turns {
                            seen = turn.turn;
                            if tx.send(Ok(SessionNews::Turn(turn))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if status != Some(session.status) {
                status = Some(session.status);
                let news = SessionNews::Status { status: session.status, taken_over_by: session.taken_over_by.clone() };
                if tx.send(Ok(news)).await.is_err() {
                    return;
                }
            }
            if session.status == SessionStatus::Ended && seen >= session.turns {
                return;
            }
            if tokio::time::Instant::now() + poll > deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = tx.closed() => return,
            }
            session = match of_tenant(table.as_ref(), &session.tenant_id, &session.session_id).await {
                Ok(current) => current,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
        }
    });
    rx
}

/// Cuts a stored agent turn to what the caller heard before speaking over it.
pub async fn cut_turn(table: &dyn Table, session: &Session, turn: u32, heard: &str) -> Result<Turn, ConversationError> {
    let update = Update::new().set("text", heard).set("interrupted", true);
    let key = turn_key(&session.tenant_id, &session.session_id, turn);
    match table.update(&key, update, Some(Condition::equals("role", "agent"))).await {
        Ok(item) => Ok(item.record()?),
        Err(e) if e.is_condition_failed() => Err(ConversationError::Invalid(format!("turn {turn} is not the agent's"))),
        Err(e) => Err(e.into()),
    }
}

/// Gives the lease back without a reply (the agent failed); the customer's turn stays.
pub async fn abandon_turn(table: &dyn Table, session: &Session, lease: &str) -> Result<(), ConversationError> {
    let update = Update::new().remove("lease").remove("lease_until");
    let key = session_key(&session.tenant_id, &session.session_id);
    match table.update(&key, update, Some(Condition::equals("lease", lease))).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_condition_failed() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The last `limit` turns before the current one, oldest first.
pub async fn history(table: &dyn Table, session: &Session, limit: usize) -> Result<Vec<Turn>, ConversationError> {
    let query = Query::partition(Index::Primary, turns_partition(&session.tenant_id, &session.session_id))
        .descending()
        .limit(limit);
    let mut turns: Vec<Turn> = table.query(query).await?.records()?;
    turns.reverse();
    Ok(turns)
}

/// Every turn of a session, in order.
pub async fn transcript(table: &dyn Table, session: &Session) -> Result<Vec<Turn>, ConversationError> {
    let mut turns = Vec::new();
    let mut cursor = None;
    loop {
        let query = Query::partition(Index::Primary, turns_partition(&session.tenant_id, &session.session_id))
            .limit(100)
            .after(cursor);
        let page: Page = table.query(query).await?;
        turns.extend(page.records::<Turn>()?);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(turns),
        }
    }
}

/// The tenant's live sessions (every agent's), newest first: those not ended, and not
/// idle for `idle` (an idle session is ended when it is next touched; it is not shown).
pub async fn live(
    table: &dyn Table,
    tenant: &TenantId,
    limit: usize,
    cursor: Option<Cursor>,
    idle: Duration,
    now: DateTime<Utc>,
) -> Result<(Vec<Session>, Option<Cursor>), ConversationError> {
    let query = Query::partition(Index::Gsi2, active_sessions(tenant)).descending().limit(limit).after(cursor);
    let page = table.query(query).await?;
    let sessions: Vec<Session> = page.records()?;
    Ok((sessions.into_iter().filter(|s| !s.is_idle(idle, now)).collect(), page.next))
}

/// Every tenant's sessions that are live but idle for `idle`: the sweeper ends them (a
/// session nobody touches again would otherwise stay live, and out of the history).
pub async fn idle_sessions(
    table: &dyn Table,
    idle: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Session>, ConversationError> {
    let mut idle_ones = Vec::new();
    for shard in 0..LIVE_SHARDS {
        let mut cursor = None;
        loop {
            let query = Query::partition(Index::Gsi3, format!("SESSIONS#LIVE#{shard:02}")).limit(200).after(cursor);
            let page = table.query(query).await?;
            idle_ones.extend(page.records::<Session>()?.into_iter().filter(|s| s.is_idle(idle, now)));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(idle_ones)
}

/// Records what the person who took a handoff did, on the session (for the history).
pub fn outcome_write(tenant: &TenantId, session: &SessionId, outcome: &str) -> Write {
    Write::Update {
        key: session_key(tenant, session),
        update: Update::new().set("handoff_outcome", outcome),
        condition: Some(Condition::Exists),
    }
}

/// An agent's sessions, newest first.
pub async fn list(
    table: &dyn Table,
    tenant: &TenantId,
    agent: &AgentId,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<Session>, Option<Cursor>), ConversationError> {
    let query = Query::partition(Index::Gsi1, agent_sessions(tenant, agent)).descending().limit(limit).after(cursor);
    let page = table.query(query).await?;
    Ok((page.records()?, page.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_trimmed_and_bounded() {
        assert_eq!(validate_message("  hi  ").unwrap(), "hi");
        assert!(matches!(validate_message("   "), Err(ConversationError::Invalid(_))));
        assert!(matches!(validate_message(&"é".repeat(MAX_MESSAGE_CHARS + 1)), Err(ConversationError::MessageTooLong)));
        assert!(validate_message(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
    }

    #[test]
    fn sources_carry_an_excerpt_of_bounded_length() {
        let passage = |text: String| Passage {
            document_id: "d".into(),
            title: "t".into(),
            location: "page 1".into(),
            text,
            score: 1.0,
        };
        assert_eq!(Source::from(passage("a  b\nc".into())).excerpt, "a b c");
        let long = Source::from(passage("word ".repeat(200)));
        assert_eq!(long.excerpt.chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn customers_are_bounded() {
        let mut customer = Customer { name: Some("Ada".into()), ..Customer::default() };
        assert!(customer.validate().is_ok());
        customer.attributes = (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(customer.validate().is_err());
    }
}
