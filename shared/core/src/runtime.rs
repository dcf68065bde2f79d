//! The `AgentRuntime` port: where generated agents run (Bedrock AgentCore Runtime in AWS; a
//! supervised local Python process on one machine), behind AgentCore's contract:
//! `GET /ping` and `POST /invocations` with JSON.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conversations::Customer;
use crate::ids::{AgentId, TenantId};
use crate::knowledge::Passage;
use crate::llm::{Speaker, TextSink};

/// The `oratio_agent` package every generated agent imports; runtimes ship it beside the code.
pub const ORATIO_AGENT_PACKAGE: &str = include_str!("../../agent_runtime/oratio_agent/__init__.py");

/// The header AgentCore carries a conversation's runtime session id in.
pub const SESSION_HEADER: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id";

/// Which agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentRef {
    pub tenant: TenantId,
    pub agent: AgentId,
}

/// An agent's code: its files by relative path, and the file that starts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCode {
    pub version: String,
    pub entrypoint: String,
    pub files: BTreeMap<String, String>,
}

impl AgentCode {
    /// Paths are relative, `/`-separated, without `..`: they unpack safely anywhere.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let safe = |path: &str| {
            !path.is_empty()
                && !path.starts_with('/')
                && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'))
        };
        if !self.version.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || self.version.is_empty() {
            return Err(RuntimeError::Invalid("a version is letters, digits, - and _".into()));
        }
        if let Some(bad) = self.files.keys().find(|p| !safe(p)) {
            return Err(RuntimeError::Invalid(format!("unsafe file path {bad:?}")));
        }
        if !self.files.contains_key(&self.entrypoint) {
            return Err(RuntimeError::Invalid(format!("the entrypoint {} is not among the files", self.entrypoint)));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RuntimeStatus {
    /// Deployed, not answering `/ping` yet.
    Starting,
    Ready {
        version: String,
    },
    /// `reason` is for the tenant.
    Failed {
        reason: String,
    },
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Invalid(String),
    #[error("the agent is not running")]
    NotRunning,
    #[error("the agent did not answer in time")]
    Timeout,
    /// The agent answered with an error of its own.
    #[error("the agent failed: {0}")]
    AgentFailed(String),
    #[error("the agent runtime is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the agent runtime failed")]
    Backend(#[source] anyhow::Error),
}

/// An earlier turn of the conversation, as the agent is given it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTurn {
    pub role: Speaker,
    pub text: String,
}

/// The agent's configuration that applies to every new message without a redeploy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// The tenant's handoff conditions, beside the SOP's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handoff_conditions: Vec<String>,
    /// The tenant's tools this agent may call (`/v1/runtime/tools` calls them), beside its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<crate::llm::ToolSpec>,
}

/// One message for an agent (the body of `POST /invocations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub message: String,
    #[serde(default)]
    pub history: Vec<HistoryTurn>,
    pub session_id: String,
    #[serde(default)]
    pub customer: Customer,
    /// What the customer has given so far in this session (saved with `save_details`).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    #[serde(default)]
    pub config: LiveConfig,
}

/// The agent hands the conversation to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub reason: String,
    /// What the person taking over should know, in the agent's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// One tool the agent called while answering, as recorded on the turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolTrace {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
    #[serde(default)]
    pub result: Value,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

/// The most of a tool's arguments or result a turn keeps, in bytes of JSON.
pub const TRACE_VALUE_BYTES: usize = 4096;

impl ToolTrace {
    /// The trace with its arguments and result cut to [`TRACE_VALUE_BYTES`] each (a
    /// value cut short becomes `{"truncated": "<the start of its JSON>…"}`).
    pub fn bounded(mut self) -> Self {
        fn bound(value: Value) -> Value {
            let text = value.to_string();
            if text.len() <= TRACE_VALUE_BYTES {
                return value;
            }
            let cut = (0..=TRACE_VALUE_BYTES).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            serde_json::json!({"truncated": format!("{}…", &text[..cut])})
        }
        self.arguments = bound(self.arguments);
        self.result = bound(self.result);
        self
    }
}

/// What answering cost, and which model answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: Option<u32>,
    #[serde(default)]
    pub output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback_used: bool,
}

