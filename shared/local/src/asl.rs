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
use serde_json::{Map, Value, json};

/// Why a definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid state machine definition: {0}")]
pub struct DefinitionError(String);

fn invalid(message: impl Into<String>) -> DefinitionError {
    DefinitionError(message.into())
}

#[derive(Debug, Clone)]
struct Retrier {
    errors: Vec<String>,
    interval: f64,
    max_attempts: u32,
    backoff: f64,
    max_delay: Option<f64>,
}

#[derive(Debug, Clone)]
struct Catcher {
    errors: Vec<String>,
    next: String,
    result_path: ResultPath,
}

#[derive(Debug, Clone, PartialEq)]
enum ResultPath {
    Discard,
    At(String),
}

#[derive(Debug, Clone)]
enum Transition {
    Next(String),
    End,
}

#[derive(Debug, Clone)]
enum Kind {
    Task {
        resource: String,
        timeout: Option<f64>,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
        result_selector: Option<Value>,
    },
    Pass {
        result: Option<Value>,
    },
    Choice {
        choices: Vec<(Value, String)>,
        default: Option<String>,
    },
    Wait {
        seconds: Option<f64>,
        seconds_path: Option<String>,
    },
    Succeed,
    Fail {
        error: String,
        cause: String,
    },
}

#[derive(Debug, Clone)]
struct State {
    kind: Kind,
    input_path: Option<Option<String>>,
    parameters: Option<Value>,
    result_path: ResultPath,
    output_path: Option<Option<String>>,
    transition: Transition,
}

/// A parsed, validated state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    start_at: String,
    states: HashMap<String, State>,
}

fn string_list(v: &Value, field: &str) -> Result<Vec<String>, DefinitionError> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| invalid(format!("`{field}` must be a non-empty list of names")))
}

fn path_field(v: &Value, field: &str) -> Result<Option<Option<String>>, DefinitionError> {
    match v.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(p)) if p.starts_with('$') => Ok(Some(Some(p.clone()))),
        Some(_) => Err(invalid(format!("`{field}` must be a path or null"))),
    }
}

fn result_path(v: &Value) -> Result<ResultPath, DefinitionError> {
    match path_field(v, "ResultPath")? {
        None => Ok(ResultPath::At("$".into())),
        Some(None) => Ok(ResultPath::Discard),
        Some(Some(p)) => Ok(ResultPath::At(p)),
    }
}

const KNOWN_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "Next",
    "End",
    "Resource",
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "Retry",
    "Catch",
    "TimeoutSeconds",
    "Result",
    "Choices",
    "Default",
    "Seconds",
    "SecondsPath",
    "Error",
    "Cause",
];

