//! Handoff notifications: when an agent hands a conversation to a person, the tenant is
//! told in three ways that do not depend on anyone watching: a notification record
//! (written in the same transaction as the agent's turn, so a handoff is never stored
//! without it), an email to the members who take handoffs, and the dashboards' live
//! `handoff.requested` event (which now names the notification).
//!
//! Layout: `TENANT#<t>` / `NOTIFICATION#<id>` (ids are time-ordered, so the partition is
//! newest last); while unread it is also in `gsi2` under `NOTIFICATIONS#<t>#UNREAD`, and
//! acknowledging or resolving takes it out (a sparse index: listing the unread is one
//! query of only the unread).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::conversations::{self, Session};
use crate::ids::{AgentId, NotificationId, SessionId, TenantId};
use crate::mail::{Mail, Mailer};
use crate::runtime::Handoff;
use crate::table::{Condition, Cursor, Index, Item, Key, Query, SortKey, Table, TableError, Update, Write};
use crate::tenancy::{Member, Membership, Permission, TenancyError};

/// The longest outcome a resolution may record.
pub const MAX_OUTCOME_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    Unread,
    Acknowledged,
    Resolved,
}

/// One handoff, as the tenant's people see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub notification_id: NotificationId,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub session_id: SessionId,
    /// `text`, `voice`, `phone`.
    pub channel: String,
    pub reason: String,
    /// The agent's summary for the person taking over.
    pub summary: Option<String>,
    /// What the agent collected from the customer.
    pub details: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub status: NotificationStatus,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// From the handoff to its acknowledgement.
    pub acknowledged_after_ms: Option<u64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("no such notification")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Table(#[from] TableError),
}

fn key(tenant: &TenantId, id: &NotificationId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("NOTIFICATION#{id}"))
}

fn unread(tenant: &TenantId) -> String {
    format!("NOTIFICATIONS#{tenant}#UNREAD")
}

/// The notification of a handoff, and its item (for the turn's transaction).
pub fn of_handoff(session: &Session, handoff: &Handoff, at: DateTime<Utc>) -> Result<(Notification, Item), TableError> {
    let notification = Notification {
        notification_id: NotificationId::generate(),
        tenant_id: session.tenant_id.clone(),
        agent_id: session.agent_id.clone(),
        session_id: session.session_id.clone(),
        channel: session.channel.clone(),
        reason: handoff.reason.clone(),
        summary: handoff.summary.clone(),
        details: session.details.clone(),
        created_at: at,
        status: NotificationStatus::Unread,
        acknowledged_by: None,
        acknowledged_at: None,
        acknowledged_after_ms: None,
        resolved_by: None,
        resolved_at: None,
        outcome: None,
    };
    let id = &notification.notification_id;
    let item = Item::from_record(key(&session.tenant_id, id), &notification)?.in_index(
        Index::Gsi2,
        unread(&session.tenant_id),
        id.to_string(),
    );
    Ok((notification, item))
}

/// The tenant's notifications, newest first: only the unread ones, or all.
pub async fn list(
    table: &dyn Table,
    actor: &Membership,
    unread_only: bool,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<Notification>, Option<Cursor>), NotificationError> {
    actor.require(Permission::Read)?;
    let query = if unread_only {
        Query::partition(Index::Gsi2, unread(&actor.tenant_id))
    } else {
        Query::partition(Index::Primary, format!("TENANT#{}", actor.tenant_id))
            .sort(SortKey::BeginsWith("NOTIFICATION#".into()))
    };
    let page = table.query(query.descending().limit(limit).after(cursor)).await?;
    Ok((page.records()?, page.next))
}

/// Marks a notification read by `actor` (an operator or admin). Acknowledging one already
/// acknowledged or resolved changes nothing: the first acknowledgement is kept.
pub async fn acknowledge(
    table: &dyn Table,
    actor: &Membership,
    id: &NotificationId,
    now: DateTime<Utc>,
) -> Result<Notification, NotificationError> {
    actor.require(Permission::ManageSessions)?;
    let current = get(table, &actor.tenant_id, id).await?;
    if current.status != NotificationStatus::Unread {
        return Ok(current);
    }
    let after = (now - current.created_at).num_milliseconds().max(0);
    let update = Update::new()
        .set("status", "acknowledged")
        .set("acknowledged_by", actor.email.to_string())
        .set("acknowledged_at", now.to_rfc3339())
        .set("acknowledged_after_ms", after)
        .remove(Index::Gsi2.key_names().0)
        .remove(Index::Gsi2.key_names().1);
    match table.update(&key(&actor.tenant_id, id), update, Some(Condition::equals("status", "unread"))).await {
        Ok(item) => Ok(item.record()?),
        // Someone else acknowledged it just now: theirs stands.
        Err(e) if e.is_condition_failed() => get(table, &actor.tenant_id, id).await,
        Err(e) => Err(e.into()),
    }
}

