//! `statemachines/agent_creation.asl.json` on the embedded runner, with the real task
//! handlers and the embedded adapters: an SOP and documents in, a running agent out; and
//! each kind of failure ending in `failed` with a reason the tenant can read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oratio_core::agents::{self, Agent, AgentStatus, DocumentRef, NewAgent};
use oratio_core::blob::{BlobKey, BlobStore};
use oratio_core::creation::{CreationTasks, DEFINITION, MACHINE};
use oratio_core::creator::{CodeChecker, CodeReport};
use oratio_core::identity::{Email, UserId};
use oratio_core::ids::TenantId;
use oratio_core::llm::{Completion, Llm, LlmError, Prompt};
use oratio_core::runtime::{AgentCode, AgentRef, AgentRuntime, Invocation, RuntimeStatus};
use oratio_core::table::Table;
use oratio_core::tenancy::{Membership, Role};
use oratio_local::asl::{AslRunner, Outcome, StateMachine};
use oratio_local::checker::PythonChecker;
use oratio_local::engine::LocalEngine;
use oratio_local::knowledge::LocalKnowledgeBase;
use oratio_local::runtime::{HostLimits, LocalAgentHost};
use oratio_local::{ConnectionRegistry, DirBlobStore, SqliteTable};
use oratio_tests::embeddings::embeddings;
use oratio_tests::fixtures::{RuntimeApi, SOP, clinic_documents as documents, runtime_api};
use serde_json::json;

struct World {
    table: Arc<dyn Table>,
    blobs: Arc<DirBlobStore>,
    knowledge: Arc<LocalKnowledgeBase>,
    host: Arc<LocalAgentHost>,
    admin: Membership,
    /// The runtime API the agents and their code review reach the local engine through.
    api: RuntimeApi,
    _dir: tempfile::TempDir,
}

async fn world(python: &str) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let table: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let blobs = Arc::new(DirBlobStore::open(dir.path().join("blobs"), "http://127.0.0.1").expect("blobs"));
    let knowledge =
        Arc::new(LocalKnowledgeBase::new(dir.path().join("knowledge"), blobs.clone(), table.clone(), embeddings()));
    let api = runtime_api(knowledge.clone(), Arc::new(LocalEngine::new(Some(embeddings())))).await;
    let limits = HostLimits { ready_within: std::time::Duration::from_secs(10), ..HostLimits::default() };
    let host = Arc::new(
        LocalAgentHost::new(dir.path().join("runtimes"), python, table.clone(), limits)
            .expect("host")
            .with_env(api.agent_env()),
    );
    let admin = Membership {
        tenant_id: TenantId::generate(),
        user_id: UserId::parse("u-1").expect("id"),
        email: Email::parse("ada@example.com").expect("email"),
        role: Role::Admin,
    };
    World { table, blobs, knowledge, host, admin, api, _dir: dir }
}

impl World {
    /// The code review, reaching the model as the agent.
    fn checker(&self) -> Arc<dyn CodeChecker> {
        Arc::new(PythonChecker::new("python3").with_env(self.api.agent_env()))
    }

    fn runner(&self, checker: Arc<dyn CodeChecker>) -> AslRunner {
        self.runner_with(Arc::new(LocalEngine::new(Some(embeddings()))), checker)
    }

    fn runner_with(&self, llm: Arc<dyn Llm>, checker: Arc<dyn CodeChecker>) -> AslRunner {
        let tasks = CreationTasks {
            table: self.table.clone(),
            blobs: self.blobs.clone(),
            knowledge: self.knowledge.clone(),
            llm,
            checker,
            runtime: self.host.clone(),
            push: Arc::new(ConnectionRegistry::new()),
        };
        let machine = StateMachine::parse(DEFINITION).expect("the definition parses");
        AslRunner::new(HashMap::from([(MACHINE.to_owned(), machine)]), Arc::new(tasks), self.table.clone(), 0.02)
    }

