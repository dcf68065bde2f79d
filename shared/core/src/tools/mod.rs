//! Tenant tools: HTTPS endpoints (an n8n Webhook node first of all) that a tenant registers
//! for its agents, offered to the model beside the built-in tools. A tool has a name and
//! description for the model, a JSON Schema of its arguments (and optionally of its
//! result), an endpoint (method, URL, headers), a signing secret, a timeout and retries.
//! Secrets and header values are sealed before they are stored and never returned.
//!
//! Layout: `TENANT#<t>` / `TOOL#<id>` (the tool), `TENANT#<t>` / `TOOLNAME#<name>` (its
//! name, so that two tools never share one; written in the same transaction), and the
//! executions ([`execution`]).

pub mod egress;
pub mod execution;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agents::{self, AgentError};
use crate::audit;
use crate::ids::{AgentId, TenantId, ToolId};
use crate::llm::ToolSpec;
use crate::secrets::{Sealed, Secret, SecretBox, SecretError};
use crate::table::{Condition, Index, Item, Key, Query, SortKey, Table, TableError, Write};
use crate::tenancy::{Membership, Permission, TenancyError};
use crate::time::now;
pub use egress::EgressPolicy;

/// The tools the generated agents have of their own; a tenant tool takes none of their names.
pub const BUILT_IN: &[&str] = &["search_knowledge", "save_details", "hand_off", "end_conversation"];
/// The most tools a tenant registers (a prompt offers at most [`crate::llm::MAX_TOOLS`]).
pub const MAX_TOOLS: usize = 40;
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_RETRIES: u32 = 2;
/// A tool's attempts, with their timeouts, fit in what a turn may take.
pub const MAX_TOTAL_MS: u64 = 20_000;
pub const MAX_RETRIES: u32 = 4;
/// The largest schema a tool may have, in bytes of JSON.
pub const MAX_SCHEMA_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 10;

/// The methods a tool may be called with; the arguments go in the JSON body (a `GET`
/// carries them too, as n8n's Webhook node reads them there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Post,
    Put,
    Patch,
    Get,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Get => "GET",
        }
    }
}

/// A tool as its tenant sees it (never its secret, never its headers' values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub tool_id: ToolId,
    pub tenant_id: TenantId,
    /// The name the model calls it by.
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_schema: Option<Value>,
    pub url: String,
    pub method: Method,
    /// The names of the headers sent with each call (their values are sealed).
    #[serde(default)]
    pub header_names: Vec<String>,
    pub timeout_ms: u64,
    pub retries: u32,
    /// The agents that may call it; `None`: every agent of the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_ids: Option<Vec<AgentId>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
}

impl Tool {
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            input_schema: self.input_schema.clone(),
        }
    }

    pub fn serves(&self, agent: &AgentId) -> bool {
        self.agent_ids.as_ref().is_none_or(|agents| agents.contains(agent))
    }
}

/// A tool as stored: the tool, and what is sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    tool: Tool,
    secret: Sealed,
    /// The headers, as sealed JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<Sealed>,
}

/// What a tenant gives to register (or, all optional, to change) a tool.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub result_schema: Option<Option<Value>>,
    pub url: Option<String>,
    pub method: Option<Method>,
    pub headers: Option<BTreeMap<String, String>>,
    /// The HMAC key of the signature; the platform makes one when none is given.
    pub secret: Option<String>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub agent_ids: Option<Option<Vec<AgentId>>>,
}

/// Tells a field that is absent (`None`) from one that is `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Invalid(String),
    #[error("this organisation already has a tool named {0:?}")]
    NameTaken(String),
    #[error("no such tool")]
    NotFound,
    #[error("this organisation has {MAX_TOOLS} tools, the most it may")]
    TooMany,
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Table(#[from] TableError),
}

fn invalid(message: impl Into<String>) -> ToolError {
    ToolError::Invalid(message.into())
}

fn tool_key(tenant: &TenantId, tool: &ToolId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("TOOL#{tool}"))
}

