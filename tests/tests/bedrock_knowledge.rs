//! The Bedrock Knowledge Base adapter against a local server speaking the Bedrock Agent
//! (direct document ingestion) and Agent Runtime (`Retrieve`) wire formats. The server
//! reads each document from S3 (moto) as Bedrock does, evaluates the metadata filter it is
//! sent, and ranks by shared words; the test shows one tenant's documents never reach
//! another's agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use oratio_aws::{BedrockKnowledgeBase, KnowledgeBaseSettings};
use oratio_core::blob::BlobKey;
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::knowledge::{IngestionStatus, KnowledgeBase, KnowledgeScope, SourceDocument};
use oratio_core::table::Table;
use oratio_local::SqliteTable;
use oratio_tests::fixtures::AbortOnDrop;
use oratio_tests::moto;
use serde_json::{Value, json};

#[derive(Clone)]
struct Doc {
    metadata: HashMap<String, String>,
    text: Option<String>,
    polls: u32,
}

struct Fake {
    s3: aws_sdk_s3::Client,
    docs: Mutex<HashMap<String, Doc>>,
    deleted: Mutex<Vec<String>>,
    filters: Mutex<Vec<Value>>,
}

type Shared = Arc<Fake>;

fn uri_of(identifier: &Value) -> String {
    identifier["s3"]["uri"].as_str().unwrap_or_default().to_owned()
}

fn detail(uri: &str, status: &str, reason: Option<&str>) -> Value {
    json!({"knowledgeBaseId": "KB1", "dataSourceId": "DS1", "status": status, "statusReason": reason,
           "identifier": {"dataSourceType": "S3", "s3": {"uri": uri}}})
}

