//! The OpenAPI 3.1 document, assembled from the routers themselves so that a route cannot
//! exist without being described.

use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Oratio",
        description = "Voice and text AI agents from an SOP, without writing code. Every error is `{ error, code, request_id }`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    tags((name = "platform", description = "Health and this document"))
)]
struct Base;

/// The routes every deployment serves (the Lambdas' and the embedded platform's).
pub fn document() -> Document {
    let mut doc = Base::openapi();
    doc.merge(crate::platform::routes().split_for_parts().1);
    doc
}