fn name_key(tenant: &TenantId, name: &str) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("TOOLNAME#{name}"))
}

fn valid_name(name: &str) -> Result<(), ToolError> {
    let ok = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(invalid("name is 1 to 64 letters, digits, _ and - (the model calls the tool by it)"));
    }
    if BUILT_IN.contains(&name) {
        return Err(invalid(format!("{name:?} is one of the agents' own tools; choose another name")));
    }
    Ok(())
}

/// A schema: a JSON object that compiles, of type `object` for arguments.
fn valid_schema(what: &str, schema: &Value, arguments: bool) -> Result<(), ToolError> {
    if !schema.is_object() || serde_json::to_vec(schema).map_or(true, |b| b.len() > MAX_SCHEMA_BYTES) {
        return Err(invalid(format!("{what} is a JSON Schema object of at most {MAX_SCHEMA_BYTES} bytes")));
    }
    if arguments && schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(invalid(format!("{what} describes the arguments as an object: {{\"type\": \"object\", …}}")));
    }
    jsonschema::validator_for(schema).map_err(|e| invalid(format!("{what} is not a valid JSON Schema: {e}")))?;
    Ok(())
}

/// The endpoint's URL, checked against the policy as far as it can be without resolving
/// its name (the HTTP adapter checks what the name resolves to, at each call).
pub fn valid_url(raw: &str, policy: EgressPolicy) -> Result<url::Url, ToolError> {
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid(format!("url is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(invalid("url must be https://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("url carries no credentials; put them in headers"));
    }
    let refused = || invalid("url may not point at a loopback, link-local or private address");
    match url.host() {
        None => return Err(invalid("url names no host")),
        Some(url::Host::Ipv4(ip)) if !policy.allows(ip.into()) => return Err(refused()),
        Some(url::Host::Ipv6(ip)) if !policy.allows(ip.into()) => return Err(refused()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let local = name == "localhost" || name.ends_with(".localhost");
            let internal = name.ends_with(".internal") || name.ends_with(".local") || !name.contains('.');
            if (local && !policy.allow_loopback) || (internal && !local) {
                return Err(refused());
            }
        }
        _ => {}
    }
    Ok(url)
}

fn valid_headers(headers: &BTreeMap<String, String>) -> Result<(), ToolError> {
    if headers.len() > MAX_HEADERS {
        return Err(invalid(format!("at most {MAX_HEADERS} headers")));
    }
    for (name, value) in headers {
        let token = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let reserved = name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("content-type")
            || name.to_ascii_lowercase().starts_with("x-oratio-");
        if !token || reserved {
            return Err(invalid(format!(
                "header {name:?}: a header name of letters, digits and -, not one the platform sets"
            )));
        }
        if value.len() > 2048 || value.chars().any(|c| c.is_control()) {
            return Err(invalid(format!("header {name}: a value of at most 2048 characters, on one line")));
        }
    }
    Ok(())
}

fn valid_limits(timeout_ms: u64, retries: u32) -> Result<(), ToolError> {
    if !(100..=MAX_TOTAL_MS).contains(&timeout_ms) || retries > MAX_RETRIES {
        return Err(invalid(format!("timeout_ms is 100 to {MAX_TOTAL_MS}, retries 0 to {MAX_RETRIES}")));
    }
    if timeout_ms * u64::from(retries + 1) > MAX_TOTAL_MS {
        return Err(invalid(format!(
            "timeout_ms × (retries + 1) is at most {MAX_TOTAL_MS} ms, so that a call fits in the agent's turn"
        )));
    }
    Ok(())
}

fn valid_secret(secret: &str) -> Result<(), ToolError> {
    if !(16..=256).contains(&secret.len()) || !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid("secret is 16 to 256 printable characters"));
    }
    Ok(())
}

fn valid_description(description: &str) -> Result<String, ToolError> {
    let description = description.trim();
    if description.is_empty() || description.chars().count() > 1000 {
        return Err(invalid(
            "description tells the model what the tool does and when to use it (1 to 1000 characters)",
        ));
    }
    Ok(description.to_owned())
}

