//! A history to search: sessions of a tenant's agents over weeks, as varied as a support
//! team's (channels, customers who come back, handoffs for all kinds of reasons, some
//! resolved, ends of every kind), written as the platform stores ended sessions.

use chrono::{DateTime, Duration, Utc};
use oratio_core::conversations::{Customer, Session, SessionStatus, session_item};
use oratio_core::ids::{AgentId, SessionId, TenantId};
use oratio_core::table::{Condition, Table, Write};

const CHANNELS: [&str; 3] = ["text", "voice", "phone"];
const ENDS: [&str; 5] = ["customer", "idle", "agent", "disconnected", "customer"];
const REASONS: [&str; 6] = [
    "customer wants a refund",
    "Angry about a double charge on the card",
    "asked for the manager",
    "medical question the documents do not cover",
    "wants to cancel the contract",
    "customer wants a refund",
];
const OUTCOMES: [&str; 3] = ["Refunded", "called back, sorted", "Refunded"];
const NAMES: [&str; 8] = ["Ada Okafor", "Jürgen", "mei ling", "O'Brien", "Zoë", "Raj P.", "Tomasz", "Ines"];

/// A small deterministic generator (no dependency, same history every run).
struct Dice(u64);

impl Dice {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Ended sessions number `range` of a history of `agents` that started at `since`, one
/// about every `every` (the same numbers give the same sessions, bar their ids).
pub fn sessions(
    tenant: &TenantId,
    agents: &[AgentId],
    range: std::ops::Range<usize>,
    since: DateTime<Utc>,
    every: Duration,
) -> Vec<Session> {
    let mut dice = Dice(range.start as u64 ^ 0x5eed);
    range
        .map(|i| {
            let started = since + every * i as i32 + Duration::seconds(dice.next(50) as i64);
            let duration = Duration::seconds(5 + dice.next(2_400) as i64);
            let handed = dice.next(4) == 0;
            let customer_n = dice.next(40);
            let customer = Customer {
                id: (customer_n < 30).then(|| format!("cust-{customer_n:03}")),
                name: Some(NAMES[dice.next(8) as usize].into()),
                ..Customer::default()
            };
            let reason = handed.then(|| REASONS[dice.next(6) as usize].to_owned());
            let outcome =
                reason.as_ref().filter(|_| dice.next(2) == 0).map(|_| OUTCOMES[dice.next(3) as usize].to_owned());
            Session {
                session_id: SessionId::generate(),
                tenant_id: tenant.clone(),
                agent_id: agents[dice.next(agents.len() as u64) as usize].clone(),
                channel: CHANNELS[dice.next(3) as usize].into(),
                status: SessionStatus::Ended,
                customer,
                started_at: started,
                last_activity_at: started + duration,
                turns: 2 + 2 * dice.next(10) as u32,
                handoff_reason: reason,
                handoff_summary: None,
                details: Default::default(),
                taken_over_by: None,
                taken_over_at: None,
                handoff_outcome: outcome,
                ended_at: Some(started + duration),
                duration_ms: Some(duration.num_milliseconds() as u64),
                end_reason: Some(ENDS[dice.next(5) as usize].into()),
            }
        })
        .collect()
}

/// Stores `sessions` as the platform stores ended ones, a hundred per transaction.
pub async fn store(table: &dyn Table, sessions: &[Session]) {
    for batch in sessions.chunks(100) {
        let writes = batch
            .iter()
            .map(|s| Write::Put { item: session_item(s).expect("an item"), condition: Some(Condition::NotExists) })
            .collect();
        table.transact(writes).await.expect("stored");
    }
}
