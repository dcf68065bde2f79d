//! Agents of a tenant. This is the record API keys are scoped to; the creation pipeline
//! (SOP, knowledge, generated code, deployment) builds on it.
//!
//! Layout: `TENANT#<t>` / `AGENT#<a>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, TenantId};
use crate::table::{Condition, Cursor, Index, Item, Key, Query, SortKey, Table, TableError, Update};
use crate::tenancy::{Membership, Permission, TenancyError};
use crate::time::now;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Text,
    Voice,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Recorded, nothing generated yet.
    Draft,
    Creating,
    Active,
    Paused,
    Failed,
    Archived,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Draft => "draft",
            AgentStatus::Creating => "creating",
            AgentStatus::Active => "active",
            AgentStatus::Paused => "paused",
            AgentStatus::Failed => "failed",
            AgentStatus::Archived => "archived",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    pub name: String,
    pub kind: AgentKind,
    #[serde(default)]
    pub greeting: Option<String>,
    pub status: AgentStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a tenant gives to create an agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NewAgent {
    pub name: String,
    pub kind: AgentKind,
    #[serde(default)]
    pub greeting: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such agent")]
    NotFound,
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Table(#[from] TableError),
}

pub fn agent_key(tenant: &TenantId, agent: &AgentId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("AGENT#{agent}"))
}

fn text(field: &str, raw: &str, max: usize) -> Result<String, AgentError> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AgentError::Invalid(format!("`{field}` must be 1 to {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AgentError::Invalid(format!("`{field}` must not contain control characters")));
    }
    Ok(value.to_owned())
}

pub async fn create(table: &dyn Table, actor: &Membership, new: NewAgent) -> Result<Agent, AgentError> {
    actor.require(Permission::ManageAgents)?;
    let name = text("name", &new.name, 80)?;
    let greeting = new.greeting.as_deref().map(|g| text("greeting", g, 500)).transpose()?;
    let at = now();
    let agent = Agent {
        agent_id: AgentId::generate(),
        tenant_id: actor.tenant_id.clone(),
        name,
        kind: new.kind,
        greeting,
        status: AgentStatus::Draft,
        created_at: at,
        updated_at: at,
    };
    let item = Item::from_record(agent_key(&agent.tenant_id, &agent.agent_id), &agent)?;
    table.put(item, Some(Condition::NotExists)).await?;
    Ok(agent)
}

/// One of the tenant's agents; archived agents are gone from the tenant's view.
pub async fn get(table: &dyn Table, tenant: &TenantId, agent: &AgentId) -> Result<Agent, AgentError> {
    let agent: Agent = table.get(&agent_key(tenant, agent)).await?.ok_or(AgentError::NotFound)?.record()?;
    if agent.status == AgentStatus::Archived { Err(AgentError::NotFound) } else { Ok(agent) }
}

/// A page of the tenant's agents, oldest first (ids are time-ordered).
pub async fn list(
    table: &dyn Table,
    actor: &Membership,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<Agent>, Option<Cursor>), AgentError> {
    actor.require(Permission::Read)?;
    let query = Query::partition(Index::Primary, format!("TENANT#{}", actor.tenant_id))
        .sort(SortKey::BeginsWith("AGENT#".into()))
        .limit(limit)
        .after(cursor);
    let page = table.query(query).await?;
    let agents: Vec<Agent> = page.records()?;
    let visible = agents.into_iter().filter(|a| a.status != AgentStatus::Archived).collect();
    Ok((visible, page.next))
}

/// Archives an agent: it disappears from the tenant's view and its keys stop working.
pub async fn archive(table: &dyn Table, actor: &Membership, agent: &AgentId) -> Result<(), AgentError> {
    actor.require(Permission::ManageAgents)?;
    let update = Update::new().set("status", AgentStatus::Archived.as_str()).set("updated_at", now().to_rfc3339());
    let live = Condition::And(vec![
        Condition::Exists,
        Condition::NotEquals("status".into(), AgentStatus::Archived.as_str().into()),
    ]);
    match table.update(&agent_key(&actor.tenant_id, agent), update, Some(live)).await {
        Ok(_) => Ok(()),
        Err(TableError::ConditionFailed { .. }) => Err(AgentError::NotFound),
        Err(e) => Err(e.into()),
    }
}
