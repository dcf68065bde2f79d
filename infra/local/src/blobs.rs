//! Signed blob downloads (`GET /local/blobs/{key}?expires=&signature=`), the embedded
//! stand-in for S3 presigned URLs.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oratio_functions::body::{Path, Query};
use oratio_functions::error::ApiError;
use oratio_local::DirBlobStore;
use oratio_local::blob::SignedUrlError;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

#[derive(Debug, Deserialize, IntoParams)]
pub struct Signature {
    /// Epoch seconds after which the link no longer works.
    expires: i64,
    /// Hex HMAC-SHA256 of the key and expiry.
    signature: String,
}

/// The route takes the whole rest of the path as the key, so it is declared by hand; its
/// description comes from [`Doc`].
pub fn router() -> Router<DirBlobStore> {
    Router::new().route("/local/blobs/{*key}", get(download))
}

#[derive(OpenApi)]
#[openapi(paths(download), tags((name = "local", description = "Embedded platform only")))]
pub struct Doc;

/// Downloads a blob through a signed, expiring link (embedded platform only).
#[utoipa::path(
    get,
    path = "/local/blobs/{key}",
    tag = "local",
    params(("key" = String, Path, description = "The blob key"), Signature),
    responses(
        (status = 200, description = "The blob, with its content type"),
        (status = 403, description = "Expired or forged link", body = oratio_functions::error::ErrorBody),
        (status = 404, description = "The blob no longer exists", body = oratio_functions::error::ErrorBody),
    )
)]
async fn download(
    State(store): State<DirBlobStore>,
    Path(key): Path<String>,
    Query(signature): Query<Signature>,
) -> Result<Response, ApiError> {
    match store.open_signed(&key, signature.expires, &signature.signature).await {
        Ok(blob) => Ok(([(header::CONTENT_TYPE, blob.content_type)], blob.bytes).into_response()),
        Err(SignedUrlError::Expired) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, "link_expired", "the download link has expired"))
        }
        Err(SignedUrlError::BadSignature) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", "the download link is not valid"))
        }
        Err(SignedUrlError::NotFound) => Err(ApiError::not_found("the blob no longer exists")),
        Err(SignedUrlError::Store(e)) => Err(e.into()),
    }
}