/// An agent's answer to one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "AnswerWire")]
pub struct AgentAnswer {
    pub reply: String,
    pub sources: Vec<Passage>,
    pub handoff: Option<Handoff>,
    /// Details the customer gave in this turn (merged into the session's).
    pub details: BTreeMap<String, String>,
    pub tool_calls: Vec<ToolTrace>,
    /// Set when the agent ended the conversation, with its reason.
    pub end: Option<String>,
    pub usage: Usage,
}

/// An answer as agents write it; older agents send `handoff: {requested, reason}` and
/// fewer fields.
#[derive(Deserialize)]
struct AnswerWire {
    reply: String,
    #[serde(default)]
    sources: Vec<Passage>,
    #[serde(default)]
    handoff: Option<HandoffWire>,
    #[serde(default)]
    details: BTreeMap<String, Value>,
    #[serde(default)]
    tool_calls: Vec<ToolTrace>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct HandoffWire {
    #[serde(default = "requested")]
    requested: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    summary: Option<String>,
}

fn requested() -> bool {
    true
}

impl From<AnswerWire> for AgentAnswer {
    fn from(wire: AnswerWire) -> Self {
        let details = wire
            .details
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        Self {
            reply: wire.reply,
            sources: wire.sources,
            handoff: wire.handoff.filter(|h| h.requested).map(|h| Handoff {
                reason: h
                    .reason
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "the agent asked for a person".into()),
                summary: h.summary.filter(|s| !s.trim().is_empty()),
            }),
            details,
            tool_calls: wire.tool_calls,
            end: wire.end.filter(|e| !e.trim().is_empty()),
            usage: wire.usage,
        }
    }
}

impl AgentAnswer {
    /// Reads an agent's JSON answer.
    pub fn parse(body: &[u8]) -> Result<Self, RuntimeError> {
        serde_json::from_slice(body).map_err(|e| RuntimeError::AgentFailed(format!("the answer is not usable ({e})")))
    }
}

/// Reads an agent's Server-Sent Events (`token` `{text}` pieces, then `answer` with the
/// whole answer, or `error` `{error}`) as they arrive, giving each token to `text`.
pub struct AnswerStream<'a> {
    events: crate::sse::Decoder,
    text: &'a TextSink<'a>,
    answer: Option<Result<AgentAnswer, RuntimeError>>,
}

impl<'a> AnswerStream<'a> {
    pub fn new(text: &'a TextSink<'a>) -> Self {
        Self { events: crate::sse::Decoder::default(), text, answer: None }
    }

    /// Feeds the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        for event in self.events.feed(bytes) {
            match event.name.as_str() {
                "token" => {
                    if let Some(piece) = serde_json::from_str::<Value>(&event.data)
                        .ok()
                        .and_then(|v| v["text"].as_str().map(str::to_owned))
                    {
                        (self.text)(&piece);
                    }
                }
                "answer" => self.answer = Some(AgentAnswer::parse(event.data.as_bytes())),
                "error" => {
                    let reason = serde_json::from_str::<Value>(&event.data)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| "no reason given".into());
                    self.answer = Some(Err(RuntimeError::AgentFailed(reason)));
                }
                _ => {}
            }
        }
    }

    /// The answer, once the body has ended.
    pub fn finish(self) -> Result<AgentAnswer, RuntimeError> {
        self.answer
            .unwrap_or_else(|| Err(RuntimeError::AgentFailed("the agent's stream ended without an answer".into())))
    }
}

#[async_trait]
pub trait AgentRuntime: Send + Sync {
    /// Deploys (or replaces) the agent's code and starts it; poll `status` until ready.
    async fn deploy(&self, agent: &AgentRef, code: &AgentCode) -> Result<(), RuntimeError>;

    async fn status(&self, agent: &AgentRef) -> Result<RuntimeStatus, RuntimeError>;

    /// One `POST /invocations` of the agent; `session` keeps a conversation together.
    /// With `text`, the agent streams (`Accept: text/event-stream`) and each piece of its
    /// reply goes to `text` as it comes.
    async fn invoke(
        &self,
        agent: &AgentRef,
        session: &str,
        invocation: &Invocation,
        text: Option<&TextSink<'_>>,
    ) -> Result<AgentAnswer, RuntimeError>;

    /// Stops the agent (pause, archive); a stopped agent stays stopped across restarts.
    async fn stop(&self, agent: &AgentRef) -> Result<(), RuntimeError>;
}
