//! Voice sessions: a caller talks to an agent in real time. Each live session is one task
//! (a [`Call`]) that outlives its connection: the socket in front of it only carries
//! client events in and server events out, so a dropped connection can come back within
//! the resume window and carry on where it was, and nothing the agent said meanwhile is
//! lost.
//!
//! The hearing and the speaking are a [`VoiceEngine`]'s (see [`engine`]); the session
//! keeps what every engine shares: the events and their replay, the recording, what was
//! played. When the caller speaks over the agent, its audio stops, the client is told how
//! much it played, and the stored turn is cut to what the caller heard.

pub mod cascaded;
pub mod engine;
pub mod passthrough;
pub mod protocol;
pub mod recording;
pub mod relay;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::agents::{Agent, AgentError, AgentKind};
use crate::blob::{BlobKey, BlobStore};
use crate::conversations::{self as conv, ConversationError, Session, SessionStatus, Turn};
use crate::endpointing::EndpointingSettings;
use crate::ids::{AgentId, SessionId, TenantId};
use crate::speech::{Audio, SpeechError, resample};
use crate::turns::{Answered, TurnError, Turns};
pub use cascaded::Cascaded;
pub use engine::{EngineCall, EngineEvent, EngineSession, VoiceEngine};
pub use passthrough::PassThrough;
pub use protocol::{AudioFormat, ClientEvent, PROTOCOL, Refusal, ServerEvent, Start, StopCause, Timings};
use recording::Recording;

#[derive(Debug, Clone, Copy)]
pub struct VoiceLimits {
    /// How long a session whose connection dropped waits for its caller.
    pub resume_window: Duration,
    pub endpointing: EndpointingSettings,
    /// Server events queued for a connection before its client counts as not reading.
    pub outbox: usize,
    /// Bytes of server events kept for a client that reconnects (the newest).
    pub replay_bytes: usize,
    /// The socket pings this often; a client that answers nothing for twice as long is let go.
    pub keepalive: Duration,
    /// The agent's audio is sent in chunks this long.
    pub chunk: Duration,
    /// How often a session reads its stored state for what people do to it (a take-over,
    /// their messages).
    pub watch: Duration,
}

impl Default for VoiceLimits {
    fn default() -> Self {
        Self {
            resume_window: Duration::from_secs(90),
            endpointing: EndpointingSettings::default(),
            outbox: 512,
            replay_bytes: 8 * 1024 * 1024,
            keepalive: Duration::from_secs(10),
            chunk: Duration::from_millis(100),
            watch: Duration::from_secs(1),
        }
    }
}

/// What a connection hands the socket to send.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A JSON text frame (UTF-8), shared with the replay kept for a reconnect.
    Text(Bytes),
    /// The session is over: close with this code.
    Close { code: u16, reason: &'static str },
}

/// Why a connection could not start or resume a session.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(transparent)]
    Turn(#[from] TurnError),
    #[error("this server speaks {PROTOCOL}, not {0:?}")]
    Protocol(String),
    #[error(
        "audio must be {{\"encoding\": \"pcm16\", \"sample_rate\": 16000}} or {{\"encoding\": \"mulaw\", \"sample_rate\": 8000}}"
    )]
    AudioFormat,
    #[error("this agent takes text only; make it a voice agent (kind voice or both)")]
    NotVoice,
    #[error("the session cannot be resumed: it ended, its resume window passed, or the token is wrong")]
    NotResumable,
    #[error(transparent)]
    Speech(#[from] SpeechError),
}

impl VoiceError {
    /// The protocol's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Turn(TurnError::AgentPaused) => "agent_paused",
            Self::Turn(TurnError::AgentNotReady(_)) => "agent_not_ready",
            Self::Turn(TurnError::Agent(AgentError::NotFound)) => "not_found",
            Self::Turn(TurnError::Conversation(ConversationError::Invalid(_))) => "invalid_request",
            Self::Turn(_) => "temporarily_unavailable",
            Self::Protocol(_) => "unsupported_protocol",
            Self::AudioFormat => "unsupported_audio_format",
            Self::NotVoice => "not_a_voice_agent",
            Self::NotResumable => "session_not_resumable",
            Self::Speech(_) => "speech_unavailable",
        }
    }
}

