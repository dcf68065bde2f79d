//! `Llm` on Bedrock's Converse API (Claude, or any model Converse serves).

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message, SystemContentBlock,
};
use oratio_core::llm::{Completion, Llm, LlmError, Prompt, Speaker};

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

#[async_trait]
impl Llm for BedrockLlm {
    fn model(&self) -> &str {
        &self.model_id
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        prompt.validate()?;
        let messages = prompt
            .messages
            .iter()
            .map(|m| {
                let role = match m.speaker {
                    Speaker::User => ConversationRole::User,
                    Speaker::Assistant => ConversationRole::Assistant,
                };
                Message::builder()
                    .role(role)
                    .content(ContentBlock::Text(m.text.clone()))
                    .build()
                    .map_err(|e| LlmError::Backend(e.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(prompt.max_tokens).unwrap_or(i32::MAX))
            .temperature(prompt.temperature)
            .build();
        let sent = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(prompt.system.clone()))
            .set_messages(Some(messages))
            .inference_config(config)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let code = e.code().map(str::to_owned);
                let message = e.message().unwrap_or_default().to_owned();
                let transient =
                    matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_));
                let source = anyhow!("{}", DisplayErrorContext(e));
                return Err(match code.as_deref() {
                    Some(
                        "ThrottlingException"
                        | "ServiceUnavailableException"
                        | "InternalServerException"
                        | "ModelNotReadyException",
                    ) => LlmError::Unavailable(source),
                    Some(
                        "ValidationException"
                        | "AccessDeniedException"
                        | "ResourceNotFoundException"
                        | "ModelErrorException",
                    ) => LlmError::Refused(message),
                    _ if transient => LlmError::Unavailable(source),
                    _ => LlmError::Backend(source),
                });
            }
        };
        let text = match out.output {
            Some(ConverseOutput::Message(message)) => message
                .content
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
            _ => return Err(LlmError::Backend(anyhow!("Converse returned no message"))),
        };
        let usage = out.usage;
        Ok(Completion {
            text,
            model: self.model_id.clone(),
            input_tokens: usage.as_ref().map(|u| u.input_tokens.max(0) as u32),
            output_tokens: usage.as_ref().map(|u| u.output_tokens.max(0) as u32),
        })
    }
}
