//! The embedded platform: every REST router the Lambdas serve, the WebSocket APIs with
//! API Gateway's semantics, and the dashboard, on one loopback port, on the embedded
//! adapters.

pub mod blobs;
pub mod dashboard;
pub mod data_dir;
pub mod local_api;
pub mod websocket;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oratio_auth::{JwksVerifier, VerifierConfig};
use oratio_core::api_keys::UsageRecorder;
use oratio_core::health::HealthCheck;
use oratio_core::llm::Llm;
use oratio_core::runtime::{AgentRef, AgentRuntime};
use oratio_core::table::Table;
use oratio_core::creation::{self, CreationTasks};
use oratio_functions::dashboard_socket::DashboardSocket;
use oratio_functions::deps::ConversationSettings;
use oratio_functions::deps::Deps;
use oratio_functions::error::{method_not_allowed, not_found};
use oratio_functions::{openapi, platform, request};
use oratio_local::asl::{AslRunner, StateMachine};
use oratio_local::checker::PythonChecker;
use oratio_local::identity::{LOCAL_CLIENT_ID, load_or_create_signing_key};
use oratio_local::knowledge::LocalKnowledgeBase;
use oratio_local::llm::{LocalEngine, OpenAiCompatibleLlm};
use oratio_local::runtime::{HostLimits, LocalAgentHost};
use oratio_local::{ConnectionRegistry, DirBlobStore, InMemoryRateLimiter, LocalIdentity, Outbox, SqliteTable};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::data_dir::DataDir;
use crate::local_api::LocalState;
use crate::websocket::{Limits, SocketEndpoint};
use oratio_functions::runtime_api::{self, RuntimeState};

pub const DEFAULT_PORT: u16 = 8600;

/// How often expired items are swept from the table (they are invisible before that).
const PURGE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_limits: Limits,
    /// The Python that runs generated agents (`ORATIO_PYTHON`, default `python3`).
    pub python: PathBuf,
    /// Multiplies the workflow's waits and retry intervals (tests shorten them).
    pub workflow_time_scale: f64,
    /// An OpenAI-compatible endpoint and model for agents (`ORATIO_LLM_URL`,
    /// `ORATIO_LLM_MODEL`, `ORATIO_LLM_API_KEY`); without one, the local engine.
    pub llm_url: Option<String>,
    pub llm_model: Option<String>,
    pub llm_api_key: Option<String>,
    /// Session idle time (`ORATIO_SESSION_IDLE_SECS`, default 1800) and the agent's time
    /// to answer a message.
    pub conversations: ConversationSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            data_dir: PathBuf::from(".oratio"),
            socket_limits: Limits::default(),
            python: std::env::var_os("ORATIO_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("python3")),
            workflow_time_scale: 1.0,
            llm_url: std::env::var("ORATIO_LLM_URL").ok().filter(|u| !u.is_empty()),
            llm_model: std::env::var("ORATIO_LLM_MODEL").ok().filter(|m| !m.is_empty()),
            llm_api_key: std::env::var("ORATIO_LLM_API_KEY").ok().filter(|k| !k.is_empty()),
            conversations: ConversationSettings {
                idle: std::env::var("ORATIO_SESSION_IDLE_SECS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .map_or(ConversationSettings::default().idle, std::time::Duration::from_secs),
                ..ConversationSettings::default()
            },
        }
    }
}

/// A running platform.
pub struct Platform {
    agents: Arc<dyn AgentRuntime>,
    addr: SocketAddr,
    data_dir: PathBuf,
    stop: Stopper,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Asks a running platform to stop.
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Platform {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The agents this platform runs (for tests: customers reach them through the API).
    pub fn agents(&self) -> Arc<dyn AgentRuntime> {
        self.agents.clone()
    }

    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Runs until stopped; then finishes in-flight requests, closes sockets, checkpoints
    /// the table and releases the data directory.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the platform task panicked")?
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.stop();
        self.wait().await
    }
}

