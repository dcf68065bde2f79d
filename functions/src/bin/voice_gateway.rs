//! The voice gateway in AWS: the same voice socket as the embedded platform
//! (`GET /v1/agents/{agent_id}/voice`, `oratio.voice.v1`) and Twilio's Media Streams
//! (`/telephony/twilio/media`), as a long-lived server (an ECS
//! Fargate service behind a load balancer) on the AWS adapters, with Amazon Nova 2 Sonic
//! (`SONIC_MODEL_ID`) as its engine. A Lambda cannot hold a call: Sonic's stream is one
//! HTTP/2 request that lasts the whole call (renewed every 7 minutes), and the caller's
//! audio must reach it every 20 ms. `GET /health` answers the load balancer. Listens on
//! `PORT` (default 8080); SIGTERM (a task being replaced) lets every call end cleanly.

use std::sync::Arc;

use anyhow::Context as _;
use oratio_core::health::HealthCheck;
use oratio_functions::telephony_api;
use oratio_functions::voice_api::{self, VoiceGateway};
use oratio_functions::{aws, logging, openapi, platform, request};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let config = aws::config().await;
    let deps = Arc::new(aws::deps(&config)?);
    tokio::spawn(oratio_functions::usage::flush_forever(deps.clone()));
    let voice = aws::sonic_voice(&config, &deps)?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let gateway = VoiceGateway { deps: deps.clone(), voice, shutdown };

    let checks: Vec<Arc<dyn HealthCheck>> = vec![aws::table(&config)?, aws::blobs(&config)?];
    let (health, _) = platform::routes().split_for_parts();
    let (voice_routes, _) = voice_api::routes().merge(telephony_api::media_routes()).split_for_parts();
    let app = axum::Router::new()
        .merge(health.with_state(platform::PlatformState::new(checks, &openapi::document())))
        .merge(voice_routes.with_state(gateway))
        .fallback(oratio_functions::error::not_found)
        .layer(axum::middleware::from_fn(request::request_context));

    let port: u16 = std::env::var("PORT").map_or(Ok(8080), |p| p.parse()).context("PORT is a port number")?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tracing::info!(port, "voice gateway listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            let _ = stop.send(true);
        })
        .await?;
    Ok(())
}
