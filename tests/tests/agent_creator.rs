//! AgentCreator end to end on one machine: a realistic SOP becomes reviewed Python code
//! that passes its own review, deploys on the embedded host, and behaves as the SOP says.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oratio_core::creator::{CodeChecker, CreatorError, CreatorInput, create};
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::runtime::{AgentCode, AgentRef, AgentRuntime, Invocation, RuntimeStatus};
use oratio_local::SqliteTable;
use oratio_local::checker::PythonChecker;
use oratio_local::engine::LocalEngine;
use oratio_local::knowledge::LocalKnowledgeBase;
use oratio_local::runtime::{HostLimits, LocalAgentHost};
use oratio_tests::embeddings::embeddings;
use oratio_tests::fixtures::{RuntimeApi, SOP, runtime_api};

/// What AgentCreator works with on one machine: the local engine behind a runtime API
/// (which the code review and the agents reach it through), and an agent host.
struct Toolkit {
    agent: AgentRef,
    api: RuntimeApi,
    host: LocalAgentHost,
    _dir: tempfile::TempDir,
}

async fn toolkit() -> Toolkit {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let blobs =
        Arc::new(oratio_local::DirBlobStore::open(dir.path().join("blobs"), "http://127.0.0.1").expect("blobs"));
    let knowledge = Arc::new(LocalKnowledgeBase::new(dir.path().join("knowledge"), blobs, table.clone(), embeddings()));
    let api = runtime_api(knowledge, Arc::new(LocalEngine::new(Some(embeddings())))).await;
    let host = LocalAgentHost::new(dir.path().join("runtimes"), "python3", table, HostLimits::default())
        .expect("host")
        .with_env(api.agent_env());
    Toolkit { agent: AgentRef { tenant: TenantId::generate(), agent: AgentId::generate() }, api, host, _dir: dir }
}

impl Toolkit {
    fn checker(&self) -> PythonChecker {
        PythonChecker::new("python3").with_env(self.api.agent_env())
    }
}

fn engine() -> LocalEngine {
    LocalEngine::new(Some(embeddings()))
}

