//! AWS adapters for Oratio's ports, on the official AWS SDK for Rust.

pub mod agentcore;
pub mod bedrock;
pub mod cognito;
pub mod dynamodb;
pub mod kms;
pub mod knowledge;
pub mod lambda;
pub mod push;
pub mod s3;
pub mod ses;
pub mod sfn;
pub mod sonic;

pub use agentcore::{AgentCoreRuntime, AgentCoreSettings};
pub use bedrock::{BedrockLlm, TitanEmbeddings};
pub use cognito::CognitoIdentity;
pub use dynamodb::DynamoTable;
pub use kms::KmsSecretBox;
pub use knowledge::{BedrockKnowledgeBase, KnowledgeBaseSettings};
pub use lambda::{LambdaWorkers, WorkerJob};
pub use push::ApiGatewayPush;
pub use s3::S3BlobStore;
pub use ses::SesMailer;
pub use sfn::StepFunctionsWorkflow;
pub use sonic::{NovaSonic, SonicSettings};

/// A DynamoDB client for the shared configuration.
pub fn dynamodb_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An S3 client; path-style when an endpoint override (an emulator) is configured.
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(s3)
}

pub fn lambda_client(config: &aws_config::SdkConfig) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(config)
}

/// A client of one WebSocket API stage's `@connections` endpoint.
pub fn management_client(config: &aws_config::SdkConfig, endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config).endpoint_url(endpoint).build();
    aws_sdk_apigatewaymanagement::Client::from_conf(conf)
}

pub fn cognito_client(config: &aws_config::SdkConfig) -> aws_sdk_cognitoidentityprovider::Client {
    aws_sdk_cognitoidentityprovider::Client::new(config)
}

pub fn ses_client(config: &aws_config::SdkConfig) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::new(config)
}

pub fn bedrock_runtime_client(config: &aws_config::SdkConfig) -> aws_sdk_bedrockruntime::Client {
    aws_sdk_bedrockruntime::Client::new(config)
}

pub fn sfn_client(config: &aws_config::SdkConfig) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(config)
}

pub fn agentcore_control_client(config: &aws_config::SdkConfig) -> aws_sdk_bedrockagentcorecontrol::Client {
    aws_sdk_bedrockagentcorecontrol::Client::new(config)
}

/// AgentCore's data plane, with `timeout` on each invocation.
pub fn agentcore_client(
    config: &aws_config::SdkConfig,
    timeout: std::time::Duration,
) -> aws_sdk_bedrockagentcore::Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder().operation_timeout(timeout).build();
    let conf = aws_sdk_bedrockagentcore::config::Builder::from(config).timeout_config(timeouts).build();
    aws_sdk_bedrockagentcore::Client::from_conf(conf)
}

pub fn bedrock_agent_client(config: &aws_config::SdkConfig) -> aws_sdk_bedrockagent::Client {
    aws_sdk_bedrockagent::Client::new(config)
}

pub fn bedrock_agent_runtime_client(config: &aws_config::SdkConfig) -> aws_sdk_bedrockagentruntime::Client {
    aws_sdk_bedrockagentruntime::Client::new(config)
}

pub fn kms_client(config: &aws_config::SdkConfig) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(config)
}
