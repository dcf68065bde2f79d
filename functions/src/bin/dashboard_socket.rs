//! Lambda: the dashboard WebSocket API (`$connect`, `$disconnect`, `ping`, `$default`).

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use oratio_functions::dashboard_socket::DashboardSocket;
use oratio_functions::socket::SocketApi;
use oratio_functions::{aws, logging};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = aws::config().await;
    let socket = Arc::new(DashboardSocket { deps: Arc::new(aws::deps(&config)?), push: aws::push(&config)? });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let socket = socket.clone();
        async move { Ok::<_, lambda_runtime::Error>(socket.handle(event.payload).await) }
    }))
    .await
}