enum Input {
    Client(ClientEvent),
    /// A client message that was not a client event.
    Invalid(Refusal),
    Attach {
        id: u64,
        outlet: mpsc::Sender<Outgoing>,
        last_event_seq: u64,
    },
    Detach {
        id: u64,
    },
    /// The stored session changed elsewhere (a person took it over or handed it back).
    Stored(Box<Session>),
    /// A person wrote to the caller.
    Operator(Turn),
    Shutdown,
}

/// A live session's entry: who may resume it, and its inbox.
struct Entry {
    tenant: TenantId,
    agent: AgentId,
    token: [u8; 32],
    input: mpsc::UnboundedSender<Input>,
    task: Option<JoinHandle<()>>,
}

struct Inner {
    turns: Turns,
    engine: Arc<dyn VoiceEngine>,
    blobs: Arc<dyn BlobStore>,
    limits: VoiceLimits,
    live: Mutex<HashMap<SessionId, Entry>>,
    connections: AtomicU64,
}

/// Every live voice session of this process.
#[derive(Clone)]
pub struct VoiceService {
    inner: Arc<Inner>,
}

/// A connection to a live session: events from the client go in through `client`, and
/// what to send comes out of `outgoing`. Dropping `client` detaches the session, which
/// then waits for its caller to resume it.
pub struct Connection {
    pub session_id: SessionId,
    pub client: ClientSide,
    pub outgoing: mpsc::Receiver<Outgoing>,
}

pub struct ClientSide {
    id: u64,
    input: mpsc::UnboundedSender<Input>,
}

impl ClientSide {
    pub fn send(&self, event: ClientEvent) {
        let _ = self.input.send(Input::Client(event));
    }

    /// Tells the client (in the session's numbering) that a message was refused.
    pub fn refuse(&self, refusal: Refusal) {
        let _ = self.input.send(Input::Invalid(refusal));
    }
}

impl Drop for ClientSide {
    fn drop(&mut self) {
        let _ = self.input.send(Input::Detach { id: self.id });
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Where a session's recording and transcript are kept, under its tenant's prefix.
pub fn recording_key(tenant: &TenantId, session: &SessionId) -> BlobKey {
    BlobKey::for_tenant(tenant, &format!("voice/{session}/recording.wav")).expect("ids make valid keys")
}

pub fn transcript_key(tenant: &TenantId, session: &SessionId) -> BlobKey {
    BlobKey::for_tenant(tenant, &format!("voice/{session}/transcript.json")).expect("ids make valid keys")
}

impl VoiceService {
    pub fn new(turns: Turns, engine: Arc<dyn VoiceEngine>, blobs: Arc<dyn BlobStore>, limits: VoiceLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                turns,
                engine,
                blobs,
                limits,
                live: Mutex::new(HashMap::new()),
                connections: AtomicU64::new(0),
            }),
        }
    }

    pub fn limits(&self) -> VoiceLimits {
        self.inner.limits
    }

    /// Live sessions in this process.
    pub fn live(&self) -> usize {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether `session` is live in this process.
    pub fn is_live(&self, session: &SessionId) -> bool {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).contains_key(session)
    }

    /// Starts a session of `agent` (or resumes one, when `start` names it) for a caller
    /// holding the agent's key.
    pub async fn connect(&self, tenant: &TenantId, agent: &AgentId, start: Start) -> Result<Connection, VoiceError> {
        let protocol = start.protocol.as_deref().unwrap_or(PROTOCOL);
        if protocol != PROTOCOL {
            return Err(VoiceError::Protocol(protocol.into()));
        }
        let (outlet, outgoing) = mpsc::channel(self.inner.limits.outbox);
        let id = self.inner.connections.fetch_add(1, Ordering::Relaxed);
        if let Some(raw) = &start.session_id {
            let input = self.resumable(tenant, agent, raw, start.resume_token.as_deref())?;
            let session_id = raw.parse().map_err(|_| VoiceError::NotResumable)?;
            input
                .send(Input::Attach { id, outlet, last_event_seq: start.last_event_seq.unwrap_or(0) })
                .map_err(|_| VoiceError::NotResumable)?;
            return Ok(Connection { session_id, client: ClientSide { id, input }, outgoing });
        }
        let format = start.audio.unwrap_or(AudioFormat::PCM16);
        if !format.supported() {
            return Err(VoiceError::AudioFormat);
        }
        let agent_record =
            crate::agents::load(self.inner.turns.table.as_ref(), tenant, agent).await.map_err(TurnError::from)?;
        if agent_record.kind == AgentKind::Text {
            return Err(VoiceError::NotVoice);
        }
        self.inner.engine.ready()?;
        let session = self.inner.turns.open(&agent_record, "voice", start.customer.unwrap_or_default()).await?;
        let call = EngineCall {
            agent: agent_record.clone(),
            session: session.clone(),
            format,
            limits: self.inner.limits,
            turns: self.inner.turns.clone(),
        };
        let engine = match self.inner.engine.open(call).await {
            Ok(engine) => engine,
            Err(e) => {
                // Nothing of the session is left open.
                let _ = self.inner.turns.end(tenant, agent, &session.session_id, "failed").await;
                return Err(e.into());
            }
        };
        let mut token = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut token);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
        let (input, inbox) = mpsc::unbounded_channel();
        let session_id = session.session_id.clone();
        let call = Call::new(self.clone(), agent_record, session.clone(), format, engine, inbox);
        let resume_token = token.clone();
        // The entry is in place before the call runs, so that it can always remove it.
        let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        live.insert(
            session_id.clone(),
            Entry {
                tenant: tenant.clone(),
                agent: agent.clone(),
                token: token_hash(&token),
                input: input.clone(),
                task: None,
            },
        );
        tokio::spawn(watch(self.inner.turns.clone(), session.clone(), input.clone(), self.inner.limits.watch));
        let task = tokio::spawn(call.run(resume_token, id, outlet));
        if let Some(entry) = live.get_mut(&session_id) {
            entry.task = Some(task);
        }
        drop(live);
        Ok(Connection { session_id, client: ClientSide { id, input }, outgoing })
    }

    fn resumable(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        session: &str,
        token: Option<&str>,
    ) -> Result<mpsc::UnboundedSender<Input>, VoiceError> {
        let live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        let entry = session.parse::<SessionId>().ok().and_then(|id| live.get(&id)).ok_or(VoiceError::NotResumable)?;
        let token_ok = token.is_some_and(|t| {
            let given = token_hash(t);
            // Compared in full whatever the first difference.
            given.iter().zip(entry.token.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if &entry.tenant != tenant || &entry.agent != agent || !token_ok {
            return Err(VoiceError::NotResumable);
        }
        Ok(entry.input.clone())
    }

    /// Ends every live session (reason `shutdown`), writing their recordings, and waits
    /// for them to finish.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
            live.values_mut()
                .filter_map(|entry| {
                    let _ = entry.input.send(Input::Shutdown);
                    entry.task.take()
                })
                .collect()
        };
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    fn forget(&self, session: &SessionId) {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).remove(session);
    }
}

