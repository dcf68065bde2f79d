//! `AgentRuntime` on Amazon Bedrock AgentCore Runtime, with direct code deployment: the
//! agent's files and the `oratio_agent` package are zipped to S3, `CreateAgentRuntime` /
//! `UpdateAgentRuntime` point a runtime at the zip (managed Python, HTTP protocol), and
//! `InvokeAgentRuntime` calls its `/invocations` with a runtime session id per
//! conversation. Which runtime serves which agent is kept in the table.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_bedrockagentcorecontrol::error::DisplayErrorContext;
use aws_sdk_bedrockagentcorecontrol::types::{
    AgentManagedRuntimeType, AgentRuntimeArtifact, AgentRuntimeStatus, Code, CodeConfiguration, NetworkConfiguration,
    NetworkMode, ProtocolConfiguration, S3Location, ServerProtocol,
};
use aws_smithy_types::Blob;
use oratio_core::blob::BlobKey;
use oratio_core::llm::TextSink;
use oratio_core::runtime::{
    AgentAnswer, AgentCode, AgentRef, AgentRuntime, AnswerStream, Invocation, ORATIO_AGENT_PACKAGE, RuntimeError,
    RuntimeStatus,
};
use oratio_core::table::{Item, Key, Table, TableError};
use serde::{Deserialize, Serialize};

/// Extra environment for an agent (the platform's URL and the agent's token).
pub type AgentEnv = Arc<dyn Fn(&AgentRef) -> Vec<(String, String)> + Send + Sync>;

/// Where code goes and what runtimes run as.
#[derive(Clone)]
pub struct AgentCoreSettings {
    /// The bucket the code zips are written to (the platform's bucket).
    pub bucket: String,
    /// The execution role every agent runtime assumes.
    pub role_arn: String,
    pub env: Option<AgentEnv>,
}

pub struct AgentCoreRuntime {
    control: aws_sdk_bedrockagentcorecontrol::Client,
    data: aws_sdk_bedrockagentcore::Client,
    s3: aws_sdk_s3::Client,
    table: Arc<dyn Table>,
    settings: AgentCoreSettings,
}

/// The runtime that serves an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deployment {
    runtime_id: String,
    runtime_arn: String,
    version: String,
}

fn deployment_key(agent: &AgentRef) -> Key {
    Key::new(format!("RUNTIME#{}#{}", agent.tenant, agent.agent), "AGENTCORE")
}

/// AgentCore names are `[a-zA-Z][a-zA-Z0-9_]{0,47}`; agent ids are unique ULIDs.
fn runtime_name(agent: &AgentRef) -> String {
    format!("oratio_{}", agent.agent.as_str().to_lowercase())
}

/// AgentCore wants session ids of at least 33 characters; prefixing the agent keeps one
/// agent's sessions apart from another's.
pub fn runtime_session_id(agent: &AgentRef, session: &str) -> String {
    format!("{}-{session}", agent.agent)
}

fn backend(e: impl Into<anyhow::Error>) -> RuntimeError {
    RuntimeError::Backend(e.into())
}

fn table_error(e: TableError) -> RuntimeError {
    match e {
        TableError::Unavailable(e) => RuntimeError::Unavailable(e),
        other => backend(other),
    }
}

/// The zip AgentCore unpacks: the agent's files at the root and the `oratio_agent` package.
pub fn code_zip(code: &AgentCode) -> Result<Vec<u8>, RuntimeError> {
    code.validate()?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let files = code.files.iter().map(|(p, c)| (p.as_str(), c.as_str()));
    for (path, content) in files.chain([("oratio_agent/__init__.py", ORATIO_AGENT_PACKAGE)]) {
        zip.start_file(path, options).map_err(backend)?;
        zip.write_all(content.as_bytes()).map_err(backend)?;
    }
    Ok(zip.finish().map_err(backend)?.into_inner())
}

impl AgentCoreRuntime {
    pub fn new(
        control: aws_sdk_bedrockagentcorecontrol::Client,
        data: aws_sdk_bedrockagentcore::Client,
        s3: aws_sdk_s3::Client,
        table: Arc<dyn Table>,
        settings: AgentCoreSettings,
    ) -> Self {
        Self { control, data, s3, table, settings }
    }

