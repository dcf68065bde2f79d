//! Agent creation, the use case `statemachines/agent_creation.asl.json` runs: one task per
//! `Task` state (validate, ingest, poll the ingestion, AgentCreator, check the code is
//! stored, deploy, poll the runtime, activate, mark failed), each taking the state's JSON
//! input and answering JSON, or failing with an error name the definition's `Retry` and
//! `Catch` match. Every step is recorded in the agent's progress and pushed to the
//! tenant's open dashboards. Step Functions calls it through a Lambda; the embedded
//! platform through its ASL runner.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agents::{self, Agent, AgentError, AgentStatus, ProgressStep, StepStatus};
use crate::blob::{BlobKey, BlobStore};
use crate::creator::{CodeChecker, CreatorError, CreatorInput, create};
use crate::events::{self, Event};
use crate::ids::{AgentId, TenantId};
use crate::knowledge::{IngestionJob, IngestionStatus, KnowledgeBase, KnowledgeScope, SourceDocument};
use crate::llm::{Llm, LlmError};
use crate::push::Push;
use crate::runtime::{AgentCode, AgentRef, AgentRuntime, RuntimeStatus};
use crate::table::Table;
use crate::workflow::{TaskFailure, TaskInvoker};

/// The name Step Functions and the embedded runner know the machine by.
pub const MACHINE: &str = "agent_creation";
/// The definition, as deployed.
pub const DEFINITION: &str = include_str!("../../../statemachines/agent_creation.asl.json");
/// How many polls of ingestion or of the runtime before giving up.
pub const MAX_POLLS: u64 = 60;

pub struct CreationTasks {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub knowledge: Arc<dyn KnowledgeBase>,
    /// AgentCreator's model.
    pub llm: Arc<dyn Llm>,
    pub checker: Arc<dyn CodeChecker>,
    pub runtime: Arc<dyn AgentRuntime>,
    pub push: Arc<dyn Push>,
}

#[derive(Deserialize)]
struct Ids {
    tenant_id: TenantId,
    agent_id: AgentId,
}

fn fail(error: &str, cause: impl Into<String>) -> TaskFailure {
    TaskFailure::new(error, cause)
}

/// Faults of ours are retried; the tenant sees a general reason if they persist.
fn retryable(e: impl std::fmt::Display) -> TaskFailure {
    tracing::warn!(cause = %e, "a creation task failed");
    fail("Retryable", "a temporary problem in the platform; try again later")
}

/// The code and artifacts of one version: `tenants/<t>/agents/<a>/versions/<v>/`.
fn version_key(tenant: &TenantId, agent: &AgentId, version: &str, file: &str) -> Result<BlobKey, TaskFailure> {
    BlobKey::for_tenant(tenant, &format!("agents/{agent}/versions/{version}/{file}")).map_err(retryable)
}

/// The code of a version, read back from the blob store (`None` until it is complete).
pub async fn stored_code(
    blobs: &dyn BlobStore,
    tenant: &TenantId,
    agent: &AgentId,
    version: &str,
) -> Result<Option<AgentCode>, TaskFailure> {
    let manifest = blobs.get(&version_key(tenant, agent, version, "code/manifest.json")?).await.map_err(retryable)?;
    let Some(manifest) = manifest else { return Ok(None) };
    let manifest: Value = serde_json::from_slice(&manifest.bytes).map_err(retryable)?;
    let mut files = BTreeMap::new();
    for path in manifest["files"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let blob =
            blobs.get(&version_key(tenant, agent, version, &format!("code/{path}"))?).await.map_err(retryable)?;
        let blob = blob.ok_or_else(|| fail("CodeNotReady", "the code is incomplete"))?;
        files.insert(path.to_owned(), String::from_utf8(blob.bytes).map_err(retryable)?);
    }
    let entrypoint = manifest["entrypoint"].as_str().unwrap_or("agent.py").to_owned();
    Ok(Some(AgentCode { version: version.into(), entrypoint, files }))
}

/// The step each task is recorded as.
fn step_name(task: &str) -> &str {
    match task {
        "Validate" => "validate",
        "Ingest" | "IngestionStatus" => "knowledge",
        "CreateAgentCode" | "CodeReady" => "agent_creator",
        "Deploy" | "RuntimeStatus" => "deploy",
        "Activate" => "activate",
        _ => "failed",
    }
}

