//! Calling a tenant tool for a model, and the record of each call.
//!
//! A call's arguments are checked against the tool's schema first: arguments that do not
//! fit go back to the model as an error and are never sent. Then the call is recorded
//! (`pending`), signed, and sent: each attempt bounded by the tool's timeout, a timeout,
//! a connection failure, a 429 or a 5xx retried with exponential backoff, up to the tool's
//! retries. A 2xx answer must be JSON (and fit the result schema, when the tool has one).
//! The record ends `succeeded`, `failed` or `timed_out`, with every attempt.
//!
//! The request: `POST` (or the tool's method) of `{"tool", "arguments", "call":
//! {"execution_id", "agent_id", "session_id"}}` with `X-Oratio-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the tool's secret>`,
//! `X-Oratio-Execution-Id` (the same on every attempt: an idempotency key) and
//! `X-Oratio-Attempt`.
//!
//! Layout: `TENANT#<t>` / `TOOLEXEC#<execution id>` (time-ordered: newest last).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Method, Tool, ToolError, by_name};
use crate::ids::{AgentId, ExecutionId, SessionId, TenantId, ToolId};
use crate::secrets::{Secret, SecretBox};
use crate::table::{Condition, Cursor, CursorKey, Index, Item, Key, Query, SortKey, Table, Update};
use crate::tenancy::{Membership, Permission};
use crate::time::now;

/// The header a call's signature is in.
pub const SIGNATURE_HEADER: &str = "X-Oratio-Signature";
pub const EXECUTION_HEADER: &str = "X-Oratio-Execution-Id";
pub const ATTEMPT_HEADER: &str = "X-Oratio-Attempt";
/// The most of a tool's answer the model is given, in bytes of JSON.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;
/// The first retry's wait (each next one twice as long).
pub const TOOL_BACKOFF: Duration = Duration::from_millis(250);
/// The most executions one listing reads.
pub const EXAMINED_PER_PAGE: usize = 250;

/// One request to a tool's endpoint.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct EndpointResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("no answer within the tool's timeout")]
    Timeout,
    /// The SSRF guard: the endpoint resolves to an address tools may not reach.
    #[error("refused: {0}")]
    Refused(String),
    #[error("the endpoint could not be reached: {0}")]
    Unreachable(String),
}

/// Where tool calls go out (HTTPS, behind the SSRF guard).
#[async_trait]
pub trait ToolEndpoint: Send + Sync {
    async fn send(&self, request: EndpointRequest, timeout: Duration) -> Result<EndpointResponse, SendError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Pending,
    Succeeded,
    Failed,
    TimedOut,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
        }
    }
}

/// One try of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// `ok`, `http_error`, `timeout`, `unreachable`, `refused`, `invalid_json`, `invalid_result`,
    /// `result_too_large`.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionError {
    /// `invalid_arguments`, `http_error`, `timeout`, `unreachable`, `refused`,
    /// `invalid_json`, `invalid_result`, `result_too_large`.
    pub code: String,
    pub message: String,
}

/// One call of a tool, as tracked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub execution_id: ExecutionId,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    pub tool_id: ToolId,
    pub tool_name: String,
    pub status: ExecutionStatus,
    pub arguments: Value,
    pub attempts: Vec<Attempt>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    /// The last answer's HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
}

impl Execution {
    /// What the model is given back.
    pub fn for_model(&self) -> Value {
        let mut out =
            json!({"execution_id": self.execution_id, "status": self.status.as_str(), "attempts": self.attempts.len()});
        if let Some(result) = &self.result {
            out["result"] = result.clone();
        }
        if let Some(error) = &self.error {
            out["error"] = json!({"code": error.code, "message": error.message});
        }
        out
    }
}

/// A model's call of a tool, from an agent's turn.
#[derive(Debug, Clone)]
pub struct ToolCallRequest {
    pub tenant: TenantId,
    pub agent: AgentId,
    pub session: Option<SessionId>,
    pub name: String,
    pub arguments: Value,
}

/// Calls tenant tools and keeps their records.
#[derive(Clone)]
pub struct ToolService {
    pub table: Arc<dyn Table>,
    pub secrets: Arc<dyn SecretBox>,
    pub endpoint: Arc<dyn ToolEndpoint>,
    /// The first retry waits this long, each next one twice as long (tests shorten it).
    pub backoff: Duration,
}

fn execution_key(tenant: &TenantId, execution: &ExecutionId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("TOOLEXEC#{execution}"))
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why arguments do not fit a schema, in a few lines a model can act on.
fn schema_errors(schema: &Value, instance: &Value) -> Option<String> {
    let validator = jsonschema::validator_for(schema).ok()?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
        })
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// What one attempt came to.
enum Outcome {
    Done(Value),
    /// Worth another attempt.
    Retry(ExecutionStatus, ExecutionError),
    Final(ExecutionError),
}

fn error(code: &str, message: impl Into<String>) -> ExecutionError {
    ExecutionError { code: code.into(), message: message.into() }
}