    async fn deployment(&self, agent: &AgentRef) -> Result<Option<Deployment>, RuntimeError> {
        let item = self.table.get(&deployment_key(agent)).await.map_err(table_error)?;
        item.map(|item| item.record()).transpose().map_err(backend)
    }

    /// A runtime of this agent's name that the table does not know (a crash between
    /// creating it and recording it).
    async fn find_by_name(&self, name: &str) -> Result<Option<(String, String)>, RuntimeError> {
        let mut pages = self.control.list_agent_runtimes().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RuntimeError::Unavailable(anyhow!("{}", DisplayErrorContext(e))))?;
            if let Some(found) = page.agent_runtimes().iter().find(|r| r.agent_runtime_name() == name) {
                return Ok(Some((found.agent_runtime_id().to_owned(), found.agent_runtime_arn().to_owned())));
            }
        }
        Ok(None)
    }

    async fn upload(&self, agent: &AgentRef, code: &AgentCode) -> Result<String, RuntimeError> {
        let zip = code_zip(code)?;
        let key = BlobKey::for_tenant(
            &agent.tenant,
            &format!("agents/{}/versions/{}/runtime.zip", agent.agent, code.version),
        )
        .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        self.s3
            .put_object()
            .bucket(&self.settings.bucket)
            .key(key.as_str())
            .content_type("application/zip")
            .body(zip.into())
            .send()
            .await
            .map_err(|e| {
                RuntimeError::Unavailable(anyhow!("uploading the agent's code: {}", DisplayErrorContext(e)))
            })?;
        Ok(key.as_str().to_owned())
    }
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(what: &str, e: E) -> RuntimeError {
    RuntimeError::Unavailable(anyhow!("{what}: {}", DisplayErrorContext(e)))
}

#[async_trait]
impl AgentRuntime for AgentCoreRuntime {
    async fn deploy(&self, agent: &AgentRef, code: &AgentCode) -> Result<(), RuntimeError> {
        let key = self.upload(agent, code).await?;
        let artifact = AgentRuntimeArtifact::CodeConfiguration(
            CodeConfiguration::builder()
                .code(Code::S3(
                    S3Location::builder().bucket(&self.settings.bucket).prefix(key).build().map_err(backend)?,
                ))
                .runtime(AgentManagedRuntimeType::Python312)
                .entry_point(code.entrypoint.clone())
                .build()
                .map_err(backend)?,
        );
        let network = NetworkConfiguration::builder().network_mode(NetworkMode::Public).build().map_err(backend)?;
        let protocol =
            ProtocolConfiguration::builder().server_protocol(ServerProtocol::Http).build().map_err(backend)?;
        let env = self.settings.env.as_ref().map(|env| env(agent).into_iter().collect());
        let name = runtime_name(agent);
        let known = match self.deployment(agent).await? {
            Some(d) => Some((d.runtime_id, d.runtime_arn)),
            None => self.find_by_name(&name).await?,
        };
        let (runtime_id, runtime_arn) = match known {
            Some((id, arn)) => {
                self.control
                    .update_agent_runtime()
                    .agent_runtime_id(&id)
                    .agent_runtime_artifact(artifact)
                    .role_arn(&self.settings.role_arn)
                    .network_configuration(network)
                    .protocol_configuration(protocol)
                    .set_environment_variables(env)
                    .client_token(format!("{}-{}-update", agent.agent, code.version))
                    .send()
                    .await
                    .map_err(|e| unavailable("updating the agent runtime", e))?;
                (id, arn)
            }
            None => {
                let created = self
                    .control
                    .create_agent_runtime()
                    .agent_runtime_name(name)
                    .description(format!("Oratio agent {} of tenant {}", agent.agent, agent.tenant))
                    .agent_runtime_artifact(artifact)
                    .role_arn(&self.settings.role_arn)
                    .network_configuration(network)
                    .protocol_configuration(protocol)
                    .set_environment_variables(env)
                    .tags("oratio:tenant", agent.tenant.as_str())
                    .tags("oratio:agent", agent.agent.as_str())
                    .client_token(format!("{}-{}-create", agent.agent, code.version))
                    .send()
                    .await
                    .map_err(|e| unavailable("creating the agent runtime", e))?;
                (created.agent_runtime_id().to_owned(), created.agent_runtime_arn().to_owned())
            }
        };
        let deployment = Deployment { runtime_id, runtime_arn, version: code.version.clone() };
        let item = Item::from_record(deployment_key(agent), &deployment).map_err(backend)?;
        self.table.put(item, None).await.map_err(table_error)
    }

