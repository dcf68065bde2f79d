//! `CodeChecker` with the machine's Python: compiles the code, checks its imports and
//! entrypoint, and runs its smoke conversation, in a scratch directory, as the agent (its
//! model calls and knowledge searches go to the platform's runtime API).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use oratio_core::creator::{CodeChecker, CodeReport};
use oratio_core::runtime::{AgentCode, AgentRef};

use crate::runtime::AgentEnv;

const CHECKER: &str = include_str!("checker.py");

pub struct PythonChecker {
    python: PathBuf,
    timeout: Duration,
    /// Where the agent under review reaches the platform; without it the review runs offline.
    env: Option<AgentEnv>,
}

impl PythonChecker {
    pub fn new(python: impl Into<PathBuf>) -> Self {
        Self { python: python.into(), timeout: Duration::from_secs(420), env: None }
    }

    /// Runs each smoke conversation with the agent's environment (the platform's URL and
    /// the agent's runtime token).
    pub fn with_env(mut self, env: AgentEnv) -> Self {
        self.env = Some(env);
        self
    }
}

#[async_trait]
impl CodeChecker for PythonChecker {
    async fn check(&self, agent: &AgentRef, code: &AgentCode) -> Result<CodeReport, anyhow::Error> {
        code.validate().map_err(|e| anyhow!("{e}"))?;
        let scratch = tempfile::tempdir().context("a scratch directory")?;
        let lib = scratch.path().join("lib");
        let work = scratch.path().join("agent");
        std::fs::create_dir_all(lib.join("oratio_agent"))?;
        std::fs::create_dir_all(&work)?;
        std::fs::write(lib.join("oratio_agent").join("__init__.py"), oratio_core::runtime::ORATIO_AGENT_PACKAGE)?;
        for (path, content) in &code.files {
            let file = work.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(file, content)?;
        }
        std::fs::write(scratch.path().join("checker.py"), CHECKER)?;
        let mut command = tokio::process::Command::new(&self.python);
        command
            .arg(scratch.path().join("checker.py"))
            .current_dir(&work)
            .env("PYTHONPATH", format!("{}:{}", lib.display(), work.display()))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("ORATIO_PLATFORM_URL")
            .env_remove("ORATIO_RUNTIME_TOKEN")
            .kill_on_drop(true);
        if let Some(env) = &self.env {
            command.envs(env(agent));
        }
        let run = command.output();
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| anyhow!("the code review did not finish within {:?}", self.timeout))?
            .with_context(|| format!("running {}", self.python.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        serde_json::from_str(last)
            .with_context(|| format!("the code review printed no report: {}", String::from_utf8_lossy(&output.stderr)))
    }
}
