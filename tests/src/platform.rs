//! The embedded platform, started on port 0 with a fresh data directory, for end-to-end
//! tests that speak to it only over HTTP and WebSocket.

use std::path::Path;

use oratio::{Config, EmbeddingsConfig, ModelConfig, Platform};
use tempfile::TempDir;

pub struct TestPlatform {
    pub url: String,
    pub http: reqwest::Client,
    pub platform: Option<Platform>,
    pub data_dir: TempDir,
}

impl TestPlatform {
    /// The platform as a newcomer meets it: the local engine, with the bundled embedding
    /// engine (shared by the tests of this process) when it is installed.
    pub async fn start() -> Self {
        crate::init_logs();
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        Self::start_in(data_dir, test_config()).await
    }

    pub async fn start_in(data_dir: TempDir, config: Config) -> Self {
        let platform = oratio::start(Config { port: 0, data_dir: data_dir.path().to_path_buf(), ..config })
            .await
            .expect("starting the platform");
        Self { url: platform.url(), http: reqwest::Client::new(), platform: Some(platform), data_dir }
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.url.replacen("http://", "ws://", 1))
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    /// Stops the platform, keeping its data directory.
    pub async fn stop(mut self) -> TempDir {
        self.platform.take().expect("running").stop().await.expect("clean stop");
        self.data_dir
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.url)).send().await.expect("request")
    }
}

/// The configuration tests start platforms with: short workflow waits, the local engine,
/// and the shared embedding engine when there is one.
pub fn test_config() -> Config {
    let embeddings = match crate::embeddings::engine_url() {
        Some(url) => EmbeddingsConfig::Running { url },
        None => EmbeddingsConfig::Off,
    };
    Config {
        workflow_time_scale: 0.05,
        llm: ModelConfig::Local,
        llm_fallback: None,
        embeddings,
        // Voice tests start the shared speech worker themselves (`crate::speech`).
        speech: oratio::SpeechConfig::Off,
        document_reader: document_reader(),
        ..Config::default()
    }
}

/// The tests' `read-document` child (`src/bin/read_document.rs`), beside the test
/// binaries' `deps/` directory.
pub fn document_reader() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("the target directory");
    dir.join("oratio-read-document")
}

pub const PASSWORD: &str = "Correct-Horse-Battery-9";

/// A signed-in member of a tenant, as the API sees them.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
    pub tenant_id: String,
    pub user_id: String,
}