/// What has been sent of the latest reply, for barge-in.
#[derive(Default)]
struct Playback {
    response: u64,
    /// When its first chunk went out.
    started: Option<Instant>,
    /// Where it starts in the recording (samples).
    recording_at: usize,
    sent_ms: u64,
    /// The end of the last chunk the client marked as played.
    marked_ms: u64,
    chunks: Vec<(u64, u64)>,
    /// Each sentence's start and end (ms into the reply) and text.
    sentences: Vec<(u64, u64, String)>,
    /// The agent's stored turn, once answered.
    turn: Option<u32>,
    /// Interrupted: what the caller heard, until the stored turn is cut.
    cut: Option<String>,
}

impl Playback {
    fn played_ms(&self, marks_seen: bool) -> u64 {
        if marks_seen {
            return self.marked_ms.min(self.sent_ms);
        }
        self.started.map_or(0, |s| (s.elapsed().as_millis() as u64).min(self.sent_ms))
    }

    fn heard(&self, played_ms: u64) -> String {
        let mut heard = Vec::new();
        for (start, end, text) in &self.sentences {
            if *end <= played_ms {
                heard.push(text.clone());
            } else if *start < played_ms {
                let words: Vec<&str> = text.split_whitespace().collect();
                let take = (words.len() as u64 * (played_ms - start) / (end - start).max(1)) as usize;
                if take > 0 {
                    heard.push(words[..take].join(" "));
                }
            }
        }
        heard.join(" ")
    }
}

/// Per-turn figures kept for the transcript.
#[derive(Serialize, Default)]
struct TurnFacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    speech_started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speech_stopped_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timings: Option<Timings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    played_ms: Option<u64>,
}

/// The reply being played or produced: its stored customer turn and its timings.
struct Reply {
    id: u64,
    customer_turn: u32,
    timings: Option<Timings>,
}

