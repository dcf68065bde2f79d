//! The voice socket in its serverless shape. API Gateway's WebSocket API holds the
//! caller's connection; a **relay** (one Lambda invocation per client message) posts each
//! message to its call's *inbox* in the table; a **worker** (one long invocation per call)
//! runs the same [`VoiceService`] session as the voice gateway, reading the inbox and
//! answering through `@connections`. The protocol is the gateway's, `oratio.voice.v1`.
//!
//! Table layout: `VOICECONN#<connection>` / `VOICECONN` (the agent a connection calls, its
//! tenant once its key is known, its inbox once its session starts); `VOICEINBOX#<inbox>` /
//! `NEXT` (the inbox's counter) and `MSG#<n>` (its messages, numbered as the relay took
//! them); `VOICESESSION#<session>` / `INBOX` (the inbox of a live session, for a resume).
//! An inbox is named after the connection that started its call.
//!
//! API Gateway invokes the relay once per message, concurrently, so messages may reach the
//! inbox out of the order the client sent them; the worker puts audio frames back in the
//! order of their `seq` (waiting [`REORDER`] at most for a late one) before the session
//! sees them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::connections::CONNECTION_TTL_SECS;
use crate::ids::{AgentId, ConnectionId, SessionId, TenantId};
use crate::push::{Push, PushError};
use crate::table::{Condition, Index, Item, Key, Query, SortKey, Table, TableError, Update};
use crate::time::now_epoch;

use super::{ClientEvent, Outgoing, Refusal, ServerEvent, VoiceService};

/// How long a frame that came early waits for the frames before it. A live caller sends
/// a frame each 20 to 100 ms and the relay takes each in tens of milliseconds, so frames
/// overtake each other by a frame or two; a caller that sends audio faster than it is
/// spoken may see more of them refused as out of order.
pub const REORDER: Duration = Duration::from_millis(400);

/// How long a hole in the inbox's numbering (a relay that took a number and then failed)
/// is waited for before the worker reads on.
const HOLE: Duration = Duration::from_secs(2);

/// API Gateway runs `$disconnect` and the messages before it concurrently: a connection
/// that left is kept this long for its last messages before its session is detached.
const LEFT_GRACE: Duration = Duration::from_secs(1);

/// A worker that gets no `session.start` in this long stops.
const START_WITHIN: Duration = Duration::from_secs(15);

/// Inbox messages outlive any call.
const INBOX_TTL_SECS: i64 = 3 * 3600;

/// Starts workers: a task on one machine, an asynchronous Lambda invocation in AWS.
#[async_trait]
pub trait VoiceWorkers: Send + Sync {
    async fn start(&self, inbox: &ConnectionId) -> anyhow::Result<()>;
}

/// A connection to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    pub agent_id: AgentId,
    /// Known once the caller showed the agent's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// Where its messages go, once its session started (or resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<ConnectionId>,
}

fn caller_key(connection: &ConnectionId) -> Key {
    Key::new(format!("VOICECONN#{connection}"), "VOICECONN")
}

fn inbox_pk(inbox: &ConnectionId) -> String {
    format!("VOICEINBOX#{inbox}")
}

fn message_sk(n: u64) -> String {
    format!("MSG#{n:020}")
}

fn session_key(session: &SessionId) -> Key {
    Key::new(format!("VOICESESSION#{session}"), "INBOX")
}

/// What the relay posts to an inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Posted {
    /// A `session.start` (as the client sent it) from a caller whose key was checked.
    Start { connection: ConnectionId, tenant_id: TenantId, agent_id: AgentId, text: String },
    /// Any later client message, as sent.
    Message { connection: ConnectionId, text: String },
    /// The connection closed.
    Left { connection: ConnectionId },
}

/// Records a new connection to `agent` (and its tenant, when the key came with it).
pub async fn connected(
    table: &dyn Table,
    connection: &ConnectionId,
    agent_id: AgentId,
    tenant_id: Option<TenantId>,
) -> Result<(), TableError> {
    let caller = Caller { agent_id, tenant_id, inbox: None };
    let item = Item::from_record(caller_key(connection), &caller)?.expiring_at(now_epoch() + CONNECTION_TTL_SECS);
    table.put(item, Some(Condition::NotExists)).await
}

