//! Lambda: `GET /health` and `GET /openapi.json` behind the REST API.

use std::sync::Arc;

use oratio_core::health::HealthCheck;
use oratio_functions::{aws, logging, openapi, platform, request};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    logging::init();
    let config = aws::config().await;
    let checks: Vec<Arc<dyn HealthCheck>> = vec![aws::table(&config)?, aws::blobs(&config)?];
    let state = platform::PlatformState::new(checks, &openapi::document());
    let (router, _) = platform::routes().split_for_parts();
    let router = router
        .with_state(state)
        .fallback(oratio_functions::error::not_found)
        .layer(axum::middleware::from_fn(request::request_context));
    aws::serve_rest(router).await
}
