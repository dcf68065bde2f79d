//! API keys: how a tenant's customers' applications reach one agent.
//!
//! A key is `ora_` and 40 random base62 characters (about 238 bits). The secret is shown
//! once, at creation; the table keeps only its SHA-256. Layout:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `TENANT#<t>` | `KEY#<agent>#<key>` | metadata: name, prefix, status, created, last used, use count |
//! | `APIKEY#<sha256>` | `APIKEY` | the lookup a request's key resolves through; deleted on revocation |

use std::fmt;

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agents::{self, AgentError, AgentStatus, agent_key};
use crate::audit;
use crate::ids::{AgentId, KeyId, TenantId};
use crate::table::{Condition, Index, Item, Key, Query, SortKey, Table, TableError, Update, Write};
use crate::tenancy::{Membership, Permission, TenancyError};
use crate::time::now;

pub const SECRET_PREFIX: &str = "ora_";
const SECRET_RANDOM_CHARS: usize = 40;
/// How much of the secret the metadata shows, to tell keys apart.
const VISIBLE_CHARS: usize = 12;
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 120;
pub const MAX_RATE_LIMIT_PER_MINUTE: u32 = 100_000;

/// An API key's secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    pub fn generate() -> Self {
        Self(format!("{SECRET_PREFIX}{}", Alphanumeric.sample_string(&mut rand::rng(), SECRET_RANDOM_CHARS)))
    }

    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let random = raw.strip_prefix(SECRET_PREFIX).ok_or(KeyError::Unknown)?;
        if random.len() != SECRET_RANDOM_CHARS || !random.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(KeyError::Unknown);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    pub fn visible_prefix(&self) -> String {
        self.0[..VISIBLE_CHARS].to_owned()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", &self.0[..VISIBLE_CHARS])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// What the tenant sees of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key_id: KeyId,
    pub agent_id: AgentId,
    pub name: String,
    /// The first characters of the secret, e.g. `ora_Xy12AbCd`.
    pub prefix: String,
    pub status: KeyStatus,
    pub rate_limit_per_minute: u32,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub use_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    #[serde(flatten)]
    key: ApiKey,
    secret_hash: String,
}

/// Who a request's key speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPrincipal {
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub key_id: KeyId,
    pub rate_limit_per_minute: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the API key is not valid")]
    Unknown,
    #[error("`name` must be 1 to 80 characters")]
    InvalidName,
    #[error("`rate_limit_per_minute` must be 1 to {MAX_RATE_LIMIT_PER_MINUTE}")]
    InvalidRateLimit,
    #[error("no such key")]
    NotFound,
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Table(#[from] TableError),
}

fn metadata_key(tenant: &TenantId, agent: &AgentId, key: &KeyId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("KEY#{agent}#{key}"))
}

fn lookup_key(hash: &str) -> Key {
    Key::new(format!("APIKEY#{hash}"), "APIKEY")
}

/// Creates a key for one of the tenant's agents. The secret is returned here and never
/// again.
pub async fn create(
    table: &dyn Table,
    actor: &Membership,
    agent: &AgentId,
    name: &str,
    rate_limit_per_minute: Option<u32>,
) -> Result<(ApiKey, ApiKeySecret), KeyError> {
    actor.require(Permission::ManageKeys)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(KeyError::InvalidName);
    }
    let rate_limit = rate_limit_per_minute.unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE);
    if rate_limit == 0 || rate_limit > MAX_RATE_LIMIT_PER_MINUTE {
        return Err(KeyError::InvalidRateLimit);
    }
    agents::get(table, &actor.tenant_id, agent).await?;
    let secret = ApiKeySecret::generate();
    let key = ApiKey {
        key_id: KeyId::generate(),
        agent_id: agent.clone(),
        name: name.to_owned(),
        prefix: secret.visible_prefix(),
        status: KeyStatus::Active,
        rate_limit_per_minute: rate_limit,
        created_at: now(),
        created_by: actor.user_id.to_string(),
        revoked_at: None,
        last_used_at: None,
        use_count: 0,
    };
    let principal = KeyPrincipal {
        tenant_id: actor.tenant_id.clone(),
        agent_id: agent.clone(),
        key_id: key.key_id.clone(),
        rate_limit_per_minute: rate_limit,
    };
    let record = KeyRecord { key: key.clone(), secret_hash: secret.hash() };
    let writes = vec![
        // The agent must still be live when the key is written.
        Write::Check {
            key: agent_key(&actor.tenant_id, agent),
            condition: Condition::NotEquals("status".into(), AgentStatus::Archived.as_str().into()),
        },
        Write::Put {
            item: Item::from_record(metadata_key(&actor.tenant_id, agent, &key.key_id), &record)?,
            condition: Some(Condition::NotExists),
        },
        Write::Put {
            item: Item::from_record(lookup_key(&record.secret_hash), &principal)?,
            condition: Some(Condition::NotExists),
        },
    ];
    table.transact(writes).await.map_err(|e| match e {
        TableError::ConditionFailed { write: Some(0) } => KeyError::Agent(AgentError::NotFound),
        other => other.into(),
    })?;
    audit!("api_key_created", tenant = actor.tenant_id, actor = actor.user_id, agent_id = agent, key_id = key.key_id);
    Ok((key, secret))
}

/// The keys of one agent, newest last; metadata only.
pub async fn list(table: &dyn Table, actor: &Membership, agent: &AgentId) -> Result<Vec<ApiKey>, KeyError> {
    actor.require(Permission::Read)?;
    agents::get(table, &actor.tenant_id, agent).await?;
    let query = Query::partition(Index::Primary, format!("TENANT#{}", actor.tenant_id))
        .sort(SortKey::BeginsWith(format!("KEY#{agent}#")));
    let records: Vec<KeyRecord> = table.query(query).await?.records()?;
    Ok(records.into_iter().map(|r| r.key).collect())
}

