//! The `Llm` port on every adapter: Bedrock Converse and ConverseStream (event-stream
//! frames) and an OpenAI-compatible endpoint against local servers speaking their wire
//! formats, with tool use and streaming; the fallback provider; and the local engine.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use oratio_core::llm::{
    Completion, Content, FallbackLlm, Llm, LlmError, Message, Prompt, Speaker, StopReason, ToolCall, ToolResult,
    ToolSpec,
};
use oratio_local::engine::LocalEngine;
use oratio_local::llm::OpenAiCompatibleLlm;
use serde_json::{Value, json};

/// What a fake provider saw, and what it answers next.
#[derive(Clone, Default)]
struct Provider {
    seen: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
    fail_with: Arc<Mutex<Option<(u16, &'static str)>>>,
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn prompt() -> Prompt {
    Prompt::new(
        "You are the front desk of Bright Smile Dental.",
        vec![Message::user("Hi"), Message::assistant("Hello! How can I help?"), Message::user("When do you open?")],
    )
}

async fn converse(
    State(p): State<Provider>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    p.seen.lock().expect("lock").push((model, headers, body.0));
    if let Some((status, error)) = *p.fail_with.lock().expect("lock") {
        return (StatusCode::from_u16(status).expect("status"), [("x-amzn-ErrorType", error)], r#"{"message":"no"}"#)
            .into_response();
    }
    axum::Json(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "We open at "}, {"text": "8am."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 42, "outputTokens": 5, "totalTokens": 47},
        "metrics": {"latencyMs": 120}
    }))
    .into_response()
}

/// A turn in which the model asked for the knowledge and got it back, offering the tool.
fn tool_prompt() -> Prompt {
    let call = ToolCall { id: "tooluse_1".into(), name: "search_knowledge".into(), input: json!({"query": "hours"}) };
    let result =
        ToolResult { tool_use_id: "tooluse_1".into(), content: json!({"passages": ["8am to 6pm"]}), is_error: false };
    let messages = vec![
        Message::user("When do you open? I'm in a lot of pain"),
        Message { speaker: Speaker::Assistant, content: vec![Content::ToolUse(call)] },
        Message { speaker: Speaker::User, content: vec![Content::ToolResult(result)] },
    ];
    let hand_off = ToolSpec {
        name: "hand_off".into(),
        description: "Hand the conversation to a person.".into(),
        input_schema: json!({"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]}),
    };
    Prompt::new("You are the front desk.", messages).with_tools(vec![hand_off])
}

async fn converse_with_tools(
    State(p): State<Provider>,
    Path(model): Path<String>,
    body: axum::Json<Value>,
) -> Response {
    p.seen.lock().expect("lock").push((model, HeaderMap::new(), body.0));
    axum::Json(json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Let me get someone."},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "hand_off", "input": {"reason": "severe pain"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 80, "outputTokens": 20, "totalTokens": 100},
        "metrics": {"latencyMs": 300}
    }))
    .into_response()
}

/// One event-stream frame of a ConverseStream answer.
fn frame(event: &str, payload: Value) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message as Frame};
    let message = Frame::new(payload.to_string().into_bytes())
        .add_header(Header::new(":event-type", HeaderValue::String(event.to_owned().into())))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
        .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).expect("a frame");
    out
}

async fn converse_stream(State(p): State<Provider>, Path(model): Path<String>, body: axum::Json<Value>) -> Response {
    p.seen.lock().expect("lock").push((model, HeaderMap::new(), body.0));
    if let Some((status, error)) = *p.fail_with.lock().expect("lock") {
        return (StatusCode::from_u16(status).expect("status"), [("x-amzn-ErrorType", error)], r#"{"message":"no"}"#)
            .into_response();
    }
    let frames = [
        frame("messageStart", json!({"role": "assistant"})),
        frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "I'm sorry "}})),
        frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "to hear that."}})),
        frame("contentBlockStop", json!({"contentBlockIndex": 0})),
        frame(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_3", "name": "hand_off"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"reason\": \"sev"}}}),
        ),
        frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "ere pain\"}"}}})),
        frame("contentBlockStop", json!({"contentBlockIndex": 1})),
        frame("messageStop", json!({"stopReason": "tool_use"})),
        frame(
            "metadata",
            json!({"usage": {"inputTokens": 90, "outputTokens": 14, "totalTokens": 104}, "metrics": {"latencyMs": 210}}),
        ),
    ];
    ([("content-type", "application/vnd.amazon.eventstream")], frames.concat()).into_response()
}

async fn bedrock() -> (oratio_aws::BedrockLlm, Provider) {
    let provider = Provider::default();
    let app = axum::Router::new()
        .route("/model/{model}/converse", axum::routing::post(converse))
        .route("/model/{model}/converse-stream", axum::routing::post(converse_stream))
        .with_state(provider.clone());
    bedrock_on(app, provider).await
}

