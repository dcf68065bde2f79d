//! The embedded agent host: Python agents behind AgentCore's contract, supervised.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oratio_core::ids::{AgentId, TenantId};
use oratio_core::runtime::{AgentCode, AgentRef, AgentRuntime, Invocation, RuntimeError, RuntimeStatus};
use oratio_core::table::Table;
use oratio_local::SqliteTable;
use oratio_local::runtime::{HostLimits, LocalAgentHost};

fn say(message: &str) -> Invocation {
    Invocation {
        message: message.into(),
        history: vec![],
        session_id: "s".into(),
        customer: Default::default(),
        details: Default::default(),
        config: Default::default(),
    }
}

/// (message, version, pid) of an echo.
async fn echo(
    host: &LocalAgentHost,
    agent: &AgentRef,
    message: &str,
) -> Result<(String, String, String), RuntimeError> {
    let answer = host.invoke(agent, "s", &say(message), None).await?;
    let reply = answer.reply.strip_prefix("echo: ").expect("an echo").to_owned();
    let mut parts = reply.split('|').map(str::to_owned);
    Ok((parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default()))
}

const ECHO: &str = r#"
import os
import oratio_agent

VERSION = "__VERSION__"

def handle(request):
    if request.get("message") == "crash":
        os._exit(3)
    if request.get("message") == "fail":
        raise RuntimeError("boom")
    if request.get("message") == "stream":
        for word in ("one ", "two ", "three"):
            oratio_agent.say(word)
        return {"reply": "one two three"}
    return {"reply": "echo: %s|%s|%d" % (request.get("message", ""), VERSION, os.getpid())}

oratio_agent.serve(handle)
"#;

fn code(version: &str, main: &str) -> AgentCode {
    AgentCode {
        version: version.into(),
        entrypoint: "main.py".into(),
        files: BTreeMap::from([("main.py".to_owned(), main.replace("__VERSION__", version))]),
    }
}

struct Fixture {
    host: LocalAgentHost,
    table: Arc<dyn Table>,
    dir: tempfile::TempDir,
    agent: AgentRef,
}

