//! What customers' applications reach with an agent's API key.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use oratio_core::agents;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents_api::agent_id;
use crate::auth::Customer;
use crate::body::Path;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new().routes(routes!(profile))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentProfile {
    agent_id: String,
    name: String,
    kind: String,
    greeting: Option<String>,
    /// Whether the agent takes conversations now (`active`).
    available: bool,
}

/// The agent as a customer's application shows it: name, kind, greeting, availability.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/profile", tag = "customers", security(("api_key" = [])),
    params(("agent_id" = String, Path)),
    responses(
        (status = 200, body = AgentProfile),
        (status = 401, body = ErrorBody, description = "`missing_api_key`, `invalid_api_key`"),
        (status = 403, body = ErrorBody, description = "`key_agent_mismatch`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`, with `Retry-After`"),
    ))]
async fn profile(
    State(deps): State<Arc<Deps>>,
    Customer(key): Customer,
    Path(agent): Path<String>,
) -> Result<Json<AgentProfile>, ApiError> {
    let agent = agents::get(deps.table.as_ref(), &key.tenant_id, &agent_id(&agent)?).await?;
    Ok(Json(AgentProfile {
        agent_id: agent.agent_id.to_string(),
        name: agent.name,
        kind: agent.kind.as_str().into(),
        greeting: agent.greeting,
        available: agent.status == agents::AgentStatus::Active,
    }))
}
