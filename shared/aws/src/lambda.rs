//! `VoiceWorkers` on Lambda: each call's worker is an asynchronous invocation
//! (`InvocationType: Event`) of the voice worker function, given the call's inbox.

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use oratio_core::ids::ConnectionId;
use oratio_core::voice::relay::VoiceWorkers;
use serde::{Deserialize, Serialize};

/// What the voice worker function is invoked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerJob {
    pub inbox: ConnectionId,
}

#[derive(Clone)]
pub struct LambdaWorkers {
    client: Client,
    /// The worker function's name or ARN (`VOICE_WORKER_FUNCTION`).
    function: String,
}

impl LambdaWorkers {
    pub fn new(client: Client, function: impl Into<String>) -> Self {
        Self { client, function: function.into() }
    }
}

#[async_trait]
impl VoiceWorkers for LambdaWorkers {
    async fn start(&self, inbox: &ConnectionId) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(&WorkerJob { inbox: inbox.clone() }).context("a worker job")?;
        let answer = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| anyhow!("invoking the voice worker: {}", DisplayErrorContext(e)))?;
        // An asynchronous invocation that Lambda queued answers 202.
        match answer.status_code() {
            202 => Ok(()),
            status => Err(anyhow!("invoking the voice worker answered {status}")),
        }
    }
}