fn judge(tool: &Tool, answer: Result<EndpointResponse, SendError>) -> (Option<u16>, Outcome) {
    let response = match answer {
        Ok(response) => response,
        Err(SendError::Timeout) => {
            let message = format!("the tool did not answer within {} ms", tool.timeout_ms);
            return (None, Outcome::Retry(ExecutionStatus::TimedOut, error("timeout", message)));
        }
        Err(SendError::Unreachable(why)) => {
            return (None, Outcome::Retry(ExecutionStatus::Failed, error("unreachable", why)));
        }
        Err(SendError::Refused(why)) => return (None, Outcome::Final(error("refused", why))),
    };
    let status = response.status;
    if status == 429 || status >= 500 {
        return (
            Some(status),
            Outcome::Retry(ExecutionStatus::Failed, error("http_error", format!("the tool answered {status}"))),
        );
    }
    if !(200..300).contains(&status) {
        return (Some(status), Outcome::Final(error("http_error", format!("the tool answered {status}"))));
    }
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return (Some(status), Outcome::Done(Value::Null));
    }
    let Ok(result) = serde_json::from_slice::<Value>(&response.body) else {
        return (Some(status), Outcome::Final(error("invalid_json", "the tool's answer is not JSON")));
    };
    if serde_json::to_vec(&result).map_or(0, |b| b.len()) > MAX_RESULT_BYTES {
        let message = format!("the tool's answer is over {MAX_RESULT_BYTES} bytes");
        return (Some(status), Outcome::Final(error("result_too_large", message)));
    }
    if let Some(problems) = tool.result_schema.as_ref().and_then(|schema| schema_errors(schema, &result)) {
        let message = format!("the tool's answer does not fit its result schema: {problems}");
        return (Some(status), Outcome::Final(error("invalid_result", message)));
    }
    (Some(status), Outcome::Done(result))
}

impl ToolService {
    /// Calls the tool the model named. `Ok(None)`: the agent has no tool of that name.
    pub async fn call(&self, call: ToolCallRequest) -> Result<Option<Execution>, ToolError> {
        let found = by_name(self.table.as_ref(), self.secrets.as_ref(), &call.tenant, &call.name).await?;
        let Some((tool, secret, headers)) = found.filter(|(tool, ..)| tool.serves(&call.agent)) else {
            return Ok(None);
        };
        let started = now();
        let mut execution = Execution {
            execution_id: ExecutionId::generate(),
            tenant_id: call.tenant.clone(),
            agent_id: call.agent.clone(),
            session_id: call.session.clone(),
            tool_id: tool.tool_id.clone(),
            tool_name: tool.name.clone(),
            status: ExecutionStatus::Pending,
            arguments: call.arguments.clone(),
            attempts: Vec::new(),
            started_at: started,
            finished_at: None,
            duration_ms: 0,
            status_code: None,
            result: None,
            error: None,
        };
        let key = execution_key(&call.tenant, &execution.execution_id);
        if let Some(problems) = schema_errors(&tool.input_schema, &call.arguments) {
            execution.status = ExecutionStatus::Failed;
            execution.finished_at = Some(started);
            execution.error =
                Some(error("invalid_arguments", format!("the arguments do not fit the tool's schema: {problems}")));
            self.table.put(self.item(&key, &execution)?, Some(Condition::NotExists)).await?;
            return Ok(Some(execution));
        }
        self.table.put(self.item(&key, &execution)?, Some(Condition::NotExists)).await?;
        let body = serde_json::to_vec(&json!({
            "tool": tool.name,
            "arguments": call.arguments,
            "call": {"execution_id": execution.execution_id, "agent_id": call.agent, "session_id": call.session},
        }))
        .expect("a call serializes");
        let clock = tokio::time::Instant::now();
        let timeout = Duration::from_millis(tool.timeout_ms);
        for attempt in 1..=tool.retries + 1 {
            let mut sent_headers: Vec<(String, String)> = headers.clone().into_iter().collect();
            sent_headers.push(("Content-Type".into(), "application/json".into()));
            sent_headers.push((SIGNATURE_HEADER.into(), signature(&secret, now().timestamp(), &body)));
            sent_headers.push((EXECUTION_HEADER.into(), execution.execution_id.to_string()));
            sent_headers.push((ATTEMPT_HEADER.into(), attempt.to_string()));
            let request = EndpointRequest {
                method: tool.method,
                url: tool.url.clone(),
                headers: sent_headers,
                body: body.clone(),
            };
            let (at, tried) = (now(), tokio::time::Instant::now());
            let answer = self.endpoint.send(request, timeout).await;
            let (status_code, outcome) = judge(&tool, answer);
            let outcome_name = match &outcome {
                Outcome::Done(_) => "ok".to_owned(),
                Outcome::Retry(_, e) | Outcome::Final(e) => e.code.clone(),
            };
            execution.attempts.push(Attempt {
                attempt,
                started_at: at,
                duration_ms: tried.elapsed().as_millis() as u64,
                status_code,
                outcome: outcome_name,
            });
            execution.status_code = status_code;
            match outcome {
                Outcome::Done(result) => {
                    execution.status = ExecutionStatus::Succeeded;
                    execution.result = Some(result);
                    execution.error = None;
                    break;
                }
                Outcome::Final(e) => {
                    execution.status = ExecutionStatus::Failed;
                    execution.error = Some(e);
                    break;
                }
                Outcome::Retry(status, e) => {
                    execution.status = status;
                    execution.error = Some(e);
                    if attempt <= tool.retries {
                        let jitter =
                            Duration::from_millis(rand::random_range(0..=self.backoff.as_millis() as u64 / 4 + 1));
                        tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1) + jitter).await;
                    }
                }
            }
        }
        execution.finished_at = Some(now());
        execution.duration_ms = clock.elapsed().as_millis() as u64;
        let update = Update::new()
            .set("status", execution.status.as_str())
            .set("attempts", serde_json::to_value(&execution.attempts).expect("attempts serialize"))
            .set("finished_at", serde_json::to_value(execution.finished_at).expect("a time"))
            .set("duration_ms", execution.duration_ms as i64)
            .set("status_code", execution.status_code.map_or(Value::Null, |c| json!(c)))
            .set("result", execution.result.clone().unwrap_or(Value::Null))
            .set("error", serde_json::to_value(&execution.error).expect("an error serializes"));
        self.table.update(&key, update, Some(Condition::Exists)).await?;
        tracing::info!(tenant_id = %call.tenant, agent_id = %call.agent, tool = %tool.name,
            execution_id = %execution.execution_id, status = execution.status.as_str(),
            attempts = execution.attempts.len(), duration_ms = execution.duration_ms, "tool call");
        Ok(Some(execution))
    }

    fn item(&self, key: &Key, execution: &Execution) -> Result<Item, ToolError> {
        Ok(Item::from_record(key.clone(), execution)?)
    }
}

