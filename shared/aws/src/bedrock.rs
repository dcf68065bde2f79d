//! Bedrock's runtime: `Llm` on the Converse and ConverseStream APIs (Claude, or any model
//! Converse serves), with tool use (`toolConfig`, `toolUse`, `toolResult`); and
//! `Embeddings` on Titan Text Embeddings v2 (`InvokeModel`).

use std::collections::{BTreeMap, HashMap};

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseOutput, ConverseStreamOutput,
    InferenceConfiguration, Message, StopReason as BedrockStop, SystemContentBlock, Tool, ToolConfiguration,
    ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use oratio_core::embeddings::{EmbeddingError, Embeddings, TextKind, normalized};
use oratio_core::llm::{Completion, Content, Llm, LlmError, Prompt, Speaker, StopReason, TextSink, ToolCall};
use serde_json::Value;

#[derive(Clone)]
pub struct BedrockLlm {
    client: Client,
    model_id: String,
}

impl BedrockLlm {
    pub fn new(client: Client, model_id: impl Into<String>) -> Self {
        Self { client, model_id: model_id.into() }
    }
}

/// JSON as a Smithy document (tool schemas, tool inputs and results).
pub fn document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or_default()),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(document).collect()),
        Value::Object(map) => Document::Object(map.iter().map(|(k, v)| (k.clone(), document(v))).collect()),
    }
}

/// A Smithy document as JSON.
pub fn json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(json).collect()),
        Document::Object(map) => {
            let sorted: BTreeMap<&String, &Document> = map.iter().collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), json(v))).collect())
        }
    }
}

fn backend(e: impl Into<anyhow::Error>) -> LlmError {
    LlmError::Backend(e.into())
}

/// The prompt's messages as Converse messages.
fn messages(prompt: &Prompt) -> Result<Vec<Message>, LlmError> {
    prompt
        .messages
        .iter()
        .map(|m| {
            let role = match m.speaker {
                Speaker::User => ConversationRole::User,
                Speaker::Assistant => ConversationRole::Assistant,
            };
            let mut message = Message::builder().role(role);
            for block in &m.content {
                message = message.content(match block {
                    Content::Text(t) => ContentBlock::Text(t.clone()),
                    Content::ToolUse(call) => ContentBlock::ToolUse(
                        ToolUseBlock::builder()
                            .tool_use_id(&call.id)
                            .name(&call.name)
                            .input(document(&call.input))
                            .build()
                            .map_err(backend)?,
                    ),
                    Content::ToolResult(result) => {
                        let content = match &result.content {
                            Value::String(s) => ToolResultContentBlock::Text(s.clone()),
                            Value::Object(_) => ToolResultContentBlock::Json(document(&result.content)),
                            // Converse takes JSON objects only.
                            other => ToolResultContentBlock::Json(document(&serde_json::json!({"result": other}))),
                        };
                        ContentBlock::ToolResult(
                            ToolResultBlock::builder()
                                .tool_use_id(&result.tool_use_id)
                                .content(content)
                                .status(if result.is_error {
                                    ToolResultStatus::Error
                                } else {
                                    ToolResultStatus::Success
                                })
                                .build()
                                .map_err(backend)?,
                        )
                    }
                });
            }
            message.build().map_err(backend)
        })
        .collect()
}

fn tool_config(prompt: &Prompt) -> Result<Option<ToolConfiguration>, LlmError> {
    if prompt.tools.is_empty() {
        return Ok(None);
    }
    let mut config = ToolConfiguration::builder();
    for tool in &prompt.tools {
        let spec = ToolSpecification::builder()
            .name(&tool.name)
            .description(&tool.description)
            .input_schema(ToolInputSchema::Json(document(&tool.input_schema)))
            .build()
            .map_err(backend)?;
        config = config.tools(Tool::ToolSpec(spec));
    }
    config.build().map(Some).map_err(backend)
}

fn inference(prompt: &Prompt) -> InferenceConfiguration {
    InferenceConfiguration::builder()
        .max_tokens(i32::try_from(prompt.max_tokens).unwrap_or(i32::MAX))
        .temperature(prompt.temperature)
        .build()
}

/// An SDK error as the port's: throttling and outages are `Unavailable` (retried, or
/// answered by the fallback); a refused request is `Refused`.
fn sdk_error<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    e: SdkError<E, R>,
) -> LlmError {
    let code = e.code().map(str::to_owned);
    let message = e.message().unwrap_or_default().to_owned();
    let transient = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_));
    let source = anyhow!("{}", DisplayErrorContext(e));
    match code.as_deref() {
        Some(
            "ThrottlingException"
            | "ServiceUnavailableException"
            | "InternalServerException"
            | "ModelNotReadyException"
            | "ModelStreamErrorException"
            | "ModelTimeoutException",
        ) => LlmError::Unavailable(source),
        Some("ValidationException" | "AccessDeniedException" | "ResourceNotFoundException" | "ModelErrorException") => {
            LlmError::Refused(message)
        }
        _ if transient => LlmError::Unavailable(source),
        _ => LlmError::Backend(source),
    }
}

fn stop_reason(reason: &BedrockStop) -> StopReason {
    match reason {
        BedrockStop::EndTurn | BedrockStop::StopSequence => StopReason::EndTurn,
        BedrockStop::ToolUse => StopReason::ToolUse,
        BedrockStop::MaxTokens => StopReason::MaxTokens,
        _ => StopReason::Other,
    }
}

