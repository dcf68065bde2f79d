//! A JSON body whose rejections use the standard error body.

use axum::extract::FromRequest;

use crate::error::ApiError;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);