impl CreationTasks {
    async fn agent(&self, ids: &Ids) -> Result<Agent, TaskFailure> {
        match agents::load(self.table.as_ref(), &ids.tenant_id, &ids.agent_id).await {
            Ok(agent) => Ok(agent),
            Err(AgentError::NotFound) => Err(fail("AgentGone", "the agent no longer exists")),
            Err(e) => Err(retryable(e)),
        }
    }

    /// Appends a progress step (and maybe a status), then tells the tenant's dashboards.
    async fn record(
        &self,
        agent: &Agent,
        step: &str,
        status: StepStatus,
        detail: Option<String>,
        new_status: Option<AgentStatus>,
        version: Option<&str>,
    ) -> Result<Agent, TaskFailure> {
        let progress = ProgressStep { step: step.into(), status, at: Utc::now(), detail: detail.clone() };
        let failure = if new_status == Some(AgentStatus::Failed) { detail.as_deref() } else { None };
        let agent = agents::record_step(self.table.as_ref(), agent, progress.clone(), new_status, failure, version)
            .await
            .map_err(retryable)?;
        let event = Event::AgentProgress {
            agent_id: agent.agent_id.clone(),
            status: agent.status.as_str().into(),
            step: serde_json::to_value(&progress).map_err(retryable)?,
        };
        events::publish(self.table.as_ref(), self.push.as_ref(), &agent.tenant_id, &[event]).await;
        Ok(agent)
    }

    async fn validate(&self, ids: &Ids) -> Result<Value, TaskFailure> {
        let agent = self.agent(ids).await?;
        if agent.status != AgentStatus::Creating {
            return Err(fail("NotCreating", format!("the agent is {}, not being created", agent.status.as_str())));
        }
        crate::creator::parse_sop(&agent.sop, &agent.handoff_conditions).map_err(|e| fail("InvalidSop", e.0))?;
        Ok(json!({"version": format!("v{}", ulid::Ulid::new().to_string().to_lowercase())}))
    }

    async fn ingest(&self, ids: &Ids) -> Result<Value, TaskFailure> {
        let agent = self.agent(ids).await?;
        let documents: Vec<SourceDocument> = agent
            .documents
            .iter()
            .map(|d| SourceDocument {
                document_id: d.document_id.clone(),
                title: d.title.clone(),
                blob: d.blob.clone(),
                content_type: d.content_type.clone(),
            })
            .collect();
        let scope = KnowledgeScope { tenant: ids.tenant_id.clone(), agent: ids.agent_id.clone() };
        let job = self.knowledge.ingest(&scope, &documents).await.map_err(retryable)?;
        Ok(json!({"job": job.0, "polls": 0, "status": "in_progress"}))
    }

    async fn ingestion_status(&self, ids: &Ids, input: &Value) -> Result<Value, TaskFailure> {
        let job = IngestionJob(input["job"].as_str().unwrap_or_default().to_owned());
        let polls = input["polls"].as_u64().unwrap_or(0) + 1;
        let scope = KnowledgeScope { tenant: ids.tenant_id.clone(), agent: ids.agent_id.clone() };
        match self.knowledge.status(&scope, &job).await.map_err(retryable)? {
            IngestionStatus::Complete { documents, passages } => Ok(
                json!({"job": job.0, "polls": polls, "status": "complete", "documents": documents, "passages": passages}),
            ),
            IngestionStatus::Failed { reason } => Err(fail("IngestionFailed", reason)),
            IngestionStatus::InProgress if polls >= MAX_POLLS => {
                Err(fail("TimedOut", "the documents took too long to index"))
            }
            IngestionStatus::InProgress => Ok(json!({"job": job.0, "polls": polls, "status": "in_progress"})),
        }
    }

