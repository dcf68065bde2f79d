//! Analytics: rollups kept as sessions end — one per day (the session's start, UTC) for
//! each agent and one for the whole tenant — and read back over a period. A request reads
//! at most one rollup per day of its period, never the sessions or their turns; the
//! rollups are small counters and histograms, and outlive the sessions they count.
//!
//! Layout: `TENANT#<t>` / `ROLLUP#<agent id or ALL>#<yyyy-mm-dd>`. A rollup is changed by
//! read, fold, and a write conditioned on the version read (retried when another session
//! ended at the same moment), so no ending is counted twice or lost to a race.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::conversations::{Role, Session, Turn};
use crate::ids::{AgentId, SessionId, TenantId};
use crate::table::{Condition, Item, Key, Query, SortKey, Table, TableError};

/// Upper bounds of the duration histogram's buckets (ms); one more bucket holds the rest.
pub const DURATION_BOUNDS_MS: [u64; 10] =
    [5_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_200_000, 1_800_000, 3_600_000];
/// Upper bounds of the agent latency histogram's buckets (ms).
pub const LATENCY_BOUNDS_MS: [u64; 12] =
    [250, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 8_000, 13_000, 20_000, 30_000];
/// The questions a rollup keeps that the agent could not answer (the latest).
pub const UNANSWERED_KEPT: usize = 20;
/// Distinct handoff reasons a rollup counts; later ones count as `other`.
pub const REASONS_KEPT: usize = 50;
/// The longest period one request covers.
pub const MAX_DAYS: i64 = 366;

const ALL: &str = "ALL";

/// A customer's question the agent could not answer: it handed the conversation over, or
/// searched its documents and found nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unanswered {
    pub question: String,
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub at: DateTime<Utc>,
}

/// One day of one agent (or of the tenant).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    pub sessions: u64,
    pub by_channel: BTreeMap<String, u64>,
    pub duration_ms_sum: u64,
    pub durations: Vec<u64>,
    /// Turns of the customer, the agent and people (not notes).
    pub messages: u64,
    pub handoffs: u64,
    pub handoff_reasons: BTreeMap<String, u64>,
    pub end_reasons: BTreeMap<String, u64>,
    pub latency_count: u64,
    pub latency_ms_sum: u64,
    pub latencies: Vec<u64>,
    pub unanswered: Vec<Unanswered>,
    #[serde(default)]
    version: u64,
}

fn bucket(bounds: &[u64], value: u64) -> usize {
    bounds.iter().position(|b| value <= *b).unwrap_or(bounds.len())
}

fn count(histogram: &mut Vec<u64>, bounds: &[u64], value: u64) {
    histogram.resize(bounds.len() + 1, 0);
    histogram[bucket(bounds, value)] += 1;
}

/// The `q` quantile of a histogram, as its bucket's upper bound (the last bound for the
/// overflow bucket); `None` when it is empty.
pub fn quantile(histogram: &[u64], bounds: &[u64], q: f64) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let wanted = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return Some(bounds.get(i).copied().unwrap_or(bounds[bounds.len() - 1]));
        }
    }
    bounds.last().copied()
}

/// The customer's questions in `turns` the agent could not answer.
pub fn unanswered(session: &Session, turns: &[Turn]) -> Vec<Unanswered> {
    let mut questions = Vec::new();
    let mut asked: Option<&Turn> = None;
    for turn in turns {
        match turn.role {
            Role::Customer => asked = Some(turn),
            Role::Agent => {
                let found_nothing = turn.tool_calls.iter().any(|c| {
                    c.name == "search_knowledge" && c.result["passages"].as_array().is_some_and(Vec::is_empty)
                });
                if let Some(question) = asked.take().filter(|_| turn.handed_off || found_nothing) {
                    questions.push(Unanswered {
                        question: question.text.chars().take(300).collect(),
                        agent_id: session.agent_id.clone(),
                        session_id: session.session_id.clone(),
                        at: question.at,
                    });
                }
            }
            Role::Operator | Role::System => {}
        }
    }
    questions
}