fn said(message: &str) -> Invocation {
    Invocation {
        message: message.into(),
        history: vec![],
        session_id: "s1".into(),
        customer: Default::default(),
        details: Default::default(),
        config: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_sop_becomes_an_agent_that_follows_it() {
    let kit = toolkit().await;
    let checker = kit.checker();
    let handoff = vec!["the caller asks for a refund".to_owned()];
    let input = CreatorInput {
        agent: &kit.agent,
        agent_name: "Front desk",
        sop: SOP,
        handoff_conditions: &handoff,
        greeting: Some("Hi, Bright Smile Dental here!"),
        version: "v1",
    };
    let creation = create(input, &engine(), &checker).await.expect("created");
    assert_eq!(creation.reviews.len(), 2);
    assert!(creation.reviews.iter().all(|r| r.findings.len() == r.changes.len()));
    let review = creation.code_reviews.last().expect("reviewed");
    assert!(review.passed(), "{review:?}");
    let names: Vec<String> = creation.artifacts().into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "model.json",
            "requirements.json",
            "plan-draft.json",
            "plan-review-1.json",
            "plan-review-2.json",
            "plan.json",
            "code-review-1.json"
        ]
    );

    let (host, agent) = (&kit.host, &kit.agent);
    host.deploy(agent, &creation.code).await.expect("deployed");
    for _ in 0..500 {
        if matches!(host.status(agent).await.expect("status"), RuntimeStatus::Ready { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let say = async |message: &str| host.invoke(agent, "s1", &said(message), None).await.expect("an answer");
    assert_eq!(say("").await.reply, "Hi, Bright Smile Dental here!");
    let reason = |answer: &oratio_core::runtime::AgentAnswer| answer.handoff.as_ref().map(|h| h.reason.clone());
    let pain = say("My jaw is throbbing so badly I can't sleep").await;
    assert_eq!(reason(&pain).as_deref(), Some("the caller reports severe pain, bleeding or swelling"), "{pain:?}");
    assert!(pain.reply.contains("team"), "the customer hears what happens next: {}", pain.reply);
    let refund = say("I'd like my money back for last week's cleaning").await;
    assert_eq!(reason(&refund).as_deref(), Some("the caller asks for a refund"), "{refund:?}");
    let person = say("Can I talk to a real person?").await;
    assert!(person.handoff.is_some(), "{person:?}");
    let diagnosis = say("Can you diagnose why my tooth hurts when I drink cold water?").await;
    assert!(diagnosis.reply.contains("can't give a medical diagnosis"), "{diagnosis:?}");
    assert!(diagnosis.handoff.is_none());
    let details = say("Hi, I'm Grace Hopper, my number is 07700 900461 and I'd like Thursday 12 June").await;
    for value in ["Grace Hopper", "07700 900461", "Thursday 12 June"] {
        assert!(details.reply.contains(value), "{value} is read back: {}", details.reply);
    }
    assert_eq!(details.details.get("full name").map(String::as_str), Some("Grace Hopper"));
    assert!(details.tool_calls.iter().any(|t| t.name == "save_details" && t.duration_ms < 60_000));
    host.stop_all();
}

#[tokio::test]
async fn the_code_review_catches_what_it_must() {
    let kit = toolkit().await;
    let checker = kit.checker();
    let code = |agent: &str| AgentCode {
        version: "v1".into(),
        entrypoint: "agent.py".into(),
        files: BTreeMap::from([
            ("agent.py".to_owned(), agent.to_owned()),
            (
                "smoke_test.py".to_owned(),
                "import json\nprint(json.dumps({\"passed\": True, \"failures\": []}))\n".to_owned(),
            ),
        ]),
    };
    let broken = checker.check(&kit.agent, &code("def handle(:\n")).await.expect("reviewed");
    assert!(!broken.compiles && broken.findings[0].contains("does not compile"), "{broken:?}");
    let network = checker
        .check(&kit.agent, &code("import requests\nimport oratio_agent\ndef handle(r):\n    return {}\nif __name__ == '__main__':\n    oratio_agent.serve(handle)\n"))
        .await
        .expect("reviewed");
    assert_eq!(network.disallowed_imports, ["requests"]);
    let no_entry =
        checker.check(&kit.agent, &code("import json\ndef answer(r):\n    return {}\n")).await.expect("reviewed");
    assert!(!no_entry.has_entrypoint && !no_entry.passed());
    let good = checker
        .check(&kit.agent, &code("import json, re\nimport oratio_agent\ndef handle(r):\n    return {}\nif __name__ == '__main__':\n    oratio_agent.serve(handle)\n"))
        .await
        .expect("reviewed");
    assert!(good.passed(), "{good:?}");
}

#[tokio::test]
async fn code_that_keeps_failing_review_fails_creation_with_the_findings() {
    /// A reviewer that always finds the same problem, as a broken toolchain would.
    struct Strict;
    #[async_trait::async_trait]
    impl CodeChecker for Strict {
        async fn check(&self, _: &AgentRef, _: &AgentCode) -> Result<oratio_core::creator::CodeReport, anyhow::Error> {
            Ok(oratio_core::creator::CodeReport {
                compiles: true,
                disallowed_imports: vec![],
                has_entrypoint: true,
                smoke_passed: false,
                findings: vec!["smoke conversation: greets".into()],
            })
        }
    }
    let agent = AgentRef { tenant: TenantId::generate(), agent: AgentId::generate() };
    let input = CreatorInput {
        agent: &agent,
        agent_name: "Front desk",
        sop: SOP,
        handoff_conditions: &[],
        greeting: None,
        version: "v1",
    };
    let Err(CreatorError::CodeRejected { findings, creation }) = create(input, &engine(), &Strict).await else {
        panic!("should fail")
    };
    assert_eq!(findings, ["smoke conversation: greets"]);
    assert_eq!(creation.code_reviews.len(), oratio_core::creator::MAX_CODE_ATTEMPTS);
    let input = CreatorInput {
        agent: &agent,
        agent_name: "x",
        sop: "Be nice.",
        handoff_conditions: &[],
        greeting: None,
        version: "v1",
    };
    assert!(matches!(create(input, &engine(), &Strict).await, Err(CreatorError::InvalidSop(_))));
}

/// A model that answers the way chat models do: each artifact fenced, with a sentence
/// around it, and the first answer to the plan malformed.
struct Chatty {
    plan_calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl oratio_core::llm::Llm for Chatty {
    fn model(&self) -> &str {
        "chatty"
    }

    async fn complete(
        &self,
        prompt: &oratio_core::llm::Prompt,
    ) -> Result<oratio_core::llm::Completion, oratio_core::llm::LlmError> {
        let rules = oratio_core::creator::model::answer_by_rules(prompt).expect("a creator step");
        let is_plan = prompt.system.starts_with("Task: oratio.creator.plan\n");
        let text = if is_plan && self.plan_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            "Here is the plan: {\"greeting\": \"hi\"".to_owned()
        } else {
            format!("Of course.\n```json\n{rules}\n```\nLet me know if you need changes.")
        };
        Ok(oratio_core::llm::Completion::text(text, "chatty"))
    }
}

#[tokio::test]
async fn a_chat_models_fenced_answers_are_parsed_and_a_malformed_one_is_asked_again() {
    let kit = toolkit().await;
    let model = Chatty { plan_calls: Default::default() };
    let input = CreatorInput {
        agent: &kit.agent,
        agent_name: "Front desk",
        sop: SOP,
        handoff_conditions: &[],
        greeting: None,
        version: "v1",
    };
    let creation = create(input, &model, &kit.checker()).await.expect("created");
    assert_eq!(creation.model, "chatty");
    assert_eq!(model.plan_calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(creation.reviews.iter().map(|r| r.cycle).collect::<Vec<_>>(), [1, 2]);
    assert!(creation.code_reviews.last().expect("reviewed").passed());
}