    async fn create_code(&self, ids: &Ids, version: &str) -> Result<Value, TaskFailure> {
        let agent = self.agent(ids).await?;
        let reference = AgentRef { tenant: ids.tenant_id.clone(), agent: ids.agent_id.clone() };
        let input = CreatorInput {
            agent: &reference,
            agent_name: &agent.name,
            sop: &agent.sop,
            handoff_conditions: &agent.handoff_conditions,
            greeting: agent.greeting.as_deref(),
            version,
        };
        let creation = match create(input, self.llm.as_ref(), self.checker.as_ref()).await {
            Ok(creation) => creation,
            Err(CreatorError::InvalidSop(e)) => return Err(fail("InvalidSop", e.0)),
            Err(CreatorError::Model(LlmError::Refused(why))) => {
                return Err(fail("ModelFailed", format!("AgentCreator's model refused the request: {why}")));
            }
            Err(CreatorError::Model(e)) => return Err(retryable(e)),
            Err(CreatorError::ModelOutput(reason)) => return Err(fail("ModelFailed", reason)),
            Err(CreatorError::CodeRejected { findings, creation }) => {
                self.store_artifacts(ids, version, &creation.artifacts()).await?;
                return Err(fail(
                    "CodeRejected",
                    format!("the generated agent did not pass its review: {}", findings.join("; ")),
                ));
            }
            Err(CreatorError::Checker(e)) => return Err(retryable(e)),
        };
        self.store_artifacts(ids, version, &creation.artifacts()).await?;
        // The code goes last: its presence says the version is complete.
        for (path, content) in &creation.code.files {
            let key = version_key(&ids.tenant_id, &ids.agent_id, version, &format!("code/{path}"))?;
            self.blobs
                .put(&key, content.clone().into_bytes(), "text/x-python; charset=utf-8")
                .await
                .map_err(retryable)?;
        }
        let manifest =
            json!({"entrypoint": creation.code.entrypoint, "files": creation.code.files.keys().collect::<Vec<_>>()});
        let key = version_key(&ids.tenant_id, &ids.agent_id, version, "code/manifest.json")?;
        self.blobs.put(&key, manifest.to_string().into_bytes(), "application/json").await.map_err(retryable)?;
        Ok(json!({"version": version, "reviews": creation.reviews.len(), "code_reviews": creation.code_reviews.len()}))
    }

    async fn store_artifacts(
        &self,
        ids: &Ids,
        version: &str,
        artifacts: &[(String, Value)],
    ) -> Result<(), TaskFailure> {
        for (name, value) in artifacts {
            let key = version_key(&ids.tenant_id, &ids.agent_id, version, &format!("artifacts/{name}"))?;
            let body = serde_json::to_vec_pretty(value).map_err(retryable)?;
            self.blobs.put(&key, body, "application/json").await.map_err(retryable)?;
        }
        Ok(())
    }

    pub async fn code(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        version: &str,
    ) -> Result<Option<AgentCode>, TaskFailure> {
        stored_code(self.blobs.as_ref(), tenant, agent, version).await
    }

    async fn deploy(&self, ids: &Ids, version: &str) -> Result<Value, TaskFailure> {
        let code = self
            .code(&ids.tenant_id, &ids.agent_id, version)
            .await?
            .ok_or_else(|| fail("CodeNotReady", "the code is not stored yet"))?;
        let agent = AgentRef { tenant: ids.tenant_id.clone(), agent: ids.agent_id.clone() };
        self.runtime.deploy(&agent, &code).await.map_err(retryable)?;
        Ok(json!({"status": "starting", "polls": 0}))
    }

    async fn runtime_status(&self, ids: &Ids, input: &Value) -> Result<Value, TaskFailure> {
        let polls = input["polls"].as_u64().unwrap_or(0) + 1;
        let agent = AgentRef { tenant: ids.tenant_id.clone(), agent: ids.agent_id.clone() };
        match self.runtime.status(&agent).await.map_err(retryable)? {
            RuntimeStatus::Ready { version } => Ok(json!({"status": "ready", "version": version, "polls": polls})),
            RuntimeStatus::Failed { reason } => {
                Err(fail("RuntimeFailed", format!("the agent could not start: {reason}")))
            }
            RuntimeStatus::Stopped => Err(fail("RuntimeFailed", "the agent was stopped while starting")),
            RuntimeStatus::Starting if polls >= MAX_POLLS => Err(fail("TimedOut", "the agent took too long to start")),
            RuntimeStatus::Starting => Ok(json!({"status": "starting", "polls": polls})),
        }
    }