/// One live session.
struct Call {
    service: VoiceService,
    agent: Agent,
    session: Session,
    format: AudioFormat,
    engine: Box<dyn EngineSession>,
    inbox: mpsc::UnboundedReceiver<Input>,
    outlet: Option<(u64, mpsc::Sender<Outgoing>)>,
    detached_at: Option<Instant>,
    next_event: u64,
    kept: VecDeque<(u64, Bytes)>,
    kept_bytes: usize,
    last_frame: u64,
    reply: Option<Reply>,
    playback: Playback,
    marks_seen: bool,
    next_chunk: u64,
    recording: Recording,
    facts: HashMap<u32, TurnFacts>,
    ending: Option<&'static str>,
    /// When the dashboards were last told the caller's words so far.
    partial_told: Option<Instant>,
}

impl Call {
    fn new(
        service: VoiceService,
        agent: Agent,
        session: Session,
        format: AudioFormat,
        engine: Box<dyn EngineSession>,
        inbox: mpsc::UnboundedReceiver<Input>,
    ) -> Self {
        Self {
            service,
            agent,
            session,
            format,
            engine,
            inbox,
            outlet: None,
            detached_at: None,
            next_event: 1,
            kept: VecDeque::new(),
            kept_bytes: 0,
            last_frame: 0,
            reply: None,
            playback: Playback::default(),
            marks_seen: false,
            next_chunk: 1,
            recording: Recording::new(format.sample_rate),
            facts: HashMap::new(),
            ending: None,
            partial_told: None,
        }
    }

    fn limits(&self) -> VoiceLimits {
        self.service.inner.limits
    }

    fn samples_of(&self, ms: u64) -> usize {
        (ms * u64::from(self.format.sample_rate) / 1000) as usize
    }

    fn ms_of(&self, samples: usize) -> u64 {
        samples as u64 * 1000 / u64::from(self.format.sample_rate)
    }

    async fn run(mut self, resume_token: String, connection: u64, outlet: mpsc::Sender<Outgoing>) {
        self.outlet = Some((connection, outlet));
        self.created(resume_token, false);
        if let Some(greeting) = self.agent.greeting.as_deref().map(speakable).filter(|g| !g.is_empty()) {
            self.engine.greet(greeting);
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            tokio::select! {
                input = self.inbox.recv() => match input {
                    Some(Input::Client(event)) => self.client(event).await,
                    Some(Input::Invalid(refusal)) => self.emit(ServerEvent::error(refusal)),
                    Some(Input::Attach { id, outlet, last_event_seq }) => self.attach(id, outlet, last_event_seq),
                    Some(Input::Detach { id }) => self.detach(id),
                    Some(Input::Stored(session)) => self.stored(*session),
                    Some(Input::Operator(turn)) => self.operator(turn),
                    Some(Input::Shutdown) | None => break "shutdown",
                },
                event = self.engine.next() => self.engine_event(event).await,
                _ = tick.tick() => self.tick(),
            }
            if let Some(reason) = self.ending {
                self.engine.wind_down();
                if !self.engine.busy() {
                    break reason;
                }
            }
        };
        self.finish(reason).await;
    }

    /// Sends (or keeps, while detached) a server event.
    fn emit(&mut self, event: ServerEvent) {
        let seq = self.next_event;
        self.next_event += 1;
        let text = Bytes::from(event.sequenced(seq));
        self.kept_bytes += text.len();
        self.kept.push_back((seq, text.clone()));
        while self.kept_bytes > self.limits().replay_bytes
            && let Some((_, old)) = self.kept.pop_front()
        {
            self.kept_bytes -= old.len();
        }
        if let Some((_, outlet)) = &self.outlet
            && outlet.try_send(Outgoing::Text(text)).is_err()
        {
            // The client stopped reading (or its socket is gone): the connection is
            // dropped, and the session waits to be resumed.
            tracing::info!(session_id = %self.session.session_id, "a voice client stopped reading; detached");
            self.outlet = None;
            self.detached_at = Some(Instant::now());
        }
    }

    fn error(&mut self, code: &'static str, message: impl Into<String>) {
        self.emit(ServerEvent::error(Refusal::new(code, message)));
    }

    fn created(&mut self, resume_token: String, resumed: bool) {
        self.emit(ServerEvent::SessionCreated {
            session_id: self.session.session_id.to_string(),
            resume_token,
            protocol: PROTOCOL,
            resumed,
            input_audio: self.format,
            output_audio: self.format,
            resume_window_secs: self.limits().resume_window.as_secs(),
            voice: self.agent.voice.clone(),
        });
    }

