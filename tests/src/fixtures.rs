//! Fresh adapters for the contract suites: one per test, each on its own state.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oratio_core::ids::ConnectionId;
use oratio_core::push::Push;
use oratio_local::ConnectionRegistry;
use oratio_local::push::Outbound;
use tokio::sync::mpsc;

use crate::contract::identity::IdentityPeer;
use crate::contract::mail::MailPeer;
use crate::contract::push::PushPeer;

use oratio_auth::{JwksVerifier, VerifierConfig};
use oratio_aws::{ApiGatewayPush, CognitoIdentity, DynamoTable, S3BlobStore, SesMailer};
use oratio_core::api_keys::UsageRecorder;
use oratio_core::blob::BlobStore;
use oratio_core::identity::{Email, Identity, TokenVerifier};
use oratio_core::mail::Mailer;
use oratio_core::ratelimit::{RateLimiter, TableRateLimiter};
use oratio_core::table::Table;
use oratio_functions::deps::Deps;
use oratio_local::{DirBlobStore, SqliteTable};
use oratio_local::{InMemoryRateLimiter, LocalIdentity, Outbox};

use crate::moto;

/// An adapter under test and whatever must live as long as it (a temporary directory, a
/// server task).
pub struct Subject<T: ?Sized> {
    pub port: Arc<T>,
    pub _keep: Vec<Box<dyn Any + Send + Sync>>,
}

pub async fn sqlite_table() -> Subject<dyn Table> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table = SqliteTable::open(dir.path().join("table.sqlite3")).expect("opening SQLite");
    Subject { port: Arc::new(table), _keep: vec![Box::new(dir)] }
}

pub async fn dynamodb_table() -> Subject<dyn Table> {
    let config = moto::config().await;
    let client = oratio_aws::dynamodb_client(&config);
    let name = moto::unique_name("oratio");
    DynamoTable::create_table(&client, &name).await.expect("creating a DynamoDB table on moto");
    Subject { port: Arc::new(DynamoTable::new(client, name)), _keep: vec![] }
}

/// The directory store, with its signed-download route served on a loopback port.
pub async fn dir_blobs() -> Subject<dyn BlobStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("bound address");
    let store = DirBlobStore::open(dir.path(), format!("http://{addr}")).expect("opening the blob directory");
    let app = oratio::blobs::router().with_state(store.clone());
    let server = tokio::spawn(async move { axum_serve(listener, app).await });
    Subject { port: Arc::new(store), _keep: vec![Box::new(dir), Box::new(AbortOnDrop(server))] }
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    let _ = axum::serve(listener, app).await;
}

pub async fn s3_blobs() -> Subject<dyn BlobStore> {
    let config = moto::config().await;
    let client = oratio_aws::s3_client(&config);
    let bucket = moto::unique_name("oratio").to_lowercase();
    client.create_bucket().bucket(&bucket).send().await.expect("creating a bucket on moto");
    Subject { port: Arc::new(S3BlobStore::new(client, bucket)), _keep: vec![] }
}

/// Aborts a background task when the test ends.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The in-process registry, with the test playing each socket.
pub async fn local_push() -> Subject<dyn PushPeer> {
    Subject { port: Arc::new(LocalPeer::default()), _keep: vec![] }
}

#[derive(Default)]
struct LocalPeer {
    registry: ConnectionRegistry,
    sockets: Mutex<HashMap<ConnectionId, mpsc::UnboundedReceiver<Outbound>>>,
}

impl LocalPeer {
    fn drain(&self, id: &ConnectionId) -> (Vec<String>, bool) {
        let mut sockets = self.sockets.lock().expect("lock");
        let Some(rx) = sockets.get_mut(id) else {
            return (vec![], false);
        };
        let mut texts = Vec::new();
        let mut open = true;
        while let Ok(message) = rx.try_recv() {
            match message {
                Outbound::Text(t) => texts.push(t),
                Outbound::Close => open = false,
            }
        }
        if !open {
            // The socket task ends on close and takes its registration with it.
            self.registry.unregister(id);
        }
        (texts, open)
    }
}

#[async_trait]
impl PushPeer for LocalPeer {
    fn push(&self) -> Arc<dyn Push> {
        Arc::new(self.registry.clone())
    }

    async fn connect(&self, id: &ConnectionId) {
        let rx = self.registry.register(id.clone());
        self.sockets.lock().expect("lock").insert(id.clone(), rx);
    }

