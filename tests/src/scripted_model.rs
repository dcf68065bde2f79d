//! A scripted model behind an OpenAI-compatible endpoint (`POST /v1/chat/completions`),
//! playing a model that acts through tools. A customer's message its script knows gets the
//! script's tool call, and the tool's result gets the script's answer; everything else
//! (AgentCreator's steps, the review's smoke conversation) is answered by the local engine,
//! read from the wire and written back to it, so a whole agent can be created and run on
//! it. It records every request, streams when asked (`stream: true`: the text word by
//! word, a tool call's arguments in two pieces) and can be made to fail like a provider
//! that is down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oratio_core::llm::{
    Completion, Content, Llm, Message, Prompt, Speaker, StopReason, ToolCall, ToolResult, ToolSpec,
};
use oratio_local::engine::LocalEngine;
use serde_json::{Value, json};

/// One scripted move: when the customer's message contains `when`, call `tool` with
/// `input`; when the tool answers, reply with `then(result)`.
#[derive(Clone)]
pub struct Cue {
    pub when: &'static str,
    pub tool: &'static str,
    pub input: Value,
    pub then: fn(&Value) -> String,
}

#[derive(Clone)]
pub struct ScriptedModel {
    /// The endpoint's base URL, up to `/v1`.
    pub url: String,
    pub name: &'static str,
    state: Arc<Script>,
}

struct Script {
    name: &'static str,
    cues: Vec<Cue>,
    seen: Mutex<Vec<Value>>,
    down: AtomicBool,
    engine: LocalEngine,
}

impl ScriptedModel {
    pub async fn start(name: &'static str, cues: Vec<Cue>) -> Self {
        let state = Arc::new(Script {
            name,
            cues,
            seen: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            engine: LocalEngine::default(),
        });
        let app =
            axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let url = format!("http://{}/v1", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, name, state }
    }

    /// Answers every request with 503 from now on.
    pub fn go_down(&self) {
        self.state.down.store(true, Ordering::SeqCst);
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// The requests that offered tools: the agent's turns.
    pub fn agent_requests(&self) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r["tools"].is_array()).collect()
    }

    pub fn config(&self) -> oratio::ModelConfig {
        oratio::ModelConfig::Endpoint {
            url: self.url.clone(),
            model: self.name.into(),
            api_key: Some("sk-scripted".into()),
        }
    }
}

async fn chat(State(script): State<Arc<Script>>, body: axum::Json<Value>) -> Response {
    let body = body.0;
    script.seen.lock().expect("lock").push(body.clone());
    if script.down.load(Ordering::SeqCst) {
        let error = json!({"error": {"message": "the model is overloaded", "type": "server_error"}});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(error)).into_response();
    }
    let completion = match script.scripted(&body) {
        Some(completion) => completion,
        None => match script.engine.complete(&prompt_of(&body)).await {
            Ok(completion) => completion,
            Err(e) => {
                let error = json!({"error": {"message": e.to_string(), "type": "invalid_request_error"}});
                return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
            }
        },
    };
    if body["stream"] == true { stream(script.name, &completion) } else { whole(script.name, &completion) }
}

impl Script {
    /// The script's move for this request, if it has one.
    fn scripted(&self, body: &Value) -> Option<Completion> {
        let last = body["messages"].as_array()?.last()?;
        if last["role"] == "tool" {
            let index: usize = last["tool_call_id"].as_str()?.strip_prefix("scripted-")?.parse().ok()?;
            let result = serde_json::from_str(last["content"].as_str()?).unwrap_or(Value::Null);
            return Some(Completion::text((self.cues.get(index)?.then)(&result), self.name));
        }
        let said = last["content"].as_str()?.to_lowercase();
        let offered =
            |tool: &str| body["tools"].as_array().into_iter().flatten().any(|t| t["function"]["name"] == tool);
        let (index, cue) =
            self.cues.iter().enumerate().find(|(_, c)| said.contains(&c.when.to_lowercase()) && offered(c.tool))?;
        Some(Completion {
            tool_calls: vec![ToolCall {
                id: format!("scripted-{index}"),
                name: cue.tool.into(),
                input: cue.input.clone(),
            }],
            stop_reason: StopReason::ToolUse,
            ..Completion::text("", self.name)
        })
    }
}

/// The request as the port's prompt (for the local engine).
fn prompt_of(body: &Value) -> Prompt {
    let mut system = String::new();
    let mut messages: Vec<Message> = Vec::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        let text = m["content"].as_str().unwrap_or_default().to_owned();
        match m["role"].as_str().unwrap_or_default() {
            "system" => system = text,
            "assistant" => {
                let mut content: Vec<Content> = Vec::new();
                if !text.is_empty() {
                    content.push(Content::Text(text));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    content.push(Content::ToolUse(ToolCall {
                        id: call["id"].as_str().unwrap_or_default().into(),
                        name: call["function"]["name"].as_str().unwrap_or_default().into(),
                        input: serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                            .unwrap_or(Value::Null),
                    }));
                }
                messages.push(Message { speaker: Speaker::Assistant, content });
            }
            "tool" => {
                let result = Content::ToolResult(ToolResult {
                    tool_use_id: m["tool_call_id"].as_str().unwrap_or_default().into(),
                    content: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    is_error: false,
                });
                match messages.last_mut() {
                    Some(last) if last.tool_results().next().is_some() => last.content.push(result),
                    _ => messages.push(Message { speaker: Speaker::User, content: vec![result] }),
                }
            }
            _ => messages.push(Message::user(text)),
        }
    }
    let tools = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| ToolSpec {
            name: t["function"]["name"].as_str().unwrap_or_default().into(),
            description: t["function"]["description"].as_str().unwrap_or_default().into(),
            input_schema: t["function"]["parameters"].clone(),
        })
        .collect();
    Prompt::new(system, messages).with_tools(tools)
}

fn finish_reason(completion: &Completion) -> &'static str {
    if completion.tool_calls.is_empty() { "stop" } else { "tool_calls" }
}

fn wire_calls(completion: &Completion) -> Vec<Value> {
    completion
        .tool_calls
        .iter()
        .map(
            |c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.input.to_string()}}),
        )
        .collect()
}

fn whole(model: &str, completion: &Completion) -> Response {
    let mut message = json!({"role": "assistant", "content": completion.text});
    if !completion.tool_calls.is_empty() {
        message["tool_calls"] = wire_calls(completion).into();
    }
    axum::Json(json!({
        "id": "chatcmpl-scripted", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(completion)}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132}
    }))
    .into_response()
}

/// The completion as `chat.completion.chunk` events, as OpenAI streams them.
fn stream(model: &str, completion: &Completion) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for piece in completion.text.split_inclusive(' ') {
        chunks.push(chunk(json!({"content": piece}), Value::Null));
    }
    for (index, call) in completion.tool_calls.iter().enumerate() {
        let arguments = call.input.to_string();
        let (first, rest) = arguments.split_at(arguments.len() / 2);
        chunks.push(chunk(
            json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": first}}]}),
            Value::Null,
        ));
        chunks.push(chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": rest}}]}), Value::Null));
    }
    chunks.push(chunk(json!({}), finish_reason(completion).into()));
    let usage = json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": model, "choices": [],
        "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132}});
    chunks.push(usage);
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}