    async fn run(&self, task: &str, input: &Value) -> Result<Value, TaskFailure> {
        let ids: Ids = serde_json::from_value(input.clone())
            .map_err(|e| fail("States.Runtime", format!("bad task input: {e}")))?;
        let version = input["version"].as_str().unwrap_or_default();
        match task {
            "Validate" => self.validate(&ids).await,
            "Ingest" => self.ingest(&ids).await,
            "IngestionStatus" => self.ingestion_status(&ids, input).await,
            "CreateAgentCode" => self.create_code(&ids, version).await,
            "CodeReady" => match self.code(&ids.tenant_id, &ids.agent_id, version).await? {
                Some(_) => Ok(json!({})),
                None => Err(fail("CodeNotReady", "the code is not stored yet")),
            },
            "Deploy" => self.deploy(&ids, version).await,
            "RuntimeStatus" => self.runtime_status(&ids, input).await,
            "Activate" => {
                let agent = self.agent(&ids).await?;
                self.record(&agent, "activate", StepStatus::Finished, None, Some(AgentStatus::Active), Some(version))
                    .await?;
                Ok(json!({}))
            }
            "MarkFailed" => {
                let agent = self.agent(&ids).await?;
                let cause = input["error"]["Cause"].as_str().unwrap_or("the agent could not be created").to_owned();
                let reason = readable(&input["error"]["Error"], cause);
                self.record(&agent, "failed", StepStatus::Failed, Some(reason), Some(AgentStatus::Failed), None)
                    .await?;
                Ok(json!({}))
            }
            other => Err(fail("States.Runtime", format!("no task named {other}"))),
        }
    }
}

/// What the tenant reads when creation fails: the cause a task wrote, never an engine's
/// internals. Step Functions passes a Lambda's error as JSON (`errorType`,
/// `errorMessage`, `stackTrace`) in `Cause`: only the message is kept.
fn readable(error: &Value, cause: String) -> String {
    let cause = serde_json::from_str::<Value>(&cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or(cause);
    match error.as_str() {
        Some("States.Timeout") => "a step took too long; try again".into(),
        Some(name) if name.starts_with("States.") || name.starts_with("Lambda.") => {
            "the platform could not finish creating the agent; try again".into()
        }
        _ => cause,
    }
}

/// The task a `Resource` names (`${ValidateFunctionArn}` → `Validate`).
fn task_name(resource: &str) -> &str {
    resource.trim_start_matches("${").trim_end_matches("FunctionArn}")
}

/// Whether this task's success completes its step.
fn finishes(task: &str, output: &Value) -> bool {
    matches!(task, "Validate" | "CodeReady") || output["status"] == "complete" || output["status"] == "ready"
}

impl CreationTasks {
    /// One Lambda invocation by Step Functions: the state's `Parameters` name the task.
    pub async fn handle(&self, event: Value) -> Result<Value, TaskFailure> {
        let task = event["task"].as_str().unwrap_or_default().to_owned();
        self.perform(&task, event).await
    }

    /// Runs one task, recording its step: the first task of each step opens it; the one
    /// that sees it done closes it.
    async fn perform(&self, task: &str, input: Value) -> Result<Value, TaskFailure> {
        let step = step_name(task);
        let ids: Option<Ids> = serde_json::from_value(input.clone()).ok();
        if matches!(task, "Validate" | "Ingest" | "CreateAgentCode" | "Deploy") {
            self.mark(ids.as_ref(), step, StepStatus::Started).await;
        }
        let result = self.run(task, &input).await;
        if result.as_ref().is_ok_and(|output| finishes(task, output)) {
            self.mark(ids.as_ref(), step, StepStatus::Finished).await;
        }
        result
    }

    async fn mark(&self, ids: Option<&Ids>, step: &str, status: StepStatus) {
        if let Some(ids) = ids
            && let Ok(agent) = self.agent(ids).await
        {
            let _ = self.record(&agent, step, status, None, None, None).await;
        }
    }
}

#[async_trait]
impl TaskInvoker for CreationTasks {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskFailure> {
        self.perform(task_name(resource), input).await
    }
}