pub async fn caller(table: &dyn Table, connection: &ConnectionId) -> Result<Option<Caller>, TableError> {
    table.get(&caller_key(connection)).await?.map(|item| item.record()).transpose()
}

/// Why a connection's `session.start` was not posted.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("the session cannot be resumed: it ended, its resume window passed, or the token is wrong")]
    NotResumable,
    #[error(transparent)]
    Table(#[from] TableError),
}

/// Whether a posted start needs a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    /// A new call: its inbox is the connection's, and nothing reads it yet.
    New,
    /// A resume, posted to the inbox of the worker that holds the session.
    Resumed,
}

/// Posts `session.start` from `connection` (its caller's key checked: `tenant_id`), to a
/// new inbox or, for a resume, to the inbox of the session's worker.
pub async fn begin(
    table: &dyn Table,
    connection: &ConnectionId,
    tenant_id: TenantId,
    agent_id: AgentId,
    resume: Option<&str>,
    text: String,
) -> Result<Begun, BeginError> {
    let (inbox, begun) = match resume {
        None => (connection.clone(), Begun::New),
        Some(raw) => {
            let session: SessionId = raw.parse().map_err(|_| BeginError::NotResumable)?;
            let held = table.get(&session_key(&session)).await?.ok_or(BeginError::NotResumable)?;
            let inbox = held.str("inbox").and_then(|i| i.parse().ok()).ok_or(BeginError::NotResumable)?;
            (inbox, Begun::Resumed)
        }
    };
    let update = Update::new().set("tenant_id", tenant_id.as_str()).set("inbox", inbox.as_str());
    table.update(&caller_key(connection), update, Some(Condition::AttributeNotExists("inbox".into()))).await?;
    post(table, &inbox, &Posted::Start { connection: connection.clone(), tenant_id, agent_id, text }).await?;
    Ok(begun)
}

/// Posts a message to `inbox`, numbered after every message before it.
pub async fn post(table: &dyn Table, inbox: &ConnectionId, posted: &Posted) -> Result<u64, TableError> {
    let counter = Key::new(inbox_pk(inbox), "NEXT");
    let expires = now_epoch() + INBOX_TTL_SECS;
    let numbered = table.update(&counter, Update::new().add("n", 1).set("ttl", expires), None).await?;
    let n =
        numbered.i64("n").and_then(|n| u64::try_from(n).ok()).ok_or_else(|| TableError::Invalid("counter".into()))?;
    let item = Item::from_record(Key::new(inbox_pk(inbox), message_sk(n)), posted)?.expiring_at(expires);
    table.put(item, None).await?;
    Ok(n)
}

/// The connection closed: its call (if any) is told. Its record stays until it expires,
/// for the messages API Gateway may still be relaying from it.
pub async fn disconnected(table: &dyn Table, connection: &ConnectionId) -> Result<(), TableError> {
    if let Some(Caller { inbox: Some(inbox), .. }) = caller(table, connection).await? {
        post(table, &inbox, &Posted::Left { connection: connection.clone() }).await?;
    }
    Ok(())
}

/// Messages of `inbox` from number `from` on, in order.
async fn read(table: &dyn Table, inbox: &ConnectionId, from: u64) -> Result<Vec<(u64, Posted)>, TableError> {
    let query = Query::partition(Index::Primary, inbox_pk(inbox))
        .sort(SortKey::Between(message_sk(from), message_sk(u64::MAX)))
        .limit(200);
    let page = table.query(query).await?;
    let mut messages = Vec::with_capacity(page.items.len());
    for item in &page.items {
        let n = item.key().sk.strip_prefix("MSG#").and_then(|n| n.parse().ok()).unwrap_or(0);
        messages.push((n, item.record()?));
    }
    Ok(messages)
}

/// A session's audio frames, put back in the order of their numbers.
#[derive(Default)]
struct Frames {
    /// The last frame given to the session.
    released: u64,
    held: BTreeMap<u64, (ClientEvent, Instant)>,
}

