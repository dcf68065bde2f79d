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

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Text => "text",
            AgentKind::Voice => "voice",
            AgentKind::Both => "both",
        }
    }
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
    /// The procedure the agent follows.
    #[serde(default)]
    pub sop: String,
    #[serde(default)]
    pub documents: Vec<DocumentRef>,
    /// Conditions, besides the SOP's, on which a person takes over.
    #[serde(default)]
    pub handoff_conditions: Vec<String>,
    /// Creation steps as they happened.
    #[serde(default)]
    pub progress: Vec<ProgressStep>,
    /// Why creation failed, for the tenant.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// The code version deployed.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub voice: VoiceSettings,
    /// The SOP or documents changed since the last deployment.
    #[serde(default)]
    pub needs_redeploy: bool,
}

/// How a voice agent sounds. Applies to new sessions without redeploying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceSettings {
    pub voice: String,
    /// A BCP 47 language tag, e.g. `en-US`.
    pub language: String,
    /// 0.5 (slow) to 2.0 (fast).
    pub speaking_rate: f32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self { voice: "matthew".into(), language: "en-US".into(), speaking_rate: 1.0 }
    }
}

impl VoiceSettings {
    pub fn validate(&self) -> Result<(), AgentError> {
        let voice_ok = !self.voice.is_empty()
            && self.voice.len() <= 40
            && self.voice.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let mut parts = self.language.split('-');
        let language_ok =
            parts.next().is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()))
                && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !voice_ok {
            return Err(AgentError::Invalid("`voice.voice` must be a voice name (letters, digits, - and _)".into()));
        }
        if !language_ok {
            return Err(AgentError::Invalid("`voice.language` must be a language tag such as en-US".into()));
        }
        if !(0.5..=2.0).contains(&self.speaking_rate) {
            return Err(AgentError::Invalid("`voice.speaking_rate` must be 0.5 to 2.0".into()));
        }
        Ok(())
    }
}

/// A change of configuration; fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentChange {
    pub name: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<VoiceSettings>,
    pub handoff_conditions: Option<Vec<String>>,
    /// Changing the SOP marks the agent `needs_redeploy`.
    pub sop: Option<String>,
}

/// A knowledge document of an agent, stored under the tenant's prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub document_id: String,
    pub title: String,
    pub blob: String,
    pub content_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Started,
    Finished,
    Failed,
}

/// One step of an agent's creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressStep {
    pub step: String,
    pub status: StepStatus,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// What a tenant gives to create an agent. Without an SOP it is saved as a draft; with
/// one, its creation starts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NewAgent {
    pub name: String,
    pub kind: AgentKind,
    #[serde(default)]
    pub greeting: Option<String>,
    #[serde(default)]
    pub sop: Option<String>,
    #[serde(default)]
    pub handoff_conditions: Vec<String>,
    #[serde(default)]
    pub voice: Option<VoiceSettings>,
}

/// Longest SOP accepted.
pub const MAX_SOP_CHARS: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such agent")]
    NotFound,
    /// The agent's state does not allow this now.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Table(#[from] TableError),
}

/// A time as serde writes it, so that records read back the same.
fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub fn agent_key(tenant: &TenantId, agent: &AgentId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("AGENT#{agent}"))
}

fn text(field: &str, raw: &str, max: usize) -> Result<String, AgentError> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AgentError::Invalid(format!("`{field}` must be 1 to {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(AgentError::Invalid(format!("`{field}` must not contain control characters")));
    }
    Ok(value.to_owned())
}

