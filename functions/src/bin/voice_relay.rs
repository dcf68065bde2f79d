//! Lambda: the voice WebSocket API's routes (`$connect`, `$disconnect`, `$default`), the
//! relay of the voice socket's serverless shape. Each call's worker is an asynchronous
//! invocation of `VOICE_WORKER_FUNCTION`; refusals go out through the voice API's
//! `@connections` (`VOICE_SOCKET_MANAGEMENT_URL`).

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use oratio_aws::LambdaWorkers;
use oratio_functions::socket::SocketApi;
use oratio_functions::voice_relay::VoiceRelay;
use oratio_functions::{aws, logging};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = aws::config().await;
    let workers = LambdaWorkers::new(oratio_aws::lambda_client(&config), aws::env("VOICE_WORKER_FUNCTION")?);
    let relay = Arc::new(VoiceRelay {
        deps: Arc::new(aws::deps(&config)?),
        push: aws::push_through(&config, "VOICE_SOCKET_MANAGEMENT_URL")?,
        workers: Arc::new(workers),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let relay = relay.clone();
        async move { Ok::<_, lambda_runtime::Error>(relay.handle(event.payload).await) }
    }))
    .await
}