impl Frames {
    /// Takes a frame; the frames now in order.
    fn offer(&mut self, seq: u64, event: ClientEvent) -> Vec<ClientEvent> {
        if seq <= self.released + 1 && self.held.is_empty() {
            self.released = self.released.max(seq);
            return vec![event];
        }
        self.held.insert(seq, (event, Instant::now()));
        let mut ready = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != self.released + 1 {
                break;
            }
            self.released += 1;
            ready.push(entry.remove().0);
        }
        ready
    }

    /// Every held frame, in order: one waited too long, or another message follows them.
    fn flush(&mut self, only_if_late: bool) -> Vec<ClientEvent> {
        let late = self.held.values().next().is_some_and(|(_, at)| at.elapsed() >= REORDER);
        if only_if_late && !late {
            return Vec::new();
        }
        let held = std::mem::take(&mut self.held);
        if let Some(last) = held.keys().next_back() {
            self.released = self.released.max(*last);
        }
        held.into_values().map(|(event, _)| event).collect()
    }
}

struct Client {
    side: super::ClientSide,
    session: SessionId,
    /// When its connection closed.
    left: Option<Instant>,
}

/// Runs calls from their inboxes.
#[derive(Clone)]
pub struct Worker {
    pub voice: VoiceService,
    pub table: Arc<dyn Table>,
    /// The voice WebSocket API's `@connections`.
    pub push: Arc<dyn Push>,
    /// How often an inbox is read.
    pub poll: Duration,
}

impl Worker {
    /// Serves the call of `inbox` until its session ends (and, past its resume window, no
    /// caller came back). At `until` (a Lambda's deadline, less a margin) the sessions of
    /// this process end with reason `shutdown`.
    pub async fn serve(&self, inbox: ConnectionId, until: Option<Instant>) {
        let opened = Instant::now();
        let (mut next, mut began) = (1, false);
        // The tasks sending sessions' events: awaited before returning (a Lambda is frozen
        // once its handler returns, and a session's last events would wait with it).
        let mut deliveries = tokio::task::JoinSet::new();
        let mut hole_since: Option<Instant> = None;
        let mut clients: HashMap<ConnectionId, Client> = HashMap::new();
        let mut sessions: HashSet<SessionId> = HashSet::new();
        let mut frames: HashMap<SessionId, Frames> = HashMap::new();
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if until.is_some_and(|at| Instant::now() >= at) {
                tracing::warn!(inbox = %inbox, "the worker's time is up: its sessions end");
                self.voice.shutdown().await;
                break;
            }
            let messages = match read(self.table.as_ref(), &inbox, next).await {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::warn!(cause = %e, "reading a voice inbox failed");
                    continue;
                }
            };
            for (n, posted) in messages {
                if n != next {
                    // A number taken and not yet written: wait a little for it.
                    if hole_since.get_or_insert_with(Instant::now).elapsed() < HOLE {
                        break;
                    }
                    tracing::warn!(inbox = %inbox, missing = next, "an inbox message never came");
                }
                hole_since = None;
                next = n + 1;
                began |= matches!(posted, Posted::Start { .. });
                if let Some((connection, outgoing)) =
                    self.take(posted, &inbox, &mut clients, &mut sessions, &mut frames).await
                {
                    deliveries.spawn(deliver(self.push.clone(), connection, outgoing));
                }
            }
            // Dropping a client side detaches its session, which waits to be resumed.
            clients.retain(|_, client| client.left.is_none_or(|at| at.elapsed() < LEFT_GRACE));
            for client in clients.values() {
                if let Some(held) = frames.get_mut(&client.session) {
                    held.flush(true).into_iter().for_each(|event| client.side.send(event));
                }
            }
            let live = sessions.iter().any(|s| self.voice.is_live(s));
            if !live && (began || opened.elapsed() >= START_WITHIN) {
                break;
            }
        }
        drop(clients);
        let _ = tokio::time::timeout(Duration::from_secs(5), deliveries.join_all()).await;
        for session in &sessions {
            if let Err(e) = self.table.delete(&session_key(session), None).await {
                tracing::warn!(cause = %e, "forgetting a voice session's inbox failed");
            }
        }
    }

    /// Takes one message; a session that started or resumed gives back its connection and
    /// its events, to deliver.
    async fn take(
        &self,
        posted: Posted,
        inbox: &ConnectionId,
        clients: &mut HashMap<ConnectionId, Client>,
        sessions: &mut HashSet<SessionId>,
        frames: &mut HashMap<SessionId, Frames>,
    ) -> Option<(ConnectionId, mpsc::Receiver<Outgoing>)> {
        match posted {
            Posted::Start { connection, tenant_id, agent_id, text } => {
                let start = match ClientEvent::parse(&text) {
                    Ok(ClientEvent::Start(start)) => start,
                    _ => {
                        let refusal = Refusal::new("session_start_expected", "send session.start");
                        refuse(self.push.as_ref(), &connection, refusal).await;
                        return None;
                    }
                };
                let resumed = start.session_id.is_some();
                match self.voice.connect(&tenant_id, &agent_id, *start).await {
                    Ok(call) => {
                        if !resumed {
                            let item = Item::new(session_key(&call.session_id))
                                .with("inbox", inbox.as_str())
                                .expiring_at(now_epoch() + INBOX_TTL_SECS);
                            if let Err(e) = self.table.put(item, None).await {
                                tracing::warn!(cause = %e, "recording a voice session's inbox failed");
                            }
                        }
                        sessions.insert(call.session_id.clone());
                        let client = Client { side: call.client, session: call.session_id, left: None };
                        clients.insert(connection.clone(), client);
                        return Some((connection, call.outgoing));
                    }
                    Err(e) => refuse(self.push.as_ref(), &connection, Refusal::new(e.code(), e.to_string())).await,
                }
            }
            Posted::Message { connection, text } => {
                let client = clients.get(&connection)?;
                let held = frames.entry(client.session.clone()).or_default();
                match ClientEvent::parse(&text) {
                    Ok(ClientEvent::Append { seq, audio }) => {
                        for event in held.offer(seq, ClientEvent::Append { seq, audio }) {
                            client.side.send(event);
                        }
                    }
                    Ok(event) => {
                        held.flush(false).into_iter().for_each(|frame| client.side.send(frame));
                        client.side.send(event);
                    }
                    Err(refusal) => client.side.refuse(refusal),
                }
            }
            Posted::Left { connection } => {
                if let Some(client) = clients.get_mut(&connection) {
                    client.left = Some(Instant::now());
                }
            }
        }
        None
    }
}

