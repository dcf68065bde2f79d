//! Lambda: one call of the voice socket's serverless shape, invoked asynchronously by the
//! relay with the call's inbox. It runs the session on Amazon Nova 2 Sonic (the voice
//! gateway's engine and `VoiceService`), reads the inbox every 20 ms and answers through
//! the voice API's `@connections` (`VOICE_SOCKET_MANAGEMENT_URL`), until the session ends
//! or the invocation is 30 s from its timeout, where the session ends `shutdown`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};
use oratio_aws::WorkerJob;
use oratio_core::voice::relay::Worker;
use oratio_functions::{aws, logging};

/// What the worker leaves of its invocation's time for the session to end cleanly.
const MARGIN: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = aws::config().await;
    let deps = aws::deps(&config)?;
    let worker = Worker {
        voice: aws::sonic_voice(&config, &deps)?,
        table: deps.table.clone(),
        push: aws::push_through(&config, "VOICE_SOCKET_MANAGEMENT_URL")?,
        poll: Duration::from_millis(20),
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<WorkerJob>| {
        let worker = worker.clone();
        async move {
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let left = Duration::from_millis(event.context.deadline.saturating_sub(now_ms)).saturating_sub(MARGIN);
            worker.serve(event.payload.inbox, Some(tokio::time::Instant::now() + left)).await;
            Ok::<_, lambda_runtime::Error>(())
        }
    }))
    .await
}
