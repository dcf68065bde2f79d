//! The AgentCore Runtime adapter against a local server speaking AgentCore's wire format
//! (control plane `/runtimes…`, data plane `/runtimes/{arn}/invocations`). The server does
//! what AgentCore does with a code deployment: it downloads the zip from S3 (moto), unpacks
//! it and runs it (on the embedded host), so the test proves the zip is a working agent.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use oratio_aws::{AgentCoreRuntime, AgentCoreSettings};
use oratio_core::creator::{CreatorInput, create};
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::llm::TextSink;
use oratio_core::runtime::{
    AgentCode, AgentRef, AgentRuntime, Invocation, RuntimeError, RuntimeStatus, SESSION_HEADER,
};
use oratio_core::table::Table;
use oratio_local::SqliteTable;
use oratio_local::checker::PythonChecker;
use oratio_local::engine::LocalEngine;
use oratio_local::knowledge::LocalKnowledgeBase;
use oratio_local::runtime::{HostLimits, LocalAgentHost};
use oratio_tests::embeddings::embeddings;
use oratio_tests::fixtures::{AbortOnDrop, RuntimeApi, SOP, runtime_api};
use oratio_tests::moto;
use serde_json::{Value, json};

struct Runtime {
    name: String,
    arn: String,
    agent: AgentRef,
    version: u32,
}

struct Fake {
    s3: aws_sdk_s3::Client,
    host: LocalAgentHost,
    runtimes: Mutex<HashMap<String, Runtime>>,
    /// `create`, `update`, `delete`, in order.
    calls: Mutex<Vec<String>>,
    sessions: Mutex<Vec<String>>,
}

type Shared = Arc<Fake>;

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, [("x-amzn-errortype", kind)], Json(json!({"message": message}))).into_response()
}

impl Fake {
    /// Checks a create/update request as AgentCore would, then runs the zip it names.
    async fn run_artifact(&self, body: &Value, agent: &AgentRef) -> Result<(), Response> {
        let code = &body["agentRuntimeArtifact"]["codeConfiguration"];
        let ok = code["runtime"] == "PYTHON_3_12"
            && code["entryPoint"] == json!(["agent.py"])
            && body["roleArn"].as_str().is_some_and(|r| r.starts_with("arn:aws:iam::"))
            && body["networkConfiguration"]["networkMode"] == "PUBLIC"
            && body["protocolConfiguration"]["serverProtocol"] == "HTTP"
            && body["environmentVariables"]["ORATIO_RUNTIME_TOKEN"].is_string();
        if !ok {
            return Err(error(StatusCode::BAD_REQUEST, "ValidationException", &format!("bad request {body}")));
        }
        let (bucket, key) = (code["code"]["s3"]["bucket"].as_str(), code["code"]["s3"]["prefix"].as_str());
        let object = self.s3.get_object().bucket(bucket.unwrap_or_default()).key(key.unwrap_or_default()).send().await;
        let Ok(object) = object else {
            return Err(error(StatusCode::BAD_REQUEST, "ValidationException", "the code zip is not in S3"));
        };
        let bytes = object.body.collect().await.expect("zip body").into_bytes();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
        let mut files = BTreeMap::new();
        for i in 0..zip.len() {
            let mut file = zip.by_index(i).expect("entry");
            let mut content = String::new();
            file.read_to_string(&mut content).expect("utf-8");
            files.insert(file.name().to_owned(), content);
        }
        // The embedded host brings its own copy of the package; the zip must carry one.
        assert!(files.remove("oratio_agent/__init__.py").is_some(), "the zip lacks oratio_agent");
        let code = AgentCode { version: "run".into(), entrypoint: "agent.py".into(), files };
        self.host.deploy(agent, &code).await.expect("runs");
        Ok(())
    }

    fn described(&self, id: &str, status: &str) -> Value {
        let runtimes = self.runtimes.lock().expect("lock");
        let r = &runtimes[id];
        json!({
            "agentRuntimeArn": r.arn, "agentRuntimeId": id, "agentRuntimeName": r.name,
            "agentRuntimeVersion": r.version.to_string(), "createdAt": "2026-11-22T08:00:00Z",
            "lastUpdatedAt": "2026-11-22T08:00:00Z", "roleArn": "arn:aws:iam::123456789012:role/agents",
            "networkConfiguration": {"networkMode": "PUBLIC"}, "status": status, "description": "",
        })
    }
}

async fn create_runtime(State(fake): State<Shared>, Json(body): Json<Value>) -> Response {
    fake.calls.lock().expect("lock").push("create".into());
    let name = body["agentRuntimeName"].as_str().unwrap_or_default().to_owned();
    if fake.runtimes.lock().expect("lock").values().any(|r| r.name == name) {
        return error(StatusCode::CONFLICT, "ConflictException", "a runtime of that name exists");
    }
    let tags = &body["tags"];
    let agent = AgentRef {
        tenant: tags["oratio:tenant"].as_str().unwrap_or_default().parse::<TenantId>().expect("tenant tag"),
        agent: tags["oratio:agent"].as_str().unwrap_or_default().parse::<AgentId>().expect("agent tag"),
    };
    if let Err(refused) = fake.run_artifact(&body, &agent).await {
        return refused;
    }
    let id = format!("{name}-abc123");
    let arn = format!("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/{id}");
    fake.runtimes.lock().expect("lock").insert(id.clone(), Runtime { name, arn, agent, version: 1 });
    (StatusCode::ACCEPTED, Json(fake.described(&id, "CREATING"))).into_response()
}

