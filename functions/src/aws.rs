//! Wiring for the Lambda binaries: the AWS adapters, built once per cold start from the
//! environment `template.yaml` gives each function.

use std::sync::Arc;

use oratio_core::tools::EgressPolicy;
use oratio_core::tools::execution::{TOOL_BACKOFF, ToolService};

use anyhow::Context as _;
use axum::Router;
use axum::http::Request;
use oratio_auth::{JwksVerifier, VerifierConfig};
use oratio_aws::{
    AgentCoreRuntime, AgentCoreSettings, ApiGatewayPush, BedrockKnowledgeBase, BedrockLlm, CognitoIdentity,
    DynamoTable, KnowledgeBaseSettings, S3BlobStore, SesMailer,
};
use oratio_core::api_keys::UsageRecorder;
use oratio_core::llm::{FallbackLlm, Llm};
use oratio_core::ratelimit::TableRateLimiter;
use oratio_core::voice::{VoiceLimits, VoiceService};
use utoipa_axum::router::OpenApiRouter;

use crate::deps::Deps;
use crate::runtime_api::RuntimeState;

/// Reads a required environment variable.
pub fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("the environment variable {name} is not set"))
}

/// The shared AWS configuration (region, credentials, `AWS_ENDPOINT_URL` overrides).
pub async fn config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The table named by `TABLE_NAME`.
pub fn table(config: &aws_config::SdkConfig) -> anyhow::Result<Arc<DynamoTable>> {
    let client = oratio_aws::dynamodb_client(config);
    Ok(Arc::new(DynamoTable::new(client, env("TABLE_NAME")?)))
}

/// The bucket named by `BUCKET_NAME`.
pub fn blobs(config: &aws_config::SdkConfig) -> anyhow::Result<Arc<S3BlobStore>> {
    let client = oratio_aws::s3_client(config);
    Ok(Arc::new(S3BlobStore::new(client, env("BUCKET_NAME")?)))
}

/// The Bedrock Knowledge Base `KNOWLEDGE_BASE_ID` with its S3 data source
/// `KNOWLEDGE_DATA_SOURCE_ID` over `BUCKET_NAME`.
pub fn knowledge(config: &aws_config::SdkConfig) -> anyhow::Result<Arc<BedrockKnowledgeBase>> {
    let settings = KnowledgeBaseSettings {
        knowledge_base_id: env("KNOWLEDGE_BASE_ID")?,
        data_source_id: env("KNOWLEDGE_DATA_SOURCE_ID")?,
        bucket: env("BUCKET_NAME")?,
    };
    Ok(Arc::new(BedrockKnowledgeBase::new(
        oratio_aws::bedrock_agent_client(config),
        oratio_aws::bedrock_agent_runtime_client(config),
        table(config)?,
        settings,
    )))
}

/// The model `MODEL_ID` (a Bedrock model or inference profile id) through Converse; when
/// `FALLBACK_MODEL_ID` is set, that model answers while the first is unavailable.
pub fn llm(config: &aws_config::SdkConfig) -> anyhow::Result<Arc<dyn Llm>> {
    let client = oratio_aws::bedrock_runtime_client(config);
    let primary: Arc<dyn Llm> = Arc::new(BedrockLlm::new(client.clone(), env("MODEL_ID")?));
    Ok(match std::env::var("FALLBACK_MODEL_ID").ok().filter(|m| !m.is_empty()) {
        Some(fallback) => Arc::new(FallbackLlm { primary, fallback: Arc::new(BedrockLlm::new(client, fallback)) }),
        None => primary,
    })
}

/// What agents reach through the runtime API; their tokens are keyed by `RUNTIME_TOKEN_KEY`.
pub fn runtime_state(config: &aws_config::SdkConfig) -> anyhow::Result<RuntimeState> {
    let key = env("RUNTIME_TOKEN_KEY")?;
    anyhow::ensure!(key.len() >= 32, "RUNTIME_TOKEN_KEY must be at least 32 characters");
    let tools = ToolService {
        table: table(config)?,
        secrets: secrets(config)?,
        endpoint: Arc::new(crate::tool_http::HttpToolEndpoint::new(EgressPolicy::PUBLIC)?),
        backoff: TOOL_BACKOFF,
    };
    Ok(RuntimeState { key: Arc::new(key.into_bytes()), knowledge: knowledge(config)?, llm: llm(config)?, tools })
}

/// Tenants' secrets, sealed under the KMS key `SECRETS_KEY_ID`.
pub fn secrets(config: &aws_config::SdkConfig) -> anyhow::Result<Arc<dyn oratio_core::secrets::SecretBox>> {
    Ok(Arc::new(oratio_aws::KmsSecretBox::new(oratio_aws::kms_client(config), env("SECRETS_KEY_ID")?)))
}