    async fn received(&self, id: &ConnectionId) -> Vec<String> {
        self.drain(id).0
    }

    async fn is_open(&self, id: &ConnectionId) -> bool {
        self.drain(id).1
    }
}

/// API Gateway's `@connections` management API, as a local server: `POST` delivers,
/// `DELETE` closes, a closed or unknown connection answers 410 `GoneException`. Requests
/// must be SigV4-signed, as the real service requires.
#[derive(Clone, Default)]
struct ManagementApi {
    connections: Arc<Mutex<HashMap<String, ClientSide>>>,
}

/// Whether a connection is open, and what it has received.
type ClientSide = (bool, Vec<String>);

fn gone() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::GONE,
        [("x-amzn-ErrorType", "GoneException"), ("content-type", "application/json")],
        r#"{"message":null}"#,
    )
        .into_response()
}

fn signed(headers: &axum::http::HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "))
}

async fn post_to_connection(
    axum::extract::State(api): axum::extract::State<ManagementApi>,
    axum::extract::Path((_stage, id)): axum::extract::Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !signed(&headers) {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let mut connections = api.connections.lock().expect("lock");
    match connections.get_mut(&id) {
        Some((true, received)) => {
            received.push(String::from_utf8_lossy(&body).into_owned());
            axum::http::StatusCode::OK.into_response()
        }
        _ => gone(),
    }
}

async fn delete_connection(
    axum::extract::State(api): axum::extract::State<ManagementApi>,
    axum::extract::Path((_stage, id)): axum::extract::Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !signed(&headers) {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    let mut connections = api.connections.lock().expect("lock");
    match connections.get_mut(&id) {
        Some((open @ true, _)) => {
            *open = false;
            axum::http::StatusCode::NO_CONTENT.into_response()
        }
        _ => gone(),
    }
}

struct ApiGatewayPeer {
    api: ManagementApi,
    push: Arc<dyn Push>,
}

#[async_trait]
impl PushPeer for ApiGatewayPeer {
    fn push(&self) -> Arc<dyn Push> {
        self.push.clone()
    }

    async fn connect(&self, id: &ConnectionId) {
        self.api.connections.lock().expect("lock").insert(id.to_string(), (true, vec![]));
    }

    async fn received(&self, id: &ConnectionId) -> Vec<String> {
        self.api.connections.lock().expect("lock").get(id.as_str()).map(|c| c.1.clone()).unwrap_or_default()
    }

    async fn is_open(&self, id: &ConnectionId) -> bool {
        self.api.connections.lock().expect("lock").get(id.as_str()).is_some_and(|c| c.0)
    }
}

/// `ApiGatewayPush` against the local management API server.
pub async fn api_gateway_push() -> Subject<dyn PushPeer> {
    let api = ManagementApi::default();
    let app = axum::Router::new()
        .route("/{stage}/@connections/{id}", axum::routing::post(post_to_connection).delete(delete_connection))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let endpoint = format!("http://{}/local", listener.local_addr().expect("bound address"));
    let server = tokio::spawn(axum_serve(listener, app));
    let config = moto::test_config(None).await;
    let push = Arc::new(ApiGatewayPush::new(oratio_aws::management_client(&config, &endpoint)));
    Subject { port: Arc::new(ApiGatewayPeer { api, push }), _keep: vec![Box::new(AbortOnDrop(server))] }
}

/// The embedded identity stack on its own: SQLite, the outbox, `LocalIdentity`, and the
/// JWKS verifier reading the identity's keys over HTTP, as the platform wires them.
pub struct LocalAuth {
    pub deps: Arc<Deps>,
    pub identity: Arc<LocalIdentity>,
    pub outbox: Outbox,
    pub _keep: Vec<Box<dyn Any + Send + Sync>>,
}

pub async fn local_auth() -> LocalAuth {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("table.sqlite3")).expect("SQLite"));
    let outbox = Outbox::new(table.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let issuer = format!("http://{}/local/identity", listener.local_addr().expect("bound address"));
    let key = oratio_local::identity::load_or_create_signing_key(&dir.path().join("key.pem")).expect("a key");
    let identity = Arc::new(LocalIdentity::new(table.clone(), Arc::new(outbox.clone()), Arc::new(key), &issuer));
    let jwks = identity.jwks();
    let app = axum::Router::new().route(
        "/local/identity/.well-known/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let server = tokio::spawn(axum_serve(listener, app));
    let verifier = JwksVerifier::new(VerifierConfig {
        jwks_url: format!("{issuer}/.well-known/jwks.json"),
        issuer,
        client_id: oratio_local::identity::LOCAL_CLIENT_ID.into(),
    });
    let blobs = Arc::new(DirBlobStore::open(dir.path().join("blobs"), "http://127.0.0.1").expect("blobs"));
    // No state machines: these tests create no agents from an SOP.
    let workflow = oratio_local::asl::AslRunner::new(Default::default(), Arc::new(NoTasks), table.clone(), 1.0);
    let runtime = oratio_local::runtime::LocalAgentHost::new(
        dir.path().join("runtimes"),
        "python3",
        table.clone(),
        oratio_local::runtime::HostLimits::default(),
    )
    .expect("an agent host");
    let deps = Arc::new(Deps {
        table,
        blobs,
        workflow: Arc::new(workflow),
        runtime: Arc::new(runtime),
        identity: identity.clone(),
        verifier: Arc::new(verifier),
        mailer: Arc::new(outbox.clone()),
        rate_limiter: Arc::new(InMemoryRateLimiter::new()),
        usage: Arc::new(UsageRecorder::new()),
        push: Arc::new(oratio_local::ConnectionRegistry::new()),
        documents: Arc::new(oratio_local::documents::InProcessReader(Default::default())),
        conversations: Default::default(),
        dashboard_url: "http://dashboard.test".into(),
        secrets: Arc::new(
            oratio_local::secrets::KeyFileSecretBox::open_or_create(&dir.path().join("secrets.key")).expect("a key"),
        ),
        egress: oratio_core::tools::EgressPolicy::EMBEDDED,
        telephony: oratio_functions::deps::Telephony {
            grant_key: Arc::new(vec![7; 32]),
            public_url: None,
            media_url: None,
        },
    });
    LocalAuth { deps, identity, outbox, _keep: vec![Box::new(dir), Box::new(AbortOnDrop(server))] }
}

struct NoTasks;

#[async_trait]
impl oratio_core::workflow::TaskInvoker for NoTasks {
    async fn invoke(
        &self,
        resource: &str,
        _: serde_json::Value,
    ) -> Result<serde_json::Value, oratio_core::workflow::TaskFailure> {
        Err(oratio_core::workflow::TaskFailure::new("States.Runtime", format!("no task {resource}")))
    }
}

/// The six-digit code in the newest mail to `email`.
pub async fn code_from_outbox(outbox: &Outbox, email: &str) -> String {
    let mails = outbox.newest(100).await.expect("outbox");
    let mail = mails.iter().find(|m| m.mail.to.as_str() == email).expect("a mail to that address");
    mail.mail
        .text
        .split_whitespace()
        .find(|w| w.len() == 6 && w.chars().all(|c| c.is_ascii_digit()))
        .expect("a code")
        .to_owned()
}

struct LocalIdentityPeer(LocalAuth);

#[async_trait]
impl IdentityPeer for LocalIdentityPeer {
    fn identity(&self) -> Arc<dyn Identity> {
        self.0.identity.clone()
    }

    fn verifier(&self) -> Arc<dyn TokenVerifier> {
        self.0.deps.verifier.clone()
    }

    async fn code_for(&self, email: &Email) -> String {
        code_from_outbox(&self.0.outbox, email.as_str()).await
    }

    fn checks_codes(&self) -> bool {
        true
    }
}

pub async fn local_identity() -> Subject<dyn IdentityPeer> {
    Subject { port: Arc::new(LocalIdentityPeer(local_auth().await)), _keep: vec![] }
}

struct CognitoPeer {
    identity: Arc<CognitoIdentity>,
    verifier: Arc<JwksVerifier>,
}

#[async_trait]
impl IdentityPeer for CognitoPeer {
    fn identity(&self) -> Arc<dyn Identity> {
        self.identity.clone()
    }

    fn verifier(&self) -> Arc<dyn TokenVerifier> {
        self.verifier.clone()
    }

    /// moto accepts any confirmation code.
    async fn code_for(&self, _email: &Email) -> String {
        "123456".into()
    }

    fn checks_codes(&self) -> bool {
        false
    }
}

/// A fresh user pool and app client on moto, with the pool's real-AWS issuer and moto's
/// JWKS URL (they differ: moto names the AWS host in `iss`).
pub async fn cognito_identity() -> Subject<dyn IdentityPeer> {
    use aws_sdk_cognitoidentityprovider::types::{ExplicitAuthFlowsType, PasswordPolicyType, UserPoolPolicyType};
    let config = moto::config().await;
    let client = oratio_aws::cognito_client(&config);
    let policy = PasswordPolicyType::builder()
        .minimum_length(12)
        .require_lowercase(false)
        .require_uppercase(false)
        .require_numbers(false)
        .require_symbols(false)
        .build();
    let pool = client
        .create_user_pool()
        .pool_name(moto::unique_name("oratio"))
        .policies(UserPoolPolicyType::builder().password_policy(policy).build())
        .send()
        .await
        .expect("a user pool on moto")
        .user_pool
        .and_then(|p| p.id)
        .expect("a pool id");
    let app = client
        .create_user_pool_client()
        .user_pool_id(&pool)
        .client_name("dashboard")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .expect("an app client on moto")
        .user_pool_client
        .and_then(|c| c.client_id)
        .expect("a client id");
    let verifier = JwksVerifier::new(VerifierConfig {
        issuer: format!("https://cognito-idp.us-east-1.amazonaws.com/{pool}"),
        jwks_url: format!("{}/{pool}/.well-known/jwks.json", moto::endpoint()),
        client_id: app.clone(),
    });
    let identity = CognitoIdentity::new(client, pool, app);
    Subject {
        port: Arc::new(CognitoPeer { identity: Arc::new(identity), verifier: Arc::new(verifier) }),
        _keep: vec![],
    }
}

struct OutboxPeer(Outbox);

#[async_trait]
impl MailPeer for OutboxPeer {
    fn mailer(&self) -> Arc<dyn Mailer> {
        Arc::new(self.0.clone())
    }

    async fn delivered(&self, to: &Email) -> Vec<(String, String)> {
        let mut mails: Vec<_> =
            self.0.newest(200).await.expect("outbox").into_iter().filter(|m| m.mail.to == *to).collect();
        mails.reverse();
        mails.into_iter().map(|m| (m.mail.subject, m.mail.text)).collect()
    }
}

pub async fn outbox_mailer() -> Subject<dyn MailPeer> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("table.sqlite3")).expect("SQLite"));
    Subject { port: Arc::new(OutboxPeer(Outbox::new(table))), _keep: vec![Box::new(dir)] }
}

