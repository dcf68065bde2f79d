//! `Llm` adapters of the embedded platform: any OpenAI-compatible chat endpoint (Ollama,
//! llama.cpp, vLLM, OpenAI itself), and the deterministic local engine that is the default
//! when no model is configured.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use oratio_core::llm::{Completion, Llm, LlmError, Prompt, Speaker};
use serde_json::{Value, json};

/// An OpenAI-compatible `POST {base_url}/chat/completions` endpoint.
pub struct OpenAiCompatibleLlm {
    http: reqwest::Client,
    base_url: String,
    model: String,
    api_key: Option<String>,
}

impl OpenAiCompatibleLlm {
    /// `base_url` up to the API version, e.g. `http://127.0.0.1:11434/v1`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Option<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("an HTTP client");
        Self { http, base_url: base_url.into().trim_end_matches('/').to_owned(), model: model.into(), api_key }
    }
}

#[async_trait]
impl Llm for OpenAiCompatibleLlm {
    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let mut messages = vec![json!({"role": "system", "content": prompt.system})];
        messages.extend(prompt.messages.iter().map(|m| {
            let role = match m.speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            json!({"role": role, "content": m.text})
        }));
        let body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": prompt.max_tokens,
            "temperature": prompt.temperature,
            "stream": false,
        });
        let mut request = self.http.post(format!("{}/chat/completions", self.base_url)).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response =
            request.send().await.map_err(|e| LlmError::Unavailable(anyhow!("calling {}: {e}", self.base_url)))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = answer["error"]["message"].as_str().unwrap_or("no message").to_owned();
            return Err(match status.as_u16() {
                408 | 429 | 500..=599 => LlmError::Unavailable(anyhow!("{status}: {message}")),
                _ => LlmError::Refused(format!("{status}: {message}")),
            });
        }
        let text = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| LlmError::Backend(anyhow!("the endpoint returned no message")))?
            .to_owned();
        let tokens = |name: &str| answer["usage"][name].as_u64().map(|n| n as u32);
        Ok(Completion {
            text,
            model: answer["model"].as_str().unwrap_or(&self.model).to_owned(),
            input_tokens: tokens("prompt_tokens"),
            output_tokens: tokens("completion_tokens"),
        })
    }
}

/// The deterministic local engine. It needs no weights. AgentCreator's steps it answers by
/// the creator's rules ([`oratio_core::creator::model::answer_by_rules`]); anything else
/// from the passages the
/// prompt carries after a line `Knowledge:` (one per line, `[n] (title, location) text`),
/// choosing the sentences that share the most words with the user's last turn and citing
/// their source. Without a matching passage it says it does not know. The same prompt
/// always gets the same answer.
#[derive(Debug, Default, Clone)]
pub struct LocalEngine;

pub const LOCAL_ENGINE_MODEL: &str = "oratio-local-engine";

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from", "how", "i", "if",
    "in", "is", "it", "me", "my", "of", "on", "or", "our", "please", "the", "there", "this", "to", "us", "was", "we",
    "what", "when", "where", "which", "who", "will", "with", "would", "you", "your",
];

fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(|w| w.to_lowercase())
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(&w.as_str()))
        .map(|w| w.trim_end_matches('s').to_owned())
        .collect()
}

/// A passage line of the prompt: (citation, text).
fn passages(system: &str) -> Vec<(String, String)> {
    system
        .lines()
        .skip_while(|l| l.trim() != "Knowledge:")
        .skip(1)
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix('[')?.split_once(']')?.1.trim();
            let (citation, text) = rest.strip_prefix('(')?.split_once(')')?;
            Some((citation.trim().to_owned(), text.trim().to_owned()))
        })
        .collect()
}

#[async_trait]
impl Llm for LocalEngine {
    fn model(&self) -> &str {
        LOCAL_ENGINE_MODEL
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let count = |s: &str| s.split_whitespace().count() as u32;
        let input = count(&prompt.system) + prompt.messages.iter().map(|m| count(&m.text)).sum::<u32>();
        if let Some(text) = oratio_core::creator::model::answer_by_rules(prompt) {
            let output_tokens = Some(count(&text));
            return Ok(Completion { text, model: LOCAL_ENGINE_MODEL.into(), input_tokens: Some(input), output_tokens });
        }
        let question = &prompt.messages.last().expect("validated").text;
        let asked = words(question);
        let mut best: Option<(usize, &str, String)> = None;
        let candidates = passages(&prompt.system);
        for (citation, text) in &candidates {
            for sentence in text.split_inclusive(['.', '!', '?', '\n']).map(str::trim).filter(|s| !s.is_empty()) {
                let overlap = words(sentence).intersection(&asked).count();
                if overlap > 0 && best.as_ref().is_none_or(|(score, _, _)| overlap > *score) {
                    best = Some((overlap, citation, sentence.to_owned()));
                }
            }
        }
        let text = match best {
            Some((_, citation, sentence)) => format!("{sentence} (source: {citation})"),
            None => {
                "I'm sorry, I don't know that. Would you like me to connect you with a member of our team?".to_owned()
            }
        };
        Ok(Completion {
            output_tokens: Some(count(&text)),
            text,
            model: LOCAL_ENGINE_MODEL.into(),
            input_tokens: Some(input),
        })
    }
}
