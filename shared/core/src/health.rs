//! Component health, as `GET /health` reports it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Down,
}

/// What one component says of itself.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentHealth {
    pub status: Status,
    /// The adapter behind the component (`sqlite`, `dynamodb`, ...).
    pub backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub latency_ms: u64,
}

/// Something `GET /health` asks after.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    fn name(&self) -> &'static str;
    fn backend(&self) -> &'static str;
    /// Whether the platform is down without it; a component that is not (the embedding
    /// engine: the platform works on words without it) is only `degraded` when it fails.
    fn essential(&self) -> bool {
        true
    }
    /// Succeeds when the component can serve; the error says why not (never a secret).
    async fn probe(&self) -> Result<(), String>;
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: Status,
    pub components: BTreeMap<&'static str, ComponentHealth>,
}

impl HealthReport {
    /// `down` if any component is down, else `degraded` if any is, else `ok`.
    pub fn from_components(components: BTreeMap<&'static str, ComponentHealth>) -> Self {
        let status = components.values().map(|c| c.status).fold(Status::Ok, |worst, s| match (worst, s) {
            (Status::Down, _) | (_, Status::Down) => Status::Down,
            (Status::Degraded, _) | (_, Status::Degraded) => Status::Degraded,
            _ => Status::Ok,
        });
        Self { status, components }
    }
}