struct SesPeer {
    mailer: Arc<SesMailer>,
}

#[async_trait]
impl MailPeer for SesPeer {
    fn mailer(&self) -> Arc<dyn Mailer> {
        self.mailer.clone()
    }

    /// moto keeps sent mail in its SES backend, readable at `/moto-api/data.json`.
    async fn delivered(&self, to: &Email) -> Vec<(String, String)> {
        moto::sent_emails()
            .await
            .into_iter()
            .filter(|(dest, _, _)| dest == to.as_str())
            .map(|(_, s, b)| (s, b))
            .collect()
    }
}

pub async fn ses_mailer() -> Subject<dyn MailPeer> {
    let config = moto::config().await;
    let client = oratio_aws::ses_client(&config);
    let from = format!("{}@oratio.example.com", moto::unique_name("noreply").to_lowercase());
    client.create_email_identity().email_identity(&from).send().await.expect("a verified sender on moto");
    Subject { port: Arc::new(SesPeer { mailer: Arc::new(SesMailer::new(client, from)) }), _keep: vec![] }
}

pub async fn in_memory_rate_limiter() -> Subject<dyn RateLimiter> {
    Subject { port: Arc::new(InMemoryRateLimiter::new()), _keep: vec![] }
}

pub async fn sqlite_rate_limiter() -> Subject<dyn RateLimiter> {
    let table = sqlite_table().await;
    Subject { port: Arc::new(TableRateLimiter::new(table.port.clone())), _keep: table._keep }
}

