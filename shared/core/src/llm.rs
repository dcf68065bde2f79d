//! The `Llm` port: one turn of a language model, which answers with text, asks for tools,
//! or both (Claude through Bedrock Converse in AWS; any OpenAI-compatible endpoint; or the
//! deterministic local engine, the embedded default, which needs no model weights). Text
//! can stream as it is generated, and a second provider can stand in when the first is
//! unavailable ([`FallbackLlm`]).

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    User,
    Assistant,
}

/// A tool the model asked for, with its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Names this call, so its result can answer it.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub input: Value,
}

/// What a tool answered, returned to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

/// One block of a message: `{"text": …}`, `{"tool_use": {…}}` (assistant) or
/// `{"tool_result": {…}}` (user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Text(String),
    ToolUse(ToolCall),
    ToolResult(ToolResult),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "MessageWire")]
pub struct Message {
    #[serde(rename = "role")]
    pub speaker: Speaker,
    pub content: Vec<Content>,
}

/// A message as clients send it: `content` blocks, or just `text`.
#[derive(Deserialize)]
struct MessageWire {
    role: Speaker,
    #[serde(default)]
    content: Vec<Content>,
    #[serde(default)]
    text: Option<String>,
}

impl From<MessageWire> for Message {
    fn from(wire: MessageWire) -> Self {
        let mut content = wire.content;
        if let Some(text) = wire.text {
            content.insert(0, Content::Text(text));
        }
        Self { speaker: wire.role, content }
    }
}

impl Message {
    pub fn user(text: impl Into<String>) -> Self {
        Self { speaker: Speaker::User, content: vec![Content::Text(text.into())] }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self { speaker: Speaker::Assistant, content: vec![Content::Text(text.into())] }
    }

    /// The message's text blocks, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.content.iter().filter_map(|c| match c {
            Content::ToolUse(call) => Some(call),
            _ => None,
        })
    }

    pub fn tool_results(&self) -> impl Iterator<Item = &ToolResult> {
        self.content.iter().filter_map(|c| match c {
            Content::ToolResult(result) => Some(result),
            _ => None,
        })
    }
}

/// A tool offered to the model: its name, what it does, and the JSON Schema of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// What the model is asked: a system prompt, the conversation so far (ending with the
/// user's turn or with tool results), the tools it may call, and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub system: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    pub temperature: f32,
}

/// How many tools a prompt may offer (Bedrock and OpenAI both take far more; a model
/// chooses worse among many).
pub const MAX_TOOLS: usize = 64;

fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Prompt {
    pub fn new(system: impl Into<String>, messages: Vec<Message>) -> Self {
        Self { system: system.into(), messages, tools: Vec::new(), max_tokens: 1024, temperature: 0.2 }
    }

    pub fn with_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    pub fn validate(&self) -> Result<(), LlmError> {
        let invalid = |why: &str| Err(LlmError::Invalid(why.into()));
        match self.messages.last() {
            Some(last)
                if last.speaker == Speaker::User
                    && (!last.text().trim().is_empty() || last.tool_results().next().is_some()) => {}
            _ => return invalid("a prompt ends with the user's turn or with tool results"),
        }
        if self.max_tokens == 0 || !(0.0..=1.0).contains(&self.temperature) {
            return invalid("max_tokens must be positive and temperature within 0 to 1");
        }
        if self.tools.len() > MAX_TOOLS {
            return Err(LlmError::Invalid(format!("a prompt offers at most {MAX_TOOLS} tools")));
        }
        if let Some(bad) = self.tools.iter().find(|t| !valid_tool_name(&t.name) || !t.input_schema.is_object()) {
            return Err(LlmError::Invalid(format!(
                "tool {:?}: names are 1 to 64 letters, digits, _ and -, and the input schema is a JSON object",
                bad.name
            )));
        }
        // Every tool result answers a call the model made in the message before it.
        for (i, message) in self.messages.iter().enumerate() {
            for result in message.tool_results() {
                let asked = i > 0 && self.messages[i - 1].tool_calls().any(|c| c.id == result.tool_use_id);
                if !asked {
                    return Err(LlmError::Invalid(format!(
                        "the tool result {:?} answers no tool call of the message before it",
                        result.tool_use_id
                    )));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    #[default]
    EndTurn,
    /// The model waits for the results of the tools it called.
    ToolUse,
    MaxTokens,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default)]
    pub stop_reason: StopReason,
    /// The model that answered.
    pub model: String,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    /// The primary provider was unavailable and the fallback answered.
    #[serde(default)]
    pub fallback_used: bool,
}

impl Completion {
    /// A text answer.
    pub fn text(text: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            tool_calls: Vec::new(),
            stop_reason: StopReason::EndTurn,
            model: model.into(),
            input_tokens: None,
            output_tokens: None,
            fallback_used: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{0}")]
    Invalid(String),
    /// The provider refused the request (content filter, bad model id, access).
    #[error("the model refused the request: {0}")]
    Refused(String),
    /// Throttled, timed out or briefly down; safe to retry, or to ask another provider.
    #[error("the model is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the model call failed")]
    Backend(#[source] anyhow::Error),
}

/// Where streamed text goes, piece by piece, as the model writes it.
pub type TextSink<'a> = dyn Fn(&str) + Send + Sync + 'a;

/// A sink for callers that do not stream.
pub fn ignore_text(_: &str) {}

#[async_trait]
pub trait Llm: Send + Sync {
    /// Which model answers (for records and logs).
    fn model(&self) -> &str;

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError>;

    /// Like [`complete`](Llm::complete), giving `text` each piece of the answer's text as
    /// it is generated. Adapters without streaming give the whole text at once.
    async fn stream(&self, prompt: &Prompt, text: &TextSink<'_>) -> Result<Completion, LlmError> {
        let completion = self.complete(prompt).await?;
        if !completion.text.is_empty() {
            text(&completion.text);
        }
        Ok(completion)
    }
}

/// A primary model and a second provider that answers when the primary is unavailable
/// (timeout, throttling, 5xx). The completion says which one answered.
pub struct FallbackLlm {
    pub primary: std::sync::Arc<dyn Llm>,
    pub fallback: std::sync::Arc<dyn Llm>,
}

impl FallbackLlm {
    fn falling_back(&self, cause: &anyhow::Error) {
        tracing::warn!(
            primary = self.primary.model(),
            fallback = self.fallback.model(),
            cause = %format!("{cause:#}"),
            "the primary model is unavailable; the fallback answers"
        );
    }
}

#[async_trait]
impl Llm for FallbackLlm {
    fn model(&self) -> &str {
        self.primary.model()
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        match self.primary.complete(prompt).await {
            Err(LlmError::Unavailable(cause)) => {
                self.falling_back(&cause);
                let mut completion = self.fallback.complete(prompt).await?;
                completion.fallback_used = true;
                Ok(completion)
            }
            other => other,
        }
    }

    async fn stream(&self, prompt: &Prompt, text: &TextSink<'_>) -> Result<Completion, LlmError> {
        // Falling back is only clean before the primary said anything.
        let spoke = AtomicBool::new(false);
        let relay = |piece: &str| {
            spoke.store(true, Ordering::Relaxed);
            text(piece);
        };
        match self.primary.stream(prompt, &relay).await {
            Err(LlmError::Unavailable(cause)) if !spoke.load(Ordering::Relaxed) => {
                self.falling_back(&cause);
                let mut completion = self.fallback.stream(prompt, text).await?;
                completion.fallback_used = true;
                Ok(completion)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_read_blocks_or_plain_text() {
        let blocks: Message = serde_json::from_value(json!({"role": "assistant", "content": [
            {"text": "Let me check."},
            {"tool_use": {"id": "t1", "name": "search_knowledge", "input": {"query": "hours"}}}
        ]}))
        .unwrap();
        assert_eq!(blocks.text(), "Let me check.");
        assert_eq!(blocks.tool_calls().next().map(|c| c.name.as_str()), Some("search_knowledge"));
        let plain: Message = serde_json::from_value(json!({"role": "user", "text": "hi"})).unwrap();
        assert_eq!(plain, Message::user("hi"));
        assert_eq!(serde_json::to_value(&plain).unwrap(), json!({"role": "user", "content": [{"text": "hi"}]}));
    }

    #[test]
    fn a_prompt_ends_with_the_user_or_with_answered_tool_calls() {
        let call = ToolCall { id: "t1".into(), name: "hand_off".into(), input: json!({}) };
        let answered = Message {
            speaker: Speaker::User,
            content: vec![Content::ToolResult(ToolResult {
                tool_use_id: "t1".into(),
                content: json!({"ok": true}),
                is_error: false,
            })],
        };
        let asked = Message { speaker: Speaker::Assistant, content: vec![Content::ToolUse(call)] };
        assert!(Prompt::new("s", vec![Message::user("hi"), asked.clone(), answered.clone()]).validate().is_ok());
        assert!(Prompt::new("s", vec![Message::user("hi"), answered]).validate().is_err(), "an unasked result");
        assert!(Prompt::new("s", vec![Message::user("hi"), asked]).validate().is_err());
        let tool = ToolSpec { name: "bad name".into(), description: "d".into(), input_schema: json!({}) };
        assert!(Prompt::new("s", vec![Message::user("hi")]).with_tools(vec![tool]).validate().is_err());
    }
}
