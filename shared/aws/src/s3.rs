//! `BlobStore` on S3, with presigned GET URLs.

use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use oratio_core::blob::{Blob, BlobError, BlobKey, BlobMeta, BlobStore, validate_content_type, validate_ttl};
use oratio_core::health::HealthCheck;

/// Blobs in one S3 bucket.
#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

fn classify<E>(err: SdkError<E, HttpResponse>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient =
        matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_))
            || matches!(err.code(), Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout"));
    let source = anyhow!("{}", DisplayErrorContext(err));
    if transient { BlobError::Unavailable(source) } else { BlobError::Backend(source) }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &BlobKey, bytes: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        validate_content_type(content_type)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        let response = match self.client.get_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(r) => r,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify(e)),
        };
        let content_type = response.content_type.clone().unwrap_or_else(|| "application/octet-stream".into());
        let bytes = response
            .body
            .collect()
            .await
            .map_err(|e| BlobError::Unavailable(anyhow!("reading an S3 object body: {e}")))?
            .into_bytes()
            .to_vec();
        Ok(Some(Blob { bytes, content_type }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let mut out = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            for object in page.map_err(classify)?.contents.unwrap_or_default() {
                let Some(key) = object.key.and_then(|k| BlobKey::parse(k).ok()) else {
                    continue;
                };
                let last_modified = object
                    .last_modified
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or_default();
                out.push(BlobMeta { key, size: object.size.unwrap_or(0).max(0) as u64, last_modified });
            }
        }
        out.sort_by(|a, b| a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes()));
        Ok(out)
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.client.delete_object().bucket(&self.bucket).key(key.as_str()).send().await.map_err(classify)?;
        Ok(())
    }

    async fn signed_download_url(&self, key: &BlobKey, ttl: Duration) -> Result<String, BlobError> {
        validate_ttl(ttl)?;
        let config = PresigningConfig::expires_in(ttl).map_err(|_| BlobError::InvalidTtl)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .presigned(config)
            .await
            .map_err(classify)?;
        Ok(request.uri().to_owned())
    }
}

#[async_trait]
impl HealthCheck for S3BlobStore {
    fn name(&self) -> &'static str {
        "blobs"
    }

    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn probe(&self) -> Result<(), String> {
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("health/")
            .max_keys(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify(e).to_string())
    }
}