/// Starts the platform and returns once it accepts connections.
pub async fn start(config: Config) -> anyhow::Result<Platform> {
    let data = DataDir::acquire(&config.data_dir)?;
    let listener = TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("listening on {}:{}", config.host, config.port))?;
    let addr = listener.local_addr()?;
    let table = SqliteTable::open(data.table_file())?;
    let blobs = Arc::new(DirBlobStore::open(data.blobs_dir(), format!("http://{addr}"))?);
    let registry = ConnectionRegistry::new();
    let (stop_tx, stop_rx) = watch::channel(false);

    let shared_table: Arc<dyn Table> = Arc::new(table.clone());
    let outbox = Outbox::new(shared_table.clone());
    let issuer = format!("http://{addr}/local/identity");
    let signing_key = load_or_create_signing_key(&data.path().join("identity").join("signing-key.pem"))?;
    let identity =
        Arc::new(LocalIdentity::new(shared_table.clone(), Arc::new(outbox.clone()), Arc::new(signing_key), &issuer));
    let verifier = JwksVerifier::new(VerifierConfig {
        jwks_url: format!("{issuer}/.well-known/jwks.json"),
        issuer,
        client_id: LOCAL_CLIENT_ID.into(),
    });
    let knowledge =
        Arc::new(LocalKnowledgeBase::new(data.path().join("knowledge"), blobs.clone(), shared_table.clone()));
    let llm: Arc<dyn Llm> = match (&config.llm_url, &config.llm_model) {
        (Some(url), Some(model)) => Arc::new(OpenAiCompatibleLlm::new(url, model, config.llm_api_key.clone())),
        _ => Arc::new(LocalEngine),
    };
    let runtime_state = RuntimeState {
        key: Arc::new(oratio_local::files::load_or_create_secret(&data.path().join("runtime.key"))?),
        knowledge: knowledge.clone(),
        llm: llm.clone(),
    };
    let agent_env = {
        let (state, url) = (runtime_state.clone(), format!("http://{addr}"));
        Arc::new(move |agent: &AgentRef| state.agent_env(&url, agent))
    };
    let host = Arc::new(
        LocalAgentHost::new(data.path().join("runtimes"), &config.python, shared_table.clone(), HostLimits::default())?
            .with_env(agent_env),
    );
    let tasks = CreationTasks {
        table: shared_table.clone(),
        blobs: blobs.clone(),
        knowledge,
        llm,
        checker: Arc::new(PythonChecker::new(&config.python)),
        runtime: host.clone(),
        push: Arc::new(registry.clone()),
    };
    let machine = StateMachine::parse(creation::DEFINITION).context("the agent-creation state machine")?;
    let runner = AslRunner::new(
        HashMap::from([(creation::MACHINE.to_owned(), machine)]),
        Arc::new(tasks),
        shared_table.clone(),
        config.workflow_time_scale,
    );
    let deps = Arc::new(Deps {
        table: shared_table,
        blobs: blobs.clone(),
        workflow: Arc::new(runner.clone()),
        runtime: host.clone(),
        identity: identity.clone(),
        verifier: Arc::new(verifier),
        mailer: Arc::new(outbox.clone()),
        rate_limiter: Arc::new(InMemoryRateLimiter::new()),
        usage: Arc::new(UsageRecorder::new()),
        push: Arc::new(registry.clone()),
        conversations: config.conversations,
    });

    let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(table.clone()), blobs.clone(), Arc::new(registry.clone())];
    let dashboard_socket = SocketEndpoint {
        api: Arc::new(DashboardSocket { deps: deps.clone(), push: Arc::new(registry.clone()) }),
        registry: registry.clone(),
        shutdown: stop_rx.clone(),
        limits: config.socket_limits,
    };
    let app =
        app(checks, deps.clone(), LocalState { outbox, identity }, runtime_state, (*blobs).clone(), dashboard_socket);

    let usage = tokio::spawn(oratio_functions::usage::flush_forever(deps.clone()));
    let host_handle: Arc<dyn AgentRuntime> = host.clone();
    let purge = tokio::spawn(purge_expired(table.clone()));
    // What the last run left running: agents, and creations in flight.
    let resumed_host = host.clone();
    tokio::spawn(async move {
        match resumed_host.restore().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(agents = n, "restarted the agents that were running"),
            Err(e) => tracing::error!(cause = %format!("{e:#}"), "restarting agents failed"),
        }
        match runner.resume_unfinished().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(executions = n, "resumed unfinished agent creations"),
            Err(e) => tracing::error!(cause = %format!("{e:#}"), "resuming agent creations failed"),
        }
    });
    let mut stopped = stop_rx.clone();
    let data_dir = data.path().to_path_buf();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
        purge.abort();
        usage.abort();
        host.stop_all();
        if let Err(e) = deps.usage.flush(deps.table.as_ref()).await {
            tracing::warn!(cause = %format!("{e:#}"), "writing the last API key usage failed");
        }
        table.checkpoint().await.context("checkpointing the table")?;
        drop(data);
        served.context("serving HTTP")
    });
    tracing::info!(%addr, data_dir = %data_dir.display(), "platform started");
    Ok(Platform { agents: host_handle, addr, data_dir, stop: Stopper(Arc::new(stop_tx)), task })
}

/// The whole HTTP surface of the embedded platform.
fn app(
    checks: Vec<Arc<dyn HealthCheck>>,
    deps: Arc<Deps>,
    local: LocalState,
    runtime: RuntimeState,
    blobs: DirBlobStore,
    dashboard_socket: SocketEndpoint,
) -> Router {
    let (local_routes, local_doc) = local_api::routes().split_for_parts();
    let (runtime_routes, _) = runtime_api::routes().split_for_parts();
    let (api_routes, _) = oratio_functions::api_routes().split_for_parts();
    let mut doc = openapi::document();
    doc.merge(local_doc);
    doc.merge(<blobs::Doc as utoipa::OpenApi>::openapi());
    let (platform_routes, _) = platform::routes().split_for_parts();
    Router::new()
        .merge(platform_routes.with_state(platform::PlatformState::new(checks, &doc)))
        .merge(api_routes.with_state(deps))
        .merge(local_routes.with_state(local))
        .merge(runtime_routes.with_state(runtime))
        .merge(blobs::router().with_state(blobs))
        .route("/ws/dashboard", get(websocket::upgrade).with_state(dashboard_socket))
        .route("/", get(dashboard::index))
        .fallback(fallback)
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .layer(axum::extract::DefaultBodyLimit::max(oratio_functions::MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn(request::request_context))
}

/// Dashboard files for browsers; the standard 404 body for everything else.
async fn fallback(method: Method, uri: axum::http::Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let api = ["v1/", "local/", "ws/"].iter().any(|p| path.starts_with(p));
    if method == Method::GET && !api && dashboard::has(path) {
        return dashboard::file(path);
    }
    not_found().await.into_response()
}

async fn purge_expired(table: SqliteTable) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        match table.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "purged expired items"),
            Err(e) => tracing::warn!(cause = %format!("{e:#}"), "purging expired items failed"),
        }
    }
}