impl Rollup {
    fn fold(&mut self, session: &Session, turns: &[Turn], unanswered: &[Unanswered]) {
        self.sessions += 1;
        *self.by_channel.entry(session.channel.clone()).or_default() += 1;
        let duration = session.duration_ms.unwrap_or_default();
        self.duration_ms_sum += duration;
        count(&mut self.durations, &DURATION_BOUNDS_MS, duration);
        self.messages += turns.iter().filter(|t| t.role != Role::System).count() as u64;
        if let Some(reason) = &session.handoff_reason {
            self.handoffs += 1;
            let reason: String = reason.trim().to_lowercase().chars().take(80).collect();
            let key = if self.handoff_reasons.len() < REASONS_KEPT || self.handoff_reasons.contains_key(&reason) {
                reason
            } else {
                "other".into()
            };
            *self.handoff_reasons.entry(key).or_default() += 1;
        }
        *self.end_reasons.entry(session.end_reason.clone().unwrap_or_default()).or_default() += 1;
        for latency in turns.iter().filter(|t| t.role == Role::Agent).filter_map(|t| t.latency_ms) {
            self.latency_count += 1;
            self.latency_ms_sum += latency;
            count(&mut self.latencies, &LATENCY_BOUNDS_MS, latency);
        }
        self.unanswered.extend(unanswered.iter().cloned());
        self.unanswered.sort_by_key(|u| std::cmp::Reverse(u.at));
        self.unanswered.truncate(UNANSWERED_KEPT);
    }

    fn add(&mut self, other: &Rollup) {
        self.sessions += other.sessions;
        for (channel, n) in &other.by_channel {
            *self.by_channel.entry(channel.clone()).or_default() += n;
        }
        self.duration_ms_sum += other.duration_ms_sum;
        add_histogram(&mut self.durations, &other.durations, DURATION_BOUNDS_MS.len());
        self.messages += other.messages;
        self.handoffs += other.handoffs;
        for (reason, n) in &other.handoff_reasons {
            *self.handoff_reasons.entry(reason.clone()).or_default() += n;
        }
        for (reason, n) in &other.end_reasons {
            *self.end_reasons.entry(reason.clone()).or_default() += n;
        }
        self.latency_count += other.latency_count;
        self.latency_ms_sum += other.latency_ms_sum;
        add_histogram(&mut self.latencies, &other.latencies, LATENCY_BOUNDS_MS.len());
        self.unanswered.extend(other.unanswered.iter().cloned());
    }
}

fn add_histogram(into: &mut Vec<u64>, from: &[u64], bounds: usize) {
    into.resize(bounds + 1, 0);
    for (i, n) in from.iter().enumerate().take(bounds + 1) {
        into[i] += n;
    }
}

fn rollup_key(tenant: &TenantId, scope: &str, day: NaiveDate) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("ROLLUP#{scope}#{day}"))
}