    async fn status(&self, agent: &AgentRef) -> Result<RuntimeStatus, RuntimeError> {
        let Some(deployment) = self.deployment(agent).await? else { return Ok(RuntimeStatus::Stopped) };
        let got = self.control.get_agent_runtime().agent_runtime_id(&deployment.runtime_id).send().await;
        let runtime = match got {
            Ok(runtime) => runtime,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                return Ok(RuntimeStatus::Stopped);
            }
            Err(e) => return Err(unavailable("reading the agent runtime", e)),
        };
        Ok(match runtime.status() {
            AgentRuntimeStatus::Ready => RuntimeStatus::Ready { version: deployment.version },
            AgentRuntimeStatus::Creating | AgentRuntimeStatus::Updating => RuntimeStatus::Starting,
            AgentRuntimeStatus::CreateFailed | AgentRuntimeStatus::UpdateFailed => RuntimeStatus::Failed {
                reason: runtime.failure_reason().unwrap_or("AgentCore could not start the agent").to_owned(),
            },
            _ => RuntimeStatus::Stopped,
        })
    }

    async fn invoke(
        &self,
        agent: &AgentRef,
        session: &str,
        invocation: &Invocation,
        text: Option<&TextSink<'_>>,
    ) -> Result<AgentAnswer, RuntimeError> {
        let deployment = self.deployment(agent).await?.ok_or(RuntimeError::NotRunning)?;
        let payload = serde_json::to_vec(invocation).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        let sent = self
            .data
            .invoke_agent_runtime()
            .agent_runtime_arn(&deployment.runtime_arn)
            .runtime_session_id(runtime_session_id(agent, session))
            .content_type("application/json")
            .accept(if text.is_some() { "text/event-stream" } else { "application/json" })
            .payload(Blob::new(payload))
            .send()
            .await;
        let output = match sent {
            Ok(output) => output,
            Err(aws_sdk_bedrockagentcore::error::SdkError::TimeoutError(_)) => return Err(RuntimeError::Timeout),
            Err(e) => {
                let service = e.as_service_error();
                return Err(if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                    RuntimeError::NotRunning
                } else if service.is_some_and(|s| s.is_runtime_client_error()) {
                    RuntimeError::AgentFailed(service.and_then(|s| s.meta().message()).unwrap_or("no reason").into())
                } else if service.is_some_and(|s| s.is_validation_exception()) {
                    RuntimeError::Invalid(service.and_then(|s| s.meta().message()).unwrap_or("invalid").into())
                } else {
                    unavailable("invoking the agent", e)
                });
            }
        };
        let streamed = output.content_type.starts_with("text/event-stream");
        let mut body = output.response;
        if let (Some(text), true) = (text, streamed) {
            let mut stream = AnswerStream::new(text);
            while let Some(chunk) = body.next().await {
                stream.feed(&chunk.map_err(|e| RuntimeError::Unavailable(e.into()))?);
            }
            return stream.finish();
        }
        let body = body.collect().await.map_err(|e| RuntimeError::Unavailable(e.into()))?.into_bytes();
        AgentAnswer::parse(&body)
    }

    /// AgentCore has no pause: the runtime is deleted, and resuming deploys it again.
    async fn stop(&self, agent: &AgentRef) -> Result<(), RuntimeError> {
        let Some(deployment) = self.deployment(agent).await? else { return Ok(()) };
        let deleted = self.control.delete_agent_runtime().agent_runtime_id(&deployment.runtime_id).send().await;
        match deleted {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(unavailable("deleting the agent runtime", e)),
        }
        self.table.delete(&deployment_key(agent), None).await.map_err(table_error)
    }
}
