//! The `oratio` process, killed with SIGKILL in the middle of a burst of writes, loses
//! none it acknowledged, and starts again on the same data directory. Spoken to over HTTP
//! only.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{create_agent, settled_status, sign_in_confirmed, signed_in, spawn, spawn_logging};

/// Creates an agent; its id once the platform has acknowledged it.
async fn acknowledged_agent(base: &str, token: &str, n: usize) -> Option<String> {
    let form = reqwest::multipart::Form::new().text("config", format!(r#"{{"name":"agent {n}","kind":"text"}}"#));
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/agents"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .ok()?;
    if response.status() != 201 {
        return None;
    }
    let agent: serde_json::Value = response.json().await.ok()?;
    agent["agent_id"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_burst_of_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, url) = spawn(dir.path());
    let token = signed_in(&url, "ada@example.com").await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (url, token, acknowledged) = (url.clone(), token.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let mut n = w * 100_000;
                while let Some(id) = acknowledged_agent(&url, &token, n).await {
                    acknowledged.lock().expect("lock").push(id);
                    n += 1;
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

    // The lock died with the process: the platform starts again on the same directory,
    // and every acknowledged agent is there.
    let (mut again, url) = spawn(dir.path());
    let token = sign_in_confirmed(&url, "ada@example.com", false).await;
    let mut stored = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = reqwest::Client::new().get(format!("{url}/v1/agents?limit=100")).bearer_auth(&token);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: serde_json::Value = request.send().await.expect("list").json().await.expect("json");
        for agent in page["agents"].as_array().expect("agents") {
            stored.insert(agent["agent_id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let lost: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost: {lost:?}", lost.len());
    assert!(acknowledged.len() >= 60);
    again.kill().expect("kill");
    let _ = again.wait();
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

#[tokio::test]
async fn a_stop_that_follows_an_agents_exit_is_no_crash_to_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, url) = spawn_logging(dir.path(), std::process::Stdio::piped(), "warn");
    // (The agent is a child process of the platform; its exit is watched.)
    let token = signed_in(&url, "ops@example.com").await;
    let config = serde_json::json!({"name": "Desk", "kind": "text",
        "sop": "1. Greet the caller.\n2. Answer questions about opening hours.\n3. If they are unhappy, hand over to a person."});
    let created = create_agent(&url, &token, config).await;
    let agent = created["agent_id"].as_str().expect("an agent").to_owned();
    assert_eq!(settled_status(&url, &token, &agent).await, "active");
    // Ctrl-C or a service manager signals the whole group, and the agents may go first:
    // the agent's process ends, then the platform is told to stop.
    let agents = children(child.id());
    assert_eq!(agents.len(), 1, "the agent's process");
    let signalled = Command::new("kill").args(["-TERM", &agents[0].to_string()]).status().expect("kill -TERM");
    assert!(signalled.success());
    while std::path::Path::new(&format!("/proc/{}", agents[0])).exists() && children(child.id()).contains(&agents[0]) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let signalled = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
    assert!(signalled.success());
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success(), "exit status {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(!logs.contains("restarting it"), "{logs}");
}

/// The processes whose parent is `pid` (from `/proc`), zombies excluded.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid …`; comm may hold spaces, so read after its last `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() != Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            found.extend(entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()));
        }
    }
    found
}
