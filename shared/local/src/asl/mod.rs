//! An Amazon States Language interpreter: the embedded stand-in for Step Functions, running
//! the very `statemachines/*.asl.json` files that AWS runs.
//!
//! It implements what Oratio's definitions use, with Step Functions' semantics: `Task`,
//! `Pass`, `Choice`, `Wait`, `Succeed`, `Fail`; `InputPath`, `Parameters` (with `.$`
//! keys, the context object `$$` and `States.Format`), `ResultSelector`, `ResultPath`,
//! `OutputPath`; `Retry` (interval, backoff, max attempts, max delay) and `Catch` (error
//! output `{Error, Cause}`), with `States.ALL`, `States.TaskFailed`, `States.Timeout` and
//! `States.Runtime` (which nothing catches). A definition using anything else is refused
//! when it is registered, not half-run.
//!
//! Every transition is checkpointed in the table (`EXECUTION#<machine>#<name>` /
//! `EXECUTION`), so executions survive a restart: `resume_unfinished` continues them from
//! the state they were entering.

mod data;
mod definition;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oratio_core::table::{Condition, Index, Item, Key, Query, Table, TableError, Update};
use oratio_core::time::now;
pub use oratio_core::workflow::TaskInvoker;
use oratio_core::workflow::{TaskFailure, Workflow, WorkflowError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use data::{evaluate, holds, matches, read_path, render, runtime, write_path};
pub use definition::{DefinitionError, StateMachine};
use definition::{Kind, ResultPath, Retrier, State, Transition};

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Succeeded { output: Value },
    Failed { error: String, cause: String },
}

/// An execution as checkpointed in the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub machine: String,
    pub name: String,
    /// The state being entered (while running).
    pub state: String,
    pub state_input: Value,
    pub input: Value,
    pub started_at: DateTime<Utc>,
    pub transitions: u64,
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

fn execution_key(machine: &str, name: &str) -> Key {
    Key::new(format!("EXECUTION#{machine}#{name}"), "EXECUTION")
}

const RUNNING: &str = "EXECUTIONS#RUNNING";
/// A runaway loop ends the execution, as Step Functions' history limit would.
const MAX_TRANSITIONS: u64 = 25_000;

/// The embedded Step Functions.
#[derive(Clone)]
pub struct AslRunner {
    machines: Arc<HashMap<String, StateMachine>>,
    invoker: Arc<dyn TaskInvoker>,
    table: Arc<dyn Table>,
    /// Multiplies every wait and retry interval (1.0 in the platform; tests shorten time).
    time_scale: f64,
}

impl AslRunner {
    pub fn new(
        machines: HashMap<String, StateMachine>,
        invoker: Arc<dyn TaskInvoker>,
        table: Arc<dyn Table>,
        time_scale: f64,
    ) -> Self {
        Self { machines: Arc::new(machines), invoker, table, time_scale }
    }

    pub async fn execution(&self, machine: &str, name: &str) -> Result<Option<ExecutionRecord>, TableError> {
        self.table.get(&execution_key(machine, name)).await?.map(|i| i.record()).transpose()
    }

    /// Continues every execution a previous process left running.
    pub async fn resume_unfinished(&self) -> Result<usize, TableError> {
        let running: Vec<ExecutionRecord> =
            self.table.query(Query::partition(Index::Gsi2, RUNNING)).await?.records()?;
        let count = running.len();
        for record in running {
            let runner = self.clone();
            tokio::spawn(async move { runner.drive(record).await });
        }
        Ok(count)
    }

    /// Runs an execution to its end on this task (tests; `start` runs it in the background).
    pub async fn run(&self, machine: &str, name: &str, input: Value) -> Result<Outcome, WorkflowError> {
        let record = self.create(machine, name, input).await?;
        Ok(self.drive(record).await)
    }

    async fn create(&self, machine: &str, name: &str, input: Value) -> Result<ExecutionRecord, WorkflowError> {
        let definition = self.machines.get(machine).ok_or_else(|| WorkflowError::UnknownMachine(machine.into()))?;
        let record = ExecutionRecord {
            machine: machine.into(),
            name: name.into(),
            state: definition.start_at.clone(),
            state_input: input.clone(),
            input,
            started_at: now(),
            transitions: 0,
            outcome: None,
        };
        let item = Item::from_record(execution_key(machine, name), &record)
            .map_err(|e| WorkflowError::Backend(e.into()))?
            .in_index(Index::Gsi2, RUNNING, format!("{machine}#{name}"));
        match self.table.put(item, Some(Condition::NotExists)).await {
            Ok(()) => Ok(record),
            Err(TableError::ConditionFailed { .. }) => Err(WorkflowError::ExecutionExists(name.into())),
            Err(e) => Err(WorkflowError::Unavailable(e.into())),
        }
    }

