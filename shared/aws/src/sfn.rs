//! `Workflow` on Step Functions: `StartExecution` of a state machine by name.

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::DisplayErrorContext;
use oratio_core::workflow::{Workflow, WorkflowError};
use serde_json::Value;

/// Starts executions of the state machines it knows by name (machine name → ARN).
#[derive(Clone)]
pub struct StepFunctionsWorkflow {
    client: Client,
    machines: Vec<(String, String)>,
}

impl StepFunctionsWorkflow {
    pub fn new(client: Client, machines: Vec<(String, String)>) -> Self {
        Self { client, machines }
    }
}

#[async_trait]
impl Workflow for StepFunctionsWorkflow {
    async fn start(&self, machine: &str, name: &str, input: Value) -> Result<(), WorkflowError> {
        let arn = self
            .machines
            .iter()
            .find(|(n, _)| n == machine)
            .map(|(_, arn)| arn.clone())
            .ok_or_else(|| WorkflowError::UnknownMachine(machine.into()))?;
        let started =
            self.client.start_execution().state_machine_arn(arn).name(name).input(input.to_string()).send().await;
        match started {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => {
                Err(WorkflowError::ExecutionExists(name.into()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_state_machine_does_not_exist()) => {
                Err(WorkflowError::UnknownMachine(machine.into()))
            }
            Err(e) => Err(WorkflowError::Unavailable(anyhow!("{}", DisplayErrorContext(e)))),
        }
    }
}
