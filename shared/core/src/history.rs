//! The history: a tenant's ended sessions, filtered and sorted, each request served by one
//! index (see the layout in [`conversations`](crate::conversations)) — never a scan.
//!
//! The index is chosen by the most selective thing asked: a customer (`gsi4`), a sort by
//! duration (`gsi3`), an agent (`gsi1`), else the tenant's ended sessions (`gsi2`). A date
//! range narrows the index's sort key where it is the start; the other filters are checked
//! on what the index gives, at most [`EXAMINED_PER_PAGE`] sessions per request, so a very
//! selective filter answers a page with fewer sessions than asked and a cursor to go on
//! (as DynamoDB's own filters do).

use chrono::{DateTime, Utc};

use crate::conversations::{
    ConversationError, Session, SessionStatus, agent_sessions, customer_sessions, ended_sessions, sessions_by_duration,
};
use crate::ids::{AgentId, TenantId};
use crate::table::{Cursor, CursorKey, Index, Item, Query, SortKey, Table};

/// The most sessions one request reads from its index: a bound on its time (on SQLite
/// about 30 µs a session, so a selective filter answers within 10 ms; the benchmark).
pub const EXAMINED_PER_PAGE: usize = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Started,
    Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffFilter {
    /// Handed to a person.
    Yes,
    /// Contained: the agent kept it to the end.
    No,
    /// Handed over, and resolved with this outcome (case aside).
    Outcome(String),
}

/// What the history is asked for. Every field narrows it; none gives every ended session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub agent: Option<AgentId>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
    pub channel: Option<String>,
    pub end_reason: Option<String>,
    pub handoff: Option<HandoffFilter>,
    /// The customer's id, as the application gave it.
    pub customer: Option<String>,
    pub sort: SortBy,
    /// Oldest (or shortest) first; newest (or longest) first otherwise.
    pub ascending: bool,
}

impl HistoryFilter {
    pub fn validate(&self) -> Result<(), ConversationError> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(ConversationError::Invalid("`from` must be before `to`".into()));
        }
        if self.customer.is_some() && self.sort == SortBy::Duration {
            return Err(ConversationError::Invalid(
                "a customer's sessions are sorted by start; `sort=duration` is for the whole history".into(),
            ));
        }
        Ok(())
    }

    /// The index, partition and sort-key range that serve this request.
    pub fn plan(&self, tenant: &TenantId) -> (Index, String, Option<SortKey>) {
        let started = match (self.from, self.to) {
            (Some(from), Some(to)) => Some(SortKey::Between(from.to_rfc3339(), to.to_rfc3339())),
            (Some(from), None) => Some(SortKey::GreaterOrEqual(from.to_rfc3339())),
            (None, Some(to)) => Some(SortKey::LessThan(to.to_rfc3339())),
            (None, None) => None,
        };
        match (&self.customer, self.sort, &self.agent) {
            (Some(customer), _, _) => (Index::Gsi4, customer_sessions(tenant, customer), started),
            (None, SortBy::Duration, _) => (Index::Gsi3, sessions_by_duration(tenant), None),
            (None, SortBy::Started, Some(agent)) => (Index::Gsi1, agent_sessions(tenant, agent), started),
            (None, SortBy::Started, None) => (Index::Gsi2, ended_sessions(tenant), started),
        }
    }

    /// Whether a stored session is an ended one asked for. Read from the item's fields, so
    /// that only the sessions asked for are decoded whole.
    pub fn matches(&self, item: &Item) -> bool {
        let started = || item.str("started_at").and_then(|at| DateTime::parse_from_rfc3339(at).ok());
        let handed_over = item.str("handoff_reason").is_some();
        item.str("status") == Some(SessionStatus::Ended.as_str())
            && self.agent.as_ref().is_none_or(|a| item.str("agent_id") == Some(a.as_str()))
            && self.channel.as_deref().is_none_or(|c| item.str("channel") == Some(c))
            && self.end_reason.as_deref().is_none_or(|r| item.str("end_reason") == Some(r))
            && self.customer.as_deref().is_none_or(|c| {
                item.get("customer").and_then(|customer| customer.get("id")).and_then(|id| id.as_str()) == Some(c)
            })
            && match &self.handoff {
                None => true,
                Some(HandoffFilter::Yes) => handed_over,
                Some(HandoffFilter::No) => !handed_over,
                Some(HandoffFilter::Outcome(outcome)) => {
                    item.str("handoff_outcome").is_some_and(|o| o.trim().eq_ignore_ascii_case(outcome.trim()))
                }
            }
            && (self.from.is_none() && self.to.is_none()
                || started()
                    .is_some_and(|at| self.from.is_none_or(|from| at >= from) && self.to.is_none_or(|to| at < to)))
    }
}

/// A page of the tenant's history: up to `limit` sessions, and a cursor when more may follow.
pub async fn list(
    table: &dyn Table,
    tenant: &TenantId,
    filter: &HistoryFilter,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<Session>, Option<Cursor>), ConversationError> {
    filter.validate()?;
    let (index, partition, range) = filter.plan(tenant);
    // Filters the index does not serve read bigger pages: most of what comes is passed over.
    let residual = filter.channel.is_some()
        || filter.end_reason.is_some()
        || filter.handoff.is_some()
        || (index == Index::Gsi3 && (filter.agent.is_some() || filter.from.is_some() || filter.to.is_some()));
    let page_size = if residual { EXAMINED_PER_PAGE / 2 } else { limit };
    let (mut sessions, mut cursor, mut examined) = (Vec::new(), cursor, 0);
    loop {
        let mut query = Query::partition(index, partition.clone()).limit(page_size).after(cursor);
        if let Some(range) = &range {
            query = query.sort(range.clone());
        }
        if !filter.ascending {
            query = query.descending();
        }
        let page = table.query(query).await?;
        for item in &page.items {
            examined += 1;
            if filter.matches(item) {
                sessions.push(item.record::<Session>()?);
                if sessions.len() == limit {
                    return Ok((sessions, Some(Cursor::encode(&CursorKey::of(item, index)))));
                }
            }
        }
        match page.next {
            Some(next) if examined < EXAMINED_PER_PAGE => cursor = Some(next),
            next => return Ok((sessions, next)),
        }
    }
}

/// The whole of a filtered history, up to `max` sessions (an export), page after page.
pub async fn all(
    table: &dyn Table,
    tenant: &TenantId,
    filter: &HistoryFilter,
    max: usize,
) -> Result<Vec<Session>, ConversationError> {
    let (mut sessions, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = list(table, tenant, filter, 100, cursor).await?;
        sessions.extend(page);
        match next {
            Some(next) if sessions.len() < max => cursor = Some(next),
            _ => {
                sessions.truncate(max);
                return Ok(sessions);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_has_its_index() {
        let tenant = TenantId::generate();
        let agent = AgentId::generate();
        let by = |f: HistoryFilter| f.plan(&tenant).0;
        assert_eq!(by(HistoryFilter::default()), Index::Gsi2);
        assert_eq!(by(HistoryFilter { agent: Some(agent.clone()), ..Default::default() }), Index::Gsi1);
        assert_eq!(by(HistoryFilter { agent: Some(agent), sort: SortBy::Duration, ..Default::default() }), Index::Gsi3);
        assert_eq!(by(HistoryFilter { customer: Some("c-1".into()), ..Default::default() }), Index::Gsi4);
        let wrong = HistoryFilter { customer: Some("c-1".into()), sort: SortBy::Duration, ..Default::default() };
        assert!(wrong.validate().is_err());
    }
}
