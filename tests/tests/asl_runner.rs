//! The embedded ASL runner against Step Functions' documented semantics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oratio_core::table::Table;
use oratio_core::workflow::{TaskFailure, Workflow, WorkflowError};
use oratio_local::asl::{AslRunner, Outcome, StateMachine, TaskInvoker};
use serde_json::{Value, json};

type Handler = Box<dyn Fn(Value, usize) -> Result<Value, TaskFailure> + Send + Sync>;

/// Task resources played by closures, counting their calls.
#[derive(Default)]
struct Functions {
    handlers: HashMap<String, Handler>,
    calls: Mutex<HashMap<String, usize>>,
    blocked: Mutex<Vec<String>>,
}

impl Functions {
    fn with(
        mut self,
        name: &str,
        f: impl Fn(Value, usize) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> Self {
        self.handlers.insert(name.into(), Box::new(f));
        self
    }

    fn calls(&self, name: &str) -> usize {
        self.calls.lock().expect("lock").get(name).copied().unwrap_or(0)
    }
}

#[async_trait]
impl TaskInvoker for Functions {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskFailure> {
        let n = {
            let mut calls = self.calls.lock().expect("lock");
            let n = calls.entry(resource.into()).or_insert(0);
            *n += 1;
            *n
        };
        if self.blocked.lock().expect("lock").iter().any(|b| b == resource) {
            std::future::pending::<()>().await;
        }
        let handler = self.handlers.get(resource).unwrap_or_else(|| panic!("no function {resource}"));
        handler(input, n)
    }
}

async fn table() -> (Arc<dyn Table>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = oratio_local::SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite");
    (Arc::new(table), dir)
}

fn runner(definition: Value, functions: Arc<Functions>, table: Arc<dyn Table>) -> AslRunner {
    let machine = StateMachine::parse(&definition.to_string()).expect("a valid definition");
    AslRunner::new(HashMap::from([("m".to_owned(), machine)]), functions, table, 0.001)
}

fn retry() -> Value {
    json!([{"ErrorEquals": ["Retryable"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 2.0}])
}

fn pipeline() -> Value {
    json!({
        "StartAt": "Validate",
        "States": {
            "Validate": {
                "Type": "Task", "Resource": "validate",
                "Parameters": {"agent.$": "$.agent_id", "execution.$": "$$.Execution.Name"},
                "ResultPath": "$.validated", "Retry": retry(),
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "MarkFailed", "ResultPath": "$.error"}],
                "Next": "Poll"
            },
            "Poll": {
                "Type": "Task", "Resource": "status", "ResultPath": "$.status", "Retry": retry(),
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "MarkFailed", "ResultPath": "$.error"}],
                "Next": "Ready?"
            },
            "Ready?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.status.state", "StringEquals": "READY", "Next": "Done"},
                    {"And": [{"Variable": "$.status.polls", "NumericGreaterThanEquals": 5}, {"Variable": "$.status.state", "StringEquals": "PENDING"}], "Next": "TooSlow"}
                ],
                "Default": "Wait"
            },
            "Wait": {"Type": "Wait", "SecondsPath": "$.status.wait", "Next": "Poll"},
            "TooSlow": {"Type": "Pass", "Result": {"Error": "NotReady", "Cause": "still pending"}, "ResultPath": "$.error", "Next": "MarkFailed"},
            "MarkFailed": {"Type": "Task", "Resource": "mark_failed", "ResultPath": null, "Next": "Failed"},
            "Failed": {"Type": "Fail", "Error": "AgentCreationFailed", "Cause": "see the agent's status"},
            "Done": {"Type": "Pass", "Parameters": {"agent.$": "$.agent_id", "polls.$": "$.status.polls"}, "OutputPath": "$", "Next": "Succeeded"},
            "Succeeded": {"Type": "Succeed"}
        }
    })
}

fn ready_after(polls: usize) -> impl Fn(Value, usize) -> Result<Value, TaskFailure> {
    move |_, n| Ok(json!({"state": if n >= polls { "READY" } else { "PENDING" }, "polls": n, "wait": 5}))
}

#[tokio::test]
async fn a_pipeline_runs_tasks_choices_and_waits_to_success() {
    let (table, _dir) = table().await;
    let seen = Arc::new(Mutex::new(Value::Null));
    let seen_in = seen.clone();
    let functions = Arc::new(
        Functions::default()
            .with("validate", move |input, _| {
                *seen_in.lock().expect("lock") = input;
                Ok(json!({"ok": true}))
            })
            .with("status", ready_after(3))
            .with("mark_failed", |_, _| Ok(json!({}))),
    );
    let outcome = runner(pipeline(), functions.clone(), table)
        .run("m", "exec-1", json!({"agent_id": "agt_1"}))
        .await
        .expect("ran");
    assert_eq!(outcome, Outcome::Succeeded { output: json!({"agent": "agt_1", "polls": 3}) });
    assert_eq!(
        *seen.lock().expect("lock"),
        json!({"agent": "agt_1", "execution": "exec-1"}),
        "Parameters with $ and $$"
    );
    assert_eq!((functions.calls("status"), functions.calls("mark_failed")), (3, 0));
}

