//! Lambda: the runtime API the platform's agents call (their knowledge, the platform's model).

use oratio_functions::{aws, runtime_api};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    oratio_functions::logging::init();
    let config = aws::config().await;
    let (router, _) = runtime_api::routes().split_for_parts();
    let router = router
        .with_state(aws::runtime_state(&config)?)
        .fallback(oratio_functions::error::not_found)
        .layer(axum::middleware::from_fn(oratio_functions::request::request_context));
    // The same binary answers on the HTTP API and, streaming, on a function URL in
    // RESPONSE_STREAM mode (`RESPONSE_STREAM=true`), where agents stream the model's tokens.
    if std::env::var("RESPONSE_STREAM").is_ok_and(|v| v == "true") {
        lambda_http::run_with_streaming_response(aws::named_by_api_gateway(router)).await
    } else {
        aws::serve_rest(router).await
    }
}