/// What the executions are filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFilter {
    pub tool: Option<ToolId>,
    pub agent: Option<AgentId>,
    pub session: Option<SessionId>,
    pub status: Option<ExecutionStatus>,
}

impl ExecutionFilter {
    fn matches(&self, item: &Item) -> bool {
        let is = |name: &str, want: Option<&str>| want.is_none_or(|w| item.str(name) == Some(w));
        is("tool_id", self.tool.as_ref().map(ToolId::as_str))
            && is("agent_id", self.agent.as_ref().map(AgentId::as_str))
            && is("session_id", self.session.as_ref().map(SessionId::as_str))
            && is("status", self.status.map(ExecutionStatus::as_str))
    }
}

/// The tenant's tool executions, newest first: one page of at most `limit`, reading at
/// most [`EXAMINED_PER_PAGE`] records, and a cursor when more may follow.
pub async fn list(
    table: &dyn Table,
    actor: &Membership,
    filter: &ExecutionFilter,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Vec<Execution>, Option<Cursor>), ToolError> {
    actor.require(Permission::Read)?;
    let partition = format!("TENANT#{}", actor.tenant_id);
    let (mut found, mut cursor, mut examined) = (Vec::new(), cursor, 0);
    let page_size = if *filter == ExecutionFilter::default() { limit } else { EXAMINED_PER_PAGE / 2 };
    loop {
        let query = Query::partition(Index::Primary, partition.clone())
            .sort(SortKey::BeginsWith("TOOLEXEC#".into()))
            .descending()
            .limit(page_size)
            .after(cursor);
        let page = table.query(query).await?;
        for item in &page.items {
            examined += 1;
            if filter.matches(item) {
                found.push(item.record::<Execution>()?);
                if found.len() == limit {
                    return Ok((found, Some(Cursor::encode(&CursorKey::of(item, Index::Primary)))));
                }
            }
        }
        match page.next {
            Some(next) if examined < EXAMINED_PER_PAGE => cursor = Some(next),
            next => return Ok((found, next)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_stripe_shaped_hmacs_of_the_time_and_body() {
        let signed = signature(&Secret::new("whsec_test"), 1_700_000_000, br#"{"a":1}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(br#"1700000000.{"a":1}"#);
        assert_eq!(signed, format!("t=1700000000,v1={}", hex::encode(mac.finalize().into_bytes())));
    }

    #[test]
    fn schema_errors_say_where() {
        let schema = json!({"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^[A-Z]-\\d+$"}}, "required": ["order_id"]});
        assert!(schema_errors(&schema, &json!({"order_id": "A-1042"})).is_none());
        let missing = schema_errors(&schema, &json!({})).expect("an error");
        assert!(missing.contains("order_id"), "{missing}");
        let wrong = schema_errors(&schema, &json!({"order_id": 1042})).expect("an error");
        assert!(wrong.starts_with("/order_id"), "{wrong}");
    }
}