    fn attach(&mut self, id: u64, outlet: mpsc::Sender<Outgoing>, last_event_seq: u64) {
        if let Some((_, old)) = self.outlet.take() {
            let _ = old.try_send(Outgoing::Close { code: 4409, reason: "resumed on another connection" });
        }
        self.detached_at = None;
        let missed: Vec<Bytes> =
            self.kept.iter().filter(|(seq, _)| *seq > last_event_seq).map(|(_, text)| text.clone()).collect();
        let lost = self.kept.front().is_some_and(|(first, _)| *first > last_event_seq + 1);
        for text in missed {
            if outlet.try_send(Outgoing::Text(text)).is_err() {
                break;
            }
        }
        self.outlet = Some((id, outlet));
        if lost {
            self.error("events_lost", "some events from before the reconnection are no longer kept");
        }
        // The token stays the same: the client already has it.
        self.created(String::new(), true);
    }

    fn detach(&mut self, id: u64) {
        if self.outlet.as_ref().is_some_and(|(current, _)| *current == id) {
            self.outlet = None;
            self.detached_at = Some(Instant::now());
            // Nothing more will come of the caller's words until they are back.
            self.engine.hold();
        }
    }

    /// The stored session, read elsewhere: only what people do is taken from it (what the
    /// call does itself, it knows first, and tells in its own order).
    fn stored(&mut self, session: Session) {
        let (was, now) = (self.session.status, session.status);
        let taken = now == SessionStatus::TakenOver && was != SessionStatus::TakenOver;
        let released = was == SessionStatus::TakenOver && now == SessionStatus::Active;
        if taken || released {
            self.session = session;
            self.emit(ServerEvent::SessionUpdated {
                status: now.as_str().into(),
                taken_over_by: self.session.taken_over_by.clone(),
            });
        }
    }

    fn operator(&mut self, turn: Turn) {
        if self.ending.is_some() {
            return;
        }
        self.emit(ServerEvent::OperatorMessage { turn: turn.turn, text: turn.text.clone(), author: turn.author });
        let spoken = speakable(&turn.text);
        if !spoken.is_empty() {
            self.engine.say(spoken);
        }
    }

    fn tick(&mut self) {
        if self.detached_at.is_some_and(|at| at.elapsed() >= self.limits().resume_window) {
            self.ending.get_or_insert("disconnected");
        }
        self.engine.tick();
    }

    async fn client(&mut self, event: ClientEvent) {
        if self.ending.is_some() {
            return;
        }
        match event {
            ClientEvent::Start(_) => self.error("session_already_started", "session.start comes once, first"),
            ClientEvent::Append { seq, audio } => self.audio(seq, &audio),
            ClientEvent::Commit => {
                if !self.engine.commit() {
                    self.error("input_audio_buffer_empty", "there is no speech to commit");
                }
            }
            ClientEvent::Text { text } => match conv::validate_message(&text) {
                Ok(text) => self.engine.text(text.to_owned()),
                Err(e) => self.error("invalid_text", e.to_string()),
            },
            ClientEvent::Mark { seq } => {
                self.marks_seen = true;
                if let Some((_, end)) = self.playback.chunks.iter().find(|(chunk, _)| *chunk == seq) {
                    self.playback.marked_ms = self.playback.marked_ms.max(*end);
                }
            }
            ClientEvent::End => {
                self.ending = Some("customer");
            }
        }
    }

    fn audio(&mut self, seq: u64, audio: &str) {
        if seq <= self.last_frame {
            return self.error(
                "frame_out_of_order",
                format!("frame {seq} came after frame {}; frames count up from 1, and it was dropped", self.last_frame),
            );
        }
        let Ok(bytes) = BASE64.decode(audio) else {
            return self.error("invalid_audio", format!("frame {seq}: `audio` is not base64"));
        };
        let duration = self.format.duration_ms(bytes.len());
        if !duration.is_some_and(|ms| protocol::FRAME_MS.contains(&ms)) {
            return self.error(
                "invalid_audio_frame",
                format!(
                    "frame {seq}: {} bytes is not whole samples of 20 to 100 ms of {:?} at {} Hz",
                    bytes.len(),
                    self.format.encoding,
                    self.format.sample_rate
                ),
            );
        }
        if seq > self.last_frame + 1 {
            self.error("frames_missing", format!("frames {} to {} never came", self.last_frame + 1, seq - 1));
        }
        self.last_frame = seq;
        let samples = self.format.decode(&bytes);
        self.recording.caller(&samples);
        self.engine.audio(&samples);
    }