impl StateMachine {
    pub fn parse(definition: &str) -> Result<Self, DefinitionError> {
        let doc: Value = serde_json::from_str(definition).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let start_at = doc["StartAt"].as_str().ok_or_else(|| invalid("no StartAt"))?.to_owned();
        let raw = doc["States"].as_object().ok_or_else(|| invalid("no States"))?;
        let mut states = HashMap::new();
        for (name, s) in raw {
            let context = |e: DefinitionError| invalid(format!("state {name}: {}", e.0));
            if let Some(unknown) =
                s.as_object().into_iter().flatten().map(|(k, _)| k).find(|k| !KNOWN_FIELDS.contains(&k.as_str()))
            {
                return Err(invalid(format!("state {name}: the embedded runner does not support `{unknown}`")));
            }
            let transition = match (s.get("Next").and_then(Value::as_str), s.get("End")) {
                (Some(next), None) => Transition::Next(next.to_owned()),
                (None, Some(Value::Bool(true))) => Transition::End,
                _ => Transition::End,
            };
            let kind = match s["Type"].as_str() {
                Some("Task") => {
                    let retry = s
                        .get("Retry")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            Ok(Retrier {
                                errors: string_list(r, "ErrorEquals")?,
                                interval: r.get("IntervalSeconds").and_then(Value::as_f64).unwrap_or(1.0),
                                max_attempts: r.get("MaxAttempts").and_then(Value::as_u64).unwrap_or(3) as u32,
                                backoff: r.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0),
                                max_delay: r.get("MaxDelaySeconds").and_then(Value::as_f64),
                            })
                        })
                        .collect::<Result<_, DefinitionError>>()
                        .map_err(context)?;
                    let catch = s
                        .get("Catch")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            Ok(Catcher {
                                errors: string_list(c, "ErrorEquals")?,
                                next: c["Next"].as_str().ok_or_else(|| invalid("a Catch without Next"))?.to_owned(),
                                result_path: result_path(c)?,
                            })
                        })
                        .collect::<Result<_, DefinitionError>>()
                        .map_err(context)?;
                    Kind::Task {
                        resource: s["Resource"].as_str().ok_or_else(|| context(invalid("no Resource")))?.to_owned(),
                        timeout: s.get("TimeoutSeconds").and_then(Value::as_f64),
                        retry,
                        catch,
                        result_selector: s.get("ResultSelector").cloned(),
                    }
                }
                Some("Pass") => Kind::Pass { result: s.get("Result").cloned() },
                Some("Choice") => {
                    let choices = s["Choices"]
                        .as_array()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| context(invalid("a Choice needs Choices")))?
                        .iter()
                        .map(|c| {
                            let next = c["Next"].as_str().ok_or_else(|| context(invalid("a choice without Next")))?;
                            check_rule(c).map_err(context)?;
                            Ok((c.clone(), next.to_owned()))
                        })
                        .collect::<Result<_, DefinitionError>>()?;
                    Kind::Choice { choices, default: s.get("Default").and_then(Value::as_str).map(str::to_owned) }
                }
                Some("Wait") => Kind::Wait {
                    seconds: s.get("Seconds").and_then(Value::as_f64),
                    seconds_path: s.get("SecondsPath").and_then(Value::as_str).map(str::to_owned),
                },
                Some("Succeed") => Kind::Succeed,
                Some("Fail") => Kind::Fail {
                    error: s.get("Error").and_then(Value::as_str).unwrap_or("States.Fail").to_owned(),
                    cause: s.get("Cause").and_then(Value::as_str).unwrap_or_default().to_owned(),
                },
                other => return Err(context(invalid(format!("unsupported Type {other:?}")))),
            };
            if matches!(kind, Kind::Task { .. } | Kind::Pass { .. } | Kind::Wait { .. })
                && s.get("Next").is_none()
                && s.get("End") != Some(&Value::Bool(true))
            {
                return Err(context(invalid("needs Next or End")));
            }
            let state = State {
                kind,
                input_path: path_field(s, "InputPath").map_err(context)?,
                parameters: s.get("Parameters").cloned(),
                result_path: result_path(s).map_err(context)?,
                output_path: path_field(s, "OutputPath").map_err(context)?,
                transition,
            };
            states.insert(name.clone(), state);
        }
        let machine = Self { start_at, states };
        machine.check_targets()?;
        Ok(machine)
    }

    fn check_targets(&self) -> Result<(), DefinitionError> {
        let exists = |name: &str| {
            if self.states.contains_key(name) { Ok(()) } else { Err(invalid(format!("no state named {name}"))) }
        };
        exists(&self.start_at)?;
        for state in self.states.values() {
            if let Transition::Next(next) = &state.transition {
                exists(next)?;
            }
            match &state.kind {
                Kind::Task { catch, .. } => catch.iter().try_for_each(|c| exists(&c.next))?,
                Kind::Choice { choices, default } => {
                    choices.iter().try_for_each(|(_, next)| exists(next))?;
                    default.iter().try_for_each(|d| exists(d))?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

const COMPARISONS: &[&str] = &[
    "StringEquals",
    "StringEqualsPath",
    "NumericEquals",
    "NumericEqualsPath",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "BooleanEquals",
    "IsPresent",
    "IsNull",
    "StringMatches",
];

fn check_rule(rule: &Value) -> Result<(), DefinitionError> {
    if let Some(all) = rule.get("And").or_else(|| rule.get("Or")).and_then(Value::as_array) {
        return all.iter().try_for_each(check_rule);
    }
    if let Some(inner) = rule.get("Not") {
        return check_rule(inner);
    }
    if rule.get("Variable").and_then(Value::as_str).is_none() {
        return Err(invalid("a choice rule without Variable"));
    }
    if !COMPARISONS.iter().any(|c| rule.get(*c).is_some()) {
        return Err(invalid("a choice rule with no comparison the embedded runner supports"));
    }
    Ok(())
}

/// The failure of a state: a name to match and a cause.
fn runtime(cause: impl Into<String>) -> TaskFailure {
    TaskFailure::new("States.Runtime", cause)
}

/// Reads a path (`$`, `$.a.b`, `$.a[0].b`) from `value`.
fn read_path(value: &Value, path: &str) -> Option<Value> {
    let rest = path.strip_prefix('$')?;
    let mut current = value;
    for segment in rest.split('.').skip(1) {
        let (name, index) = match segment.split_once('[') {
            Some((name, idx)) => (name, Some(idx.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (segment, None),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        if let Some(i) = index {
            current = current.get(i)?;
        }
    }
    Some(current.clone())
}

/// Writes `result` into `input` at `path` (`$` replaces it), creating objects on the way.
fn write_path(mut input: Value, path: &str, result: Value) -> Result<Value, TaskFailure> {
    if path == "$" {
        return Ok(result);
    }
    let segments: Vec<&str> =
        path.strip_prefix("$.").ok_or_else(|| runtime(format!("bad ResultPath {path}")))?.split('.').collect();
    let mut current = &mut input;
    for (i, segment) in segments.iter().enumerate() {
        let object =
            current.as_object_mut().ok_or_else(|| runtime(format!("ResultPath {path} crosses a non-object")))?;
        if i == segments.len() - 1 {
            object.insert((*segment).to_owned(), result);
            break;
        }
        current = object.entry((*segment).to_owned()).or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(input)
}

/// Evaluates a `Parameters` / `ResultSelector` template against `input` and the context.
fn render(template: &Value, input: &Value, context: &Value) -> Result<Value, TaskFailure> {
    match template {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                match key.strip_suffix(".$") {
                    Some(name) => {
                        let expr = value.as_str().ok_or_else(|| runtime(format!("{key} must be a path")))?;
                        out.insert(name.to_owned(), evaluate(expr, input, context)?);
                    }
                    None => {
                        out.insert(key.clone(), render(value, input, context)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            items.iter().map(|v| render(v, input, context)).collect::<Result<_, _>>().map(Value::Array)
        }
        other => Ok(other.clone()),
    }
}

fn evaluate(expr: &str, input: &Value, context: &Value) -> Result<Value, TaskFailure> {
    if let Some(args) = expr.strip_prefix("States.Format(").and_then(|a| a.strip_suffix(')')) {
        return format_intrinsic(args, input, context);
    }
    let (source, path) = match expr.strip_prefix("$$") {
        Some(rest) => (context, format!("${rest}")),
        None => (input, expr.to_owned()),
    };
    read_path(source, &path).ok_or_else(|| runtime(format!("the path {expr} matched nothing")))
}

/// `States.Format('text {} more {}', $.a, $.b)`.
fn format_intrinsic(args: &str, input: &Value, context: &Value) -> Result<Value, TaskFailure> {
    let args = args.trim();
    let template_end = args[1..].find('\'').map(|i| i + 1).filter(|_| args.starts_with('\''));
    let end = template_end.ok_or_else(|| runtime("States.Format needs a quoted template"))?;
    let template = &args[1..end];
    let values: Vec<Value> = args[end + 1..]
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| evaluate(a, input, context))
        .collect::<Result<_, _>>()?;
    let mut out = String::new();
    let mut values = values.into_iter();
    let mut rest = template;
    while let Some(i) = rest.find("{}") {
        out.push_str(&rest[..i]);
        let value = values.next().ok_or_else(|| runtime("States.Format has more {} than arguments"))?;
        match value {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn holds(rule: &Value, input: &Value) -> Result<bool, TaskFailure> {
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        for r in all {
            if !holds(r, input)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = rule.get("Or").and_then(Value::as_array) {
        for r in any {
            if holds(r, input)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(inner) = rule.get("Not") {
        return Ok(!holds(inner, input)?);
    }
    let variable = rule["Variable"].as_str().unwrap_or("$");
    let value = read_path(input, variable);
    if let Some(expected) = rule.get("IsPresent").and_then(Value::as_bool) {
        return Ok(value.is_some() == expected);
    }
    let value = value.ok_or_else(|| runtime(format!("the choice variable {variable} matched nothing")))?;
    let number = |name: &str| rule.get(name).and_then(Value::as_f64);
    let n = value.as_f64();
    Ok(if let Some(expected) = rule.get("IsNull").and_then(Value::as_bool) {
        value.is_null() == expected
    } else if let Some(s) = rule.get("StringEquals").and_then(Value::as_str) {
        value.as_str() == Some(s)
    } else if let Some(p) = rule.get("StringEqualsPath").and_then(Value::as_str) {
        value.as_str().is_some() && read_path(input, p).as_ref() == Some(&value)
    } else if let Some(pattern) = rule.get("StringMatches").and_then(Value::as_str) {
        value.as_str().is_some_and(|v| wildcard(pattern, v))
    } else if let Some(b) = rule.get("BooleanEquals").and_then(Value::as_bool) {
        value.as_bool() == Some(b)
    } else if let Some(x) = number("NumericEquals") {
        n == Some(x)
    } else if let Some(p) = rule.get("NumericEqualsPath").and_then(Value::as_str) {
        n.is_some() && read_path(input, p).and_then(|v| v.as_f64()) == n
    } else if let Some(x) = number("NumericGreaterThan") {
        n.is_some_and(|v| v > x)
    } else if let Some(x) = number("NumericGreaterThanEquals") {
        n.is_some_and(|v| v >= x)
    } else if let Some(x) = number("NumericLessThan") {
        n.is_some_and(|v| v < x)
    } else if let Some(x) = number("NumericLessThanEquals") {
        n.is_some_and(|v| v <= x)
    } else {
        false
    })
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

fn matches(names: &[String], error: &str) -> bool {
    // `States.Runtime` ends the execution: no `States.ALL` catches it.
    names.iter().any(|n| {
        n == error
            || (n == "States.ALL" && error != "States.Runtime")
            || (n == "States.TaskFailed" && !error.starts_with("States."))
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_and_write_like_step_functions() {
        let v = json!({"a": {"b": [1, {"c": "x"}]}});
        assert_eq!(read_path(&v, "$.a.b[1].c"), Some(json!("x")));
        assert_eq!(read_path(&v, "$"), Some(v.clone()));
        assert_eq!(read_path(&v, "$.nope"), None);
        assert_eq!(write_path(json!({"a": 1}), "$.r.s", json!(2)).unwrap(), json!({"a": 1, "r": {"s": 2}}));
        assert_eq!(write_path(json!({"a": 1}), "$", json!(2)).unwrap(), json!(2));
        assert!(write_path(json!({"a": 1}), "$.a.b", json!(2)).is_err());
    }

    #[test]
    fn parameters_render_paths_context_and_format() {
        let template = json!({"agent.$": "$.agent", "name.$": "$$.Execution.Name", "fixed": 1, "msg.$": "States.Format('agent {} step {}', $.agent, $.n)"});
        let out =
            render(&template, &json!({"agent": "agt_1", "n": 2}), &json!({"Execution": {"Name": "exec-1"}})).unwrap();
        assert_eq!(out, json!({"agent": "agt_1", "name": "exec-1", "fixed": 1, "msg": "agent agt_1 step 2"}));
        assert_eq!(render(&json!({"x.$": "$.missing"}), &json!({}), &json!({})).unwrap_err().error, "States.Runtime");
    }

    #[test]
    fn error_names_match_as_documented() {
        let all = vec!["States.ALL".to_owned()];
        assert!(matches(&all, "Retryable") && matches(&all, "States.Timeout"));
        assert!(!matches(&all, "States.Runtime"));
        let task_failed = vec!["States.TaskFailed".to_owned()];
        assert!(matches(&task_failed, "InvalidSop") && !matches(&task_failed, "States.Timeout"));
        assert!(wildcard("agt_*", "agt_1") && !wildcard("agt_*x", "agt_1"));
    }

    #[test]
    fn definitions_with_unknown_features_or_targets_are_refused() {
        let unknown = r#"{"StartAt":"A","States":{"A":{"Type":"Map","End":true}}}"#;
        assert!(StateMachine::parse(unknown).is_err());
        let dangling = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#;
        assert!(StateMachine::parse(dangling).is_err());
        let field = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"ItemsPath":"$"}}}"#;
        assert!(StateMachine::parse(field).is_err());
    }
}
