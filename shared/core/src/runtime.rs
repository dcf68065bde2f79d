//! The `AgentRuntime` port: where generated agents run (Bedrock AgentCore Runtime in AWS; a
//! supervised local Python process on one machine), behind AgentCore's contract:
//! `GET /ping` and `POST /invocations` with JSON.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentId, TenantId};

/// The `oratio_agent` package every generated agent imports; runtimes ship it beside the code.
pub const ORATIO_AGENT_PACKAGE: &str = include_str!("../../agent_runtime/oratio_agent/__init__.py");

/// The header AgentCore carries a conversation's runtime session id in.
pub const SESSION_HEADER: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id";

/// Which agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentRef {
    pub tenant: TenantId,
    pub agent: AgentId,
}

/// An agent's code: its files by relative path, and the file that starts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCode {
    pub version: String,
    pub entrypoint: String,
    pub files: BTreeMap<String, String>,
}

impl AgentCode {
    /// Paths are relative, `/`-separated, without `..`: they unpack safely anywhere.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let safe = |path: &str| {
            !path.is_empty()
                && !path.starts_with('/')
                && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'))
        };
        if !self.version.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || self.version.is_empty() {
            return Err(RuntimeError::Invalid("a version is letters, digits, - and _".into()));
        }
        if let Some(bad) = self.files.keys().find(|p| !safe(p)) {
            return Err(RuntimeError::Invalid(format!("unsafe file path {bad:?}")));
        }
        if !self.files.contains_key(&self.entrypoint) {
            return Err(RuntimeError::Invalid(format!("the entrypoint {} is not among the files", self.entrypoint)));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RuntimeStatus {
    /// Deployed, not answering `/ping` yet.
    Starting,
    Ready {
        version: String,
    },
    /// `reason` is for the tenant.
    Failed {
        reason: String,
    },
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Invalid(String),
    #[error("the agent is not running")]
    NotRunning,
    #[error("the agent did not answer in time")]
    Timeout,
    /// The agent answered with an error of its own.
    #[error("the agent failed: {0}")]
    AgentFailed(String),
    #[error("the agent runtime is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the agent runtime failed")]
    Backend(#[source] anyhow::Error),
}

#[async_trait]
pub trait AgentRuntime: Send + Sync {
    /// Deploys (or replaces) the agent's code and starts it; poll `status` until ready.
    async fn deploy(&self, agent: &AgentRef, code: &AgentCode) -> Result<(), RuntimeError>;

    async fn status(&self, agent: &AgentRef) -> Result<RuntimeStatus, RuntimeError>;

    /// One `POST /invocations` of the agent; `session` keeps a conversation together.
    async fn invoke(&self, agent: &AgentRef, session: &str, payload: Value) -> Result<Value, RuntimeError>;

    /// Stops the agent (pause, archive); a stopped agent stays stopped across restarts.
    async fn stop(&self, agent: &AgentRef) -> Result<(), RuntimeError>;
}
