//! `AgentRuntime` on one machine: each deployed agent is a Python process on a free
//! loopback port, speaking AgentCore's contract, supervised: started, health-checked on
//! `/ping`, restarted with backoff if it dies, stopped on pause or archive, and brought
//! back when the platform restarts (the desired state is kept in the table:
//! `RUNTIME#<tenant>#<agent>` / `DEPLOYMENT`).
//!
//! Files go to `<root>/<tenant>/<agent>/<version>/`; the `oratio_agent` package, compiled
//! into this binary, to `<root>/_lib/`. An agent exits by itself when the platform process
//! that started it is gone (`ORATIO_PARENT_PID`), so a killed platform leaves no strays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use oratio_core::llm::TextSink;
use oratio_core::runtime::{
    AgentAnswer, AgentCode, AgentRef, AgentRuntime, AnswerStream, Invocation, RuntimeError, RuntimeStatus,
};
use oratio_core::table::{Index, Item, Key, Query, Table, Update};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

/// AgentCore's header naming the runtime session.
pub use oratio_core::runtime::SESSION_HEADER;
/// The header carrying an agent's invocation secret: only the platform knows it, so no
/// other local process can invoke an agent around keys, rate limits and transcripts.
pub const INVOCATION_SECRET_HEADER: &str = "X-Oratio-Invocation-Secret";
const DESIRED_RUNNING: &str = "RUNTIMES#RUNNING";
/// Consecutive failed starts before an agent is declared failed.
const MAX_FAILED_STARTS: u32 = 3;
/// How long a message waits for an agent that is (re)starting.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How long an agent's exit waits for a platform stop that explains it.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// How long things may take.
#[derive(Debug, Clone, Copy)]
pub struct HostLimits {
    pub ready_within: Duration,
    pub invoke_within: Duration,
    pub first_backoff: Duration,
}

