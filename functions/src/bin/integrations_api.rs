//! Lambda: integrations (phone numbers, Twilio's voice webhook, tenant tools and their
//! executions). Twilio's media stream is the voice gateway's (`/telephony/twilio/media`).

use oratio_functions::{aws, telephony_api, tools_api};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    aws::serve_api(telephony_api::routes().merge(tools_api::routes())).await
}
