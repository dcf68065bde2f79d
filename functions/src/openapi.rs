//! The OpenAPI 3.1 document, assembled from the routers themselves so that a route cannot
//! exist without being described.

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Oratio",
        description = "Voice and text AI agents from an SOP, without writing code. Every error is `{ error, code, request_id }`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "platform", description = "Health and this document"),
        (name = "auth", description = "Sign-up, sign-in and tokens (Cognito-shaped)"),
        (name = "members", description = "Members and roles of the caller's organization"),
        (name = "agents", description = "The organization's agents"),
        (name = "keys", description = "API keys, each scoped to one agent"),
        (name = "customers", description = "What customers' applications reach with an API key"),
        (name = "sessions", description = "Conversations with the organization's agents"),
        (name = "runtime", description = "What the platform's agents reach with their runtime token"),
    )
)]
struct Base;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    }
}

/// The routes every deployment serves (the Lambdas' and the embedded platform's).
pub fn document() -> Document {
    let mut doc = Base::openapi();
    doc.merge(crate::platform::routes().split_for_parts().1);
    doc.merge(crate::api_routes().split_for_parts().1);
    doc.merge(crate::runtime_api::routes().split_for_parts().1);
    doc
}
