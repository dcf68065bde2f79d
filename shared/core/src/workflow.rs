//! The `Workflow` port: starts a named execution of a state machine (Step Functions in
//! AWS, the embedded ASL runner on one machine; both run `statemachines/*.asl.json`).

use async_trait::async_trait;
use serde_json::Value;

/// A task's failure, as Step Functions names it: `error` is what `Retry` and `Catch`
/// match (`Retryable`, `InvalidSop`, ...), `cause` is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self { error: error.into(), cause: cause.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("no state machine named {0}")]
    UnknownMachine(String),
    #[error("an execution named {0} already exists")]
    ExecutionExists(String),
    #[error("the workflow engine is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the workflow engine failed")]
    Backend(#[source] anyhow::Error),
}

#[async_trait]
pub trait Workflow: Send + Sync {
    /// Starts `machine` on `input` as the execution `name` (unique per machine; a name
    /// already used is refused, which makes starts idempotent).
    async fn start(&self, machine: &str, name: &str, input: Value) -> Result<(), WorkflowError>;
}

/// How a workflow engine calls the code of a `Task` state (Lambda in AWS, a function of
/// this process on one machine), by the `Resource` the definition names.
#[async_trait]
pub trait TaskInvoker: Send + Sync {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, TaskFailure>;
}