    async fn engine_event(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::SpeechStarted { audio_ms } => {
                self.emit(ServerEvent::SpeechStarted { audio_ms });
                self.barge_in().await;
            }
            EngineEvent::SpeechStopped { audio_ms, reason } => {
                self.emit(ServerEvent::SpeechStopped { audio_ms, reason })
            }
            EngineEvent::Heard { text } => {
                if self.partial_told.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    self.partial_told = Some(Instant::now());
                    let event = crate::events::Event::TranscriptPartial {
                        agent_id: self.session.agent_id.clone(),
                        session_id: self.session.session_id.clone(),
                        text: text.clone(),
                        at: crate::time::now(),
                    };
                    self.service.inner.turns.announce(&self.session.tenant_id, event);
                }
                self.emit(ServerEvent::TranscriptionDelta { text })
            }
            EngineEvent::Transcribed { text } => self.emit(ServerEvent::TranscriptionCompleted { transcript: text }),
            EngineEvent::Accepted { response, customer_turn, speech } => {
                self.reply = Some(Reply { id: response, customer_turn, timings: None });
                if let Some((started, stopped)) = speech {
                    let facts = self.facts.entry(customer_turn).or_default();
                    facts.speech_started_ms = Some(started);
                    facts.speech_stopped_ms = Some(stopped);
                }
            }
            EngineEvent::Speech { response, text, audio, timings } => self.speech(response, text, audio, timings),
            EngineEvent::Interrupted => self.barge_in().await,
            EngineEvent::Answered { response, result } => self.answered(response, *result).await,
            EngineEvent::Error { code, message } => self.error(code, message),
            EngineEvent::Failed { message } => {
                self.error("engine_error", message);
                self.ending.get_or_insert("failed");
            }
        }
    }

    /// The caller spoke while the agent's audio was playing.
    async fn barge_in(&mut self) {
        let played = self.playback.played_ms(self.marks_seen);
        if self.playback.cut.is_some() || self.playback.sent_ms == 0 || played >= self.playback.sent_ms {
            return;
        }
        self.engine.barge_in(self.playback.response);
        let heard = self.playback.heard(played);
        self.recording.cut_agent(self.playback.recording_at + self.samples_of(played));
        self.emit(ServerEvent::ResponseInterrupted {
            turn: self.playback.turn,
            played_ms: played,
            heard: heard.clone(),
        });
        self.playback.cut = Some(heard);
        if let Some(turn) = self.playback.turn {
            self.facts.entry(turn).or_default().played_ms = Some(played);
            self.cut_stored(turn).await;
        }
    }

    async fn cut_stored(&mut self, turn: u32) {
        let Some(heard) = self.playback.cut.clone() else { return };
        if let Err(e) = self.service.inner.turns.cut(&self.session, turn, &heard).await {
            tracing::warn!(cause = %e, turn, "cutting an interrupted turn failed");
        }
    }

    /// Audio of a reply, sent in chunks; unless a later reply plays, or this one was
    /// interrupted.
    fn speech(&mut self, response: u64, text: String, audio: Audio, timings: Option<Timings>) {
        if response < self.playback.response || (response == self.playback.response && self.playback.cut.is_some()) {
            return;
        }
        if let (Some(reply), Some(timings)) = (self.reply.as_mut().filter(|r| r.id == response), timings) {
            reply.timings.get_or_insert(timings);
        }
        let audio = match resample(&audio, self.format.sample_rate) {
            Ok(audio) => audio,
            Err(e) => return tracing::warn!(cause = %e, "resampling the agent's voice failed"),
        };
        if self.playback.response != response {
            self.playback = Playback { response, ..Playback::default() };
        }
        if !text.is_empty() {
            self.emit(ServerEvent::ResponseTranscriptDelta { text: text.clone() });
        }
        let start_ms = self.playback.sent_ms;
        let chunk = self.samples_of(self.limits().chunk.as_millis() as u64).max(1);
        for piece in audio.samples.chunks(chunk) {
            let at = self.recording.agent(piece);
            if self.playback.started.is_none() {
                self.playback.started = Some(Instant::now());
                self.playback.recording_at = at;
            }
            let duration_ms = self.ms_of(piece.len());
            self.playback.sent_ms += duration_ms;
            let seq = self.next_chunk;
            self.next_chunk += 1;
            self.playback.chunks.push((seq, self.playback.sent_ms));
            let audio = BASE64.encode(self.format.encode(piece));
            self.emit(ServerEvent::ResponseAudio { seq, audio, duration_ms });
        }
        let end_ms = self.playback.sent_ms;
        match self.playback.sentences.last_mut() {
            // More audio of the words before.
            Some(last) if text.is_empty() => last.1 = end_ms,
            _ if text.is_empty() => {}
            _ => self.playback.sentences.push((start_ms, end_ms, text)),
        }
    }

    async fn answered(&mut self, response: u64, result: Result<Answered, TurnError>) {
        let reply = self.reply.take_if(|r| r.id == response);
        match result {
            Ok(Answered { session, turn, .. }) => {
                let was = self.session.status;
                self.session = session;
                let mut stored = turn;
                if self.playback.response == response {
                    self.playback.turn = Some(stored.turn);
                    if let Some(heard) = self.playback.cut.clone() {
                        self.facts.entry(stored.turn).or_default().played_ms =
                            Some(self.playback.played_ms(self.marks_seen));
                        self.cut_stored(stored.turn).await;
                        stored.text = heard;
                        stored.interrupted = true;
                    }
                }
                let timings = reply.as_ref().and_then(|r| r.timings).unwrap_or_default();
                self.facts.entry(stored.turn).or_default().timings = Some(timings);
                self.emit(ServerEvent::ResponseDone {
                    customer_turn: reply.map_or(stored.turn.saturating_sub(1), |r| r.customer_turn),
                    turn: stored.turn,
                    transcript: stored.text.clone(),
                    sources: stored.sources.clone(),
                    status: self.session.status.as_str().into(),
                    timings,
                });
                if self.session.status == SessionStatus::HandoffRequested && was != SessionStatus::HandoffRequested {
                    self.emit(ServerEvent::HandoffRequested {
                        reason: self.session.handoff_reason.clone().unwrap_or_default(),
                        summary: self.session.handoff_summary.clone(),
                    });
                }
                if self.session.status == SessionStatus::Ended {
                    self.ending = Some("agent");
                }
            }
            // A person has the call: the caller's turn is stored, the agent stays silent.
            Err(TurnError::TakenOver { session, .. }) => self.stored(*session),
            Err(e) => {
                tracing::warn!(cause = %e, "a voice turn failed");
                let code = match &e {
                    TurnError::Conversation(ConversationError::SessionEnded) => {
                        self.ending = Some("ended");
                        "session_ended"
                    }
                    TurnError::AgentPaused => "agent_paused",
                    TurnError::Runtime(_) => "agent_error",
                    _ => "turn_failed",
                };
                self.error(code, format!("the agent could not answer: {e}"));
            }
        }
    }

    /// Ends the session: stored as ended (unless the agent ended it), its recording and
    /// transcript written, the client told.
    async fn finish(&mut self, reason: &'static str) {
        self.engine.close().await;
        let inner = self.service.inner.clone();
        let (tenant, agent, id) =
            (self.session.tenant_id.clone(), self.session.agent_id.clone(), self.session.session_id.clone());
        if reason != "agent" && reason != "ended" {
            match inner.turns.end(&tenant, &agent, &id, reason).await {
                Ok(ended) => self.session = ended,
                Err(TurnError::Conversation(ConversationError::SessionEnded)) => {}
                Err(e) => tracing::warn!(cause = %e, "ending a voice session failed"),
            }
        }
        if let Err(e) = self.keep_recording().await {
            tracing::error!(cause = %format!("{e:#}"), session_id = %id, "writing a voice session's recording failed");
        }
        self.emit(ServerEvent::SessionEnded { reason: reason.into() });
        if let Some((_, outlet)) = self.outlet.take() {
            let _ = outlet.try_send(Outgoing::Close { code: 1000, reason: "session ended" });
        }
        self.service.forget(&id);
    }

    async fn keep_recording(&mut self) -> anyhow::Result<()> {
        let inner = &self.service.inner;
        let table = inner.turns.table.as_ref();
        let session =
            conv::get(table, &self.session.tenant_id, &self.session.agent_id, &self.session.session_id).await?;
        let turns = conv::transcript(table, &session).await?;
        let transcript = transcript_json(&session, &turns, &self.facts, self.format);
        let (tenant, id) = (&session.tenant_id, &session.session_id);
        inner.blobs.put(&recording_key(tenant, id), self.recording.wav(), "audio/wav").await?;
        inner
            .blobs
            .put(&transcript_key(tenant, id), serde_json::to_vec_pretty(&transcript)?, "application/json")
            .await?;
        Ok(())
    }
}