    async fn agent(&self, sop: &str, documents: &[(&str, &str, Vec<u8>)]) -> Agent {
        let mut refs = Vec::new();
        for (i, (title, content_type, bytes)) in documents.iter().enumerate() {
            let key = BlobKey::for_tenant(&self.admin.tenant_id, &format!("uploads/{i}-{title}")).expect("key");
            self.blobs.put(&key, bytes.clone(), content_type).await.expect("stored");
            refs.push(DocumentRef {
                document_id: format!("doc-{i}"),
                title: (*title).into(),
                blob: key.to_string(),
                content_type: (*content_type).into(),
                size: bytes.len() as u64,
            });
        }
        let new = NewAgent {
            name: "Front desk".into(),
            kind: agents::AgentKind::Text,
            greeting: None,
            sop: Some(sop.into()),
            handoff_conditions: vec!["the caller asks for a refund".into()],
            voice: None,
        };
        agents::create(self.table.as_ref(), &self.admin, new, refs).await.expect("created")
    }

    async fn run(&self, runner: &AslRunner, agent: &Agent) -> (Outcome, Agent) {
        let input = json!({"tenant_id": agent.tenant_id, "agent_id": agent.agent_id});
        let outcome = runner.run(MACHINE, agent.agent_id.as_str(), input).await.expect("ran");
        (outcome, agents::load(self.table.as_ref(), &agent.tenant_id, &agent.agent_id).await.expect("agent"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sop_and_three_documents_become_a_running_agent() {
    let w = world("python3").await;
    let agent = w.agent(SOP, &documents()).await;
    assert_eq!(agent.status, AgentStatus::Creating);
    let (outcome, agent) = w.run(&w.runner(w.checker()), &agent).await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(agent.status, AgentStatus::Active, "{:?}", agent.failure_reason);
    let steps: Vec<(String, String)> = agent
        .progress
        .iter()
        .map(|p| {
            (p.step.clone(), serde_json::to_value(p.status).expect("json").as_str().unwrap_or_default().to_owned())
        })
        .collect();
    for step in ["validate", "knowledge", "agent_creator", "deploy"] {
        assert!(
            steps.contains(&(step.into(), "started".into())) && steps.contains(&(step.into(), "finished".into())),
            "{step}: {steps:?}"
        );
    }
    let version = agent.version.clone().expect("a deployed version");
    let reference = AgentRef { tenant: agent.tenant_id.clone(), agent: agent.agent_id.clone() };
    assert_eq!(w.host.status(&reference).await.expect("status"), RuntimeStatus::Ready { version: version.clone() });
    let say = |message: &str| Invocation {
        message: message.into(),
        history: vec![],
        session_id: "s".into(),
        customer: Default::default(),
        details: Default::default(),
        config: Default::default(),
    };
    let greeting = w.host.invoke(&reference, "s", &say(""), None).await.expect("answer");
    assert!(greeting.reply.contains("Front desk"), "{greeting:?}");
    let pain = say("My tooth has been throbbing all night, it's unbearable");
    let pain = w.host.invoke(&reference, "s", &pain, None).await.expect("answer");
    let handoff = pain.handoff.expect("a handoff");
    assert_eq!(handoff.reason, "the caller reports severe pain, bleeding or swelling");
    assert!(pain.tool_calls.iter().any(|t| t.name == "hand_off"), "{:?}", pain.tool_calls);
    let artifacts = w
        .blobs
        .list(&format!("tenants/{}/agents/{}/versions/{version}/", agent.tenant_id, agent.agent_id))
        .await
        .expect("list");
    let names: Vec<&str> = artifacts.iter().map(|m| m.key.as_str().rsplit('/').next().unwrap_or_default()).collect();
    for expected in [
        "agent.py",
        "smoke_test.py",
        "manifest.json",
        "requirements.json",
        "plan.json",
        "plan-review-1.json",
        "plan-review-2.json",
        "code-review-1.json",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    w.host.stop_all();
}

async fn failed_with(w: &World, runner: &AslRunner, agent: Agent) -> String {
    let (outcome, agent) = w.run(runner, &agent).await;
    assert!(matches!(outcome, Outcome::Failed { ref error, .. } if error == "AgentCreationFailed"), "{outcome:?}");
    assert_eq!(agent.status, AgentStatus::Failed);
    let reason = agent.failure_reason.expect("a reason");
    assert!(!reason.contains("panicked") && !reason.contains(".rs:") && !reason.contains("Traceback"), "{reason}");
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_document_fails_creation_naming_it() {
    let w = world("python3").await;
    let mut docs = documents();
    docs.push(("scan.pdf", "application/pdf", b"%PDF-1.7 not really".to_vec()));
    let agent = w.agent(SOP, &docs).await;
    let reason = failed_with(&w, &w.runner(w.checker()), agent).await;
    assert!(reason.contains("scan.pdf"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_describes_no_procedure_fails_validation_saying_what_to_add() {
    let w = world("python3").await;
    let agent = w.agent("We are a friendly clinic and we always try to help everyone who calls us.", &[]).await;
    let reason = failed_with(&w, &w.runner(w.checker()), agent).await;
    assert!(reason.contains("no procedure") && reason.contains("step by step"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_that_fails_review_fails_creation_with_the_findings() {
    struct Rejecting;
    #[async_trait::async_trait]
    impl CodeChecker for Rejecting {
        async fn check(&self, _: &AgentRef, _: &AgentCode) -> Result<CodeReport, anyhow::Error> {
            Ok(CodeReport {
                compiles: false,
                disallowed_imports: vec![],
                has_entrypoint: true,
                smoke_passed: false,
                findings: vec!["the code does not compile: invalid syntax".into()],
            })
        }
    }
    let w = world("python3").await;
    let agent = w.agent(SOP, &[]).await;
    let reason = failed_with(&w, &w.runner(Arc::new(Rejecting)), agent).await;
    assert!(reason.contains("did not pass its review") && reason.contains("does not compile"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_toolchain_is_retried_as_the_definition_says_then_fails() {
    struct Broken(AtomicUsize);
    #[async_trait::async_trait]
    impl CodeChecker for Broken {
        async fn check(&self, _: &AgentRef, _: &AgentCode) -> Result<CodeReport, anyhow::Error> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(anyhow::anyhow!("python3: command not found"))
        }
    }
    let w = world("python3").await;
    let checker = Arc::new(Broken(AtomicUsize::new(0)));
    let agent = w.agent(SOP, &[]).await;
    let reason = failed_with(&w, &w.runner(checker.clone()), agent).await;
    assert_eq!(checker.0.load(Ordering::Relaxed), 4, "one call and the three retries the definition allows");
    assert!(reason.contains("temporary problem"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_never_becomes_ready_fails_creation() {
    let w = world("/bin/false").await;
    let agent = w.agent(SOP, &[]).await;
    let reason = failed_with(&w, &w.runner(w.checker()), agent).await;
    assert!(reason.contains("could not start"), "{reason}");
}

/// A model that answers every prompt with `answer` (or fails with it), counting calls.
struct Scripted {
    answer: fn() -> Result<String, LlmError>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Llm for Scripted {
    fn model(&self) -> &str {
        "scripted"
    }

    async fn complete(&self, _: &Prompt) -> Result<Completion, LlmError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let text = (self.answer)()?;
        Ok(Completion::text(text, "scripted"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_down_is_retried_as_the_definition_says_then_fails() {
    let w = world("python3").await;
    let model = Arc::new(Scripted {
        answer: || Err(LlmError::Unavailable(anyhow::anyhow!("503 from the model"))),
        calls: AtomicUsize::new(0),
    });
    let agent = w.agent(SOP, &[]).await;
    let reason = failed_with(&w, &w.runner_with(model.clone(), w.checker()), agent).await;
    assert_eq!(model.calls.load(Ordering::Relaxed), 4, "one call and the three retries the definition allows");
    assert!(reason.contains("temporary problem"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_answers_nonsense_fails_creation_saying_so() {
    let w = world("python3").await;
    let model =
        Arc::new(Scripted { answer: || Ok("Sure! Here is your plan: be nice.".into()), calls: AtomicUsize::new(0) });
    let agent = w.agent(SOP, &[]).await;
    let reason = failed_with(&w, &w.runner_with(model.clone(), w.checker()), agent).await;
    assert_eq!(model.calls.load(Ordering::Relaxed), 2, "the bad answer is shown back to the model once");
    assert!(reason.contains("AgentCreator's model failed") && reason.contains("requirements"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_refuses_fails_creation_with_its_reason() {
    let w = world("python3").await;
    let model = Arc::new(Scripted {
        answer: || Err(LlmError::Refused("400: the content was blocked".into())),
        calls: AtomicUsize::new(0),
    });
    let agent = w.agent(SOP, &[]).await;
    let reason = failed_with(&w, &w.runner_with(model, w.checker()), agent).await;
    assert!(reason.contains("refused") && reason.contains("blocked"), "{reason}");
}