async fn bedrock_on(app: axum::Router, provider: Provider) -> (oratio_aws::BedrockLlm, Provider) {
    let url = serve(app).await;
    let config = oratio_tests::moto::test_config(Some(&url)).await;
    let conf = aws_sdk_bedrockruntime::config::Builder::from(&config)
        .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_bedrockruntime::Client::from_conf(conf);
    (oratio_aws::BedrockLlm::new(client, "anthropic.claude-3-5-sonnet-20240620-v1:0"), provider)
}

#[tokio::test]
async fn bedrock_converse_sends_the_conversation_and_reads_the_answer() {
    let (llm, provider) = bedrock().await;
    let completion = llm.complete(&prompt()).await.expect("completed");
    assert_eq!(
        (completion.text.as_str(), completion.input_tokens, completion.output_tokens),
        ("We open at 8am.", Some(42), Some(5))
    );
    let seen = provider.seen.lock().expect("lock");
    let (model, headers, body) = &seen[0];
    assert_eq!(model, "anthropic.claude-3-5-sonnet-20240620-v1:0");
    assert!(headers["authorization"].to_str().expect("ascii").starts_with("AWS4-HMAC-SHA256 "), "SigV4-signed");
    assert_eq!(body["system"], json!([{"text": "You are the front desk of Bright Smile Dental."}]));
    assert_eq!(body["messages"][1], json!({"role": "assistant", "content": [{"text": "Hello! How can I help?"}]}));
    assert_eq!(body["messages"][2]["role"], "user");
    assert_eq!(body["inferenceConfig"]["maxTokens"], 1024);
}

#[tokio::test]
async fn bedrock_converse_offers_tools_returns_their_results_and_reads_tool_calls() {
    let provider = Provider::default();
    let app = axum::Router::new()
        .route("/model/{model}/converse", axum::routing::post(converse_with_tools))
        .with_state(provider.clone());
    let (llm, provider) = bedrock_on(app, provider).await;
    let completion = llm.complete(&tool_prompt()).await.expect("completed");
    assert_eq!(completion.text, "Let me get someone.");
    assert_eq!(
        completion.tool_calls,
        [ToolCall { id: "tooluse_2".into(), name: "hand_off".into(), input: json!({"reason": "severe pain"}) }]
    );
    assert_eq!(completion.stop_reason, StopReason::ToolUse);
    let seen = provider.seen.lock().expect("lock");
    let body = &seen[0].2;
    assert_eq!(body["toolConfig"]["tools"][0]["toolSpec"]["name"], "hand_off");
    assert_eq!(body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"], json!(["reason"]));
    assert_eq!(
        body["messages"][1]["content"][0]["toolUse"],
        json!({"toolUseId": "tooluse_1", "name": "search_knowledge", "input": {"query": "hours"}})
    );
    let result = &body["messages"][2]["content"][0]["toolResult"];
    assert_eq!((result["toolUseId"].as_str(), result["status"].as_str()), (Some("tooluse_1"), Some("success")));
    assert_eq!(result["content"][0]["json"], json!({"passages": ["8am to 6pm"]}));
}

#[tokio::test]
async fn bedrock_converse_stream_gives_each_piece_of_text_as_it_comes_and_assembles_tool_calls() {
    let provider = Provider::default();
    let app = axum::Router::new()
        .route("/model/{model}/converse-stream", axum::routing::post(converse_stream))
        .with_state(provider.clone());
    let (llm, provider) = bedrock_on(app, provider).await;
    let pieces = Mutex::new(Vec::new());
    let sink = |piece: &str| pieces.lock().expect("lock").push(piece.to_owned());
    let completion = llm.stream(&tool_prompt(), &sink).await.expect("streamed");
    assert_eq!(*pieces.lock().expect("lock"), ["I'm sorry ", "to hear that."]);
    assert_eq!(completion.text, "I'm sorry to hear that.");
    assert_eq!(
        completion.tool_calls,
        [ToolCall { id: "tooluse_3".into(), name: "hand_off".into(), input: json!({"reason": "severe pain"}) }]
    );
    assert_eq!(
        (completion.stop_reason, completion.input_tokens, completion.output_tokens),
        (StopReason::ToolUse, Some(90), Some(14))
    );
    assert_eq!(provider.seen.lock().expect("lock")[0].2["toolConfig"]["tools"][0]["toolSpec"]["name"], "hand_off");
}

#[tokio::test]
async fn the_fallback_answers_only_when_the_primary_is_unavailable_and_says_so() {
    let (bedrock, provider) = bedrock().await;
    let fallback = Arc::new(LocalEngine::default());
    let llm = FallbackLlm { primary: Arc::new(bedrock), fallback };
    let system = "You are the front desk.\nKnowledge:\n[1] (faq.md, Hours) We open at 8am.\n";
    let ask = Prompt::new(system, vec![Message::user("When do you open?")]);
    let first: Completion = llm.complete(&ask).await.expect("the primary answers");
    assert!(!first.fallback_used && first.model.starts_with("anthropic."));
    *provider.fail_with.lock().expect("lock") = Some((503, "ServiceUnavailableException"));
    let pieces = Mutex::new(String::new());
    let sink = |piece: &str| pieces.lock().expect("lock").push_str(piece);
    let second = llm.stream(&ask, &sink).await.expect("the fallback answers");
    assert!(second.fallback_used && second.model == oratio_local::engine::LOCAL_ENGINE_MODEL, "{second:?}");
    assert_eq!(*pieces.lock().expect("lock"), second.text);
    // A refusal is the primary's answer, not a reason to ask another provider.
    *provider.fail_with.lock().expect("lock") = Some((400, "ValidationException"));
    assert!(matches!(llm.complete(&ask).await, Err(LlmError::Refused(_))));
}

#[tokio::test]
async fn bedrock_throttling_is_retryable_and_validation_is_a_refusal() {
    let (llm, provider) = bedrock().await;
    *provider.fail_with.lock().expect("lock") = Some((429, "ThrottlingException"));
    assert!(matches!(llm.complete(&prompt()).await, Err(LlmError::Unavailable(_))));
    *provider.fail_with.lock().expect("lock") = Some((400, "ValidationException"));
    assert!(matches!(llm.complete(&prompt()).await, Err(LlmError::Refused(_))));
}

async fn chat(State(p): State<Provider>, headers: HeaderMap, body: axum::Json<Value>) -> Response {
    p.seen.lock().expect("lock").push(("chat".into(), headers, body.0.clone()));
    if let Some((status, _)) = *p.fail_with.lock().expect("lock") {
        return (StatusCode::from_u16(status).expect("status"), axum::Json(json!({"error": {"message": "nope"}})))
            .into_response();
    }
    axum::Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": body.0["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "We open at 8am."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46}
    }))
    .into_response()
}

