//! `statemachines/agent_creation.asl.json` on an independent engine: moto's Step Functions
//! in execution mode, its Lambda calls answered by our task handlers over Lambda's
//! `Invoke` wire format. Proves the definition valid beyond our own runner.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use oratio_core::agents::{self, AgentKind, AgentStatus, NewAgent};
use oratio_core::creation::{CreationTasks, DEFINITION};
use oratio_core::identity::{Email, UserId};
use oratio_core::ids::TenantId;
use oratio_core::table::Table;
use oratio_core::tenancy::{Membership, Role};
use oratio_core::workflow::TaskInvoker;
use oratio_local::checker::PythonChecker;
use oratio_local::knowledge::LocalKnowledgeBase;
use oratio_local::runtime::{HostLimits, LocalAgentHost};
use oratio_local::{ConnectionRegistry, DirBlobStore, SqliteTable};
use serde_json::{Value, json};

const ACCOUNT_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:";

/// `POST /2015-03-31/functions/{arn}/invocations`: the function named in the ARN runs; a
/// failure answers as Lambda does, with `X-Amz-Function-Error` and `{errorType, errorMessage}`.
async fn invoke(
    State(tasks): State<Arc<CreationTasks>>,
    Path(function): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let name = function.rsplit(':').next().unwrap_or_default().to_owned();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match tasks.invoke(&format!("${{{name}FunctionArn}}"), input).await {
        Ok(output) => axum::Json(output).into_response(),
        Err(failure) => {
            let body = json!({"errorType": failure.error, "errorMessage": failure.cause});
            ([("X-Amz-Function-Error", "Unhandled")], axum::Json(body)).into_response()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_creation_definition_runs_green_on_motos_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let blobs = Arc::new(DirBlobStore::open(dir.path().join("blobs"), "http://127.0.0.1").expect("blobs"));
    let knowledge = Arc::new(LocalKnowledgeBase::new(
        dir.path().join("knowledge"),
        blobs.clone(),
        table.clone(),
        oratio_tests::embeddings::embeddings(),
    ));
    let llm: Arc<dyn oratio_core::llm::Llm> = Arc::new(oratio_local::engine::LocalEngine::default());
    let api = oratio_tests::fixtures::runtime_api(knowledge.clone(), llm.clone()).await;
    let host = Arc::new(
        LocalAgentHost::new(dir.path().join("runtimes"), "python3", table.clone(), HostLimits::default())
            .expect("host")
            .with_env(api.agent_env()),
    );
    let tasks = Arc::new(CreationTasks {
        table: table.clone(),
        blobs: blobs.clone(),
        knowledge,
        llm,
        checker: Arc::new(PythonChecker::new("python3").with_env(api.agent_env())),
        runtime: host.clone(),
        push: Arc::new(ConnectionRegistry::new()),
    });
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{function}/invocations", axum::routing::post(invoke))
        .with_state(tasks);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let lambda_port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A moto of its own, whose Step Functions calls "Lambda" at our server.
    let moto = oratio_tests::moto::own_server(&[("MOTO_PORT", lambda_port.to_string())]);
    let enabled = reqwest::Client::new()
        .post(format!("{}/moto-api/config", moto.endpoint))
        .json(&json!({"stepfunctions": {"execute_state_machine": true}}))
        .send()
        .await
        .expect("config");
    assert!(enabled.status().is_success());
    let config = oratio_tests::moto::test_config(Some(&moto.endpoint)).await;
    let sfn = aws_sdk_sfn::Client::new(&config);

    let mut definition = DEFINITION.to_owned();
    for task in [
        "Validate",
        "Ingest",
        "IngestionStatus",
        "CreateAgentCode",
        "CodeReady",
        "Deploy",
        "RuntimeStatus",
        "Activate",
        "MarkFailed",
    ] {
        definition = definition.replace(&format!("${{{task}FunctionArn}}"), &format!("{ACCOUNT_ARN}{task}"));
    }
    assert!(!definition.contains("${"), "every substitution is made");
    let machine = sfn
        .create_state_machine()
        .name("agent-creation")
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/agent-creation")
        .send()
        .await
        .expect("moto accepts the definition")
        .state_machine_arn;

    let admin = Membership {
        tenant_id: TenantId::generate(),
        user_id: UserId::parse("u-1").expect("id"),
        email: Email::parse("ada@example.com").expect("email"),
        role: Role::Admin,
    };
    let mut outcomes = HashMap::new();
    for (label, sop) in [
        (
            "good",
            "Front desk\n1. Greet the caller.\n2. Collect their full name and phone number.\n3. Confirm the details.\nEscalate to a human if the caller reports severe pain.\n",
        ),
        ("no procedure", "We are a friendly clinic and we always try to help everyone who calls."),
    ] {
        let new = NewAgent {
            name: "Front desk".into(),
            kind: AgentKind::Text,
            greeting: None,
            sop: Some(sop.into()),
            handoff_conditions: vec![],
            voice: None,
        };
        let agent = agents::create(table.as_ref(), &admin, new, vec![]).await.expect("agent");
        let execution = sfn
            .start_execution()
            .state_machine_arn(&machine)
            .name(agent.agent_id.as_str())
            .input(json!({"tenant_id": agent.tenant_id, "agent_id": agent.agent_id}).to_string())
            .send()
            .await
            .expect("started")
            .execution_arn;
        let mut status = String::new();
        for _ in 0..600 {
            status = sfn
                .describe_execution()
                .execution_arn(&execution)
                .send()
                .await
                .expect("described")
                .status
                .as_str()
                .to_owned();
            if status != "RUNNING" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stored = agents::load(table.as_ref(), &agent.tenant_id, &agent.agent_id).await.expect("agent");
        outcomes.insert(label, (status, stored));
    }
    let (status, good) = &outcomes["good"];
    assert_eq!((status.as_str(), good.status), ("SUCCEEDED", AgentStatus::Active), "{:?}", good.failure_reason);
    let (status, bad) = &outcomes["no procedure"];
    assert_eq!((status.as_str(), bad.status), ("FAILED", AgentStatus::Failed));
    let reason = bad.failure_reason.clone().expect("a reason");
    assert!(reason.contains("no procedure") && !reason.contains("errorType"), "{reason}");
    host.stop_all();
}