async fn ingest(State(fake): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let mut details = Vec::new();
    for document in body["documents"].as_array().into_iter().flatten() {
        assert_eq!(document["metadata"]["type"], "IN_LINE_ATTRIBUTE");
        let metadata = document["metadata"]["inlineAttributes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["key"].as_str().unwrap_or_default().to_owned(),
                    a["value"]["stringValue"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let uri = document["content"]["s3"]["s3Location"]["uri"].as_str().unwrap_or_default().to_owned();
        let (bucket, key) = uri.trim_start_matches("s3://").split_once('/').unwrap_or_default();
        let text = match fake.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(object) => {
                Some(String::from_utf8_lossy(&object.body.collect().await.expect("body").into_bytes()).into_owned())
            }
            Err(_) => None,
        };
        fake.docs.lock().expect("lock").insert(uri.clone(), Doc { metadata, text, polls: 0 });
        details.push(detail(&uri, "STARTING", None));
    }
    Json(json!({"documentDetails": details}))
}

async fn get_documents(State(fake): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let mut docs = fake.docs.lock().expect("lock");
    let details: Vec<Value> = body["documentIdentifiers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(uri_of)
        .map(|uri| match docs.get_mut(&uri) {
            None => detail(&uri, "NOT_FOUND", None),
            Some(doc) if doc.text.is_none() => detail(&uri, "FAILED", Some("The S3 object does not exist")),
            Some(doc) => {
                doc.polls += 1;
                detail(&uri, if doc.polls > 1 { "INDEXED" } else { "IN_PROGRESS" }, None)
            }
        })
        .collect();
    Json(json!({"documentDetails": details}))
}

async fn delete_documents(State(fake): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let uris: Vec<String> = body["documentIdentifiers"].as_array().into_iter().flatten().map(uri_of).collect();
    for uri in &uris {
        fake.docs.lock().expect("lock").remove(uri);
        fake.deleted.lock().expect("lock").push(uri.clone());
    }
    Json(json!({"documentDetails": uris.iter().map(|u| detail(u, "DELETING", None)).collect::<Vec<_>>()}))
}

/// Bedrock's filter language, the parts the adapter uses.
fn holds(filter: &Value, metadata: &HashMap<String, String>) -> bool {
    if let Some(all) = filter["andAll"].as_array() {
        return all.iter().all(|f| holds(f, metadata));
    }
    let equals = &filter["equals"];
    equals.is_object()
        && metadata.get(equals["key"].as_str().unwrap_or_default()).map(String::as_str) == equals["value"].as_str()
}

fn words(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 3).map(str::to_lowercase).collect()
}

async fn retrieve(State(fake): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let search = &body["retrievalConfiguration"]["vectorSearchConfiguration"];
    fake.filters.lock().expect("lock").push(search["filter"].clone());
    let asked = words(body["retrievalQuery"]["text"].as_str().unwrap_or_default());
    let docs = fake.docs.lock().expect("lock");
    let mut results: Vec<Value> = docs
        .iter()
        .filter(|(_, d)| d.text.is_some() && d.polls > 1 && (search["filter"].is_null() || holds(&search["filter"], &d.metadata)))
        .filter_map(|(uri, d)| {
            let text = d.text.clone().unwrap_or_default();
            let score = words(&text).intersection(&asked).count();
            (score > 0).then(|| json!({
                "content": {"type": "TEXT", "text": text},
                "location": {"type": "S3", "s3Location": {"uri": uri}},
                "score": score as f64 / 10.0,
                "metadata": d.metadata.iter().map(|(k, v)| (k.clone(), json!(v))).chain([("x-amz-bedrock-kb-document-page-number".to_owned(), json!(1.0))]).collect::<serde_json::Map<_, _>>(),
            }))
        })
        .collect();
    results.sort_by(|a, b| b["score"].as_f64().partial_cmp(&a["score"].as_f64()).expect("scores"));
    Json(json!({"retrievalResults": results}))
}

struct World {
    kb: BedrockKnowledgeBase,
    fake: Shared,
    s3: aws_sdk_s3::Client,
    bucket: String,
    _keep: (tempfile::TempDir, AbortOnDrop),
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let table: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let s3 = oratio_aws::s3_client(&moto::config().await);
    let bucket = moto::unique_name("knowledge").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let fake =
        Arc::new(Fake { s3: s3.clone(), docs: Mutex::default(), deleted: Mutex::default(), filters: Mutex::default() });
    let docs = "/knowledgebases/KB1/datasources/DS1/documents";
    let app = Router::new()
        .route(docs, put(ingest))
        .route(&format!("{docs}/getDocuments"), post(get_documents))
        .route(&format!("{docs}/deleteDocuments"), post(delete_documents))
        .route("/knowledgebases/KB1/retrieve", post(retrieve))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let bedrock = moto::test_config(Some(&endpoint)).await;
    let settings =
        KnowledgeBaseSettings { knowledge_base_id: "KB1".into(), data_source_id: "DS1".into(), bucket: bucket.clone() };
    let kb = BedrockKnowledgeBase::new(
        oratio_aws::bedrock_agent_client(&bedrock),
        oratio_aws::bedrock_agent_runtime_client(&bedrock),
        table,
        settings,
    );
    World { kb, fake, s3, bucket, _keep: (dir, AbortOnDrop(server)) }
}

impl World {
    async fn document(&self, tenant: &TenantId, title: &str, text: Option<&str>) -> SourceDocument {
        let key = BlobKey::for_tenant(tenant, &format!("uploads/{title}")).expect("key");
        if let Some(text) = text {
            let put = self.s3.put_object().bucket(&self.bucket).key(key.as_str()).body(text.as_bytes().to_vec().into());
            put.send().await.expect("stored");
        }
        SourceDocument {
            document_id: format!("doc-{title}"),
            title: title.into(),
            blob: key.to_string(),
            content_type: "text/plain".into(),
        }
    }

    async fn ingested(&self, scope: &KnowledgeScope, documents: &[SourceDocument]) -> IngestionStatus {
        let job = self.kb.ingest(scope, documents).await.expect("ingest");
        loop {
            match self.kb.status(scope, &job).await.expect("status") {
                IngestionStatus::InProgress => continue,
                done => return done,
            }
        }
    }
}

fn scope() -> KnowledgeScope {
    KnowledgeScope { tenant: TenantId::generate(), agent: AgentId::generate() }
}

#[tokio::test]
async fn documents_are_ingested_with_tenant_metadata_and_retrieved_only_within_their_scope() {
    let w = world().await;
    let (clinic, bakery) = (scope(), scope());
    let hours = w.document(&clinic.tenant, "hours.txt", Some("The clinic opens at eight on weekdays.")).await;
    let prices = w.document(&clinic.tenant, "prices.txt", Some("A cleaning costs sixty euros.")).await;
    let status = w.ingested(&clinic, &[hours.clone(), prices]).await;
    assert_eq!(status, IngestionStatus::Complete { documents: 2, passages: None });
    let bread = w.document(&bakery.tenant, "bread.txt", Some("The bakery opens at six on weekdays.")).await;
    assert!(matches!(w.ingested(&bakery, &[bread]).await, IngestionStatus::Complete { documents: 1, .. }));

    let found = w.kb.retrieve(&clinic, "When does it open on weekdays?", 5).await.expect("retrieve");
    assert_eq!(found[0].title, "hours.txt");
    assert_eq!(found[0].document_id, "doc-hours.txt");
    assert_eq!(found[0].location, "page 1");
    assert!(found.iter().all(|p| p.title != "bread.txt"), "{found:?}");
    let filter = w.fake.filters.lock().expect("lock").last().cloned().expect("a filter");
    assert_eq!(filter["andAll"][0]["equals"], json!({"key": "tenant_id", "value": clinic.tenant.as_str()}));
    assert_eq!(filter["andAll"][1]["equals"], json!({"key": "agent_id", "value": clinic.agent.as_str()}));

    // Ingesting again without a document forgets it; removing the scope forgets the rest.
    assert!(matches!(w.ingested(&clinic, &[hours]).await, IngestionStatus::Complete { documents: 1, .. }));
    assert!(w.fake.deleted.lock().expect("lock").iter().any(|u| u.ends_with("uploads/prices.txt")));
    w.kb.remove(&clinic).await.expect("removed");
    assert!(w.kb.retrieve(&clinic, "When does it open on weekdays?", 5).await.expect("retrieve").is_empty());
    assert!(!w.kb.retrieve(&bakery, "When does it open on weekdays?", 5).await.expect("retrieve").is_empty());
}

#[tokio::test]
async fn a_document_bedrock_cannot_read_fails_ingestion_naming_it() {
    let w = world().await;
    let clinic = scope();
    let missing = w.document(&clinic.tenant, "scan.pdf", None).await;
    let IngestionStatus::Failed { reason } = w.ingested(&clinic, &[missing]).await else { panic!("should fail") };
    assert!(reason.starts_with("scan.pdf:"), "{reason}");
}

#[tokio::test]
async fn another_tenants_document_is_refused_before_bedrock_is_called() {
    let w = world().await;
    let (clinic, bakery) = (scope(), scope());
    let theirs = w.document(&bakery.tenant, "bread.txt", Some("secret recipe")).await;
    assert!(w.kb.ingest(&clinic, &[theirs]).await.is_err());
    assert!(w.fake.docs.lock().expect("lock").is_empty());
}