/// Counts an ended session (with its turns) in its agent's and its tenant's rollups of
/// the day it started.
pub async fn record(table: &dyn Table, session: &Session, turns: &[Turn]) -> Result<(), TableError> {
    let day = session.started_at.date_naive();
    let questions = unanswered(session, turns);
    for scope in [session.agent_id.as_str(), ALL] {
        let key = rollup_key(&session.tenant_id, scope, day);
        let mut attempt = 0;
        loop {
            let current = table.get(&key).await?;
            let (mut rollup, condition) = match &current {
                Some(item) => {
                    let rollup: Rollup = item.record()?;
                    let version = rollup.version;
                    (rollup, Condition::equals("version", version as i64))
                }
                None => (Rollup::default(), Condition::NotExists),
            };
            rollup.fold(session, turns, &questions);
            rollup.version += 1;
            match table.put(Item::from_record(key.clone(), &rollup)?, Some(condition)).await {
                Ok(()) => break,
                Err(e) if e.is_condition_failed() && attempt < 20 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// A period's figures, for one agent or the tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub agent_id: Option<AgentId>,
    /// Every day of the period, in order, with its sessions by channel and its handoffs.
    pub days: Vec<Day>,
    pub sessions: u64,
    pub by_channel: BTreeMap<String, u64>,
    pub average_duration_ms: Option<u64>,
    pub p95_duration_ms: Option<u64>,
    pub messages_per_session: Option<f64>,
    pub handoffs: u64,
    pub handoff_rate: Option<f64>,
    /// Sessions the agent kept to the end (no handoff), of all.
    pub containment_rate: Option<f64>,
    pub top_handoff_reasons: Vec<Reason>,
    pub end_reasons: BTreeMap<String, u64>,
    pub p50_latency_ms: Option<u64>,
    pub p95_latency_ms: Option<u64>,
    pub unanswered: Vec<Unanswered>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub sessions: u64,
    pub by_channel: BTreeMap<String, u64>,
    pub handoffs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub reason: String,
    pub count: u64,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 1000.0).round() / 1000.0)
}

/// The figures of `from` to `to` (both included), from their rollups.
pub async fn report(
    table: &dyn Table,
    tenant: &TenantId,
    agent: Option<&AgentId>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Report, TableError> {
    let scope = agent.map_or(ALL, AgentId::as_str);
    let (lo, hi) = (rollup_key(tenant, scope, from).sk, rollup_key(tenant, scope, to).sk);
    let mut by_day: BTreeMap<NaiveDate, Rollup> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let query = Query::partition(crate::table::Index::Primary, format!("TENANT#{tenant}"))
            .sort(SortKey::Between(lo.clone(), hi.clone()))
            .limit(100)
            .after(cursor);
        let page = table.query(query).await?;
        for item in &page.items {
            let day = item
                .str(crate::table::SK)
                .and_then(|sk| sk.rsplit('#').next())
                .and_then(|d| d.parse::<NaiveDate>().ok());
            if let Some(day) = day {
                by_day.insert(day, item.record::<Rollup>()?);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut total = Rollup::default();
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        let rollup = by_day.get(&day).cloned().unwrap_or_default();
        days.push(Day {
            date: day,
            sessions: rollup.sessions,
            by_channel: rollup.by_channel.clone(),
            handoffs: rollup.handoffs,
        });
        total.add(&rollup);
        day += Days::days(1);
    }
    let mut reasons: Vec<Reason> =
        total.handoff_reasons.iter().map(|(reason, count)| Reason { reason: reason.clone(), count: *count }).collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    reasons.truncate(10);
    total.unanswered.sort_by_key(|u| std::cmp::Reverse(u.at));
    total.unanswered.truncate(UNANSWERED_KEPT);
    Ok(Report {
        from,
        to,
        agent_id: agent.cloned(),
        days,
        sessions: total.sessions,
        by_channel: total.by_channel,
        average_duration_ms: (total.sessions > 0).then(|| total.duration_ms_sum / total.sessions),
        p95_duration_ms: quantile(&total.durations, &DURATION_BOUNDS_MS, 0.95),
        messages_per_session: (total.sessions > 0)
            .then(|| (total.messages as f64 / total.sessions as f64 * 10.0).round() / 10.0),
        handoffs: total.handoffs,
        handoff_rate: ratio(total.handoffs, total.sessions),
        containment_rate: ratio(total.sessions - total.handoffs.min(total.sessions), total.sessions),
        top_handoff_reasons: reasons,
        end_reasons: total.end_reasons,
        p50_latency_ms: quantile(&total.latencies, &LATENCY_BOUNDS_MS, 0.5),
        p95_latency_ms: quantile(&total.latencies, &LATENCY_BOUNDS_MS, 0.95),
        unanswered: total.unanswered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut h = Vec::new();
        for v in [100, 200, 300, 900, 1_200, 40_000] {
            count(&mut h, &LATENCY_BOUNDS_MS, v);
        }
        assert_eq!(quantile(&h, &LATENCY_BOUNDS_MS, 0.5), Some(500));
        assert_eq!(quantile(&h, &LATENCY_BOUNDS_MS, 0.95), Some(30_000));
        assert_eq!(quantile(&[], &LATENCY_BOUNDS_MS, 0.5), None);
    }
}
