//! The `Llm` port: one completion from a language model (Claude through Bedrock Converse in
//! AWS; any OpenAI-compatible endpoint; or the deterministic local engine, the embedded
//! default, which needs no model weights and answers from the context it is given).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub speaker: Speaker,
    pub text: String,
}

impl Message {
    pub fn user(text: impl Into<String>) -> Self {
        Self { speaker: Speaker::User, text: text.into() }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self { speaker: Speaker::Assistant, text: text.into() }
    }
}

/// What the model is asked: a system prompt, the conversation so far (ending with the
/// user's turn), and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub system: String,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub temperature: f32,
}

impl Prompt {
    pub fn new(system: impl Into<String>, messages: Vec<Message>) -> Self {
        Self { system: system.into(), messages, max_tokens: 1024, temperature: 0.2 }
    }

    pub fn validate(&self) -> Result<(), LlmError> {
        match self.messages.last() {
            Some(last) if last.speaker == Speaker::User && !last.text.trim().is_empty() => {}
            _ => return Err(LlmError::Invalid("a prompt ends with the user's turn".into())),
        }
        if self.max_tokens == 0 || !(0.0..=1.0).contains(&self.temperature) {
            return Err(LlmError::Invalid("max_tokens must be positive and temperature within 0 to 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub model: String,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{0}")]
    Invalid(String),
    /// The provider refused the request (content filter, bad model id, access).
    #[error("the model refused the request: {0}")]
    Refused(String),
    /// Throttled or briefly down; safe to retry.
    #[error("the model is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the model call failed")]
    Backend(#[source] anyhow::Error),
}

#[async_trait]
pub trait Llm: Send + Sync {
    /// Which model answers (for records and logs).
    fn model(&self) -> &str;

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError>;
}
