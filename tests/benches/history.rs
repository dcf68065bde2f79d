//! The history over a million sessions of one tenant, on SQLite (the embedded store):
//! each kind of history request (every index it can be served by, a selective filter, a
//! deep page) timed beside a single-item read of the same table in the same run (the
//! baseline). Target: p99 ≤ 10 ms for a history request.
//! Run: `cargo bench -p oratio-tests --bench history` (`-- 200000` for a smaller history).

use std::time::Instant;

use chrono::{Duration, Utc};
use oratio_core::history::{self, HandoffFilter, HistoryFilter, SortBy};
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::table::{Key, Table};
use oratio_local::sqlite::SqliteTable;
use oratio_tests::history as seed;

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("a directory");
    let table = SqliteTable::open(dir.path().join("history.sqlite3")).expect("sqlite");
    let tenant = TenantId::generate();
    let agents: Vec<AgentId> = (0..4).map(|_| AgentId::generate()).collect();
    // A year of sessions, a million of them: one about every 30 s.
    let every = Duration::milliseconds(365 * 24 * 3600 * 1000 / total as i64);
    let since = Utc::now() - Duration::days(365);
    let started = Instant::now();
    let mut keys = Vec::new();
    for chunk in (0..total).step_by(20_000) {
        let sessions = seed::sessions(&tenant, &agents, chunk..(chunk + 20_000).min(total), since, every);
        keys.extend(
            sessions
                .iter()
                .step_by(97)
                .map(|s| Key::new(format!("TENANT#{tenant}"), format!("SESSION#{}", s.session_id))),
        );
        seed::store(&table, &sessions).await;
    }
    println!("seeded {total} sessions of one tenant in {:.0} s", started.elapsed().as_secs_f64());

    let rounds = 400;
    let mut read = Vec::new();
    for key in keys.iter().cycle().take(rounds * 2) {
        let at = Instant::now();
        table.get(key).await.expect("read").expect("an item");
        read.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    let (read_p50, read_p99) = percentiles(read);
    println!("{:<58} p50 {read_p50:>6.3} ms   p99 {read_p99:>6.3} ms   (baseline)", "single-item read");

    let month = |m: i64| Some(since + Duration::days(30 * m));
    let cases: Vec<(&str, HistoryFilter, usize)> = vec![
        ("newest first (gsi2)", HistoryFilter::default(), 1),
        (
            "one agent, one month (gsi1 range)",
            HistoryFilter { agent: Some(agents[2].clone()), from: month(5), to: month(6), ..Default::default() },
            1,
        ),
        ("longest first (gsi3)", HistoryFilter { sort: SortBy::Duration, ..Default::default() }, 1),
        ("one customer (gsi4)", HistoryFilter { customer: Some("cust-017".into()), ..Default::default() }, 1),
        (
            "voice, handed over, refunded (filtered)",
            HistoryFilter {
                channel: Some("voice".into()),
                handoff: Some(HandoffFilter::Outcome("refunded".into())),
                ..Default::default()
            },
            1,
        ),
        ("newest first, tenth page", HistoryFilter::default(), 10),
    ];
    for (name, filter, pages) in cases {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..rounds / 4 {
            let at = Instant::now();
            let mut cursor = None;
            for _ in 0..pages {
                let (sessions, next) = history::list(&table, &tenant, &filter, 50, cursor).await.expect("a page");
                found = sessions.len();
                cursor = next;
            }
            times.push(at.elapsed().as_secs_f64() * 1000.0 / pages as f64);
        }
        let (p50, p99) = percentiles(times);
        println!(
            "{:<58} p50 {p50:>6.3} ms   p99 {p99:>6.3} ms   {:>5.1}× the read at p99 ({found} sessions a page){}",
            format!("history: {name}"),
            p99 / read_p99,
            if p99 <= 10.0 { "" } else { "   ABOVE the 10 ms target" }
        );
    }
}
