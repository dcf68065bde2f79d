//! The `oratio` process, killed with SIGKILL in the middle of a burst of writes, loses
//! none it acknowledged, and starts again on the same data directory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use oratio_core::connections;
use oratio_core::ids::ConnectionId;
use oratio_local::SqliteTable;
use tokio_tungstenite::tungstenite::Message;

/// Starts `oratio up` on a free port and returns it with its base URL.
fn spawn(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oratio"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting oratio");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("oratio printed its address").expect("readable stderr");
        if let Some(rest) = line.strip_prefix("Oratio is up at ") {
            break rest.split_whitespace().next().expect("a URL").to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// Opens a dashboard socket and waits for the platform to acknowledge it; returns the
/// connection id the platform recorded.
async fn acknowledged_connection(url: &str) -> Option<ConnectionId> {
    let ws = url.replacen("http://", "ws://", 1) + "/ws/dashboard";
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.ok()?;
    socket.send(Message::text(r#"{"action":"ping"}"#)).await.ok()?;
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            let pong: serde_json::Value = serde_json::from_str(&text).ok()?;
            let id = pong["connection_id"].as_str()?.parse().ok()?;
            // Keep the socket open: a clean close would delete the record.
            std::mem::forget(socket);
            return Some(id);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_burst_of_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, url) = spawn(dir.path());

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let (url, acknowledged) = (url.clone(), acknowledged.clone());
            tokio::spawn(async move {
                while let Some(id) = acknowledged_connection(&url).await {
                    acknowledged.lock().expect("lock").push(id);
                }
            })
        })
        .collect();
    // Kill in the middle of the burst, once plenty of writes are through.
    while acknowledged.lock().expect("lock").len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    for writer in writers {
        writer.await.expect("writer task");
    }

    let acknowledged = acknowledged.lock().expect("lock").clone();
    let table = SqliteTable::open(dir.path().join("table.sqlite3")).expect("the table opens after a crash");
    for id in &acknowledged {
        let record = connections::find(&table, id).await.expect("readable");
        assert!(record.is_some(), "acknowledged connection {id} was lost");
    }
    drop(table);

    // The lock died with the process: the platform starts again on the same directory.
    let (mut again, url) = spawn(dir.path());
    let health: serde_json::Value =
        reqwest::get(format!("{url}/health")).await.expect("health").json().await.expect("json");
    assert_eq!(health["status"], "ok");
    again.kill().expect("kill");
    let _ = again.wait();
    assert!(acknowledged.len() >= 60);
}

#[tokio::test]
async fn sigterm_stops_the_platform_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, url) = spawn(dir.path());
    assert_eq!(reqwest::get(format!("{url}/health")).await.expect("health").status(), 200);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success(), "exit status {:?}", output.status);
}
