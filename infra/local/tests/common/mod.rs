//! Running the `oratio` binary and speaking to it over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `oratio up` on a free port and returns it with its base URL.
pub fn spawn(data_dir: &Path) -> (Child, String) {
    spawn_logging(data_dir, Stdio::null(), "warn")
}

/// Starts `oratio up`, its logs (stdout), filtered by `filter`, going to `logs`; in a
/// process group of its own (its id), as a service manager starts it.
pub fn spawn_logging(data_dir: &Path, logs: Stdio, filter: &str) -> (Child, String) {
    use std::os::unix::process::CommandExt as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_oratio"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", filter)
        .env("ORATIO_EMBEDDINGS", "off")
        .process_group(0)
        .stdout(logs)
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

pub const PASSWORD: &str = "Correct-Horse-Battery-9";

pub async fn post(url: &str, token: Option<&str>, body: serde_json::Value) -> serde_json::Value {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap_or(serde_json::Value::Null)
}

/// Creates an agent from `config` (multipart, no documents); the platform's view of it.
pub async fn create_agent(base: &str, token: &str, config: serde_json::Value) -> serde_json::Value {
    let form = reqwest::multipart::Form::new().text("config", config.to_string());
    let request = reqwest::Client::new().post(format!("{base}/v1/agents")).bearer_auth(token).multipart(form);
    request.send().await.expect("create an agent").json().await.expect("json")
}

/// The agent's status once it is no longer `creating`.
pub async fn settled_status(base: &str, token: &str, agent: &str) -> String {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        let view: serde_json::Value = client
            .get(format!("{base}/v1/agents/{agent}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("get the agent")
            .json()
            .await
            .expect("json");
        let status = view["status"].as_str().unwrap_or_default();
        if status != "creating" {
            return status.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the agent is still being created")
}

/// Registers, confirms (code from the outbox) and signs in; the access token.
pub async fn signed_in(base: &str, email: &str) -> String {
    let register = serde_json::json!({"email": email, "password": PASSWORD, "organization_name": "Acme"});
    post(&format!("{base}/v1/auth/register"), None, register).await;
    sign_in_confirmed(base, email, true).await
}

pub async fn sign_in_confirmed(base: &str, email: &str, confirm: bool) -> String {
    if confirm {
        let outbox: serde_json::Value =
            reqwest::get(format!("{base}/local/outbox?to={email}")).await.expect("outbox").json().await.expect("json");
        let text = outbox["mails"][0]["text"].as_str().expect("a mail").to_owned();
        let code =
            text.split_whitespace().find(|w| w.len() == 6 && w.chars().all(|c| c.is_ascii_digit())).expect("code");
        post(&format!("{base}/v1/auth/confirm"), None, serde_json::json!({"email": email, "code": code})).await;
    }
    let tokens =
        post(&format!("{base}/v1/auth/login"), None, serde_json::json!({"email": email, "password": PASSWORD})).await;
    tokens["access_token"].as_str().expect("token").to_owned()
}
