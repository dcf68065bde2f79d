//! `Llm` on any OpenAI-compatible chat endpoint (Ollama, llama.cpp, vLLM, OpenAI itself):
//! `POST {base_url}/chat/completions` with `tools` (function calling) and `stream: true`
//! (Server-Sent Events of deltas) when the caller streams.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use oratio_core::llm::{Completion, Content, Llm, LlmError, Prompt, Speaker, StopReason, TextSink, ToolCall};
use oratio_core::sse::Decoder;
use serde_json::{Value, json};

pub struct OpenAiCompatibleLlm {
    http: reqwest::Client,
    base_url: String,
    model: String,
    api_key: Option<String>,
}

/// How long a model call may take before it counts as unavailable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl OpenAiCompatibleLlm {
    /// `base_url` up to the API version, e.g. `http://127.0.0.1:11434/v1`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Option<String>) -> Self {
        Self::with_timeout(base_url, model, api_key, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(
        base_url: impl Into<String>,
        model: impl Into<String>,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).build().expect("an HTTP client");
        Self { http, base_url: base_url.into().trim_end_matches('/').to_owned(), model: model.into(), api_key }
    }

    fn body(&self, prompt: &Prompt, stream: bool) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": messages(prompt),
            "max_tokens": prompt.max_tokens,
            "temperature": prompt.temperature,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if !prompt.tools.is_empty() {
            body["tools"] = prompt
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.input_schema}})
                })
                .collect();
        }
        body
    }

    async fn send(&self, body: &Value) -> Result<reqwest::Response, LlmError> {
        let mut request = self.http.post(format!("{}/chat/completions", self.base_url)).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response =
            request.send().await.map_err(|e| LlmError::Unavailable(anyhow!("calling {}: {e}", self.base_url)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let message = answer["error"]["message"].as_str().unwrap_or("no message").to_owned();
        Err(match status.as_u16() {
            408 | 429 | 500..=599 => LlmError::Unavailable(anyhow!("{status}: {message}")),
            _ => LlmError::Refused(format!("{status}: {message}")),
        })
    }
}

/// The prompt as OpenAI chat messages: tool calls on the assistant's message, each tool
/// result a `tool` message.
fn messages(prompt: &Prompt) -> Vec<Value> {
    let mut out = vec![json!({"role": "system", "content": prompt.system})];
    for message in &prompt.messages {
        match message.speaker {
            Speaker::Assistant => {
                let text = message.text();
                let calls: Vec<Value> = message
                    .tool_calls()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.input.to_string()}})
                    })
                    .collect();
                let mut m =
                    json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { text.into() }});
                if !calls.is_empty() {
                    m["tool_calls"] = calls.into();
                }
                out.push(m);
            }
            Speaker::User => {
                for result in message.tool_results() {
                    let content = match &result.content {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.push(json!({"role": "tool", "tool_call_id": result.tool_use_id, "content": content}));
                }
                let text = message.text();
                if !text.is_empty() || !message.content.iter().any(|c| matches!(c, Content::ToolResult(_))) {
                    out.push(json!({"role": "user", "content": text}));
                }
            }
        }
    }
    out
}

/// A function call's arguments: the JSON object they should be, or the raw text (the
/// agent answers the model that it is malformed).
fn arguments(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => value,
        _ if raw.trim().is_empty() => json!({}),
        _ => Value::String(raw.to_owned()),
    }
}

fn stop_reason(finish: Option<&str>) -> StopReason {
    match finish {
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some("stop") | None => StopReason::EndTurn,
        Some(_) => StopReason::Other,
    }
}

fn tokens(usage: &Value, name: &str) -> Option<u32> {
    usage[name].as_u64().map(|n| n as u32)
}

/// A streamed completion, put together from its deltas.
#[derive(Default)]
struct Deltas {
    text: String,
    /// Tool calls by their index: (id, name, arguments so far).
    calls: BTreeMap<u64, (String, String, String)>,
    finish: Option<String>,
    usage: Value,
    model: Option<String>,
    error: Option<String>,
}

