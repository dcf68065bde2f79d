//! `SqliteTable` against bare SQLite doing the same work, measured in the same run.
//!
//! The baseline writes and reads the same rows with the same pragmas (WAL,
//! `synchronous=FULL`) through rusqlite directly; the ratios are what the port costs on
//! top (async hand-off, JSON, condition checks, expiry filtering).
//! Run: `cargo bench -p oratio-local --bench table`.

use std::time::{Duration, Instant};

use oratio_core::table::{Condition, Index, Item, Key, Query, SortKey, Table};
use oratio_local::SqliteTable;
use rusqlite::{Connection, params};

const WRITES: usize = 400;
const READS: usize = 4000;
const QUERIES: usize = 1000;

fn item(i: usize) -> Item {
    Item::new(Key::new("TENANT#bench", format!("TURN#{i:06}")))
        .with("role", if i.is_multiple_of(2) { "customer" } else { "agent" })
        .with("text", "Could you tell me when the clinic opens on Saturdays?")
        .with("latency_ms", 120 + i as i64)
}

fn baseline(dir: &std::path::Path) -> (Duration, Duration, Duration) {
    let conn = Connection::open(dir.join("baseline.sqlite3")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE items (pk TEXT NOT NULL, sk TEXT NOT NULL, attrs TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID;",
    )
    .unwrap();
    let rows: Vec<(String, String)> = (0..WRITES)
        .map(|i| {
            let item = item(i);
            (item.key().sk, serde_json::to_string(item.attributes()).unwrap())
        })
        .collect();
    let started = Instant::now();
    for (sk, attrs) in &rows {
        let tx = conn.unchecked_transaction().unwrap();
        tx.execute("INSERT INTO items (pk, sk, attrs) VALUES (?1, ?2, ?3)", params!["TENANT#bench", sk, attrs])
            .unwrap();
        tx.commit().unwrap();
    }
    let writes = started.elapsed();
    let started = Instant::now();
    for i in 0..READS {
        let attrs: String = conn
            .prepare_cached("SELECT attrs FROM items WHERE pk = ?1 AND sk = ?2")
            .unwrap()
            .query_row(params!["TENANT#bench", format!("TURN#{:06}", i % WRITES)], |r| r.get(0))
            .unwrap();
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(&attrs).unwrap());
    }
    let reads = started.elapsed();
    let started = Instant::now();
    for i in 0..QUERIES {
        let mut stmt =
            conn.prepare_cached("SELECT attrs FROM items WHERE pk = ?1 AND sk >= ?2 ORDER BY sk LIMIT 21").unwrap();
        let page: Vec<serde_json::Value> = stmt
            .query_map(params!["TENANT#bench", format!("TURN#{:06}", i % (WRITES - 20))], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|a| serde_json::from_str(&a.unwrap()).unwrap())
            .collect();
        std::hint::black_box(page);
    }
    (writes, reads, started.elapsed())
}

async fn ours(dir: &std::path::Path) -> (Duration, Duration, Duration) {
    let table = SqliteTable::open(dir.join("ours.sqlite3")).unwrap();
    let items: Vec<Item> = (0..WRITES).map(item).collect();
    let started = Instant::now();
    for item in items {
        table.put(item, Some(Condition::NotExists)).await.unwrap();
    }
    let writes = started.elapsed();
    let started = Instant::now();
    for i in 0..READS {
        let key = Key::new("TENANT#bench", format!("TURN#{:06}", i % WRITES));
        std::hint::black_box(table.get(&key).await.unwrap().unwrap());
    }
    let reads = started.elapsed();
    let started = Instant::now();
    for i in 0..QUERIES {
        let query = Query::partition(Index::Primary, "TENANT#bench")
            .sort(SortKey::GreaterOrEqual(format!("TURN#{:06}", i % (WRITES - 20))))
            .limit(20);
        std::hint::black_box(table.query(query).await.unwrap());
    }
    (writes, reads, started.elapsed())
}

fn per_op(total: Duration, n: usize) -> f64 {
    total.as_secs_f64() * 1e6 / n as f64
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (bw, br, bq) = baseline(dir.path());
    let (ow, or, oq) = ours(dir.path()).await;
    println!("{:<26} {:>14} {:>14} {:>8}", "operation", "bare SQLite µs", "SqliteTable µs", "ratio");
    for (name, b, o, n) in [
        ("conditional put (fsync)", bw, ow, WRITES),
        ("get by key", br, or, READS),
        ("query page of 20", bq, oq, QUERIES),
    ] {
        println!(
            "{name:<26} {:>14.1} {:>14.1} {:>7.2}x",
            per_op(b, n),
            per_op(o, n),
            o.as_secs_f64() / b.as_secs_f64()
        );
    }
}