#[tokio::test]
async fn retries_follow_the_definition_then_the_catch_takes_over() {
    let (table, _dir) = table().await;
    // Two Retryable failures are within MaxAttempts: the third call succeeds.
    let flaky = Arc::new(
        Functions::default()
            .with("validate", |_, n| if n <= 2 { Err(TaskFailure::new("Retryable", "busy")) } else { Ok(json!({})) })
            .with("status", ready_after(1))
            .with("mark_failed", |_, _| Ok(json!({}))),
    );
    let outcome = runner(pipeline(), flaky.clone(), table.clone())
        .run("m", "flaky", json!({"agent_id": "agt_1"}))
        .await
        .expect("ran");
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(flaky.calls("validate"), 3);

    // Three are one too many; the error reaches the catch with its name and cause.
    let failed_input = Arc::new(Mutex::new(Value::Null));
    let recorder = failed_input.clone();
    let broken = Arc::new(
        Functions::default()
            .with("validate", |_, _| Err(TaskFailure::new("Retryable", "still busy")))
            .with("status", ready_after(1))
            .with("mark_failed", move |input, _| {
                *recorder.lock().expect("lock") = input;
                Ok(json!({}))
            }),
    );
    let outcome = runner(pipeline(), broken.clone(), table.clone())
        .run("m", "broken", json!({"agent_id": "agt_1"}))
        .await
        .expect("ran");
    assert_eq!(
        outcome,
        Outcome::Failed { error: "AgentCreationFailed".into(), cause: "see the agent's status".into() }
    );
    assert_eq!(broken.calls("validate"), 3);
    assert_eq!(failed_input.lock().expect("lock")["error"], json!({"Error": "Retryable", "Cause": "still busy"}));

    // A typed error with no retrier goes straight to the catch.
    let invalid = Arc::new(
        Functions::default()
            .with("validate", |_, _| Err(TaskFailure::new("InvalidSop", "the SOP is empty")))
            .with("status", ready_after(1))
            .with("mark_failed", |_, _| Ok(json!({}))),
    );
    runner(pipeline(), invalid.clone(), table).run("m", "invalid", json!({"agent_id": "agt_1"})).await.expect("ran");
    assert_eq!((invalid.calls("validate"), invalid.calls("mark_failed")), (1, 1));
}

#[tokio::test]
async fn polling_gives_up_where_the_definition_says() {
    let (table, _dir) = table().await;
    let never = Arc::new(
        Functions::default()
            .with("validate", |_, _| Ok(json!({})))
            .with("status", ready_after(99))
            .with("mark_failed", |_, _| Ok(json!({}))),
    );
    let outcome =
        runner(pipeline(), never.clone(), table).run("m", "slow", json!({"agent_id": "agt_1"})).await.expect("ran");
    assert!(matches!(outcome, Outcome::Failed { .. }));
    assert_eq!((never.calls("status"), never.calls("mark_failed")), (5, 1));
}

#[tokio::test]
async fn runtime_errors_end_the_execution_uncaught() {
    let (table, _dir) = table().await;
    let functions =
        Arc::new(Functions::default().with("validate", |_, _| Ok(json!({}))).with("mark_failed", |_, _| Ok(json!({}))));
    // The input lacks `agent_id`: the Parameters path matches nothing.
    let outcome = runner(pipeline(), functions.clone(), table).run("m", "bad-input", json!({})).await.expect("ran");
    let Outcome::Failed { error, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error, "States.Runtime");
    assert_eq!(functions.calls("mark_failed"), 0, "States.ALL does not catch States.Runtime");
}

#[tokio::test]
async fn execution_names_are_unique_per_machine() {
    let (table, _dir) = table().await;
    let functions =
        Arc::new(Functions::default().with("validate", |_, _| Ok(json!({}))).with("status", ready_after(1)));
    let runner = runner(pipeline(), functions, table);
    runner.start("m", "once", json!({"agent_id": "agt_1"})).await.expect("started");
    let again = runner.start("m", "once", json!({"agent_id": "agt_1"})).await;
    assert!(matches!(again, Err(WorkflowError::ExecutionExists(_))), "{again:?}");
    assert!(matches!(runner.start("nope", "x", json!({})).await, Err(WorkflowError::UnknownMachine(_))));
}

#[tokio::test]
async fn an_execution_resumes_after_a_restart_from_the_state_it_was_in() {
    let (table, _dir) = table().await;
    // The first process gets stuck in `status`, as if it died there.
    let first = Arc::new(Functions::default().with("validate", |_, _| Ok(json!({}))).with("status", ready_after(1)));
    first.blocked.lock().expect("lock").push("status".into());
    let before = runner(pipeline(), first.clone(), table.clone());
    before.start("m", "survivor", json!({"agent_id": "agt_1"})).await.expect("started");
    while first.calls("status") == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let second = Arc::new(Functions::default().with("validate", |_, _| Ok(json!({}))).with("status", ready_after(1)));
    let after = runner(pipeline(), second.clone(), table.clone());
    assert_eq!(after.resume_unfinished().await.expect("resumed"), 1);
    let counter = AtomicUsize::new(0);
    let record = loop {
        let record = after.execution("m", "survivor").await.expect("read").expect("recorded");
        if record.outcome.is_some() || counter.fetch_add(1, Ordering::Relaxed) > 2000 {
            break record;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert!(matches!(record.outcome, Some(Outcome::Succeeded { .. })), "{record:?}");
    assert_eq!(second.calls("validate"), 0, "finished states are not run again");
    assert_eq!(second.calls("status"), 1);
    assert_eq!(after.resume_unfinished().await.expect("none left"), 0);
}
