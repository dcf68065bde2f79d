//! Lambda: on an EventBridge schedule, ends every session idle past the timeout (so that
//! it leaves the live index, enters the history and is counted in the analytics) and
//! tells the tenants' dashboards.

use lambda_runtime::{LambdaEvent, service_fn};
use oratio_functions::{aws, logging};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = aws::config().await;
    let turns = aws::deps(&config)?.turns();
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let turns = turns.clone();
        async move {
            let ended = turns.sweep_idle().await?;
            tracing::info!(ended, "ended idle sessions");
            Ok::<_, lambda_runtime::Error>(json!({ "ended": ended }))
        }
    }))
    .await
}