async fn valid_agents(table: &dyn Table, tenant: &TenantId, agents: &Option<Vec<AgentId>>) -> Result<(), ToolError> {
    for agent in agents.iter().flatten() {
        agents::get(table, tenant, agent).await?;
    }
    Ok(())
}

/// A new signing secret.
fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

async fn seal_headers(
    secrets: &dyn SecretBox,
    tenant: &TenantId,
    headers: &BTreeMap<String, String>,
) -> Result<Option<Sealed>, ToolError> {
    if headers.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(headers).expect("headers serialize");
    Ok(Some(secrets.seal(tenant, &Secret::new(json)).await?))
}

/// Registers a tool (admins). The signing secret is in the answer when the platform made it.
pub async fn create(
    table: &dyn Table,
    secrets: &dyn SecretBox,
    policy: EgressPolicy,
    actor: &Membership,
    input: ToolInput,
) -> Result<(Tool, Option<Secret>), ToolError> {
    actor.require(Permission::ManageIntegrations)?;
    let tenant = &actor.tenant_id;
    let name = input.name.ok_or_else(|| invalid("name is required"))?.trim().to_owned();
    valid_name(&name)?;
    let description = valid_description(&input.description.ok_or_else(|| invalid("description is required"))?)?;
    let input_schema = input.input_schema.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
    valid_schema("input_schema", &input_schema, true)?;
    let result_schema = input.result_schema.flatten();
    if let Some(schema) = &result_schema {
        valid_schema("result_schema", schema, false)?;
    }
    let url = valid_url(&input.url.ok_or_else(|| invalid("url is required"))?, policy)?;
    let headers = input.headers.unwrap_or_default();
    valid_headers(&headers)?;
    let (timeout_ms, retries) =
        (input.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS), input.retries.unwrap_or(DEFAULT_RETRIES));
    valid_limits(timeout_ms, retries)?;
    let agent_ids = input.agent_ids.flatten();
    valid_agents(table, tenant, &agent_ids).await?;
    let (secret, made) = match input.secret {
        Some(given) => {
            valid_secret(&given)?;
            (given, false)
        }
        None => (generate_secret(), true),
    };
    if list_all(table, tenant).await?.len() >= MAX_TOOLS {
        return Err(ToolError::TooMany);
    }
    let at = now();
    let tool = Tool {
        tool_id: ToolId::generate(),
        tenant_id: tenant.clone(),
        name: name.clone(),
        description,
        input_schema,
        result_schema,
        url: url.to_string(),
        method: input.method.unwrap_or_default(),
        header_names: headers.keys().cloned().collect(),
        timeout_ms,
        retries,
        agent_ids,
        created_at: at,
        created_by: actor.user_id.to_string(),
        updated_at: at,
    };
    let secret = Secret::new(secret);
    let stored = Stored {
        tool: tool.clone(),
        secret: secrets.seal(tenant, &secret).await?,
        headers: seal_headers(secrets, tenant, &headers).await?,
    };
    let writes = vec![
        Write::Put {
            item: Item::new(name_key(tenant, &name)).with("tool_id", tool.tool_id.as_str()),
            condition: Some(Condition::NotExists),
        },
        Write::Put {
            item: Item::from_record(tool_key(tenant, &tool.tool_id), &stored)?,
            condition: Some(Condition::NotExists),
        },
    ];
    table.transact(writes).await.map_err(|e| match e {
        TableError::ConditionFailed { .. } => ToolError::NameTaken(name),
        other => other.into(),
    })?;
    audit!("tool_created", tenant = tenant, actor = actor.user_id, tool_id = tool.tool_id, name = tool.name);
    Ok((tool, made.then_some(secret)))
}

async fn list_all(table: &dyn Table, tenant: &TenantId) -> Result<Vec<Tool>, ToolError> {
    let query = Query::partition(Index::Primary, format!("TENANT#{tenant}"))
        .sort(SortKey::BeginsWith("TOOL#".into()))
        .limit(MAX_TOOLS * 2);
    let page = table.query(query).await?;
    Ok(page.records::<Stored>()?.into_iter().map(|s| s.tool).collect())
}

