//! Lambda: the `agents` REST API area (agents and their API keys).

use oratio_functions::{agents_api, aws, keys_api};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::serve_api(agents_api::routes().merge(keys_api::routes())).await
}
