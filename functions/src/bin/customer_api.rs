//! Lambda: the `customer` REST API area.

use oratio_functions::{aws, customer_api};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::serve_api(customer_api::routes()).await
}