/// The tenant's tools, oldest first.
pub async fn list(table: &dyn Table, actor: &Membership) -> Result<Vec<Tool>, ToolError> {
    actor.require(Permission::Read)?;
    list_all(table, &actor.tenant_id).await
}

async fn load(table: &dyn Table, tenant: &TenantId, tool: &ToolId) -> Result<Stored, ToolError> {
    let item = table.get(&tool_key(tenant, tool)).await?.ok_or(ToolError::NotFound)?;
    Ok(item.record()?)
}

pub async fn get(table: &dyn Table, actor: &Membership, tool: &ToolId) -> Result<Tool, ToolError> {
    actor.require(Permission::Read)?;
    Ok(load(table, &actor.tenant_id, tool).await?.tool)
}

/// Changes what is given; the rest stays. A new name frees the old one in the same write.
pub async fn update(
    table: &dyn Table,
    secrets: &dyn SecretBox,
    policy: EgressPolicy,
    actor: &Membership,
    tool_id: &ToolId,
    input: ToolInput,
) -> Result<Tool, ToolError> {
    actor.require(Permission::ManageIntegrations)?;
    let tenant = &actor.tenant_id;
    let mut stored = load(table, tenant, tool_id).await?;
    let before = stored.tool.clone();
    let tool = &mut stored.tool;
    if let Some(name) = input.name {
        let name = name.trim().to_owned();
        valid_name(&name)?;
        tool.name = name;
    }
    if let Some(description) = input.description {
        tool.description = valid_description(&description)?;
    }
    if let Some(schema) = input.input_schema {
        valid_schema("input_schema", &schema, true)?;
        tool.input_schema = schema;
    }
    if let Some(schema) = input.result_schema {
        if let Some(schema) = &schema {
            valid_schema("result_schema", schema, false)?;
        }
        tool.result_schema = schema;
    }
    if let Some(url) = input.url {
        tool.url = valid_url(&url, policy)?.to_string();
    }
    if let Some(method) = input.method {
        tool.method = method;
    }
    if let Some(headers) = &input.headers {
        valid_headers(headers)?;
        tool.header_names = headers.keys().cloned().collect();
    }
    tool.timeout_ms = input.timeout_ms.unwrap_or(tool.timeout_ms);
    tool.retries = input.retries.unwrap_or(tool.retries);
    valid_limits(tool.timeout_ms, tool.retries)?;
    if let Some(agents) = input.agent_ids {
        valid_agents(table, tenant, &agents).await?;
        tool.agent_ids = agents;
    }
    tool.updated_at = now();
    if let Some(secret) = &input.secret {
        valid_secret(secret)?;
        stored.secret = secrets.seal(tenant, &Secret::new(secret.clone())).await?;
    }
    if let Some(headers) = &input.headers {
        stored.headers = seal_headers(secrets, tenant, headers).await?;
    }
    let tool = stored.tool.clone();
    let mut writes = vec![Write::Put {
        item: Item::from_record(tool_key(tenant, tool_id), &stored)?,
        condition: Some(Condition::equals("updated_at", serde_json::to_value(before.updated_at).expect("a time"))),
    }];
    if tool.name != before.name {
        writes.push(Write::Delete { key: name_key(tenant, &before.name), condition: None });
        writes.push(Write::Put {
            item: Item::new(name_key(tenant, &tool.name)).with("tool_id", tool_id.as_str()),
            condition: Some(Condition::NotExists),
        });
    }
    table.transact(writes).await.map_err(|e| match e {
        TableError::ConditionFailed { write: Some(0) } => invalid("the tool changed meanwhile; read it and try again"),
        TableError::ConditionFailed { .. } => ToolError::NameTaken(tool.name.clone()),
        other => other.into(),
    })?;
    audit!("tool_updated", tenant = tenant, actor = actor.user_id, tool_id = tool_id);
    Ok(tool)
}