async fn update_runtime(State(fake): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    fake.calls.lock().expect("lock").push("update".into());
    let Some(agent) = fake.runtimes.lock().expect("lock").get_mut(&id).map(|r| {
        r.version += 1;
        r.agent.clone()
    }) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "no such runtime");
    };
    if let Err(refused) = fake.run_artifact(&body, &agent).await {
        return refused;
    }
    (StatusCode::ACCEPTED, Json(fake.described(&id, "UPDATING"))).into_response()
}

async fn get_runtime(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(agent) = fake.runtimes.lock().expect("lock").get(&id).map(|r| r.agent.clone()) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "no such runtime");
    };
    let status = match fake.host.status(&agent).await.expect("status") {
        RuntimeStatus::Ready { .. } => "READY",
        RuntimeStatus::Failed { .. } => "CREATE_FAILED",
        _ => "CREATING",
    };
    Json(fake.described(&id, status)).into_response()
}

async fn delete_runtime(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    fake.calls.lock().expect("lock").push("delete".into());
    let Some(runtime) = fake.runtimes.lock().expect("lock").remove(&id) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "no such runtime");
    };
    fake.host.stop(&runtime.agent).await.expect("stopped");
    (StatusCode::ACCEPTED, Json(json!({"agentRuntimeId": id, "status": "DELETING"}))).into_response()
}

async fn list_runtimes(State(fake): State<Shared>) -> Response {
    let ids: Vec<String> = fake.runtimes.lock().expect("lock").keys().cloned().collect();
    Json(json!({"agentRuntimes": ids.iter().map(|id| fake.described(id, "READY")).collect::<Vec<_>>()})).into_response()
}

/// AgentCore's data plane: the invocation goes to the agent as it came; with
/// `Accept: text/event-stream` the agent's events come back as a stream.
async fn invoke(State(fake): State<Shared>, Path(arn): Path<String>, headers: HeaderMap, body: String) -> Response {
    let session = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if session.len() < 33 {
        return error(StatusCode::BAD_REQUEST, "ValidationException", "runtimeSessionId is too short");
    }
    fake.sessions.lock().expect("lock").push(session.clone());
    let Some(agent) = fake.runtimes.lock().expect("lock").values().find(|r| r.arn == arn).map(|r| r.agent.clone())
    else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "no such runtime");
    };
    let invocation: Invocation = serde_json::from_str(&body).expect("an invocation");
    let streams = headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    let tokens = Mutex::new(String::new());
    let sink = |piece: &str| {
        let event = json!({"text": piece});
        tokens.lock().expect("lock").push_str(&format!("event: token\ndata: {event}\n\n"));
    };
    match fake.host.invoke(&agent, &session, &invocation, streams.then_some(&sink as &TextSink)).await {
        Ok(answer) if streams => {
            let body = format!("{}event: answer\ndata: {}\n\n", tokens.lock().expect("lock"), json!(answer));
            ([("content-type", "text/event-stream")], body).into_response()
        }
        Ok(answer) => ([("content-type", "application/json")], json!(answer).to_string()).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, "RuntimeClientError", &e.to_string()),
    }
}

struct World {
    runtime: AgentCoreRuntime,
    fake: Shared,
    table: Arc<dyn Table>,
    /// The runtime API the agents' code review reaches the local engine through.
    api: RuntimeApi,
    _keep: (tempfile::TempDir, AbortOnDrop),
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let table: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let config = moto::config().await;
    let s3 = oratio_aws::s3_client(&config);
    let bucket = moto::unique_name("agents").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let blobs =
        Arc::new(oratio_local::DirBlobStore::open(dir.path().join("blobs"), "http://127.0.0.1").expect("blobs"));
    let knowledge = Arc::new(LocalKnowledgeBase::new(dir.path().join("knowledge"), blobs, table.clone(), embeddings()));
    let api = runtime_api(knowledge, Arc::new(LocalEngine::new(Some(embeddings())))).await;
    let host = LocalAgentHost::new(dir.path().join("runtimes"), "python3", table.clone(), HostLimits::default())
        .expect("host")
        .with_env(api.agent_env());
    let fake = Arc::new(Fake {
        s3: s3.clone(),
        host,
        runtimes: Mutex::default(),
        calls: Mutex::default(),
        sessions: Mutex::default(),
    });
    let app = Router::new()
        .route("/runtimes", put(create_runtime).post(list_runtimes))
        .route("/runtimes/{id}", put(update_runtime).get(get_runtime).delete(delete_runtime))
        .route("/runtimes/{arn}/invocations", post(invoke))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let agentcore = moto::test_config(Some(&endpoint)).await;
    let settings = AgentCoreSettings {
        bucket,
        role_arn: "arn:aws:iam::123456789012:role/agents".into(),
        env: Some(Arc::new(|agent: &AgentRef| {
            vec![("ORATIO_RUNTIME_TOKEN".into(), format!("token-of-{}", agent.agent))]
        })),
    };
    let runtime = AgentCoreRuntime::new(
        oratio_aws::agentcore_control_client(&agentcore),
        oratio_aws::agentcore_client(&agentcore, Duration::from_secs(30)),
        s3,
        table.clone(),
        settings,
    );
    World { runtime, fake, table, api, _keep: (dir, AbortOnDrop(server)) }
}

