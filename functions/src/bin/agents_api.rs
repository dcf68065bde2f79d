//! Lambda: the `agents` REST API area.

use oratio_functions::{agents_api, aws};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::serve_api(agents_api::routes()).await
}