pub async fn delete(table: &dyn Table, actor: &Membership, tool_id: &ToolId) -> Result<Tool, ToolError> {
    actor.require(Permission::ManageIntegrations)?;
    let tenant = &actor.tenant_id;
    let tool = load(table, tenant, tool_id).await?.tool;
    let writes = vec![
        Write::Delete { key: tool_key(tenant, tool_id), condition: Some(Condition::Exists) },
        Write::Delete { key: name_key(tenant, &tool.name), condition: None },
    ];
    table.transact(writes).await.map_err(|e| match e {
        TableError::ConditionFailed { .. } => ToolError::NotFound,
        other => other.into(),
    })?;
    audit!("tool_deleted", tenant = tenant, actor = actor.user_id, tool_id = tool_id);
    Ok(tool)
}

/// The tools an agent is offered, as the model sees them (one query: every turn reads them,
/// so that a change applies to the next message without a redeploy).
pub async fn for_agent(table: &dyn Table, tenant: &TenantId, agent: &AgentId) -> Result<Vec<ToolSpec>, ToolError> {
    Ok(list_all(table, tenant).await?.into_iter().filter(|t| t.serves(agent)).map(|t| t.spec()).collect())
}

/// A tool by the name the model called, with what it needs to be called.
pub(crate) async fn by_name(
    table: &dyn Table,
    secrets: &dyn SecretBox,
    tenant: &TenantId,
    name: &str,
) -> Result<Option<(Tool, Secret, BTreeMap<String, String>)>, ToolError> {
    if valid_name(name).is_err() {
        return Ok(None);
    }
    let Some(entry) = table.get(&name_key(tenant, name)).await? else { return Ok(None) };
    let Some(id) = entry.str("tool_id").and_then(|id| id.parse::<ToolId>().ok()) else { return Ok(None) };
    let stored = match load(table, tenant, &id).await {
        Ok(stored) => stored,
        Err(ToolError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let secret = secrets.open(tenant, &stored.secret).await?;
    let headers = match &stored.headers {
        Some(sealed) => serde_json::from_str(secrets.open(tenant, sealed).await?.expose())
            .map_err(|e| TableError::Corrupt(format!("a tool's headers: {e}")))?,
        None => BTreeMap::new(),
    };
    Ok(Some((stored.tool, secret, headers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_policy() {
        assert!(valid_url("https://hooks.example.com/webhook/order-status", EgressPolicy::PUBLIC).is_ok());
        for refused in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost:5678/webhook/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/x",
            "https://10.0.0.5/x",
            "https://n8n/x",
            "https://metadata.google.internal/x",
            "https://user:pw@hooks.example.com/x",
            "ftp://hooks.example.com/x",
        ] {
            assert!(valid_url(refused, EgressPolicy::PUBLIC).is_err(), "{refused}");
        }
        assert!(valid_url("http://127.0.0.1:5678/webhook/order-status", EgressPolicy::EMBEDDED).is_ok());
        assert!(valid_url("http://localhost:5678/webhook/order-status", EgressPolicy::EMBEDDED).is_ok());
        assert!(valid_url("http://192.168.0.4:5678/webhook/x", EgressPolicy::EMBEDDED).is_err());
    }

    #[test]
    fn limits_fit_in_a_turn() {
        assert!(valid_limits(10_000, 1).is_ok());
        assert!(valid_limits(10_000, 2).is_err());
        assert!(valid_limits(50, 0).is_err());
        assert!(valid_limits(1_000, 9).is_err());
    }

    #[test]
    fn names_and_schemas_are_checked() {
        assert!(valid_name("order_status").is_ok());
        assert!(valid_name("hand_off").is_err());
        assert!(valid_name("order status").is_err());
        assert!(valid_schema("s", &serde_json::json!({"type": "object"}), true).is_ok());
        assert!(valid_schema("s", &serde_json::json!({"type": "string"}), true).is_err());
        assert!(
            valid_schema("s", &serde_json::json!({"type": "object", "properties": {"a": {"type": 5}}}), true).is_err()
        );
    }
}