pub async fn dynamodb_rate_limiter() -> Subject<dyn RateLimiter> {
    let table = dynamodb_table().await;
    Subject { port: Arc::new(TableRateLimiter::new(table.port.clone())), _keep: table._keep }
}

/// Registers an organization, confirms its admin and signs in: the admin's access token.
pub async fn registered_admin(
    auth: &LocalAuth,
    email: &str,
    organization: &str,
) -> (oratio_core::tenancy::Membership, String) {
    use oratio_core::identity::Password;
    let email = Email::parse(email).expect("an email");
    let password = Password::parse("correct horse battery staple").expect("a password");
    let deps = &auth.deps;
    let registration =
        oratio_core::tenancy::register(deps.table.as_ref(), deps.identity.as_ref(), &email, &password, organization)
            .await
            .expect("registered");
    let code = code_from_outbox(&auth.outbox, email.as_str()).await;
    deps.identity.confirm(&email, &code).await.expect("confirmed");
    let tokens = deps.identity.sign_in(&email, &password).await.expect("signed in");
    let member = oratio_core::tenancy::membership(deps.table.as_ref(), &registration.user_id)
        .await
        .expect("readable")
        .expect("a member");
    (member, tokens.access_token)
}

/// A small, valid PDF with one line of text per page (Helvetica, standard encoding).
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    let n = pages.len();
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect::<Vec<_>>().join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
    ];
    for (i, text) in pages.iter().enumerate() {
        let escaped = text.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
        let stream = format!("BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R /Resources << /Font << /F1 3 0 R >> >> >>",
            5 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()));
    }
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1));
    for offset in offsets {
        out.push_str(&format!("{offset:010} 00000 n \n"));
    }
    out.push_str(&format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1));
    out.into_bytes()
}