pub async fn create(
    table: &dyn Table,
    actor: &Membership,
    new: NewAgent,
    documents: Vec<DocumentRef>,
) -> Result<Agent, AgentError> {
    actor.require(Permission::ManageAgents)?;
    let name = text("name", &new.name, 80)?;
    let greeting = new.greeting.as_deref().map(|g| text("greeting", g, 500)).transpose()?;
    let sop = new.sop.as_deref().map(|s| text("sop", s, MAX_SOP_CHARS)).transpose()?;
    let handoff_conditions = conditions(&new.handoff_conditions)?;
    let voice = new.voice.unwrap_or_default();
    voice.validate()?;
    let at = now();
    let agent = Agent {
        agent_id: AgentId::generate(),
        tenant_id: actor.tenant_id.clone(),
        name,
        kind: new.kind,
        greeting,
        status: if sop.is_some() { AgentStatus::Creating } else { AgentStatus::Draft },
        created_at: at,
        updated_at: at,
        sop: sop.unwrap_or_default(),
        documents,
        handoff_conditions,
        progress: Vec::new(),
        failure_reason: None,
        version: None,
        voice,
        needs_redeploy: false,
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

fn conditions(raw: &[String]) -> Result<Vec<String>, AgentError> {
    if raw.len() > 20 {
        return Err(AgentError::Invalid("at most 20 handoff conditions".into()));
    }
    raw.iter().map(|c| text("handoff_conditions", c, 300)).collect()
}

/// Changes an agent's configuration. Name, greeting, voice and handoff conditions apply to
/// new sessions at once; a new SOP marks the agent `needs_redeploy`.
pub async fn update(
    table: &dyn Table,
    actor: &Membership,
    agent: &AgentId,
    change: AgentChange,
) -> Result<Agent, AgentError> {
    actor.require(Permission::ManageAgents)?;
    let current = get(table, &actor.tenant_id, agent).await?;
    let mut update = Update::new().set("updated_at", stamp(now()));
    if let Some(name) = &change.name {
        update = update.set("name", text("name", name, 80)?);
    }
    if let Some(greeting) = &change.greeting {
        update = update.set("greeting", text("greeting", greeting, 500)?);
    }
    if let Some(voice) = &change.voice {
        voice.validate()?;
        update = update.set("voice", serde_json::to_value(voice).map_err(|e| AgentError::Invalid(e.to_string()))?);
    }
    if let Some(raw) = &change.handoff_conditions {
        update = update.set("handoff_conditions", conditions(raw)?);
    }
    if let Some(sop) = &change.sop {
        let sop = text("sop", sop, MAX_SOP_CHARS)?;
        let changed = sop != current.sop;
        update = update.set("sop", sop);
        if changed && current.status != AgentStatus::Draft {
            update = update.set("needs_redeploy", true);
        }
    }
    let live = Condition::NotEquals("status".into(), AgentStatus::Archived.as_str().into());
    let item = table
        .update(&agent_key(&actor.tenant_id, agent), update, Some(Condition::And(vec![Condition::Exists, live])))
        .await;
    match item {
        Ok(item) => Ok(item.record()?),
        Err(TableError::ConditionFailed { .. }) => Err(AgentError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Marks an agent `creating` again (from `active`, `failed` or `draft` with an SOP) so its
/// creation workflow can run anew; refused while it is being created.
pub async fn begin_redeploy(table: &dyn Table, actor: &Membership, agent: &AgentId) -> Result<Agent, AgentError> {
    actor.require(Permission::ManageAgents)?;
    let current = get(table, &actor.tenant_id, agent).await?;
    if current.sop.trim().is_empty() {
        return Err(AgentError::Invalid("give the agent an SOP (PATCH `sop`) before deploying it".into()));
    }
    let update = Update::new()
        .set("status", AgentStatus::Creating.as_str())
        .set("needs_redeploy", false)
        .set("progress", serde_json::Value::Array(vec![]))
        .remove("failure_reason")
        .set("updated_at", stamp(now()));
    let redeployable = Condition::Or(
        [AgentStatus::Active, AgentStatus::Failed, AgentStatus::Draft, AgentStatus::Paused]
            .iter()
            .map(|s| Condition::equals("status", s.as_str()))
            .collect(),
    );
    match table.update(&agent_key(&actor.tenant_id, agent), update, Some(redeployable)).await {
        Ok(item) => Ok(item.record()?),
        Err(TableError::ConditionFailed { .. }) => {
            Err(AgentError::Busy(format!("the agent is {}", current.status.as_str())))
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves an agent from one status to another, if it is in `from`.
pub async fn transition(
    table: &dyn Table,
    actor: &Membership,
    agent: &AgentId,
    from: AgentStatus,
    to: AgentStatus,
) -> Result<Agent, AgentError> {
    actor.require(Permission::ManageAgents)?;
    let current = get(table, &actor.tenant_id, agent).await?;
    let update = Update::new().set("status", to.as_str()).set("updated_at", stamp(now()));
    match table
        .update(&agent_key(&actor.tenant_id, agent), update, Some(Condition::equals("status", from.as_str())))
        .await
    {
        Ok(item) => Ok(item.record()?),
        Err(TableError::ConditionFailed { .. }) => {
            Err(AgentError::Busy(format!("the agent is {}, not {}", current.status.as_str(), from.as_str())))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads an agent whatever its status (for the creation workflow).
pub async fn load(table: &dyn Table, tenant: &TenantId, agent: &AgentId) -> Result<Agent, AgentError> {
    Ok(table.get(&agent_key(tenant, agent)).await?.ok_or(AgentError::NotFound)?.record()?)
}

/// Records a creation step (appending to the agent's progress) and, when given, a new
/// status, failure reason and version, in one conditional write.
pub async fn record_step(
    table: &dyn Table,
    agent: &Agent,
    step: ProgressStep,
    status: Option<AgentStatus>,
    failure_reason: Option<&str>,
    version: Option<&str>,
) -> Result<Agent, AgentError> {
    let mut progress = agent.progress.clone();
    progress.push(step);
    let mut update = Update::new()
        .set("progress", serde_json::to_value(&progress).map_err(|e| AgentError::Invalid(e.to_string()))?)
        .set("updated_at", stamp(now()));
    if let Some(status) = status {
        update = update.set("status", status.as_str());
    }
    if let Some(reason) = failure_reason {
        update = update.set("failure_reason", reason);
    }
    if let Some(version) = version {
        update = update.set("version", version);
    }
    // Only the creation workflow writes progress, one step after another.
    let item = table.update(&agent_key(&agent.tenant_id, &agent.agent_id), update, Some(Condition::Exists)).await?;
    Ok(item.record()?)
}

/// Archives an agent: it disappears from the tenant's view and its keys stop working.
pub async fn archive(table: &dyn Table, actor: &Membership, agent: &AgentId) -> Result<(), AgentError> {
    actor.require(Permission::ManageAgents)?;
    let update = Update::new().set("status", AgentStatus::Archived.as_str()).set("updated_at", stamp(now()));
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

/// Largest knowledge document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;
/// Most documents per agent.
pub const MAX_DOCUMENTS: usize = 20;

/// The content type a knowledge document is stored with, from its file name; `None` for a
/// type agents cannot read.
pub fn document_content_type(file_name: &str) -> Option<&'static str> {
    let extension = file_name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "txt" => "text/plain; charset=utf-8",
        "md" | "markdown" => "text/markdown; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// Longest document title kept, in characters (the extension is kept whole).
pub const MAX_TITLE_CHARS: usize = 120;

/// The title a document is shown and cited by, from the name it was uploaded with: the
/// last path segment, without control or bidirectional-formatting characters (which can
/// make `x.md` display as `dm.exe`), whitespace collapsed, and at most `MAX_TITLE_CHARS`
/// (the stem is shortened, the extension kept).
pub fn document_title(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    let cleaned: String = base.chars().filter(|c| !invisible(*c)).collect();
    let title = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.chars().count() <= MAX_TITLE_CHARS {
        return title;
    }
    let (stem, extension) = match title.rsplit_once('.') {
        Some((stem, ext)) if ext.len() <= 10 => (stem, format!(".{ext}")),
        _ => (title.as_str(), String::new()),
    };
    let room = MAX_TITLE_CHARS - extension.chars().count();
    format!("{}{extension}", stem.chars().take(room).collect::<String>().trim_end())
}

/// A file name made safe for a blob key (letters, digits, `.`, `-`, `_`).
pub fn safe_file_name(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let cleaned: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let trimmed = cleaned.trim_matches('.').chars().take(100).collect::<String>();
    if trimmed.is_empty() { "document".into() } else { trimmed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_titles_are_the_names_people_see() {
        assert_eq!(document_title("C:\\Users\\ana\\Price list.csv"), "Price list.csv");
        assert_eq!(document_title("../../etc/passwd.txt"), "passwd.txt");
        // U+202E turns `invoice\u{202E}dm.exe` into what looks like `invoiceexe.md`.
        assert_eq!(document_title("invoice\u{202E}dm.exe"), "invoicedm.exe");
        assert_eq!(document_title("menu\u{200B}\u{2066}.md"), "menu.md");
        assert_eq!(document_title("  opening \t hours\n.txt "), "opening hours.txt");
        let long = document_title(&format!("{}.pdf", "a".repeat(5_000)));
        assert_eq!(long.chars().count(), MAX_TITLE_CHARS);
        assert!(long.ends_with("a.pdf"));
        assert_eq!(document_content_type(&long), Some("application/pdf"));
    }
}
