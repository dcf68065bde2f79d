//! Lambda: the `identity` REST API area.

use oratio_functions::{aws, identity_api};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::serve_api(identity_api::routes()).await
}
