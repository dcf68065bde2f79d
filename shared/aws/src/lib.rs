//! AWS adapters for Oratio's ports, on the official AWS SDK for Rust.

pub mod dynamodb;
pub mod push;
pub mod s3;

pub use dynamodb::DynamoTable;
pub use push::ApiGatewayPush;
pub use s3::S3BlobStore;