/// Agents on AgentCore Runtime: code zips in `BUCKET_NAME`, runtimes assuming
/// `AGENT_RUNTIME_ROLE_ARN`, started with the runtime API's URL (`PLATFORM_URL`), the URL
/// of its streaming function (`RUNTIME_STREAM_URL`, when set) and their token.
pub fn runtime(config: &aws_config::SdkConfig) -> anyhow::Result<Arc<AgentCoreRuntime>> {
    let state = runtime_state(config)?;
    let platform_url = env("PLATFORM_URL")?;
    let stream_url = std::env::var("RUNTIME_STREAM_URL").ok().filter(|u| !u.is_empty());
    let agent_env = move |agent: &oratio_core::runtime::AgentRef| {
        let mut env = state.agent_env(&platform_url, agent);
        env.extend(stream_url.iter().map(|url| ("ORATIO_STREAM_URL".to_owned(), url.clone())));
        env
    };
    let settings = AgentCoreSettings {
        bucket: env("BUCKET_NAME")?,
        role_arn: env("AGENT_RUNTIME_ROLE_ARN")?,
        env: Some(Arc::new(agent_env)),
    };
    Ok(Arc::new(AgentCoreRuntime::new(
        oratio_aws::agentcore_control_client(config),
        // API Gateway gives an integration 29 s; the agent gets 25 of them.
        oratio_aws::agentcore_client(config, std::time::Duration::from_secs(25)),
        oratio_aws::s3_client(config),
        table(config)?,
        settings,
    )))
}

/// Every port a tenant-facing handler may use, on AWS: the table, Cognito (`USER_POOL_ID`,
/// `USER_POOL_CLIENT_ID`; tokens checked against the pool's JWKS, or `JWKS_URL` and
/// `TOKEN_ISSUER` when set), SES (`MAIL_FROM`), rate limits kept in the table, the
/// agent-creation state machine and AgentCore.
pub fn deps(config: &aws_config::SdkConfig) -> anyhow::Result<Deps> {
    let table = table(config)?;
    let pool = env("USER_POOL_ID")?;
    let client_id = env("USER_POOL_CLIENT_ID")?;
    let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    let issuer =
        std::env::var("TOKEN_ISSUER").unwrap_or_else(|_| format!("https://cognito-idp.{region}.amazonaws.com/{pool}"));
    let jwks_url = std::env::var("JWKS_URL").unwrap_or_else(|_| format!("{issuer}/.well-known/jwks.json"));
    let machines = vec![(oratio_core::creation::MACHINE.to_owned(), env("AGENT_CREATION_STATE_MACHINE_ARN")?)];
    Ok(Deps {
        table: table.clone(),
        blobs: blobs(config)?,
        workflow: Arc::new(oratio_aws::StepFunctionsWorkflow::new(oratio_aws::sfn_client(config), machines)),
        runtime: runtime(config)?,
        identity: Arc::new(CognitoIdentity::new(oratio_aws::cognito_client(config), pool, client_id.clone())),
        verifier: Arc::new(JwksVerifier::new(VerifierConfig { issuer, jwks_url, client_id })),
        mailer: Arc::new(SesMailer::new(oratio_aws::ses_client(config), env("MAIL_FROM")?)),
        rate_limiter: Arc::new(TableRateLimiter::new(table)),
        usage: Arc::new(UsageRecorder::new()),
        push: push(config)?,
        // The Lambda binary answers `read-document` as the child (see `bin/agents_api.rs`).
        documents: Arc::new(oratio_local::documents::ChildReader::of_this_program()?.with_limits(reading_limits()?)),
        conversations: conversation_settings()?,
        dashboard_url: std::env::var("DASHBOARD_URL").unwrap_or_default().into(),
        secrets: secrets(config)?,
        egress: EgressPolicy::PUBLIC,
        telephony: crate::deps::Telephony {
            grant_key: Arc::new(env("TELEPHONY_GRANT_KEY")?.into_bytes()),
            public_url: std::env::var("PUBLIC_API_URL").ok().map(Into::into),
            media_url: std::env::var("TWILIO_MEDIA_URL").ok().map(Into::into),
        },
    })
}