fn limits() -> HostLimits {
    HostLimits {
        ready_within: Duration::from_secs(10),
        invoke_within: Duration::from_secs(10),
        first_backoff: Duration::from_millis(50),
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let table: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let host = LocalAgentHost::new(dir.path().join("runtimes"), "python3", table.clone(), limits()).expect("host");
    Fixture { host, table, dir, agent: AgentRef { tenant: TenantId::generate(), agent: AgentId::generate() } }
}

async fn settled(host: &LocalAgentHost, agent: &AgentRef) -> RuntimeStatus {
    for _ in 0..600 {
        match host.status(agent).await.expect("status") {
            RuntimeStatus::Starting => tokio::time::sleep(Duration::from_millis(20)).await,
            other => return other,
        }
    }
    panic!("the agent never settled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_agent_answers_ping_and_invocations() {
    let f = fixture();
    f.host.deploy(&f.agent, &code("v1", ECHO)).await.expect("deployed");
    assert_eq!(settled(&f.host, &f.agent).await, RuntimeStatus::Ready { version: "v1".into() });
    let (said, version, _) = echo(&f.host, &f.agent, "hello").await.expect("answered");
    assert_eq!((said.as_str(), version.as_str()), ("hello", "v1"));
    let failed = f.host.invoke(&f.agent, "session-1", &say("fail"), None).await;
    assert!(matches!(failed, Err(RuntimeError::AgentFailed(ref reason)) if reason == "the agent failed"), "{failed:?}");
    // Streamed: the pieces the agent says arrive before its answer.
    let pieces = std::sync::Mutex::new(Vec::new());
    let sink = |piece: &str| pieces.lock().expect("lock").push(piece.to_owned());
    let streamed = f.host.invoke(&f.agent, "session-1", &say("stream"), Some(&sink)).await.expect("streamed");
    assert_eq!(pieces.into_inner().expect("lock"), ["one ", "two ", "three"]);
    assert_eq!(streamed.reply, "one two three");
    f.host.stop(&f.agent).await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_refuses_invocations_that_do_not_come_from_the_platform() {
    let f = fixture();
    f.host.deploy(&f.agent, &code("v1", ECHO)).await.expect("deployed");
    settled(&f.host, &f.agent).await;
    // Any local process can find the agent's loopback port; without the platform's secret it gets nothing.
    let ports = std::fs::read_to_string(
        f.dir
            .path()
            .join("runtimes")
            .join(f.agent.tenant.as_str())
            .join(f.agent.agent.as_str())
            .join("v1")
            .join("agent.log"),
    )
    .expect("the agent's log");
    let port: u16 = ports
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .expect("the port the agent logged");
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/invocations"))
        .json(&serde_json::json!({"message": "hello"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 401);
    assert!(echo(&f.host, &f.agent, "hello").await.is_ok(), "the platform still reaches it");
    f.host.stop(&f.agent).await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_agent_is_restarted() {
    let f = fixture();
    f.host.deploy(&f.agent, &code("v1", ECHO)).await.expect("deployed");
    settled(&f.host, &f.agent).await;
    let before = echo(&f.host, &f.agent, "x").await.expect("answered").2;
    let _ = f.host.invoke(&f.agent, "s", &say("crash"), None).await;
    let mut after = None;
    for _ in 0..500 {
        if let Ok((_, _, pid)) = echo(&f.host, &f.agent, "x").await {
            after = Some(pid);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = after.expect("the agent came back");
    assert_ne!(before, after, "a new process");
    f.host.stop(&f.agent).await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_that_cannot_start_fail_with_a_readable_reason() {
    let f = fixture();
    f.host.deploy(&f.agent, &code("v1", "def broken(:\n")).await.expect("deployed");
    let RuntimeStatus::Failed { reason } = settled(&f.host, &f.agent).await else { panic!("should fail") };
    assert!(reason.contains("stopped while starting") && reason.contains("SyntaxError"), "{reason}");

    let silent = AgentRef { tenant: f.agent.tenant.clone(), agent: AgentId::generate() };
    let host = LocalAgentHost::new(
        f.dir.path().join("runtimes"),
        "python3",
        f.table.clone(),
        HostLimits { ready_within: Duration::from_millis(400), ..limits() },
    )
    .expect("host");
    host.deploy(&silent, &code("v1", "import time\ntime.sleep(60)\n")).await.expect("deployed");
    let RuntimeStatus::Failed { reason } = settled(&host, &silent).await else { panic!("should fail") };
    assert!(reason.contains("did not become ready"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_agents_stay_stopped_and_running_ones_come_back_after_a_restart() {
    let f = fixture();
    let paused = AgentRef { tenant: f.agent.tenant.clone(), agent: AgentId::generate() };
    f.host.deploy(&f.agent, &code("v1", ECHO)).await.expect("deployed");
    f.host.deploy(&paused, &code("v1", ECHO)).await.expect("deployed");
    settled(&f.host, &f.agent).await;
    settled(&f.host, &paused).await;
    f.host.stop(&paused).await.expect("stopped");
    assert_eq!(f.host.status(&paused).await.expect("status"), RuntimeStatus::Stopped);
    assert!(matches!(f.host.invoke(&paused, "s", &say(""), None).await, Err(RuntimeError::NotRunning)));

    // The platform restarts: a new host over the same directory and table.
    f.host.stop_all();
    let again = LocalAgentHost::new(f.dir.path().join("runtimes"), "python3", f.table.clone(), limits()).expect("host");
    assert_eq!(again.restore().await.expect("restored"), 1);
    assert_eq!(settled(&again, &f.agent).await, RuntimeStatus::Ready { version: "v1".into() });
    assert_eq!(again.status(&paused).await.expect("status"), RuntimeStatus::Stopped);

    // A new version replaces the old.
    again.deploy(&f.agent, &code("v2", ECHO)).await.expect("redeployed");
    let mut version = None;
    for _ in 0..500 {
        if let Ok((_, serving, _)) = echo(&again, &f.agent, "x").await
            && serving == "v2"
        {
            version = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(version.is_some(), "v2 serves");
    again.stop_all();
}

#[tokio::test]
async fn code_that_would_escape_its_directory_is_refused() {
    let f = fixture();
    for path in ["../evil.py", "/etc/passwd", "a/../../b.py", ""] {
        let mut bad = code("v1", ECHO);
        bad.files.insert(path.into(), "x".into());
        assert!(matches!(f.host.deploy(&f.agent, &bad).await, Err(RuntimeError::Invalid(_))), "{path:?}");
    }
    let mut no_entry = code("v1", ECHO);
    no_entry.entrypoint = "missing.py".into();
    assert!(matches!(f.host.deploy(&f.agent, &no_entry).await, Err(RuntimeError::Invalid(_))));
    assert!(matches!(f.host.deploy(&f.agent, &code("../v1", ECHO)).await, Err(RuntimeError::Invalid(_))));
}
