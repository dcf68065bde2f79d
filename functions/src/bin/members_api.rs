//! Lambda: the `members` REST API area.

use oratio_functions::{aws, members_api, notifications_api};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::serve_api(members_api::routes().merge(notifications_api::routes())).await
}