#[tokio::test]
async fn openai_compatible_endpoints_get_chat_completions() {
    let provider = Provider::default();
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat)).with_state(provider.clone());
    let url = serve(app).await;
    let llm = OpenAiCompatibleLlm::new(format!("{url}/v1/"), "llama3.1:8b", Some("sk-test".into()));
    let completion = llm.complete(&prompt()).await.expect("completed");
    assert_eq!(
        (completion.text.as_str(), completion.model.as_str(), completion.output_tokens),
        ("We open at 8am.", "llama3.1:8b", Some(6))
    );
    {
        let seen = provider.seen.lock().expect("lock");
        let (_, headers, body) = &seen[0];
        assert_eq!(headers["authorization"], "Bearer sk-test");
        let roles: Vec<&str> =
            body["messages"].as_array().expect("messages").iter().map(|m| m["role"].as_str().expect("role")).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!((body["model"].as_str(), body["stream"].as_bool()), (Some("llama3.1:8b"), Some(false)));
    }
    *provider.fail_with.lock().expect("lock") = Some((429, ""));
    assert!(matches!(llm.complete(&prompt()).await, Err(LlmError::Unavailable(_))));
    *provider.fail_with.lock().expect("lock") = Some((404, ""));
    assert!(matches!(llm.complete(&prompt()).await, Err(LlmError::Refused(_))));
    let unreachable = OpenAiCompatibleLlm::new("http://127.0.0.1:9/v1", "m", None);
    assert!(matches!(unreachable.complete(&prompt()).await, Err(LlmError::Unavailable(_))));
}

#[tokio::test]
async fn the_local_engine_answers_from_the_knowledge_it_is_given_and_cites_it() {
    let system = "You are the front desk.\nKnowledge:\n[1] (faq.md, Opening hours) We are open Monday to Friday 8am to 6pm. On Saturdays we open at 9am.\n[2] (prices.csv, rows 2-4) service: Teeth whitening; price: 250\n";
    let ask = |q: &str| Prompt::new(system, vec![Message::user(q)]);
    let engine = LocalEngine::default();
    let answer = engine.complete(&ask("What time do you open on Saturdays?")).await.expect("answer");
    assert_eq!(answer.text, "On Saturdays we open at 9am. (source: faq.md, Opening hours)");
    let again = engine.complete(&ask("What time do you open on Saturdays?")).await.expect("answer");
    assert_eq!(again, answer, "deterministic");
    let price = engine.complete(&ask("how much is teeth whitening")).await.expect("answer");
    assert!(price.text.contains("250") && price.text.contains("prices.csv"), "{}", price.text);
    let unknown = engine.complete(&ask("Do you sell pizza?")).await.expect("answer");
    assert!(unknown.text.contains("don't know"), "{}", unknown.text);
    assert!(unknown.input_tokens.is_some_and(|n| n > 0));
}

#[tokio::test]
async fn every_adapter_refuses_a_prompt_without_a_user_turn_before_calling_anyone() {
    let (bedrock, provider) = bedrock().await;
    let openai = OpenAiCompatibleLlm::new("http://127.0.0.1:9/v1", "m", None);
    let bad = Prompt::new("system", vec![Message::assistant("hello")]);
    let local = LocalEngine::default();
    let adapters: [&dyn Llm; 3] = [&bedrock, &openai, &local];
    for llm in adapters {
        assert!(matches!(llm.complete(&bad).await, Err(LlmError::Invalid(_))), "{}", llm.model());
    }
    assert!(provider.seen.lock().expect("lock").is_empty());
}
