//! Phone calls. A tenant assigns its phone numbers (E.164) to its voice agents, one agent
//! per number, each number to one tenant; a call to a number reaches its agent through the
//! provider's webhook and media stream ([`twilio`]), on the same voice session as the
//! voice socket.
//!
//! Layout: the number's route `PHONE#<e164>` / `ROUTE` (who owns it, which agent, the
//! provider account and its sealed auth token: the webhook's one read), and the tenant's
//! listing `TENANT#<t>` / `PHONE#<e164>`; both are written and removed in one transaction,
//! and the route's `NotExists` condition is what keeps a number to one tenant.

pub mod twilio;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agents::{self, AgentError, AgentKind, AgentStatus};
use crate::audit;
use crate::ids::{AgentId, TenantId};
use crate::secrets::{Sealed, Secret, SecretBox, SecretError};
use crate::table::{Condition, Index, Item, Key, Query, SortKey, Table, TableError, Write};
use crate::tenancy::{Membership, Permission, TenancyError};
use crate::time::now;

/// The most numbers a tenant lists in one answer (and may hold).
pub const MAX_NUMBERS: usize = 500;

/// A phone number in E.164: `+`, a country code, at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

crate::ids::string_newtype!(PhoneNumber, TelephonyError, PhoneNumber::parse);

impl PhoneNumber {
    /// Takes a number as people write it (`+1 (415) 555-0100`, `+44 20 7946 0958`,
    /// `00 49 30 1234567`) and keeps its E.164 form; a number without its country code is
    /// refused, since nothing says which country it is in.
    pub fn parse(input: &str) -> Result<Self, TelephonyError> {
        let trimmed = input.trim();
        let rest = if let Some(rest) = trimmed.strip_prefix('+') {
            rest
        } else if let Some(rest) = trimmed.strip_prefix("00") {
            rest
        } else {
            return Err(TelephonyError::InvalidNumber(
                "write the number with its country code, as +<country><number> (E.164)".into(),
            ));
        };
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                _ => return Err(TelephonyError::InvalidNumber(format!("{c:?} has no place in a phone number"))),
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(TelephonyError::InvalidNumber(
                "an E.164 number is + and 8 to 15 digits, the first of them not 0".into(),
            ));
        }
        Ok(Self(format!("+{digits}")))
    }

    /// The number as logs and transcripts show it: its last four digits.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// `+14155550100` → `+•••••••0100`; anything else (`anonymous`) as it is.
pub fn mask(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits < 5 {
        return number.to_owned();
    }
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= digits - 4 { '•' } else { c }
            } else {
                c
            }
        })
        .collect()
}

/// A number and the agent that answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberAssignment {
    pub number: PhoneNumber,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    /// `twilio`.
    pub provider: String,
    /// The Twilio account the number is in (`AC…`).
    pub account_sid: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// What the webhook reads to answer a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    #[serde(flatten)]
    pub assignment: NumberAssignment,
    /// The account's auth token, sealed for the tenant.
    pub auth_token: Sealed,
}

/// A number to assign.
#[derive(Debug, Clone)]
pub struct NewNumber {
    pub number: String,
    pub agent_id: AgentId,
    pub label: Option<String>,
    pub account_sid: String,
    pub auth_token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum TelephonyError {
    #[error("invalid phone number: {0}")]
    InvalidNumber(String),
    #[error("{0}")]
    Invalid(String),
    #[error("this number is already assigned (to an agent of this or another organisation)")]
    NumberTaken,
    #[error("no such phone number")]
    NotFound,
    #[error("only voice agents (kind voice or both) answer phone numbers")]
    NotVoice,
    #[error("this organisation holds {MAX_NUMBERS} numbers, the most it may")]
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

fn route_key(number: &PhoneNumber) -> Key {
    Key::new(format!("PHONE#{number}"), "ROUTE")
}

fn listing_key(tenant: &TenantId, number: &PhoneNumber) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("PHONE#{number}"))
}