/// Closes a notification with its outcome (what the person did). An unread one is
/// acknowledged by the same stroke.
pub async fn resolve(
    table: &dyn Table,
    actor: &Membership,
    id: &NotificationId,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<Notification, NotificationError> {
    actor.require(Permission::ManageSessions)?;
    let outcome = outcome.trim();
    if outcome.is_empty() || outcome.chars().count() > MAX_OUTCOME_CHARS {
        return Err(NotificationError::Invalid(format!(
            "outcome: say what was done, in 1 to {MAX_OUTCOME_CHARS} characters"
        )));
    }
    let current = acknowledge(table, actor, id, now).await?;
    if current.status == NotificationStatus::Resolved {
        return Err(NotificationError::Invalid("this notification is already resolved".into()));
    }
    let update = Update::new()
        .set("status", "resolved")
        .set("resolved_by", actor.email.to_string())
        .set("resolved_at", now.to_rfc3339())
        .set("outcome", outcome);
    // The session keeps the outcome too, for the history's filter.
    let writes = vec![
        Write::Update {
            key: key(&actor.tenant_id, id),
            update,
            condition: Some(Condition::equals("status", "acknowledged")),
        },
        conversations::outcome_write(&actor.tenant_id, &current.session_id, outcome),
    ];
    match table.transact(writes).await {
        Ok(()) => get(table, &actor.tenant_id, id).await,
        Err(e) if e.is_condition_failed() => {
            Err(NotificationError::Invalid("this notification is already resolved".into()))
        }
        Err(e) => Err(e.into()),
    }
}

async fn get(table: &dyn Table, tenant: &TenantId, id: &NotificationId) -> Result<Notification, NotificationError> {
    match table.get(&key(tenant, id)).await? {
        Some(item) => Ok(item.record()?),
        None => Err(NotificationError::NotFound),
    }
}

/// Emails the members who take handoff emails (see `Member::takes_handoff_emails`). Best effort, like the live event: the record is
/// stored already, and a mail that cannot go now is logged, not retried into the turn.
pub async fn email(table: &dyn Table, mailer: &dyn Mailer, notification: &Notification, dashboard_url: &str) {
    let partition = format!("TENANT#{}", notification.tenant_id);
    let query = Query::partition(Index::Primary, partition).sort(SortKey::BeginsWith("MEMBER#".into()));
    let members: Vec<Member> = match table.query(query).await.and_then(|page| page.records()) {
        Ok(members) => members,
        Err(e) => return tracing::warn!(cause = %e, "listing who takes handoffs failed"),
    };
    let link = match dashboard_url.trim_end_matches('/') {
        "" => format!("Agent {}, session {}", notification.agent_id, notification.session_id),
        // The conversation's page, where it can be taken over.
        url => format!("Open it: {url}/#/sessions/{}", notification.session_id),
    };
    let summary = notification.summary.as_deref().unwrap_or("(no summary)");
    let details: String = notification.details.iter().map(|(k, v)| format!("\n  {k}: {v}")).collect();
    for member in members.iter().filter(|m| m.takes_handoff_emails()) {
        let mail = Mail {
            to: member.email.clone(),
            subject: format!("A customer needs a person: {}", notification.reason),
            text: format!(
                "An agent handed a conversation ({} channel) to a person.\n\nReason: {}\nSummary: {summary}\nCollected:{}\n\n{link}\n",
                notification.channel,
                notification.reason,
                if details.is_empty() { " nothing".into() } else { details.clone() },
            ),
        };
        if let Err(e) = mailer.send(mail).await {
            tracing::warn!(cause = %e, "a handoff email could not be sent");
        }
    }
}