async fn agent_code(w: &World, agent: &AgentRef, version: &str) -> AgentCode {
    let input = CreatorInput {
        agent,
        agent_name: "Front desk",
        sop: SOP,
        handoff_conditions: &[],
        greeting: Some("Hi, Bright Smile Dental here!"),
        version,
    };
    let checker = PythonChecker::new("python3").with_env(w.api.agent_env());
    create(input, &LocalEngine::new(Some(embeddings())), &checker).await.expect("created").code
}

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

async fn until_ready(runtime: &AgentCoreRuntime, agent: &AgentRef) -> RuntimeStatus {
    for _ in 0..500 {
        let status = runtime.status(agent).await.expect("status");
        if !matches!(status, RuntimeStatus::Starting) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never ready")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_is_zipped_to_s3_deployed_invoked_updated_and_deleted() {
    let w = world().await;
    let agent = AgentRef { tenant: TenantId::generate(), agent: AgentId::generate() };
    assert_eq!(w.runtime.status(&agent).await.expect("status"), RuntimeStatus::Stopped);
    assert!(matches!(w.runtime.invoke(&agent, "s", &say(""), None).await, Err(RuntimeError::NotRunning)));

    w.runtime.deploy(&agent, &agent_code(&w, &agent, "v1").await).await.expect("deployed");
    assert_eq!(until_ready(&w.runtime, &agent).await, RuntimeStatus::Ready { version: "v1".into() });
    let answer = w.runtime.invoke(&agent, "conversation-1", &say(""), None).await.expect("answer");
    assert_eq!(answer.reply, "Hi, Bright Smile Dental here!");
    // Streamed: the agent's tokens arrive through AgentCore's event stream, then the answer.
    let tokens = Mutex::new(Vec::new());
    let sink = |piece: &str| tokens.lock().expect("lock").push(piece.to_owned());
    let person = say("Can I speak to a real person?");
    let streamed = w.runtime.invoke(&agent, "conversation-1", &person, Some(&sink)).await.expect("a streamed answer");
    let tokens = tokens.into_inner().expect("lock");
    assert!(tokens.len() > 1, "{tokens:?}");
    assert_eq!(tokens.concat(), streamed.reply);
    assert!(streamed.handoff.is_some(), "{streamed:?}");
    let session = w.fake.sessions.lock().expect("lock")[0].clone();
    assert!(session.starts_with(agent.agent.as_str()) && session.ends_with("conversation-1"), "{session}");

    // A new version updates the same runtime.
    w.runtime.deploy(&agent, &agent_code(&w, &agent, "v2").await).await.expect("redeployed");
    assert_eq!(until_ready(&w.runtime, &agent).await, RuntimeStatus::Ready { version: "v2".into() });

    // Stopping deletes the runtime; the agent is then not running.
    w.runtime.stop(&agent).await.expect("stopped");
    assert_eq!(w.runtime.status(&agent).await.expect("status"), RuntimeStatus::Stopped);
    assert!(matches!(w.runtime.invoke(&agent, "s", &say(""), None).await, Err(RuntimeError::NotRunning)));
    assert_eq!(*w.fake.calls.lock().expect("lock"), ["create", "update", "delete"]);
    w.fake.host.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_created_but_never_recorded_is_found_by_name_and_updated() {
    let w = world().await;
    let agent = AgentRef { tenant: TenantId::generate(), agent: AgentId::generate() };
    w.runtime.deploy(&agent, &agent_code(&w, &agent, "v1").await).await.expect("deployed");
    // A crash between CreateAgentRuntime and the table write loses the record.
    let key = oratio_core::table::Key::new(format!("RUNTIME#{}#{}", agent.tenant, agent.agent), "AGENTCORE");
    w.table.delete(&key, None).await.expect("forgotten");
    w.runtime.deploy(&agent, &agent_code(&w, &agent, "v2").await).await.expect("deployed again");
    assert_eq!(until_ready(&w.runtime, &agent).await, RuntimeStatus::Ready { version: "v2".into() });
    assert_eq!(*w.fake.calls.lock().expect("lock"), ["create", "update"]);
    w.fake.host.stop_all();
}