/// Revokes a key; requests with it fail from the moment this returns.
pub async fn revoke(
    table: &dyn Table,
    actor: &Membership,
    agent: &AgentId,
    key_id: &KeyId,
) -> Result<ApiKey, KeyError> {
    actor.require(Permission::ManageKeys)?;
    let metadata = metadata_key(&actor.tenant_id, agent, key_id);
    let mut record: KeyRecord = table.get(&metadata).await?.ok_or(KeyError::NotFound)?.record()?;
    if record.key.status == KeyStatus::Revoked {
        return Ok(record.key);
    }
    revoke_record(table, &actor.tenant_id, &mut record).await?;
    audit!("api_key_revoked", tenant = actor.tenant_id, actor = actor.user_id, agent_id = agent, key_id = key_id);
    Ok(record.key)
}

async fn revoke_record(table: &dyn Table, tenant: &TenantId, record: &mut KeyRecord) -> Result<(), KeyError> {
    let at = now();
    let writes = vec![
        Write::Update {
            key: metadata_key(tenant, &record.key.agent_id, &record.key.key_id),
            update: Update::new().set("status", "revoked").set("revoked_at", at.to_rfc3339()),
            condition: Some(Condition::Exists),
        },
        Write::Delete { key: lookup_key(&record.secret_hash), condition: None },
    ];
    table.transact(writes).await?;
    record.key.status = KeyStatus::Revoked;
    record.key.revoked_at = Some(at);
    Ok(())
}

/// Revokes every active key of an agent (when it is archived).
pub async fn revoke_all(table: &dyn Table, actor: &Membership, agent: &AgentId) -> Result<usize, KeyError> {
    let query = Query::partition(Index::Primary, format!("TENANT#{}", actor.tenant_id))
        .sort(SortKey::BeginsWith(format!("KEY#{agent}#")));
    let records: Vec<KeyRecord> = table.query(query).await?.records()?;
    let mut revoked = 0;
    for mut record in records.into_iter().filter(|r| r.key.status == KeyStatus::Active) {
        revoke_record(table, &actor.tenant_id, &mut record).await?;
        audit!(
            "api_key_revoked",
            tenant = actor.tenant_id,
            actor = actor.user_id,
            agent_id = agent,
            key_id = record.key.key_id,
            reason = "agent archived"
        );
        revoked += 1;
    }
    Ok(revoked)
}

/// Resolves a request's key to the tenant and agent it speaks for. Unknown, malformed
/// and revoked keys, and keys of archived agents, are all `Unknown`.
pub async fn authenticate(table: &dyn Table, raw: &str) -> Result<KeyPrincipal, KeyError> {
    let secret = ApiKeySecret::parse(raw)?;
    let principal: KeyPrincipal = table.get(&lookup_key(&secret.hash())).await?.ok_or(KeyError::Unknown)?.record()?;
    match agents::get(table, &principal.tenant_id, &principal.agent_id).await {
        Ok(_) => Ok(principal),
        Err(AgentError::NotFound) => Err(KeyError::Unknown),
        Err(e) => Err(e.into()),
    }
}

/// Adds `uses` to a key's count and moves its last-used time forward. Used by the
/// batched usage recorder, so requests never wait on it.
pub async fn record_usage(
    table: &dyn Table,
    principal: &KeyPrincipal,
    uses: u64,
    last_used_at: DateTime<Utc>,
) -> Result<(), TableError> {
    let key = metadata_key(&principal.tenant_id, &principal.agent_id, &principal.key_id);
    let update = Update::new()
        .add("use_count", i64::try_from(uses).unwrap_or(i64::MAX))
        .set("last_used_at", last_used_at.to_rfc3339());
    match table.update(&key, update, Some(Condition::Exists)).await {
        Ok(_) | Err(TableError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_never_printed() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), SECRET_PREFIX.len() + SECRET_RANDOM_CHARS);
        assert!(!format!("{a:?}").contains(&a.expose()[VISIBLE_CHARS..]));
        assert_eq!(ApiKeySecret::parse(a.expose()).unwrap().hash(), a.hash());
        assert!(ApiKeySecret::parse("ora_short").is_err());
        assert!(ApiKeySecret::parse(&a.expose().replace("ora_", "sk_")).is_err());
    }
}

/// Counts key uses in memory and writes them in batches, so that no request waits on a
/// usage write. `flush` runs every few seconds and at shutdown.
#[derive(Default)]
pub struct UsageRecorder {
    pending: std::sync::Mutex<std::collections::HashMap<KeyId, PendingUse>>,
}

/// Uses of one key not yet written.
struct PendingUse {
    principal: KeyPrincipal,
    uses: u64,
    last_used: DateTime<Utc>,
}

impl UsageRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, principal: &KeyPrincipal, uses: u64, last_used: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pending.entry(principal.key_id.clone()).or_insert_with(|| PendingUse {
            principal: principal.clone(),
            uses: 0,
            last_used,
        });
        entry.uses += uses;
        entry.last_used = entry.last_used.max(last_used);
    }

    pub fn record(&self, principal: &KeyPrincipal) {
        self.add(principal, 1, now());
    }

    /// Writes what has been counted; what fails to write is counted again next time.
    pub async fn flush(&self, table: &dyn Table) -> Result<usize, TableError> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut written = 0;
        let mut failure = None;
        for pending in batch.into_values() {
            match record_usage(table, &pending.principal, pending.uses, pending.last_used).await {
                Ok(()) => written += 1,
                Err(e) => {
                    self.add(&pending.principal, pending.uses, pending.last_used);
                    failure = Some(e);
                }
            }
        }
        failure.map_or(Ok(written), Err)
    }
}