/// An `error` event (numbered 0: no session counts it), then the close.
pub async fn refuse(push: &dyn Push, connection: &ConnectionId, refusal: Refusal) {
    let _ = push.send(connection, &ServerEvent::error(refusal).sequenced(0)).await;
    let _ = push.close(connection).await;
}

/// Sends a session's events to its connection until the session lets it go.
async fn deliver(push: Arc<dyn Push>, connection: ConnectionId, mut outgoing: mpsc::Receiver<Outgoing>) {
    while let Some(out) = outgoing.recv().await {
        match out {
            Outgoing::Text(text) => {
                let Ok(text) = std::str::from_utf8(&text) else { continue };
                match push.send(&connection, text).await {
                    Ok(()) => {}
                    Err(PushError::Gone) => break,
                    Err(e) => tracing::warn!(cause = %e, "pushing a voice event failed"),
                }
            }
            Outgoing::Close { .. } => {
                let _ = push.close(&connection).await;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> ClientEvent {
        ClientEvent::Append { seq, audio: String::new() }
    }

    fn seqs(events: &[ClientEvent]) -> Vec<u64> {
        events.iter().map(|e| if let ClientEvent::Append { seq, .. } = e { *seq } else { 0 }).collect()
    }

    #[test]
    fn frames_that_overtook_each_other_are_put_back_in_order() {
        let mut frames = Frames::default();
        assert_eq!(seqs(&frames.offer(1, frame(1))), [1]);
        assert!(frames.offer(3, frame(3)).is_empty());
        assert!(frames.offer(4, frame(4)).is_empty());
        assert_eq!(seqs(&frames.offer(2, frame(2))), [2, 3, 4]);
        assert_eq!(seqs(&frames.offer(5, frame(5))), [5]);
        // A repeat goes through: the session says it is out of order.
        assert_eq!(seqs(&frames.offer(5, frame(5))), [5]);
    }

    #[tokio::test]
    async fn a_frame_that_never_comes_holds_the_rest_only_briefly() {
        let mut frames = Frames::default();
        assert!(frames.offer(2, frame(2)).is_empty());
        assert!(frames.flush(true).is_empty());
        tokio::time::sleep(REORDER).await;
        assert_eq!(seqs(&frames.flush(true)), [2]);
        assert_eq!(seqs(&frames.offer(3, frame(3))), [3]);
        // Another message sends what is held before it.
        assert!(frames.offer(5, frame(5)).is_empty());
        assert_eq!(seqs(&frames.flush(false)), [5]);
    }
}