fn valid_account_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("AC") && sid[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Assigns a number to a voice agent of the caller's tenant (admins).
pub async fn assign(
    table: &dyn Table,
    secrets: &dyn SecretBox,
    actor: &Membership,
    new: NewNumber,
) -> Result<NumberAssignment, TelephonyError> {
    actor.require(Permission::ManageIntegrations)?;
    let number = PhoneNumber::parse(&new.number)?;
    let account_sid = new.account_sid.trim();
    if !valid_account_sid(account_sid) {
        return Err(TelephonyError::Invalid(
            "twilio.account_sid is the account's SID: AC and 32 hexadecimal digits".into(),
        ));
    }
    let token = new.auth_token.expose().trim();
    if !(16..=128).contains(&token.len()) || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(TelephonyError::Invalid(
            "twilio.auth_token is the account's auth token (16 to 128 characters)".into(),
        ));
    }
    let label = match new.label.as_deref().map(str::trim) {
        Some(l) if l.chars().count() > 80 || l.chars().any(char::is_control) => {
            return Err(TelephonyError::Invalid("label is at most 80 characters".into()));
        }
        Some("") | None => None,
        Some(l) => Some(l.to_owned()),
    };
    let agent = agents::get(table, &actor.tenant_id, &new.agent_id).await?;
    if agent.kind == AgentKind::Text {
        return Err(TelephonyError::NotVoice);
    }
    if list_all(table, &actor.tenant_id).await?.len() >= MAX_NUMBERS {
        return Err(TelephonyError::TooMany);
    }
    let sealed = secrets.seal(&actor.tenant_id, &Secret::new(token)).await?;
    let assignment = NumberAssignment {
        number: number.clone(),
        tenant_id: actor.tenant_id.clone(),
        agent_id: agent.agent_id.clone(),
        provider: "twilio".into(),
        account_sid: account_sid.to_owned(),
        label,
        created_at: now(),
        created_by: actor.user_id.to_string(),
    };
    let route = Route { assignment: assignment.clone(), auth_token: sealed };
    let writes = vec![
        Write::Check {
            key: agents::agent_key(&actor.tenant_id, &agent.agent_id),
            condition: Condition::NotEquals("status".into(), AgentStatus::Archived.as_str().into()),
        },
        Write::Put { item: Item::from_record(route_key(&number), &route)?, condition: Some(Condition::NotExists) },
        Write::Put {
            item: Item::from_record(listing_key(&actor.tenant_id, &number), &assignment)?,
            condition: Some(Condition::NotExists),
        },
    ];
    table.transact(writes).await.map_err(|e| match e {
        TableError::ConditionFailed { write: Some(0) } => TelephonyError::Agent(AgentError::NotFound),
        TableError::ConditionFailed { .. } => TelephonyError::NumberTaken,
        other => other.into(),
    })?;
    audit!(
        "phone_number_assigned",
        tenant = actor.tenant_id,
        actor = actor.user_id,
        agent_id = agent.agent_id,
        number = number.masked()
    );
    Ok(assignment)
}

async fn list_all(table: &dyn Table, tenant: &TenantId) -> Result<Vec<NumberAssignment>, TelephonyError> {
    let query = Query::partition(Index::Primary, format!("TENANT#{tenant}"))
        .sort(SortKey::BeginsWith("PHONE#".into()))
        .limit(MAX_NUMBERS);
    Ok(table.query(query).await?.records()?)
}

/// The tenant's numbers, in number order.
pub async fn list(table: &dyn Table, actor: &Membership) -> Result<Vec<NumberAssignment>, TelephonyError> {
    actor.require(Permission::Read)?;
    list_all(table, &actor.tenant_id).await
}

/// One of the tenant's numbers.
pub async fn get(table: &dyn Table, actor: &Membership, number: &str) -> Result<NumberAssignment, TelephonyError> {
    actor.require(Permission::Read)?;
    let number = PhoneNumber::parse(number).map_err(|_| TelephonyError::NotFound)?;
    let item = table.get(&listing_key(&actor.tenant_id, &number)).await?.ok_or(TelephonyError::NotFound)?;
    Ok(item.record()?)
}

/// Takes a number from its agent; calls to it are refused from this moment.
pub async fn remove(table: &dyn Table, actor: &Membership, number: &str) -> Result<NumberAssignment, TelephonyError> {
    actor.require(Permission::ManageIntegrations)?;
    let assignment = get(table, actor, number).await?;
    let writes = vec![
        Write::Delete {
            key: route_key(&assignment.number),
            condition: Some(Condition::equals("tenant_id", actor.tenant_id.as_str())),
        },
        Write::Delete { key: listing_key(&actor.tenant_id, &assignment.number), condition: Some(Condition::Exists) },
    ];
    table.transact(writes).await.map_err(|e| match e {
        TableError::ConditionFailed { .. } => TelephonyError::NotFound,
        other => other.into(),
    })?;
    audit!(
        "phone_number_removed",
        tenant = actor.tenant_id,
        actor = actor.user_id,
        number = assignment.number.masked()
    );
    Ok(assignment)
}

/// Where a call to `number` goes, if the number is assigned.
pub async fn route(table: &dyn Table, number: &str) -> Result<Option<Route>, TelephonyError> {
    let Ok(number) = PhoneNumber::parse(number) else { return Ok(None) };
    match table.get(&route_key(&number)).await? {
        Some(item) => Ok(Some(item.record()?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_taken_as_people_write_them() {
        assert_eq!(PhoneNumber::parse("+1 (415) 555-0100").unwrap().as_str(), "+14155550100");
        assert_eq!(PhoneNumber::parse(" 0044 20 7946 0958 ").unwrap().as_str(), "+442079460958");
        assert_eq!(PhoneNumber::parse("+49.30.1234567").unwrap().as_str(), "+49301234567");
        for bad in ["415 555 0100", "+1 415 555 01OO", "+0123456789", "+1234", "+1234567890123456", "", "+"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn masks_keep_the_last_four_digits() {
        assert_eq!(PhoneNumber::parse("+14155550100").unwrap().masked(), "+•••••••0100");
        assert_eq!(mask("anonymous"), "anonymous");
        assert_eq!(mask("+266696687"), "+•••••6687");
    }
}
