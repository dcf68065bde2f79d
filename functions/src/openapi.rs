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
        (name = "telephony", description = "Phone numbers, and Twilio's webhook and media stream"),
        (name = "tools", description = "Tenant tools (webhooks such as n8n's) that agents call, and their executions"),
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

/// The answers any operation can give besides its own, by status: refusals made before a
/// handler runs (the request cannot be parsed, is too large, lacks a credential) and a
/// backend recovering. `with_universal_answers` adds them to every operation, so that
/// the document lists every status an operation can answer (a fuzzer in the tests holds
/// it to that).
const UNIVERSAL: [(&str, &str); 5] = [
    ("400", "`bad_request`: the request is not valid HTTP (bytes not allowed, a contradictory `Content-Length`)"),
    ("413", "`payload_too_large`: the body (announced or sent) is over the route's limit"),
    ("414", "`uri_too_long`: the path and query are over 8 KiB"),
    ("431", "`headers_too_large`: the headers are over 64 KiB or 100 fields"),
    ("503", "`temporarily_unavailable`: a backend is recovering; retry after `Retry-After`"),
];

/// `doc` with the universal answers on every operation, the credential's on the secured
/// ones, and the JSON body's on those that take one.
pub fn with_universal_answers(mut doc: Document) -> Document {
    use utoipa::openapi::path::{Operation, ParameterIn};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let add = |operation: &mut Operation, status: &str, description: &str| match operation
        .responses
        .responses
        .get_mut(status)
    {
        Some(RefOr::T(response)) if !response.description.contains(description) => {
            response.description = format!("{}; {description}", response.description);
        }
        Some(_) => {}
        None => {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            let response = ResponseBuilder::new().description(description).content("application/json", content);
            operation.responses.responses.insert(status.into(), RefOr::T(response.build()));
        }
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for (status, description) in UNIVERSAL {
                add(operation, status, description);
            }
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add(
                    operation,
                    "401",
                    "`missing_token`, `invalid_token`, `token_expired`, `missing_api_key`, `invalid_api_key` or `invalid_runtime_token`: no valid credential",
                );
            }
            let takes = |place: ParameterIn| operation.parameters.iter().flatten().any(|p| p.parameter_in == place);
            let (path, query) = (takes(ParameterIn::Path), takes(ParameterIn::Query));
            if path {
                add(
                    operation,
                    "400",
                    "`invalid_path`: a path parameter is not valid (bad percent-encoding, not UTF-8)",
                );
            }
            if query {
                add(operation, "400", "`invalid_query`: the query string is not valid");
            }
            if operation.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json")) {
                add(
                    operation,
                    "400",
                    "`malformed_json`, `invalid_body`: the body is not the JSON this operation takes",
                );
                add(operation, "415", "`unsupported_media_type`: send `Content-Type: application/json`");
            }
        }
    }
    doc
}

/// The routes every deployment serves (the Lambdas' and the embedded platform's).
pub fn document() -> Document {
    let mut doc = Base::openapi();
    doc.merge(crate::platform::routes().split_for_parts().1);
    doc.merge(crate::api_routes().split_for_parts().1);
    doc.merge(crate::voice_api::routes().split_for_parts().1);
    doc.merge(crate::telephony_api::media_routes().split_for_parts().1);
    doc.merge(crate::runtime_api::routes().split_for_parts().1);
    doc
}