impl Default for HostLimits {
    fn default() -> Self {
        Self {
            ready_within: Duration::from_secs(20),
            invoke_within: Duration::from_secs(30),
            first_backoff: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deployment {
    tenant: oratio_core::ids::TenantId,
    agent: oratio_core::ids::AgentId,
    version: String,
    entrypoint: String,
}

struct Supervised {
    status: Arc<Mutex<(RuntimeStatus, Option<u16>)>>,
    stop: watch::Sender<bool>,
}

/// Extra environment for an agent's process (the platform's URL and the agent's token).
pub type AgentEnv = Arc<dyn Fn(&AgentRef) -> Vec<(String, String)> + Send + Sync>;

pub struct LocalAgentHost {
    /// Derives each agent's invocation secret.
    secret: [u8; 32],
    env: Option<AgentEnv>,
    root: PathBuf,
    python: PathBuf,
    table: Arc<dyn Table>,
    limits: HostLimits,
    http: reqwest::Client,
    agents: Mutex<HashMap<AgentRef, Supervised>>,
}

fn deployment_key(agent: &AgentRef) -> Key {
    Key::new(format!("RUNTIME#{}#{}", agent.tenant, agent.agent), "DEPLOYMENT")
}

fn backend(e: impl Into<anyhow::Error>) -> RuntimeError {
    RuntimeError::Backend(e.into())
}

fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr().map(|a| a.port())
}

/// The last lines of an agent's log, for a failure reason a tenant can read.
fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

impl LocalAgentHost {
    pub fn new(
        root: impl Into<PathBuf>,
        python: impl Into<PathBuf>,
        table: Arc<dyn Table>,
        limits: HostLimits,
    ) -> anyhow::Result<Self> {
        let root = root.into();
        let lib = root.join("_lib").join("oratio_agent");
        std::fs::create_dir_all(&lib).context("creating the agent library directory")?;
        std::fs::write(lib.join("__init__.py"), oratio_core::runtime::ORATIO_AGENT_PACKAGE)
            .context("writing the oratio_agent package")?;
        let http = reqwest::Client::builder().timeout(limits.invoke_within).build().context("an HTTP client")?;
        let secret: [u8; 32] = rand::random();
        Ok(Self {
            secret,
            env: None,
            root,
            python: python.into(),
            table,
            limits,
            http,
            agents: Mutex::new(HashMap::new()),
        })
    }

    /// Gives every agent process this extra environment.
    pub fn with_env(mut self, env: AgentEnv) -> Self {
        self.env = Some(env);
        self
    }

    /// The secret an agent's process accepts invocations with (new each platform start;
    /// agents are restarted with it).
    fn invocation_secret(&self, agent: &AgentRef) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(format!("{}/{}", agent.tenant, agent.agent).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn code_dir(&self, agent: &AgentRef, version: &str) -> PathBuf {
        self.root.join(agent.tenant.as_str()).join(agent.agent.as_str()).join(version)
    }

    /// Starts every agent that was running when the platform last stopped.
    pub async fn restore(&self) -> Result<usize, RuntimeError> {
        let deployments: Vec<Deployment> = self
            .table
            .query(Query::partition(Index::Gsi2, DESIRED_RUNNING))
            .await
            .map_err(backend)?
            .records()
            .map_err(backend)?;
        for d in &deployments {
            self.supervise(
                AgentRef { tenant: d.tenant.clone(), agent: d.agent.clone() },
                d.version.clone(),
                d.entrypoint.clone(),
            );
        }
        Ok(deployments.len())
    }

    /// Stops every agent process (at platform shutdown), leaving their desired state as is.
    pub fn stop_all(&self) {
        for (_, supervised) in self.agents.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            let _ = supervised.stop.send(true);
        }
    }

    fn supervise(&self, agent: AgentRef, version: String, entrypoint: String) {
        let (stop, stopped) = watch::channel(false);
        let status = Arc::new(Mutex::new((RuntimeStatus::Starting, None)));
        let previous = self
            .agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent.clone(), Supervised { status: status.clone(), stop });
        if let Some(previous) = previous {
            let _ = previous.stop.send(true);
        }
        let mut env = self.env.as_ref().map(|env| env(&agent)).unwrap_or_default();
        env.push(("ORATIO_INVOCATION_SECRET".to_owned(), self.invocation_secret(&agent)));
        let run = Run {
            env,
            dir: self.code_dir(&agent, &version),
            lib: self.root.join("_lib"),
            python: self.python.clone(),
            entrypoint,
            version,
            limits: self.limits,
            status,
            http: self.http.clone(),
        };
        tokio::spawn(async move { run.supervise(stopped).await });
    }

    /// The agent's port once it is ready. One that is (re)starting (just resumed, or
    /// restarted after a crash) is waited for up to `READY_WAIT`, so that a message in
    /// that moment is answered late rather than refused.
    async fn port(&self, agent: &AgentRef) -> Result<u16, RuntimeError> {
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        loop {
            let starting = {
                let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
                let supervised = agents.get(agent).ok_or(RuntimeError::NotRunning)?;
                let (status, port) = &*supervised.status.lock().unwrap_or_else(|p| p.into_inner());
                match (status, port) {
                    (RuntimeStatus::Ready { .. }, Some(port)) => return Ok(*port),
                    (RuntimeStatus::Starting, _) => true,
                    _ => false,
                }
            };
            if !starting || tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::NotRunning);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One supervised agent process.
struct Run {
    env: Vec<(String, String)>,
    dir: PathBuf,
    lib: PathBuf,
    python: PathBuf,
    entrypoint: String,
    version: String,
    limits: HostLimits,
    status: Arc<Mutex<(RuntimeStatus, Option<u16>)>>,
    http: reqwest::Client,
}

enum Ended {
    Stopped,
    Exited(String),
    NeverReady(String),
}

impl Run {
    fn set(&self, status: RuntimeStatus, port: Option<u16>) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = (status, port);
    }

    async fn supervise(self, mut stopped: watch::Receiver<bool>) {
        let mut failed_starts = 0;
        let mut backoff = self.limits.first_backoff;
        loop {
            let (ended, was_ready) = self.run_once(&mut stopped).await;
            match ended {
                Ended::Stopped => {
                    self.set(RuntimeStatus::Stopped, None);
                    return;
                }
                Ended::Exited(reason) | Ended::NeverReady(reason) => {
                    // A signal to the whole process group (Ctrl-C, a service manager's
                    // SIGTERM) reaches a running agent just before the platform's own
                    // stop: an exit the stop follows at once is that stop, not a crash.
                    if was_ready && tokio::time::timeout(STOP_GRACE, stopped.wait_for(|stop| *stop)).await.is_ok() {
                        self.set(RuntimeStatus::Stopped, None);
                        return;
                    }
                    if was_ready {
                        failed_starts = 0;
                        backoff = self.limits.first_backoff;
                        tracing::warn!(dir = %self.dir.display(), %reason, "an agent exited; restarting it");
                    } else {
                        failed_starts += 1;
                        if failed_starts >= MAX_FAILED_STARTS {
                            self.set(RuntimeStatus::Failed { reason }, None);
                            return;
                        }
                    }
                    self.set(RuntimeStatus::Starting, None);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped.changed() => {
                            self.set(RuntimeStatus::Stopped, None);
                            return;
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Starts the process and waits for it to end; says whether it was ever ready.
    async fn run_once(&self, stopped: &mut watch::Receiver<bool>) -> (Ended, bool) {
        let port = match free_port() {
            Ok(port) => port,
            Err(e) => return (Ended::Exited(format!("no free port: {e}")), false),
        };
        let log_path = self.dir.join("agent.log");
        let log = match std::fs::File::create(&log_path) {
            Ok(log) => log,
            Err(e) => return (Ended::Exited(format!("the agent's files are missing: {e}")), false),
        };
        let spawned = tokio::process::Command::new(&self.python)
            .arg(&self.entrypoint)
            .current_dir(&self.dir)
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("PYTHONPATH", &self.lib)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("ORATIO_PARENT_PID", std::process::id().to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return (Ended::Exited(format!("Python could not be started ({}): {e}", self.python.display())), false);
            }
        };
        // Wait for /ping, the process's exit, or the deadline.
        let deadline = tokio::time::Instant::now() + self.limits.ready_within;
        let ping = format!("http://127.0.0.1:{port}/ping");
        loop {
            if let Ok(Some(exit)) = child.try_wait() {
                return (
                    Ended::NeverReady(format!("the agent stopped while starting ({exit}): {}", log_tail(&log_path))),
                    false,
                );
            }
            let healthy = match self.http.get(&ping).timeout(Duration::from_millis(500)).send().await {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.is_ok_and(|v| v["status"] == "Healthy"),
                _ => false,
            };
            if healthy {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                let within = self.limits.ready_within.as_secs_f32();
                return (Ended::NeverReady(format!("the agent did not become ready within {within:.0} s")), false);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stopped.changed() => {
                    let _ = child.kill().await;
                    return (Ended::Stopped, false);
                }
            }
        }
        self.set(RuntimeStatus::Ready { version: self.version.clone() }, Some(port));
        tokio::select! {
            exit = child.wait() => {
                let exit = exit.map(|e| e.to_string()).unwrap_or_else(|e| e.to_string());
                (Ended::Exited(format!("the agent stopped ({exit}): {}", log_tail(&log_path))), true)
            }
            _ = stopped.changed() => {
                let _ = child.kill().await;
                (Ended::Stopped, true)
            }
        }
    }
}

#[async_trait]
impl AgentRuntime for LocalAgentHost {
    async fn deploy(&self, agent: &AgentRef, code: &AgentCode) -> Result<(), RuntimeError> {
        code.validate()?;
        let dir = self.code_dir(agent, &code.version);
        let files = code.files.clone();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            std::fs::create_dir_all(&target)?;
            for (path, content) in files {
                let file = target.join(&path);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(file, content)?;
            }
            Ok(())
        })
        .await
        .map_err(backend)?
        .map_err(backend)?;
        let deployment = Deployment {
            tenant: agent.tenant.clone(),
            agent: agent.agent.clone(),
            version: code.version.clone(),
            entrypoint: code.entrypoint.clone(),
        };
        let item = Item::from_record(deployment_key(agent), &deployment).map_err(backend)?.in_index(
            Index::Gsi2,
            DESIRED_RUNNING,
            format!("{}#{}", agent.tenant, agent.agent),
        );
        self.table.put(item, None).await.map_err(backend)?;
        self.supervise(agent.clone(), code.version.clone(), code.entrypoint.clone());
        Ok(())
    }

    async fn status(&self, agent: &AgentRef) -> Result<RuntimeStatus, RuntimeError> {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        Ok(agents
            .get(agent)
            .map_or(RuntimeStatus::Stopped, |s| s.status.lock().unwrap_or_else(|p| p.into_inner()).0.clone()))
    }

    async fn invoke(
        &self,
        agent: &AgentRef,
        session: &str,
        invocation: &Invocation,
        text: Option<&TextSink<'_>>,
    ) -> Result<AgentAnswer, RuntimeError> {
        let port = self.port(agent).await?;
        let mut request = self
            .http
            .post(format!("http://127.0.0.1:{port}/invocations"))
            .header(SESSION_HEADER, session)
            .header(INVOCATION_SECRET_HEADER, self.invocation_secret(agent))
            .json(invocation);
        if text.is_some() {
            request = request.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        let unavailable = |e: reqwest::Error| {
            if e.is_timeout() { RuntimeError::Timeout } else { RuntimeError::Unavailable(e.into()) }
        };
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let streamed = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if let (Some(text), true) = (text, streamed && status.is_success()) {
            let mut stream = AnswerStream::new(text);
            while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
                stream.feed(&chunk);
            }
            return stream.finish();
        }
        let body = response.bytes().await.map_err(unavailable)?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "no reason given".into());
            return Err(RuntimeError::AgentFailed(reason));
        }
        AgentAnswer::parse(&body)
    }

    async fn stop(&self, agent: &AgentRef) -> Result<(), RuntimeError> {
        let update = Update::new().remove("gsi2pk").remove("gsi2sk");
        match self.table.update(&deployment_key(agent), update, Some(oratio_core::table::Condition::Exists)).await {
            Ok(_) | Err(oratio_core::table::TableError::ConditionFailed { .. }) => {}
            Err(e) => return Err(backend(e)),
        }
        if let Some(supervised) = self.agents.lock().unwrap_or_else(|p| p.into_inner()).remove(agent) {
            let _ = supervised.stop.send(true);
        }
        Ok(())
    }
}