impl TestPlatform {
    pub fn request(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A GET's JSON body, whatever its status.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        let response = self.request(reqwest::Method::GET, path, token).send().await.expect("request");
        response.json().await.unwrap_or(serde_json::Value::Null)
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, token).json(&body).send().await.expect("request")
    }

    /// The six-digit code in the newest mail to `email`, read from the outbox.
    pub async fn code_for(&self, email: &str) -> String {
        let outbox: serde_json::Value =
            self.get(&format!("/local/outbox?to={email}")).await.json().await.expect("the outbox");
        let text = outbox["mails"][0]["text"].as_str().expect("a mail to that address").to_owned();
        text.split_whitespace()
            .find(|w| w.len() == 6 && w.chars().all(|c| c.is_ascii_digit()))
            .expect("a code")
            .to_owned()
    }

    /// Confirms `email` with the emailed code and signs in.
    pub async fn confirm_and_sign_in(&self, email: &str) -> serde_json::Value {
        let code = self.code_for(email).await;
        let confirmed =
            self.post_json("/v1/auth/confirm", None, serde_json::json!({"email": email, "code": code})).await;
        assert_eq!(confirmed.status(), 200, "confirm {email}");
        let login =
            self.post_json("/v1/auth/login", None, serde_json::json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(login.status(), 200, "sign in {email}");
        login.json().await.expect("tokens")
    }

    /// Invites `email` with `role` into the organization of `token`, has them join and
    /// sign in; their access token.
    pub async fn invite(&self, token: &str, email: &str, role: &str) -> String {
        let invited =
            self.post_json("/v1/members", Some(token), serde_json::json!({"email": email, "role": role})).await;
        assert_eq!(invited.status(), 201, "invite {email}");
        let outbox: serde_json::Value =
            self.get(&format!("/local/outbox?to={email}")).await.json().await.expect("outbox");
        let text = outbox["mails"][0]["text"].as_str().expect("an invitation").to_owned();
        let code = text.lines().map(str::trim).find(|l| l.len() == 24).expect("the code");
        let joined = self
            .post_json(
                "/v1/auth/register",
                None,
                serde_json::json!({"email": email, "password": PASSWORD, "invitation_code": code}),
            )
            .await;
        assert_eq!(joined.status(), 201, "join {email}");
        let tokens = self.confirm_and_sign_in(email).await;
        tokens["access_token"].as_str().expect("a token").to_owned()
    }

    /// Registers a new organization through the API and signs its admin in.
    pub async fn sign_up(&self, email: &str, organization: &str) -> Account {
        let registered = self
            .post_json(
                "/v1/auth/register",
                None,
                serde_json::json!({"email": email, "password": PASSWORD, "organization_name": organization}),
            )
            .await;
        assert_eq!(registered.status(), 201, "register {email}");
        let registered: serde_json::Value = registered.json().await.expect("json");
        let tokens = self.confirm_and_sign_in(email).await;
        Account {
            email: email.into(),
            access_token: tokens["access_token"].as_str().expect("access token").into(),
            refresh_token: tokens["refresh_token"].as_str().expect("refresh token").into(),
            tenant_id: registered["tenant_id"].as_str().expect("tenant").into(),
            user_id: registered["user_id"].as_str().expect("user").into(),
        }
    }

    /// Creates an agent through the API; its id.
    pub async fn create_agent(&self, token: &str, name: &str) -> String {
        let form = reqwest::multipart::Form::new()
            .text("config", serde_json::json!({"name": name, "kind": "text", "greeting": "Hello!"}).to_string());
        let response = self
            .request(reqwest::Method::POST, "/v1/agents", Some(token))
            .multipart(form)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "create agent");
        let agent: serde_json::Value = response.json().await.expect("json");
        agent["agent_id"].as_str().expect("an id").into()
    }

    /// Creates an agent from the clinic's SOP (with a handoff condition in its
    /// configuration) and its three documents and waits until it has settled; its id
    /// (panics unless it became active).
    pub async fn create_active_agent(&self, token: &str, name: &str) -> String {
        let config = serde_json::json!({"name": name, "kind": "text", "sop": crate::fixtures::SOP,
            "handoff_conditions": ["the caller asks for a refund"]});
        let documents = crate::fixtures::clinic_documents().into_iter().map(|(file, _, bytes)| (file, bytes));
        self.create_active_agent_from(token, config, documents.collect()).await
    }

    /// Creates an agent from a configuration and documents (file name, bytes) and waits
    /// until it has settled; its id (panics unless it became active).
    pub async fn create_active_agent_from(
        &self,
        token: &str,
        config: serde_json::Value,
        documents: Vec<(&str, Vec<u8>)>,
    ) -> String {
        let mut form = reqwest::multipart::Form::new().text("config", config.to_string());
        for (file, bytes) in documents {
            form = form.part("documents", reqwest::multipart::Part::bytes(bytes).file_name(file.to_owned()));
        }
        let response =
            self.request(reqwest::Method::POST, "/v1/agents", Some(token)).multipart(form).send().await.expect("post");
        assert_eq!(response.status(), 202, "create agent from an SOP");
        let agent =
            response.json::<serde_json::Value>().await.expect("json")["agent_id"].as_str().expect("an id").to_owned();
        for _ in 0..600 {
            let view = self.get_json(&format!("/v1/agents/{agent}"), Some(token)).await;
            match view["status"].as_str() {
                Some("creating") => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Some("active") => return agent,
                _ => panic!("the agent did not become active: {view}"),
            }
        }
        panic!("the agent is still being created")
    }

    /// Sends a customer's message with an API key; (status, body).
    pub async fn message(&self, key: &str, agent: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .request(reqwest::Method::POST, &format!("/v1/agents/{agent}/messages"), None)
            .header("x-api-key", key)
            .json(&body)
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Creates an API key for the agent; (key id, secret).
    pub async fn create_key(&self, token: &str, agent: &str) -> (String, String) {
        let response = self
            .post_json(&format!("/v1/agents/{agent}/keys"), Some(token), serde_json::json!({"name": "widget"}))
            .await;
        assert_eq!(response.status(), 201, "create key");
        let key: serde_json::Value = response.json().await.expect("json");
        (key["key_id"].as_str().expect("id").into(), key["secret"].as_str().expect("secret").into())
    }

    /// The dashboard socket URL for a member.
    pub fn dashboard_socket(&self, token: &str) -> String {
        self.ws_url(&format!("/ws/dashboard?token={token}"))
    }
}

/// The code a socket is closed with (within 10 s), skipping other frames; `None` when it
/// ends without a close frame.
pub async fn close_code<S>(socket: &mut S) -> Option<u16>
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await.expect("closed in 10 s") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// The next JSON event on a dashboard socket (within 10 s), skipping non-text frames.
pub async fn next_event<S>(socket: &mut S) -> serde_json::Value
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    use futures::StreamExt;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).expect("a JSON event");
        }
    }
}

/// The events of an SSE body, as (event, data).
pub fn sse_events(body: &str) -> Vec<(String, serde_json::Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            Some((name?, serde_json::from_str(&data).ok()?))
        })
        .collect()
}
