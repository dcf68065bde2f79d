//! Lambda: conversations (messages, session end, sessions and transcripts). Behind the
//! REST API it answers whole; with `RESPONSE_STREAM=true` (its function URL in
//! `RESPONSE_STREAM` mode) replies stream as Server-Sent Events.

use oratio_functions::{aws, conversations_api};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    if std::env::var("RESPONSE_STREAM").is_ok_and(|v| v == "true") {
        aws::serve_streaming_api(conversations_api::routes()).await
    } else {
        aws::serve_api(conversations_api::routes()).await
    }
}