impl Deltas {
    fn add(&mut self, chunk: &Value, text: &TextSink<'_>) {
        if let Some(message) = chunk["error"]["message"].as_str() {
            self.error = Some(message.to_owned());
        }
        if let Some(model) = chunk["model"].as_str() {
            self.model = Some(model.to_owned());
        }
        if chunk["usage"].is_object() {
            self.usage = chunk["usage"].clone();
        }
        let Some(choice) = chunk["choices"].get(0) else { return };
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.finish = Some(finish.to_owned());
        }
        let delta = &choice["delta"];
        if let Some(piece) = delta["content"].as_str().filter(|p| !p.is_empty()) {
            self.text.push_str(piece);
            text(piece);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(self.calls.len() as u64);
            let entry = self.calls.entry(index).or_default();
            if let Some(id) = call["id"].as_str() {
                entry.0 = id.to_owned();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                entry.1.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                entry.2.push_str(args);
            }
        }
    }
}

#[async_trait]
impl Llm for OpenAiCompatibleLlm {
    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let response = self.send(&self.body(prompt, false)).await?;
        let answer: Value =
            response.json().await.map_err(|e| LlmError::Backend(anyhow!("the endpoint's answer is not JSON: {e}")))?;
        let message = &answer["choices"][0]["message"];
        if !message.is_object() {
            return Err(LlmError::Backend(anyhow!("the endpoint returned no message")));
        }
        let tool_calls = message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: c["id"].as_str().map_or_else(|| format!("call_{i}"), str::to_owned),
                name: c["function"]["name"].as_str().unwrap_or_default().to_owned(),
                input: arguments(c["function"]["arguments"].as_str().unwrap_or_default()),
            })
            .collect();
        Ok(Completion {
            text: message["content"].as_str().unwrap_or_default().to_owned(),
            tool_calls,
            stop_reason: stop_reason(answer["choices"][0]["finish_reason"].as_str()),
            model: answer["model"].as_str().unwrap_or(&self.model).to_owned(),
            input_tokens: tokens(&answer["usage"], "prompt_tokens"),
            output_tokens: tokens(&answer["usage"], "completion_tokens"),
            fallback_used: false,
        })
    }

    async fn stream(&self, prompt: &Prompt, text: &TextSink<'_>) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let mut response = self.send(&self.body(prompt, true)).await?;
        let mut decoder = Decoder::default();
        let mut deltas = Deltas::default();
        let mut done = false;
        while !done {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| LlmError::Unavailable(anyhow!("reading the stream from {}: {e}", self.base_url)))?;
            let Some(chunk) = chunk else { break };
            for event in decoder.feed(&chunk) {
                if event.data.trim() == "[DONE]" {
                    done = true;
                    break;
                }
                match serde_json::from_str::<Value>(&event.data) {
                    Ok(value) => deltas.add(&value, text),
                    Err(e) => return Err(LlmError::Backend(anyhow!("a stream chunk is not JSON: {e}"))),
                }
            }
        }
        if let Some(error) = deltas.error {
            return Err(LlmError::Backend(anyhow!("the stream failed: {error}")));
        }
        let tool_calls = deltas
            .calls
            .into_values()
            .enumerate()
            .map(|(i, (id, name, args))| ToolCall {
                id: if id.is_empty() { format!("call_{i}") } else { id },
                name,
                input: arguments(&args),
            })
            .collect();
        Ok(Completion {
            text: deltas.text,
            tool_calls,
            stop_reason: stop_reason(deltas.finish.as_deref()),
            model: deltas.model.unwrap_or_else(|| self.model.clone()),
            input_tokens: tokens(&deltas.usage, "prompt_tokens"),
            output_tokens: tokens(&deltas.usage, "completion_tokens"),
            fallback_used: false,
        })
    }
}
