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
    aws::serve_rest(router).await
}