/// One REST API area on the AWS ports: builds them once, flushes key usage in the
/// background, and answers unknown routes with the standard error body.
async fn api_router(routes: OpenApiRouter<Arc<Deps>>) -> anyhow::Result<Router> {
    crate::logging::init();
    let config = config().await;
    let deps = Arc::new(deps(&config)?);
    tokio::spawn(crate::usage::flush_forever(deps.clone()));
    let (router, _) = routes.split_for_parts();
    Ok(router
        .with_state(deps)
        .fallback(crate::error::not_found)
        .method_not_allowed_fallback(|| async { crate::error::method_not_allowed() })
        .layer(axum::extract::DefaultBodyLimit::max(crate::MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn(crate::request::request_context)))
}

/// Serves one REST API area as a Lambda behind API Gateway.
pub async fn serve_api(routes: OpenApiRouter<Arc<Deps>>) -> Result<(), lambda_http::Error> {
    serve_rest(api_router(routes).await?).await
}

/// Serves one API area as a Lambda whose responses stream (a function URL in
/// `RESPONSE_STREAM` mode): Server-Sent Events reach the client as they are written.
pub async fn serve_streaming_api(routes: OpenApiRouter<Arc<Deps>>) -> Result<(), lambda_http::Error> {
    lambda_http::run_with_streaming_response(named_by_api_gateway(api_router(routes).await?)).await
}

/// The reading limits inside a Lambda: the child's memory within the function's
/// (`DOCUMENT_READER_MEMORY_MB`, default 640, for a 1024 MB function), and 20 s, within
/// API Gateway's 29.
fn reading_limits() -> anyhow::Result<oratio_core::knowledge::ReadingLimits> {
    let megabytes: u64 = match std::env::var("DOCUMENT_READER_MEMORY_MB") {
        Ok(v) => v.parse().context("DOCUMENT_READER_MEMORY_MB is whole megabytes")?,
        Err(_) => 640,
    };
    Ok(oratio_core::knowledge::ReadingLimits {
        memory_bytes: megabytes * 1024 * 1024,
        seconds: 20,
        ..Default::default()
    })
}

/// `SESSION_IDLE_SECONDS` (default 1800) over the defaults.
fn conversation_settings() -> anyhow::Result<crate::deps::ConversationSettings> {
    let mut settings = crate::deps::ConversationSettings::default();
    if let Ok(idle) = std::env::var("SESSION_IDLE_SECONDS") {
        settings.idle = std::time::Duration::from_secs(idle.parse().context("SESSION_IDLE_SECONDS is whole seconds")?);
    }
    Ok(settings)
}

/// Pushes through the dashboard WebSocket API (`WEBSOCKET_MANAGEMENT_URL`).
pub fn push(config: &aws_config::SdkConfig) -> anyhow::Result<Arc<ApiGatewayPush>> {
    push_through(config, "WEBSOCKET_MANAGEMENT_URL")
}

/// Pushes through the WebSocket API whose management URL is in the variable `url_var`.
pub fn push_through(config: &aws_config::SdkConfig, url_var: &str) -> anyhow::Result<Arc<ApiGatewayPush>> {
    let endpoint = env(url_var)?;
    Ok(Arc::new(ApiGatewayPush::new(oratio_aws::management_client(config, &endpoint))))
}

/// Voice sessions on Amazon Nova 2 Sonic (`SONIC_MODEL_ID` over the default model): the
/// voice gateway's and the voice worker's.
pub fn sonic_voice(config: &aws_config::SdkConfig, deps: &Deps) -> anyhow::Result<VoiceService> {
    let mut settings = oratio_aws::SonicSettings::default();
    if let Ok(model) = std::env::var("SONIC_MODEL_ID") {
        settings.model_id = model;
    }
    let engine = oratio_aws::NovaSonic::new(oratio_aws::sonic::client(config, None)?, settings);
    Ok(VoiceService::new(deps.turns(), Arc::new(engine), deps.blobs.clone(), VoiceLimits::default()))
}

/// Serves an axum router as an API Gateway REST Lambda, naming each request after API
/// Gateway's request id so logs and error bodies match API Gateway's own.
pub async fn serve_rest(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(named_by_api_gateway(router)).await
}

/// A router behind [`named_by_api_gateway`].
pub type ApiGatewayRouter<B> = tower::util::MapRequest<Router, fn(Request<B>) -> Request<B>>;

/// The router, seeing requests as the embedded platform does: API Gateway's request id
/// as each request's id, and paths without the stage. Wraps the whole router, since the
/// path must change before routing.
pub fn named_by_api_gateway<B>(router: Router) -> ApiGatewayRouter<B>
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    tower::ServiceExt::map_request(router, name_request::<B> as fn(_) -> _)
}

/// Takes API Gateway's request id as the request's, the caller's address as its client,
/// and removes the stage that
/// `lambda_http` puts in front of REST API paths, so routes match as they do locally.
fn name_request<B>(mut request: Request<B>) -> Request<B> {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let (id, stage, client) = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => {
            (context.request_id.clone(), context.stage.clone(), context.identity.source_ip.clone())
        }
        Some(RequestContext::WebSocket(context)) => {
            (context.request_id.clone(), None, context.identity.source_ip.clone())
        }
        _ => (None, None, None),
    };
    if let Some(id) = id {
        request.extensions_mut().insert(crate::request::RequestId(id));
    }
    if let Some(client) = client {
        request.extensions_mut().insert(crate::request::ClientAddr(client));
    }
    if let Some(stage) = stage {
        let uri = request.uri();
        let prefix = format!("/{stage}/");
        if let Some(rest) = uri.path().strip_prefix(&prefix[..prefix.len() - 1]).filter(|r| r.starts_with('/')) {
            let path_and_query = match uri.query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_owned(),
            };
            if let Ok(stripped) = path_and_query.parse() {
                *request.uri_mut() = stripped;
            }
        }
    }
    request
}