/// A realistic SOP: several steps, data to collect, a handoff condition, forbidden actions.
pub const SOP: &str = "Front desk procedure for Bright Smile Dental
Tone: warm, professional and concise.

1. Greet the caller and ask how you can help.
2. If they want to book an appointment, collect their full name, phone number and preferred date.
3. Check the opening hours in the FAQ before offering a time.
4. Confirm the booking details back to the caller.

Escalate to a human if the caller reports severe pain, bleeding or swelling.
Never give a medical diagnosis. Do not share other patients' information.
";

/// Three knowledge documents of different formats, each answering something the others do not.
pub fn clinic_documents() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "faq.md",
            "text/markdown",
            b"# Opening hours\nWe open Monday to Friday 8am to 6pm and Saturdays 9am to 1pm.\n".to_vec(),
        ),
        ("prices.csv", "text/csv", b"service,price\nCheck-up,45\nWhitening,250\n".to_vec()),
        ("emergencies.pdf", "application/pdf", pdf(&["After hours, call 0800 555 0199 for dental emergencies."])),
    ]
}

/// The runtime API the platform's agents call (their knowledge, the platform's model),
/// served on a loopback port, for worlds that run agents without a whole platform.
pub struct RuntimeApi {
    pub url: String,
    pub state: oratio_functions::runtime_api::RuntimeState,
    _server: AbortOnDrop,
    _dir: tempfile::TempDir,
}

pub async fn runtime_api(
    knowledge: Arc<dyn oratio_core::knowledge::KnowledgeBase>,
    llm: Arc<dyn oratio_core::llm::Llm>,
) -> RuntimeApi {
    let dir = tempfile::tempdir().expect("a directory");
    let table: Arc<dyn oratio_core::table::Table> =
        Arc::new(oratio_local::SqliteTable::open(dir.path().join("table.sqlite3")).expect("a table"));
    let tools = oratio_core::tools::execution::ToolService {
        table,
        secrets: Arc::new(
            oratio_local::secrets::KeyFileSecretBox::open_or_create(&dir.path().join("secrets.key")).expect("a key"),
        ),
        endpoint: Arc::new(
            oratio_functions::tool_http::HttpToolEndpoint::new(oratio_core::tools::EgressPolicy::EMBEDDED)
                .expect("a client"),
        ),
        backoff: oratio_core::tools::execution::TOOL_BACKOFF,
    };
    let state =
        oratio_functions::runtime_api::RuntimeState { key: Arc::new(b"a test key".repeat(4)), knowledge, llm, tools };
    let (router, _) = oratio_functions::runtime_api::routes().split_for_parts();
    let app = router.with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    let server = tokio::spawn(axum_serve(listener, app));
    RuntimeApi { url, state, _server: AbortOnDrop(server), _dir: dir }
}

impl RuntimeApi {
    /// The environment agents (and the code review) reach this API with.
    pub fn agent_env(&self) -> oratio_local::runtime::AgentEnv {
        let (state, url) = (self.state.clone(), self.url.clone());
        Arc::new(move |agent: &oratio_core::runtime::AgentRef| state.agent_env(&url, agent))
    }
}
