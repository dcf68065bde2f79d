//! AgentCreator end to end on one machine: a realistic SOP becomes reviewed Python code
//! that passes its own review, deploys on the embedded host, and behaves as the SOP says.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oratio_core::creator::{CodeChecker, CreatorError, CreatorInput, create};
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::runtime::{AgentCode, AgentRef, AgentRuntime, RuntimeStatus};
use oratio_local::SqliteTable;
use oratio_local::checker::PythonChecker;
use oratio_local::llm::LocalEngine;
use oratio_local::runtime::{HostLimits, LocalAgentHost};
use oratio_tests::fixtures::SOP;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_sop_becomes_an_agent_that_follows_it() {
    let checker = PythonChecker::new("python3");
    let handoff = vec!["the caller asks for a refund".to_owned()];
    let input = CreatorInput {
        agent_name: "Front desk",
        sop: SOP,
        handoff_conditions: &handoff,
        greeting: Some("Hi, Bright Smile Dental here!"),
        version: "v1",
    };
    let creation = create(input, &LocalEngine, &checker).await.expect("created");
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

    let dir = tempfile::tempdir().expect("tempdir");
    let table = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let host = LocalAgentHost::new(dir.path().join("runtimes"), "python3", table, HostLimits::default()).expect("host");
    let agent = AgentRef { tenant: TenantId::generate(), agent: AgentId::generate() };
    host.deploy(&agent, &creation.code).await.expect("deployed");
    for _ in 0..500 {
        if matches!(host.status(&agent).await.expect("status"), RuntimeStatus::Ready { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let say = |message: &str| host.invoke(&agent, "s1", json!({"message": message}));
    assert_eq!(say("").await.expect("greeting")["reply"], "Hi, Bright Smile Dental here!");
    let pain = say("I have severe pain in my jaw").await.expect("answer");
    assert_eq!(pain["handoff"]["reason"], "the caller reports severe pain, bleeding or swelling", "{pain}");
    let refund = say("I'd like a refund for last week").await.expect("answer");
    assert_eq!(refund["handoff"]["reason"], "the caller asks for a refund");
    let person = say("Can I speak to a human?").await.expect("answer");
    assert!(person["handoff"]["requested"].as_bool().unwrap_or(false));
    let diagnosis = say("Can you diagnose why my tooth hurts when I drink cold water?").await.expect("answer");
    assert_eq!(diagnosis["reply"], creation.plan.refusal.as_str(), "{diagnosis}");
    assert!(diagnosis["handoff"].is_null());
    host.stop_all();
}

#[tokio::test]
async fn the_code_review_catches_what_it_must() {
    let checker = PythonChecker::new("python3");
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
    let broken = checker.check(&code("def handle(:\n")).await.expect("reviewed");
    assert!(!broken.compiles && broken.findings[0].contains("does not compile"), "{broken:?}");
    let network = checker
        .check(&code("import requests\nimport oratio_agent\ndef handle(r):\n    return {}\nif __name__ == '__main__':\n    oratio_agent.serve(handle)\n"))
        .await
        .expect("reviewed");
    assert_eq!(network.disallowed_imports, ["requests"]);
    let no_entry = checker.check(&code("import json\ndef answer(r):\n    return {}\n")).await.expect("reviewed");
    assert!(!no_entry.has_entrypoint && !no_entry.passed());
    let good = checker
        .check(&code("import json, re\nimport oratio_agent\ndef handle(r):\n    return {}\nif __name__ == '__main__':\n    oratio_agent.serve(handle)\n"))
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
        async fn check(&self, _: &AgentCode) -> Result<oratio_core::creator::CodeReport, anyhow::Error> {
            Ok(oratio_core::creator::CodeReport {
                compiles: true,
                disallowed_imports: vec![],
                has_entrypoint: true,
                smoke_passed: false,
                findings: vec!["smoke conversation: greets".into()],
            })
        }
    }
    let input =
        CreatorInput { agent_name: "Front desk", sop: SOP, handoff_conditions: &[], greeting: None, version: "v1" };
    let Err(CreatorError::CodeRejected { findings, creation }) = create(input, &LocalEngine, &Strict).await else {
        panic!("should fail")
    };
    assert_eq!(findings, ["smoke conversation: greets"]);
    assert_eq!(creation.code_reviews.len(), oratio_core::creator::MAX_CODE_ATTEMPTS);
    let input =
        CreatorInput { agent_name: "x", sop: "Be nice.", handoff_conditions: &[], greeting: None, version: "v1" };
    assert!(matches!(create(input, &LocalEngine, &Strict).await, Err(CreatorError::InvalidSop(_))));
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
        Ok(oratio_core::llm::Completion { text, model: "chatty".into(), input_tokens: None, output_tokens: None })
    }
}

#[tokio::test]
async fn a_chat_models_fenced_answers_are_parsed_and_a_malformed_one_is_asked_again() {
    let model = Chatty { plan_calls: Default::default() };
    let input =
        CreatorInput { agent_name: "Front desk", sop: SOP, handoff_conditions: &[], greeting: None, version: "v1" };
    let creation = create(input, &model, &PythonChecker::new("python3")).await.expect("created");
    assert_eq!(creation.model, "chatty");
    assert_eq!(model.plan_calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(creation.reviews.iter().map(|r| r.cycle).collect::<Vec<_>>(), [1, 2]);
    assert!(creation.code_reviews.last().expect("reviewed").passed());
}
