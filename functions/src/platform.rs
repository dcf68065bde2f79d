//! Platform routes: `GET /health` (each component's state) and `GET /openapi.json`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use oratio_core::health::{ComponentHealth, HealthCheck, HealthReport, Status};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long one component may take to answer a health probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct PlatformState {
    pub checks: Arc<Vec<Arc<dyn HealthCheck>>>,
    /// The OpenAPI document, rendered once.
    pub openapi_json: Arc<str>,
}

impl PlatformState {
    pub fn new(checks: Vec<Arc<dyn HealthCheck>>, openapi: &utoipa::openapi::OpenApi) -> Self {
        let complete = crate::openapi::with_universal_answers(openapi.clone());
        let json = complete.to_json().expect("the OpenAPI document serializes");
        Self { checks: Arc::new(checks), openapi_json: json.into() }
    }
}

pub fn routes() -> OpenApiRouter<PlatformState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(openapi_json))
}

async fn probe(check: &dyn HealthCheck) -> ComponentHealth {
    let started = Instant::now();
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, check.probe()).await;
    let (status, detail) = match outcome {
        Ok(Ok(())) => (Status::Ok, None),
        Ok(Err(reason)) if check.essential() => (Status::Down, Some(reason)),
        Ok(Err(reason)) => (Status::Degraded, Some(reason)),
        Err(_) => (Status::Degraded, Some(format!("no answer within {PROBE_TIMEOUT:?}"))),
    };
    ComponentHealth { status, backend: check.backend(), detail, latency_ms: started.elapsed().as_millis() as u64 }
}

/// The platform's composite health.
#[utoipa::path(
    get,
    path = "/health",
    tag = "platform",
    responses(
        (status = 200, description = "Every component can serve (`ok`) or some are slow (`degraded`)", body = serde_json::Value,
         example = json!({"status": "ok", "components": {"table": {"status": "ok", "backend": "sqlite", "latency_ms": 1}}})),
        (status = 503, description = "A component is down", body = serde_json::Value),
    )
)]
async fn health(State(state): State<PlatformState>) -> Response {
    let probes = state.checks.iter().map(|c| async move { (c.name(), probe(c.as_ref()).await) });
    let components: BTreeMap<_, _> = futures::future::join_all(probes).await.into_iter().collect();
    let report = HealthReport::from_components(components);
    let status = if report.status == Status::Down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, axum::Json(report)).into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "platform",
    responses((status = 200, description = "The OpenAPI 3.1 document of every REST route", body = serde_json::Value))
)]
async fn openapi_json(State(state): State<PlatformState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi_json.to_string()).into_response()
}
