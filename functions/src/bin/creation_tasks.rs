//! Lambda: every task of the agent-creation state machine. Each `Task` state passes its
//! name as `task`; a failure is reported with the error name the definition's `Retry` and
//! `Catch` match.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use oratio_core::creation::CreationTasks;
use oratio_functions::{aws, logging};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = aws::config().await;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let tasks = Arc::new(CreationTasks {
        table: aws::table(&config)?,
        blobs: aws::blobs(&config)?,
        knowledge: aws::knowledge(&config)?,
        llm: aws::llm(&config)?,
        checker: Arc::new(oratio_local::checker::PythonChecker::new(&python)),
        runtime: aws::runtime(&config)?,
        push: aws::push(&config)?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let tasks = tasks.clone();
        async move {
            tasks
                .handle(event.payload)
                .await
                .map_err(|failure| Diagnostic { error_type: failure.error, error_message: failure.cause })
        }
    }))
    .await
}