fn tokens(n: i32) -> Option<u32> {
    Some(n.max(0) as u32)
}

#[async_trait]
impl Llm for BedrockLlm {
    fn model(&self) -> &str {
        &self.model_id
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let out = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(prompt.system.clone()))
            .set_messages(Some(messages(prompt)?))
            .set_tool_config(tool_config(prompt)?)
            .inference_config(inference(prompt))
            .send()
            .await
            .map_err(sdk_error)?;
        let Some(ConverseOutput::Message(message)) = out.output else {
            return Err(LlmError::Backend(anyhow!("Converse returned no message")));
        };
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in &message.content {
            match block {
                ContentBlock::Text(t) => text.push_str(t),
                ContentBlock::ToolUse(call) => tool_calls.push(ToolCall {
                    id: call.tool_use_id.clone(),
                    name: call.name.clone(),
                    input: json(&call.input),
                }),
                _ => {}
            }
        }
        Ok(Completion {
            text,
            tool_calls,
            stop_reason: stop_reason(&out.stop_reason),
            model: self.model_id.clone(),
            input_tokens: out.usage.as_ref().and_then(|u| tokens(u.input_tokens)),
            output_tokens: out.usage.as_ref().and_then(|u| tokens(u.output_tokens)),
            fallback_used: false,
        })
    }

    async fn stream(&self, prompt: &Prompt, text: &TextSink<'_>) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let out = self
            .client
            .converse_stream()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(prompt.system.clone()))
            .set_messages(Some(messages(prompt)?))
            .set_tool_config(tool_config(prompt)?)
            .inference_config(inference(prompt))
            .send()
            .await
            .map_err(sdk_error)?;
        let mut stream = out.stream;
        let mut completion = Completion::text("", self.model_id.clone());
        // Tool calls by content block: (id, name, input JSON so far).
        let mut calls: BTreeMap<i32, (String, String, String)> = BTreeMap::new();
        while let Some(event) = stream.recv().await.map_err(sdk_error)? {
            match event {
                ConverseStreamOutput::ContentBlockStart(start) => {
                    if let Some(ContentBlockStart::ToolUse(tool)) = start.start {
                        calls.insert(start.content_block_index, (tool.tool_use_id, tool.name, String::new()));
                    }
                }
                ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta {
                    Some(ContentBlockDelta::Text(piece)) => {
                        completion.text.push_str(&piece);
                        text(&piece);
                    }
                    Some(ContentBlockDelta::ToolUse(input)) => {
                        if let Some(call) = calls.get_mut(&delta.content_block_index) {
                            call.2.push_str(&input.input);
                        }
                    }
                    _ => {}
                },
                ConverseStreamOutput::MessageStop(stop) => completion.stop_reason = stop_reason(&stop.stop_reason),
                ConverseStreamOutput::Metadata(metadata) => {
                    if let Some(usage) = metadata.usage {
                        completion.input_tokens = tokens(usage.input_tokens);
                        completion.output_tokens = tokens(usage.output_tokens);
                    }
                }
                _ => {}
            }
        }
        completion.tool_calls = calls
            .into_values()
            .map(|(id, name, input)| ToolCall {
                id,
                name,
                input: match serde_json::from_str::<Value>(&input) {
                    Ok(value @ Value::Object(_)) => value,
                    _ if input.trim().is_empty() => Value::Object(Default::default()),
                    _ => Value::String(input),
                },
            })
            .collect();
        Ok(completion)
    }
}

/// Titan Text Embeddings v2, through `InvokeModel`, one text a call (its API takes one).
#[derive(Clone)]
pub struct TitanEmbeddings {
    client: Client,
    model_id: String,
    dimensions: u32,
}

/// Titan Text Embeddings v2's model id.
pub const TITAN_EMBEDDINGS_V2: &str = "amazon.titan-embed-text-v2:0";

impl TitanEmbeddings {
    pub fn new(client: Client, model_id: impl Into<String>) -> Self {
        Self { client, model_id: model_id.into(), dimensions: 512 }
    }
}

#[async_trait]
impl Embeddings for TitanEmbeddings {
    fn model(&self) -> &str {
        &self.model_id
    }

    async fn embed(&self, texts: &[String], _kind: TextKind) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let calls = texts.iter().map(|text| async move {
            let body = serde_json::json!({"inputText": text, "dimensions": self.dimensions, "normalize": true});
            let out = self
                .client
                .invoke_model()
                .model_id(&self.model_id)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(body.to_string()))
                .send()
                .await
                .map_err(|e| match sdk_error(e) {
                    LlmError::Unavailable(e) => EmbeddingError::Unavailable(e),
                    LlmError::Refused(m) => EmbeddingError::Invalid(m),
                    other => EmbeddingError::Backend(other.into()),
                })?;
            let answer: HashMap<String, Value> = serde_json::from_slice(out.body.as_ref())
                .map_err(|e| EmbeddingError::Backend(anyhow!("Titan's answer is not JSON: {e}")))?;
            let vector: Vec<f32> = answer
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| EmbeddingError::Backend(anyhow!("Titan answered no embedding")))?
                .iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect();
            Ok::<_, EmbeddingError>(normalized(vector))
        });
        futures::future::try_join_all(calls).await
    }
}
