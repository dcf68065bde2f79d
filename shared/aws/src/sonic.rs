//! Amazon Nova 2 Sonic as a [`VoiceEngine`]: speech to speech through Bedrock's
//! `InvokeModelWithBidirectionalStream`. Sonic hears the caller (16 kHz PCM in), decides
//! when their turn is over, and speaks (24 kHz PCM out); what to say is the deployed
//! agent's: Sonic is given one tool, `ask_agent`, and told to call it for every request and
//! to say its answer. The agent's turn goes through [`Turns`] like a typed message, so
//! history, handoff, details and sources are the same as on every other channel.
//!
//! A Sonic stream lasts at most 8 minutes. Before that (at `renew_after`, between the
//! agent's replies) a new stream is opened with the conversation so far as its history,
//! the caller's audio moves to it, and the old one is closed. Barge-in is Sonic's: a
//! content block that ends with the stop reason `INTERRUPTED` stops the reply.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::InvokeModelWithBidirectionalStreamInputError;
use aws_sdk_bedrockruntime::types::{
    BidirectionalInputPayloadPart, InvokeModelWithBidirectionalStreamInput, InvokeModelWithBidirectionalStreamOutput,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::channel::mpsc as stream_channel;
use oratio_core::conversations::{self as conv, Role};
use oratio_core::speech::{self, Audio, SpeechError};
use oratio_core::turns::{Answered, CustomerMessage, TurnError};
use oratio_core::voice::{EngineCall, EngineEvent, EngineSession, Timings, VoiceEngine, speakable};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Sonic's input and output rates.
pub const INPUT_RATE: u32 = 16_000;
pub const OUTPUT_RATE: u32 = 24_000;

/// The tool through which Sonic asks the agent.
pub const AGENT_TOOL: &str = "ask_agent";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SonicSettings {
    /// `amazon.nova-2-sonic-v1:0`, or an inference profile.
    pub model_id: String,
    /// A stream is renewed after this long, between replies (Sonic's limit is 8 minutes).
    pub renew_after: Duration,
    /// And at the latest after this long, even mid-reply.
    pub renew_by: Duration,
    /// The history given to a renewed stream: at most this many characters, the newest.
    pub history_chars: usize,
}

impl Default for SonicSettings {
    fn default() -> Self {
        Self {
            model_id: "amazon.nova-2-sonic-v1:0".into(),
            renew_after: Duration::from_secs(7 * 60),
            renew_by: Duration::from_secs(7 * 60 + 40),
            history_chars: 40_000,
        }
    }
}

/// A Bedrock runtime client for Sonic. `ca_pem` is a certificate authority to trust
/// besides the system's (a TLS-inspecting proxy; the local server the tests play Sonic
/// with), as `AWS_CA_BUNDLE` is to the AWS CLI.
pub fn client(config: &aws_config::SdkConfig, ca_pem: Option<Vec<u8>>) -> anyhow::Result<Client> {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let mut builder = aws_sdk_bedrockruntime::config::Builder::from(config);
    if let Some(pem) = ca_pem {
        let trust = TrustStore::empty().with_native_roots(true).with_pem_certificate(pem);
        let context = TlsContext::builder().with_trust_store(trust).build()?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https();
        builder = builder.http_client(http);
    }
    Ok(Client::from_conf(builder.build()))
}

pub struct NovaSonic {
    client: Client,
    settings: SonicSettings,
}

impl NovaSonic {
    pub fn new(client: Client, settings: SonicSettings) -> Self {
        Self { client, settings }
    }
}

#[async_trait]
impl VoiceEngine for NovaSonic {
    async fn open(&self, call: EngineCall) -> Result<Box<dyn EngineSession>, SpeechError> {
        let (commands, inbox) = mpsc::unbounded_channel();
        let (events, outbox) = mpsc::unbounded_channel();
        let driver = Driver {
            client: self.client.clone(),
            settings: self.settings.clone(),
            call,
            events,
            answers: mpsc::unbounded_channel(),
            replies: 0,
            asking: 0,
            said_at: None,
            first_audio: None,
            spoken: None,
            saying: None,
            speaking: None,
        };
        let stream = driver.connect().await;
        let task = tokio::spawn(driver.run(stream, inbox));
        Ok(Box::new(SonicSession { commands, events: outbox, asking: 0, task: Some(task) }))
    }
}

enum Command {
    Audio(Vec<i16>),
    Text(String),
    Close,
}

struct SonicSession {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    /// The agent is being asked (counted from the driver's reports).
    asking: i64,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// What the driver reports: an event for the session, or its count of agent calls.
enum Event {
    Engine(EngineEvent),
    Asking(i64),
}

#[async_trait]
impl EngineSession for SonicSession {
    fn audio(&mut self, samples: &[i16]) {
        let _ = self.commands.send(Command::Audio(samples.to_vec()));
    }

    /// Sonic decides when the caller's turn is over; a commit changes nothing.
    fn commit(&mut self) -> bool {
        true
    }

    fn text(&mut self, text: String) {
        let _ = self.commands.send(Command::Text(text));
    }

    /// Sonic hears barge-in itself and stops its reply; nothing to do here.
    fn barge_in(&mut self, _response: u64) {}

    fn wind_down(&mut self) {}

    fn busy(&self) -> bool {
        self.asking > 0
    }

    async fn next(&mut self) -> EngineEvent {
        loop {
            match self.events.recv().await {
                Some(Event::Engine(event)) => return event,
                Some(Event::Asking(change)) => self.asking += change,
                None => std::future::pending().await,
            }
        }
    }

    async fn close(&mut self) {
        let _ = self.commands.send(Command::Close);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// One Sonic stream: where its input goes, its output, and its names.
struct Stream {
    input: stream_channel::UnboundedSender<Result<InvokeModelWithBidirectionalStreamInput, InputError>>,
    output: Output,
    prompt: String,
    audio: String,
    opened: Instant,
}

type InputError = InvokeModelWithBidirectionalStreamInputError;

/// A stream's output. The SDK's `send()` returns only once Bedrock's first event has
/// arrived (it reads the event stream's optional initial response: smithy-rs#4435), and
/// Sonic says nothing before it has heard something; so the request runs in its own task
/// while the caller's audio already flows into the input.
enum Output {
    Opening(tokio::task::JoinHandle<Result<Events, String>>),
    Open(Box<Events>),
}

type Events = aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
    InvokeModelWithBidirectionalStreamOutput,
    aws_sdk_bedrockruntime::types::error::InvokeModelWithBidirectionalStreamOutputError,
>;

/// What a stream's output gave.
enum Received {
    Event(Value),
    Ended(Option<String>),
}

impl Stream {
    /// Sonic's next event; cancel-safe.
    async fn next(&mut self) -> Received {
        loop {
            match &mut self.output {
                Output::Opening(request) => match request.await {
                    Ok(Ok(events)) => self.output = Output::Open(Box::new(events)),
                    Ok(Err(cause)) => return Received::Ended(Some(cause)),
                    Err(e) => return Received::Ended(Some(e.to_string())),
                },
                Output::Open(events) => {
                    return match events.recv().await {
                        Ok(Some(InvokeModelWithBidirectionalStreamOutput::Chunk(part))) => {
                            match part.bytes.and_then(|b| serde_json::from_slice::<Value>(b.as_ref()).ok()) {
                                Some(event) => Received::Event(event),
                                None => continue,
                            }
                        }
                        Ok(Some(_)) => continue,
                        Ok(None) => Received::Ended(None),
                        Err(e) => {
                            Received::Ended(Some(aws_sdk_bedrockruntime::error::DisplayErrorContext(e).to_string()))
                        }
                    };
                }
            }
        }
    }

    fn send(&self, event: Value) {
        let bytes = Blob::new(serde_json::to_vec(&event).unwrap_or_default());
        let chunk = BidirectionalInputPayloadPart::builder().bytes(bytes).build();
        let _ = self.input.unbounded_send(Ok(InvokeModelWithBidirectionalStreamInput::Chunk(chunk)));
    }

    fn text(&self, role: &str, interactive: bool, text: &str) {
        let content = ulid::Ulid::new().to_string();
        self.send(json!({"event": {"contentStart": {
            "promptName": self.prompt, "contentName": content, "type": "TEXT", "interactive": interactive,
            "role": role, "textInputConfiguration": {"mediaType": "text/plain"}}}}));
        self.send(
            json!({"event": {"textInput": {"promptName": self.prompt, "contentName": content, "content": text}}}),
        );
        self.send(json!({"event": {"contentEnd": {"promptName": self.prompt, "contentName": content}}}));
    }

    fn audio(&self, samples: &[i16]) {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.send(json!({"event": {"audioInput": {
            "promptName": self.prompt, "contentName": self.audio, "content": BASE64.encode(bytes)}}}));
    }

    fn tool_result(&self, tool_use_id: &str, result: &Value) {
        let content = ulid::Ulid::new().to_string();
        self.send(json!({"event": {"contentStart": {
            "promptName": self.prompt, "contentName": content, "interactive": false, "type": "TOOL", "role": "TOOL",
            "toolResultInputConfiguration": {"toolUseId": tool_use_id, "type": "TEXT",
                "textInputConfiguration": {"mediaType": "text/plain"}}}}}));
        self.send(json!({"event": {"toolResult": {
            "promptName": self.prompt, "contentName": content, "content": result.to_string()}}}));
        self.send(json!({"event": {"contentEnd": {"promptName": self.prompt, "contentName": content}}}));
    }

    /// Closes the stream in Sonic's order (the audio, the prompt, the session) and lets
    /// Sonic finish: dropping the output before it ends would reset the HTTP/2 stream and
    /// lose the closing events.
    async fn close(mut self) {
        self.send(json!({"event": {"contentEnd": {"promptName": self.prompt, "contentName": self.audio}}}));
        self.send(json!({"event": {"promptEnd": {"promptName": self.prompt}}}));
        self.send(json!({"event": {"sessionEnd": {}}}));
        self.input.close_channel();
        let _ = tokio::time::timeout(CLOSE_WITHIN, async { while let Received::Event(_) = self.next().await {} }).await;
    }
}

/// An answer of the agent, for Sonic to say; `agent_ms` after it was asked. The turn's
/// outcome (`answered`) is reported once Sonic has finished saying it.
struct AgentAnswer {
    tool_use_id: String,
    result: Value,
    agent_ms: u64,
    answered: Option<(u64, Outcome)>,
}

/// A turn's outcome, as the voice call takes it.
type Outcome = Box<Result<Answered, TurnError>>;

/// How long a closed stream is given to end.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// How long an answer waits for Sonic to start saying it before the turn is reported done.
const SAY_WITHIN: Duration = Duration::from_secs(20);

/// Runs a session's Sonic streams.
struct Driver {
    client: Client,
    settings: SonicSettings,
    call: EngineCall,
    events: mpsc::UnboundedSender<Event>,
    answers: (mpsc::UnboundedSender<AgentAnswer>, mpsc::UnboundedReceiver<AgentAnswer>),
    replies: u64,
    /// Agent calls running.
    asking: u32,
    /// When the caller's last words were heard (the timings' start).
    said_at: Option<Instant>,
    /// The reply's first audio is still to come: when the agent's answer went to Sonic,
    /// and how long the agent took.
    first_audio: Option<(Instant, u64)>,
    /// Words Sonic is about to say (its speculative text), for the audio that follows.
    spoken: Option<String>,
    /// The agent's turn whose answer Sonic is saying: reported when its audio ends.
    saying: Option<(u64, Outcome, Instant)>,
    /// Sonic's audio content now being spoken.
    speaking: Option<String>,
}

/// What the caller says or the agent said, for a renewed stream.
fn history_of(turns: &[conv::Turn], limit: usize) -> Vec<(&'static str, String)> {
    let mut kept = VecDeque::new();
    let mut size = 0;
    for turn in turns.iter().rev().filter(|t| t.role != Role::System) {
        size += turn.text.len();
        if size > limit {
            break;
        }
        let role = if turn.role == Role::Customer { "USER" } else { "ASSISTANT" };
        kept.push_front((role, turn.text.clone()));
    }
    // Sonic's history starts with the user.
    while kept.front().is_some_and(|(role, _)| *role != "USER") {
        kept.pop_front();
    }
    kept.into()
}

impl Driver {
    fn report(&self, event: EngineEvent) {
        let _ = self.events.send(Event::Engine(event));
    }

    /// Opens a stream and sends its opening: the session, the prompt (voice, tools), the
    /// system prompt, the conversation so far, and the start of the caller's audio.
    async fn connect(&self) -> Stream {
        let (input, rx) = stream_channel::unbounded();
        let request =
            self.client.invoke_model_with_bidirectional_stream().model_id(&self.settings.model_id).body(rx.into());
        let opening = tokio::spawn(async move {
            request.send().await.map(|output| output.body).map_err(|e| {
                format!("opening a Nova Sonic stream: {}", aws_sdk_bedrockruntime::error::DisplayErrorContext(e))
            })
        });
        let stream = Stream {
            input,
            output: Output::Opening(opening),
            prompt: ulid::Ulid::new().to_string(),
            audio: ulid::Ulid::new().to_string(),
            opened: Instant::now(),
        };
        let agent = &self.call.agent;
        stream.send(json!({"event": {"sessionStart": {
            "inferenceConfiguration": {"maxTokens": 1024, "topP": 0.9, "temperature": 0.7}}}}));
        stream.send(json!({"event": {"promptStart": {
            "promptName": stream.prompt,
            "textOutputConfiguration": {"mediaType": "text/plain"},
            "audioOutputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": OUTPUT_RATE,
                "sampleSizeBits": 16, "channelCount": 1, "voiceId": agent.voice.voice,
                "encoding": "base64", "audioType": "SPEECH"},
            "toolUseOutputConfiguration": {"mediaType": "application/json"},
            "toolConfiguration": {"tools": [{"toolSpec": {
                "name": AGENT_TOOL,
                "description": format!("Asks {}, the business's assistant, what to say to the caller. Call it for every question or request of the caller.", agent.name),
                "inputSchema": {"json": json!({"type": "object", "properties": {"request": {
                    "type": "string", "description": "What the caller asked or said, in their words"}},
                    "required": ["request"]}).to_string()}}}]}}}}));
        stream.text("SYSTEM", false, &system_prompt(&self.call));
        let table = self.call.turns.table.as_ref();
        let session = &self.call.session;
        let turns = match conv::get(table, &session.tenant_id, &session.agent_id, &session.session_id).await {
            Ok(session) => conv::transcript(table, &session).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for (role, text) in history_of(&turns, self.settings.history_chars) {
            stream.text(role, false, &text);
        }
        stream.send(json!({"event": {"contentStart": {
            "promptName": stream.prompt, "contentName": stream.audio, "type": "AUDIO", "interactive": true,
            "role": "USER", "audioInputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": INPUT_RATE,
                "sampleSizeBits": 16, "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"}}}}));
        stream
    }

    async fn run(mut self, mut stream: Stream, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut failed_at: Option<Instant> = None;
        loop {
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(Command::Audio(samples)) => stream.audio(&to_input_rate(samples, self.call.format.sample_rate)),
                    Some(Command::Text(text)) => stream.text("USER", true, &text),
                    Some(Command::Close) | None => break,
                },
                received = stream.next() => match received {
                    Received::Event(event) => self.output(&event),
                    Received::Ended(cause) => {
                        if let Some(cause) = &cause {
                            tracing::warn!(%cause, "a Nova Sonic stream failed");
                        }
                        // The stream ended before the session: a new one goes on from here,
                        // unless the last one ended just now too.
                        if failed_at.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
                            let message = match cause {
                                Some(cause) => format!("the voice engine stopped: {cause}"),
                                None => "the voice engine keeps ending the call".into(),
                            };
                            self.report(EngineEvent::Failed { message });
                            break;
                        }
                        failed_at = Some(Instant::now());
                        stream = self.connect().await;
                    }
                },
                Some(answer) = self.answers.1.recv() => {
                    self.first_audio = Some((Instant::now(), answer.agent_ms));
                    stream.tool_result(&answer.tool_use_id, &answer.result);
                    if let Some((response, result)) = answer.answered {
                        self.asking = self.asking.saturating_sub(1);
                        self.said();
                        self.saying = Some((response, result, Instant::now()));
                    }
                }
                _ = tick.tick() => {
                    if self.speaking.is_none() && self.saying.as_ref().is_some_and(|(_, _, at)| at.elapsed() > SAY_WITHIN) {
                        self.said();
                    }
                    let age = stream.opened.elapsed();
                    if (age >= self.settings.renew_after && self.asking == 0 && self.first_audio.is_none())
                        || age >= self.settings.renew_by
                    {
                        let renewed = self.connect().await;
                        tracing::info!(session_id = %self.call.session.session_id, "renewed the Nova Sonic stream");
                        tokio::spawn(std::mem::replace(&mut stream, renewed).close());
                    }
                }
            }
        }
        self.said();
        stream.close().await;
    }

    /// The turn Sonic was saying is over.
    fn said(&mut self) {
        if let Some((response, result, _)) = self.saying.take() {
            self.report(EngineEvent::Answered { response, result });
        }
    }

    /// One event from Sonic.
    fn output(&mut self, event: &Value) {
        let Some((name, body)) = event.get("event").and_then(Value::as_object).and_then(|e| e.iter().next()) else {
            return;
        };
        let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or_default();
        match name.as_str() {
            "contentStart" => {
                let stage = body
                    .get("additionalModelFields")
                    .and_then(Value::as_str)
                    .and_then(|f| serde_json::from_str::<Value>(f).ok())
                    .and_then(|f| f.get("generationStage").and_then(Value::as_str).map(str::to_owned));
                if text("role") == "ASSISTANT" && text("type") == "TEXT" && stage.as_deref() == Some("SPECULATIVE") {
                    self.spoken = Some(String::new());
                }
                if text("role") == "ASSISTANT" && text("type") == "AUDIO" {
                    self.speaking = Some(text("contentId").to_owned());
                }
            }
            "textOutput" => {
                let content = text("content");
                if content.contains("\"interrupted\"") {
                    return;
                }
                match text("role") {
                    "USER" => {
                        self.said_at = Some(Instant::now());
                        self.report(EngineEvent::Transcribed { text: content.trim().to_owned() });
                    }
                    "ASSISTANT" => {
                        if let Some(spoken) = &mut self.spoken {
                            spoken.push_str(content);
                        }
                    }
                    _ => {}
                }
            }
            "audioOutput" => {
                let Ok(bytes) = BASE64.decode(text("content")) else { return };
                let audio = Audio::from_le_bytes(OUTPUT_RATE, &bytes);
                let timings = self.first_audio.take().map(|(answered, agent_ms)| {
                    let total_ms = self.said_at.map_or(0, |at| at.elapsed().as_millis() as u64);
                    let synthesis_ms = answered.elapsed().as_millis() as u64;
                    Timings {
                        endpointing_ms: 0,
                        recognition_ms: 0,
                        agent_ms,
                        synthesis_ms,
                        platform_ms: total_ms.saturating_sub(agent_ms + synthesis_ms),
                        total_ms,
                    }
                });
                let text = self.spoken.take().map(|s| speakable(&s)).unwrap_or_default();
                self.report(EngineEvent::Speech { response: self.replies, text, audio, timings });
            }
            "toolUse" => {
                let input: Value = serde_json::from_str(text("content")).unwrap_or_default();
                let request = input.get("request").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
                self.ask(text("toolUseId").to_owned(), text("toolName").to_owned(), request);
            }
            "contentEnd" => {
                if text("stopReason") == "INTERRUPTED" {
                    self.spoken = None;
                    self.report(EngineEvent::Interrupted);
                }
                if self.speaking.as_deref().is_some_and(|id| id == text("contentId")) {
                    self.speaking = None;
                    self.said();
                }
            }
            _ => {}
        }
    }

    /// Sonic wants the agent: the caller's request goes to it as a turn, and its answer
    /// back to Sonic to say.
    fn ask(&mut self, tool_use_id: String, tool: String, request: String) {
        let answers = self.answers.0.clone();
        if tool != AGENT_TOOL || request.is_empty() {
            let _ = answers.send(AgentAnswer {
                tool_use_id,
                result: json!({"error": format!("call {AGENT_TOOL} with the caller's request")}),
                agent_ms: 0,
                answered: None,
            });
            return;
        }
        self.replies += 1;
        self.asking += 1;
        let _ = self.events.send(Event::Asking(1));
        let (response, turns, events) = (self.replies, self.call.turns.clone(), self.events.clone());
        let session = self.call.session.clone();
        let asked = Instant::now();
        tokio::spawn(async move {
            let report = |event| {
                let _ = events.send(Event::Engine(event));
            };
            let message = CustomerMessage {
                message: request,
                session_id: Some(session.session_id.clone()),
                customer: None,
                channel: "voice",
            };
            let result = match turns.accept(&session.tenant_id, &session.agent_id, message).await {
                Ok(accepted) => {
                    report(EngineEvent::Accepted { response, customer_turn: accepted.turn.turn, speech: None });
                    turns.answer(&accepted, None).await
                }
                Err(e) => Err(e),
            };
            let said = match &result {
                Ok(answered) => json!({"answer": speakable(&answered.turn.text)}),
                Err(TurnError::AgentPaused) => json!({"error": "the assistant is paused; apologise and end the call"}),
                Err(_) => json!({"error": "the assistant could not answer; apologise and offer to try again"}),
            };
            let agent_ms = asked.elapsed().as_millis() as u64;
            let answered = Some((response, Box::new(result)));
            let _ = answers.send(AgentAnswer { tool_use_id, result: said, agent_ms, answered });
            let _ = events.send(Event::Asking(-1));
        });
    }
}

/// Sonic's instructions: the agent decides, Sonic speaks.
fn system_prompt(call: &EngineCall) -> String {
    format!(
        "You are the voice of {name}, speaking with a caller on the phone. You do not know the business's \
         facts yourself: for every question or request of the caller, call the {AGENT_TOOL} tool with their words, \
         then say its answer faithfully, in short natural spoken sentences, without adding facts of your own. \
         If the tool returns an error, say so kindly. Speak {language}.",
        name = call.agent.name,
        language = call.agent.voice.language,
    )
}

/// The caller's audio at Sonic's 16 kHz.
fn to_input_rate(samples: Vec<i16>, rate: u32) -> Vec<i16> {
    if rate == INPUT_RATE {
        return samples;
    }
    speech::resample(&Audio::new(rate, samples), INPUT_RATE).map(|a| a.samples).unwrap_or_default()
}