/// Reads the stored session every `every` for what people do to it elsewhere, and tells
/// the call: a change of status, and each person's message, once. Ends with the call.
async fn watch(turns: Turns, mut known: Session, call: mpsc::UnboundedSender<Input>, every: Duration) {
    let table = turns.table.as_ref();
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    while !call.is_closed() && known.status != SessionStatus::Ended {
        interval.tick().await;
        let stored = match conv::of_tenant(table, &known.tenant_id, &known.session_id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::debug!(cause = %e, "reading the session for people's changes failed");
                continue;
            }
        };
        if stored.turns > known.turns {
            match conv::turns_after(table, &known, known.turns, 50).await {
                Ok(new) => {
                    for turn in new.into_iter().filter(|t| t.role == conv::Role::Operator) {
                        let _ = call.send(Input::Operator(turn));
                    }
                }
                Err(e) => {
                    tracing::debug!(cause = %e, "reading people's messages failed");
                    continue;
                }
            }
        }
        if stored.status != known.status {
            let _ = call.send(Input::Stored(Box::new(stored.clone())));
        }
        known = stored;
    }
}

/// The session's transcript as kept beside its recording.
fn transcript_json(
    session: &Session,
    turns: &[Turn],
    facts: &HashMap<u32, TurnFacts>,
    format: AudioFormat,
) -> serde_json::Value {
    let turns: Vec<serde_json::Value> = turns
        .iter()
        .map(|turn| {
            let mut value = serde_json::to_value(turn).unwrap_or_default();
            if let (Some(facts), serde_json::Value::Object(map)) = (facts.get(&turn.turn), &mut value)
                && let Ok(serde_json::Value::Object(more)) = serde_json::to_value(facts)
            {
                map.extend(more);
            }
            value
        })
        .collect();
    serde_json::json!({
        "session_id": session.session_id,
        "agent_id": session.agent_id,
        "channel": session.channel,
        "customer": session.customer,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "end_reason": session.end_reason,
        "status": session.status.as_str(),
        "handoff_reason": session.handoff_reason,
        "recording": {
            "format": "wav",
            "sample_rate": format.sample_rate,
            "channels": ["caller", "agent"],
        },
        "turns": turns,
    })
}

