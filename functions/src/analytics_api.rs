//! Analytics: a period's figures for the organization or one agent, read from the daily
//! rollups kept as sessions end.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{Duration, NaiveDate};
use oratio_core::analytics::{self, MAX_DAYS, Report};
use oratio_core::tenancy::Permission;
use oratio_core::time::now;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents_api::agent_id;
use crate::auth::Member;
use crate::body::Query;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new().routes(routes!(analytics))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct Period {
    /// The first day (`2026-11-01`, UTC); 29 days before `to` by default.
    from: Option<String>,
    /// The last day, included; today by default. At most 366 days from `from`.
    to: Option<String>,
    /// One agent's figures; the organization's without it.
    agent_id: Option<String>,
}

fn day(name: &str, raw: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request("invalid_query", format!("`{name}` is a date like 2026-12-01, not {raw:?}")))
}

/// Sessions per day by channel, duration (average, p95), messages per session, handoff
/// rate and top reasons, containment, agent latency (p50, p95), and the questions the
/// agent could not answer, over a period: from daily rollups kept as sessions end (never
/// a scan of sessions or turns). Sessions count on the day they started (UTC).
#[utoipa::path(get, path = "/v1/analytics", tag = "analytics", security(("bearer" = [])),
    params(Period),
    responses((status = 200, description = "The period's figures (see the README)", body = Object),
        (status = 400, body = ErrorBody, description = "`invalid_query`"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`not_found`: no such agent")))]
async fn analytics(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Query(period): Query<Period>,
) -> Result<Json<Report>, ApiError> {
    actor.require(Permission::Read)?;
    let to = period.to.as_deref().map(|t| day("to", t)).transpose()?.unwrap_or_else(|| now().date_naive());
    let from = period.from.as_deref().map(|f| day("from", f)).transpose()?.unwrap_or(to - Duration::days(29));
    if from > to || (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request("invalid_query", "`from` is on or before `to`, at most 366 days apart"));
    }
    let agent = match period.agent_id.as_deref() {
        Some(raw) => {
            Some(oratio_core::agents::load(deps.table.as_ref(), &actor.tenant_id, &agent_id(raw)?).await?.agent_id)
        }
        None => None,
    };
    Ok(Json(analytics::report(deps.table.as_ref(), &actor.tenant_id, agent.as_ref(), from, to).await?))
}
