//! The `BlobStore` port: documents, generated code and recordings (S3 in AWS, a directory
//! tree embedded). Every tenant's blobs live under `tenants/<tenant id>/`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::TenantId;

/// Longest key accepted (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest validity of a signed download URL (S3's limit for SigV4).
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A validated blob key: `/`-separated segments of safe characters, no `.` or `..`
/// segments, no leading or trailing `/`. Valid on S3 and as a relative file path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn parse(key: impl Into<String>) -> Result<Self, BlobError> {
        let key = key.into();
        let safe = |c: char| c.is_ascii_alphanumeric() || "-_.=+@,".contains(c);
        let ok = !key.is_empty()
            && key.len() <= MAX_KEY_BYTES
            && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(safe));
        if ok { Ok(Self(key)) } else { Err(BlobError::InvalidKey(key)) }
    }

    /// `tenants/<tenant>/<rest>`.
    pub fn for_tenant(tenant: &TenantId, rest: &str) -> Result<Self, BlobError> {
        Self::parse(format!("{}{rest}", tenant_prefix(tenant)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix under which all of a tenant's blobs live.
pub fn tenant_prefix(tenant: &TenantId) -> String {
    format!("tenants/{tenant}/")
}

/// A blob's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// What a listing says of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: BlobKey,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key `{0}`")]
    InvalidKey(String),
    #[error("invalid content type `{0}`")]
    InvalidContentType(String),
    #[error("signed URLs last at most {max:?}", max = MAX_URL_TTL)]
    InvalidTtl,
    #[error("blob store temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("blob store failed")]
    Backend(#[source] anyhow::Error),
}

/// Checks a content type is a plausible `type/subtype` (with optional parameters).
pub fn validate_content_type(content_type: &str) -> Result<(), BlobError> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let ok = content_type.len() <= 255
        && content_type.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && matches!(essence.split_once('/'), Some((t, s)) if !t.is_empty() && !s.is_empty());
    if ok { Ok(()) } else { Err(BlobError::InvalidContentType(content_type.into())) }
}

pub fn validate_ttl(ttl: Duration) -> Result<(), BlobError> {
    if ttl.is_zero() || ttl > MAX_URL_TTL { Err(BlobError::InvalidTtl) } else { Ok(()) }
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores a blob, replacing any at the key. Readers see the old or the new, never a mix.
    async fn put(&self, key: &BlobKey, bytes: Vec<u8>, content_type: &str) -> Result<(), BlobError>;

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError>;

    /// Every blob whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError>;

    /// Removes a blob; removing an absent blob is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// A URL from which anyone holding it can download the blob until `ttl` passes.
    async fn signed_download_url(&self, key: &BlobKey, ttl: Duration) -> Result<String, BlobError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_or_are_ambiguous_are_refused() {
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a/../b", "a\\b", "a b", "a\0b"] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(BlobKey::parse("tenants/ten_1/docs/faq.md").is_ok());
    }

    #[test]
    fn content_types_are_checked() {
        assert!(validate_content_type("text/plain; charset=utf-8").is_ok());
        assert!(validate_content_type("text").is_err());
        assert!(validate_content_type("text/plain\r\nX: y").is_err());
    }
}