/// A sentence as it is said: without the marks of written text (Markdown emphasis,
/// headings, bullets, code ticks) and without citations (`(source: faq.md, Hours)`),
/// which the transcript keeps and the caller need not hear.
pub fn speakable(sentence: &str) -> String {
    let mut uncited = sentence.to_owned();
    while let Some(at) = uncited.find("(source").or_else(|| uncited.find("(Source")) {
        let end = uncited[at..].find(')').map_or(uncited.len(), |close| at + close + 1);
        uncited.replace_range(at..end, "");
    }
    let cleaned: String = uncited.chars().filter(|c| !matches!(c, '*' | '_' | '`' | '#')).collect();
    cleaned
        .lines()
        .map(|line| line.trim().trim_start_matches(['-', '•']).trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" .", ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_spoken_leaves_out_the_marks_of_written_text() {
        assert_eq!(speakable("**Hours:**\n- Mon to Fri"), "Hours: Mon to Fri");
        assert_eq!(speakable("We open at 9am (source: faq.md, Opening hours)."), "We open at 9am.");
    }

    #[test]
    fn what_the_caller_heard_is_cut_where_the_audio_stopped() {
        let playback = Playback {
            sent_ms: 4_000,
            sentences: vec![
                (0, 2_000, "We are open until six.".into()),
                (2_000, 4_000, "On Saturdays we close at noon.".into()),
            ],
            ..Playback::default()
        };
        assert_eq!(playback.heard(1_000), "We are");
        assert_eq!(playback.heard(3_000), "We are open until six. On Saturdays we");
        assert_eq!(playback.heard(4_000), "We are open until six. On Saturdays we close at noon.");
    }
}
