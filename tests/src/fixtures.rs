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

use crate::contract::push::PushPeer;

use oratio_aws::{ApiGatewayPush, DynamoTable, S3BlobStore};
use oratio_core::blob::BlobStore;
use oratio_core::table::Table;
use oratio_local::{DirBlobStore, SqliteTable};

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
