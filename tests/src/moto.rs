//! moto in server mode, the emulator the AWS adapters are tested against.
//!
//! `ORATIO_MOTO_ENDPOINT` names a running server; otherwise one is started per test
//! process with the Python that has moto (`ORATIO_MOTO_PYTHON`, else `.venv/bin/python` at the
//! workspace root, else `python3`), and stops when the process exits.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

struct Server {
    endpoint: String,
    // Held so that the launcher's stdin stays open until the process exits.
    _child: Option<Mutex<Child>>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ORATIO_MOTO_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

fn start() -> Server {
    if let Ok(endpoint) = std::env::var("ORATIO_MOTO_ENDPOINT") {
        return Server { endpoint, _child: None };
    }
    launch(&[])
}

/// A moto server of its own, stopped when dropped. `MOTO_PORT` in `env` makes its Step
/// Functions call Lambda functions at `localhost:MOTO_PORT`.
pub struct OwnServer {
    pub endpoint: String,
    child: Child,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub fn own_server(env: &[(&str, String)]) -> OwnServer {
    let server = launch(env);
    let child = server._child.expect("a launched server").into_inner().expect("lock");
    OwnServer { endpoint: server.endpoint, child }
}

fn launch(env: &[(&str, String)]) -> Server {
    let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("moto_launcher.py");
    let python = python();
    let mut child = Command::new(&python)
        .arg(&launcher)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting moto with {}: {e}. Run scripts/test, which installs it.", python.display())
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("reading moto's endpoint");
    assert!(
        line.starts_with("http://"),
        "moto did not start with {} (is `moto[server]` installed? scripts/test installs it)",
        python.display()
    );
    Server { endpoint: line.trim().to_owned(), _child: Some(Mutex::new(child)) }
}

/// The endpoint of this process's moto server.
pub fn endpoint() -> &'static str {
    &SERVER.get_or_init(start).endpoint
}

/// SDK configuration pointing every service at moto.
pub async fn config() -> SdkConfig {
    test_config(Some(endpoint())).await
}

/// SDK configuration with test credentials, pointing at `endpoint` if given.
pub async fn test_config(endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// A name no other test of this run uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", ulid_lower())
}

fn ulid_lower() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Mail moto's SES has "sent": (recipient, subject, body), oldest first.
pub async fn sent_emails() -> Vec<(String, String, String)> {
    let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", endpoint()))
        .await
        .expect("moto's data")
        .json()
        .await
        .expect("JSON");
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .flat_map(|m| {
            let subject = m["subject"].as_str().unwrap_or_default().to_owned();
            let body = m["body"].as_str().unwrap_or_default().to_owned();
            m["destinations"]["ToAddresses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |to| Some((to.as_str()?.to_owned(), subject.clone(), body.clone())))
        })
        .collect()
}