    async fn checkpoint(&self, record: &ExecutionRecord) {
        let key = execution_key(&record.machine, &record.name);
        let mut update = Update::new()
            .set("state", record.state.as_str())
            .set("state_input", record.state_input.clone())
            .set("transitions", record.transitions as i64);
        if let Some(outcome) = &record.outcome {
            update = update
                .set("outcome", serde_json::to_value(outcome).unwrap_or(Value::Null))
                .remove("gsi2pk")
                .remove("gsi2sk");
        }
        // A lost checkpoint costs a repeated state after a restart, never a wrong one.
        if let Err(e) = self.table.update(&key, update, Some(Condition::Exists)).await {
            tracing::warn!(cause = %format!("{e:#}"), execution = %record.name, "checkpointing an execution failed");
        }
    }

    async fn sleep(&self, seconds: f64) {
        let scaled = (seconds * self.time_scale).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(scaled.min(365.0 * 86400.0))).await;
    }

    /// Runs from the record's current state to the end, checkpointing each transition.
    async fn drive(&self, mut record: ExecutionRecord) -> Outcome {
        let Some(machine) = self.machines.get(&record.machine) else {
            let outcome = Outcome::Failed { error: "States.Runtime".into(), cause: "unknown state machine".into() };
            record.outcome = Some(outcome.clone());
            self.checkpoint(&record).await;
            return outcome;
        };
        let span = tracing::info_span!("execution", machine = %record.machine, execution = %record.name);
        let _guard = span.enter();
        loop {
            if record.transitions >= MAX_TRANSITIONS {
                record.outcome =
                    Some(Outcome::Failed { error: "States.Runtime".into(), cause: "too many transitions".into() });
                break;
            }
            let state = &machine.states[&record.state];
            let context = json!({
                "Execution": {"Id": format!("{}:{}", record.machine, record.name), "Name": record.name, "Input": record.input, "StartTime": record.started_at},
                "State": {"Name": record.state, "EnteredTime": now()},
                "StateMachine": {"Id": record.machine, "Name": record.machine},
            });
            tracing::debug!(state = %record.state, "entering state");
            match self.step(state, record.state_input.clone(), &context).await {
                Step::Next(next, output) => {
                    record.state = next;
                    record.state_input = output;
                    record.transitions += 1;
                    self.checkpoint(&record).await;
                }
                Step::End(outcome) => {
                    record.outcome = Some(outcome);
                    break;
                }
            }
        }
        self.checkpoint(&record).await;
        let outcome = record.outcome.clone().expect("set before leaving the loop");
        tracing::info!(outcome = ?outcome, "execution ended");
        outcome
    }

    async fn step(&self, state: &State, raw_input: Value, context: &Value) -> Step {
        match self.run_state(state, raw_input.clone(), context).await {
            Ok(Step::Next(next, output)) => Step::Next(next, output),
            Ok(end) => end,
            Err(failure) => {
                let catchers = match &state.kind {
                    Kind::Task { catch, .. } => catch.as_slice(),
                    _ => &[],
                };
                match catchers.iter().find(|c| matches(&c.errors, &failure.error)) {
                    Some(catcher) => {
                        let error = json!({"Error": failure.error, "Cause": failure.cause});
                        let output = match &catcher.result_path {
                            ResultPath::Discard => Ok(raw_input),
                            ResultPath::At(path) => write_path(raw_input, path, error),
                        };
                        match output {
                            Ok(output) => Step::Next(catcher.next.clone(), output),
                            Err(f) => Step::End(Outcome::Failed { error: f.error, cause: f.cause }),
                        }
                    }
                    None => Step::End(Outcome::Failed { error: failure.error, cause: failure.cause }),
                }
            }
        }
    }

    async fn run_state(&self, state: &State, raw_input: Value, context: &Value) -> Result<Step, TaskFailure> {
        let input = match &state.input_path {
            None => raw_input.clone(),
            Some(None) => json!({}),
            Some(Some(path)) => evaluate(path, &raw_input, context)?,
        };
        let effective = match &state.parameters {
            Some(template) => render(template, &input, context)?,
            None => input.clone(),
        };
        let result = match &state.kind {
            Kind::Succeed => return Ok(Step::End(Outcome::Succeeded { output: self.output(state, input)? })),
            Kind::Fail { error, cause } => {
                return Ok(Step::End(Outcome::Failed { error: error.clone(), cause: cause.clone() }));
            }
            Kind::Choice { choices, default } => {
                for (rule, next) in choices {
                    if holds(rule, &input)? {
                        return Ok(Step::Next(next.clone(), self.output(state, input)?));
                    }
                }
                let next =
                    default.clone().ok_or_else(|| TaskFailure::new("States.NoChoiceMatched", "no choice matched"))?;
                return Ok(Step::Next(next, self.output(state, input)?));
            }
            Kind::Wait { seconds, seconds_path } => {
                let seconds = match (seconds, seconds_path) {
                    (Some(s), _) => *s,
                    (None, Some(path)) => evaluate(path, &input, context)?
                        .as_f64()
                        .ok_or_else(|| runtime("SecondsPath is not a number"))?,
                    (None, None) => 0.0,
                };
                self.sleep(seconds).await;
                return self.advance(state, input);
            }
            Kind::Pass { result } => result.clone().unwrap_or(effective),
            Kind::Task { resource, timeout, retry, result_selector, .. } => {
                let raw = self.invoke_with_retry(resource, effective, *timeout, retry).await?;
                match result_selector {
                    Some(selector) => render(selector, &raw, context)?,
                    None => raw,
                }
            }
        };
        let combined = match &state.result_path {
            ResultPath::Discard => raw_input,
            ResultPath::At(path) => write_path(raw_input, path, result)?,
        };
        self.advance(state, combined)
    }

    fn output(&self, state: &State, value: Value) -> Result<Value, TaskFailure> {
        match &state.output_path {
            None => Ok(value),
            Some(None) => Ok(json!({})),
            Some(Some(path)) => {
                read_path(&value, path).ok_or_else(|| runtime(format!("OutputPath {path} matched nothing")))
            }
        }
    }

    fn advance(&self, state: &State, value: Value) -> Result<Step, TaskFailure> {
        let output = self.output(state, value)?;
        Ok(match &state.transition {
            Transition::Next(next) => Step::Next(next.clone(), output),
            Transition::End => Step::End(Outcome::Succeeded { output }),
        })
    }

    async fn invoke_with_retry(
        &self,
        resource: &str,
        input: Value,
        timeout: Option<f64>,
        retriers: &[Retrier],
    ) -> Result<Value, TaskFailure> {
        let mut attempts = vec![0u32; retriers.len()];
        loop {
            let call = self.invoker.invoke(resource, input.clone());
            let outcome = match timeout {
                Some(seconds) => {
                    match tokio::time::timeout(Duration::from_secs_f64(seconds * self.time_scale.max(0.001)), call)
                        .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(TaskFailure::new("States.Timeout", format!("the task ran over {seconds} s"))),
                    }
                }
                None => call.await,
            };
            let failure = match outcome {
                Ok(output) => return Ok(output),
                Err(failure) => failure,
            };
            let Some(i) = retriers.iter().position(|r| matches(&r.errors, &failure.error)) else { return Err(failure) };
            let retrier = &retriers[i];
            if attempts[i] >= retrier.max_attempts {
                return Err(failure);
            }
            let mut delay = retrier.interval * retrier.backoff.powi(attempts[i] as i32);
            if let Some(max) = retrier.max_delay {
                delay = delay.min(max);
            }
            attempts[i] += 1;
            tracing::info!(error = %failure.error, attempt = attempts[i], delay_s = delay, "retrying a task");
            self.sleep(delay).await;
        }
    }
}

enum Step {
    Next(String, Value),
    End(Outcome),
}

#[async_trait]
impl Workflow for AslRunner {
    async fn start(&self, machine: &str, name: &str, input: Value) -> Result<(), WorkflowError> {
        let record = self.create(machine, name, input).await?;
        let runner = self.clone();
        tokio::spawn(async move { runner.drive(record).await });
        Ok(())
    }
}
