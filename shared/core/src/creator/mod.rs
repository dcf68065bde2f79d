//! AgentCreator: an SOP becomes structured requirements ([`sop`]), the requirements a plan
//! ([`plan`]), the plan is reviewed in two cycles (completeness, then safety), each review
//! recording what it found and what it changed, and the plan becomes reviewed Python code
//! ([`code`]). Each of the first four steps is a model prompt ([`model`]); the rules of
//! [`sop`] and [`plan`] are what the deterministic local engine answers them with, and what
//! a model's answer is checked against in shape.

pub mod code;
pub mod model;
pub mod plan;
pub mod sop;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::llm::{Llm, LlmError};
use crate::runtime::AgentRef;
pub use code::{CodeChecker, CodeReport, generate_code};
use model::{Reviewed, Step, StepError, ask};
pub use plan::{HandoffRule, Plan, PlanStep, Review};
pub use sop::{InvalidSop, Requirements, parse_sop};

/// How many times code is generated and reviewed before the agent fails.
pub const MAX_CODE_ATTEMPTS: usize = 3;

/// Everything AgentCreator produced, in the order it produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creation {
    /// The model that wrote the requirements, plan and reviews.
    pub model: String,
    pub requirements: Requirements,
    pub draft: Plan,
    pub reviews: Vec<Review>,
    pub plan: Plan,
    pub code: crate::runtime::AgentCode,
    pub code_reviews: Vec<CodeReport>,
}

impl Creation {
    /// The artifacts to keep beside the code, by file name.
    pub fn artifacts(&self) -> Vec<(String, serde_json::Value)> {
        fn json<T: Serialize>(value: &T) -> serde_json::Value {
            serde_json::to_value(value).expect("artifacts serialize")
        }
        let mut out = vec![
            ("model.json".to_owned(), serde_json::json!({"model": self.model})),
            ("requirements.json".to_owned(), json(&self.requirements)),
            ("plan-draft.json".to_owned(), json(&self.draft)),
        ];
        out.extend(self.reviews.iter().map(|r| (format!("plan-review-{}.json", r.cycle), json(r))));
        out.push(("plan.json".to_owned(), json(&self.plan)));
        out.extend(self.code_reviews.iter().enumerate().map(|(i, r)| (format!("code-review-{}.json", i + 1), json(r))));
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreatorError {
    #[error(transparent)]
    InvalidSop(#[from] InvalidSop),
    /// The model could not be reached or refused the request.
    #[error(transparent)]
    Model(LlmError),
    /// The model's answers for a step were not usable.
    #[error("{0}")]
    ModelOutput(String),
    /// The generated code failed its review every time; the findings say why.
    #[error("the generated agent did not pass its review: {}", .findings.join("; "))]
    CodeRejected { findings: Vec<String>, creation: Box<Creation> },
    #[error("the code review could not run")]
    Checker(#[source] anyhow::Error),
}

impl From<StepError> for CreatorError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::Model(e) => Self::Model(e),
            StepError::Refusal(reason) => Self::InvalidSop(InvalidSop(reason)),
            e @ StepError::Unusable { .. } => Self::ModelOutput(format!("AgentCreator's model failed: {e}")),
        }
    }
}

/// What AgentCreator is given.
#[derive(Debug, Clone)]
pub struct CreatorInput<'a> {
    /// The agent being created (the code review runs its smoke conversation as this agent).
    pub agent: &'a AgentRef,
    pub agent_name: &'a str,
    pub sop: &'a str,
    pub handoff_conditions: &'a [String],
    pub greeting: Option<&'a str>,
    pub version: &'a str,
}

fn has_steps(r: &Requirements) -> Result<(), String> {
    if r.steps.iter().all(|s| s.trim().is_empty()) { Err("the requirements list no steps".into()) } else { Ok(()) }
}

fn has_flow(plan: &Plan) -> Result<(), String> {
    if plan.flow.is_empty() { Err("the plan has no conversation steps".into()) } else { Ok(()) }
}

/// Runs AgentCreator: requirements, plan and two reviews from `model`, then code
/// generation and review, retried up to [`MAX_CODE_ATTEMPTS`] times.
pub async fn create(
    input: CreatorInput<'_>,
    model: &dyn Llm,
    checker: &dyn CodeChecker,
) -> Result<Creation, CreatorError> {
    let requirements: Requirements = ask(
        model,
        Step::Requirements,
        &json!({"sop": input.sop, "handoff_conditions": input.handoff_conditions}),
        has_steps,
    )
    .await?;
    let draft: Plan = ask(
        model,
        Step::Plan,
        &json!({"requirements": requirements, "agent_name": input.agent_name, "greeting": input.greeting}),
        has_flow,
    )
    .await?;
    let mut plan = draft.clone();
    let mut reviews = Vec::new();
    for (cycle, step) in [(1, Step::ReviewCompleteness), (2, Step::ReviewSafety)] {
        let reviewed: Reviewed =
            ask(model, step, &json!({"requirements": requirements, "plan": plan}), |r: &Reviewed| has_flow(&r.plan))
                .await?;
        plan = reviewed.plan;
        reviews.push(Review { cycle, ..reviewed.review });
    }
    let mut creation = Creation {
        model: model.model().to_owned(),
        requirements,
        draft,
        reviews,
        code: generate_code(&plan, input.agent_name, input.version),
        plan,
        code_reviews: Vec::new(),
    };
    for attempt in 1..=MAX_CODE_ATTEMPTS {
        if attempt > 1 {
            // The code is rendered from the plan by a template, so a retry renders it
            // again: what it can fix is a transient failure of the smoke conversation.
            creation.code = generate_code(&creation.plan, input.agent_name, input.version);
        }
        let report = checker.check(input.agent, &creation.code).await.map_err(CreatorError::Checker)?;
        let passed = report.passed();
        creation.code_reviews.push(report);
        if passed {
            return Ok(creation);
        }
    }
    let findings = creation.code_reviews.last().map(|r| r.findings.clone()).unwrap_or_default();
    Err(CreatorError::CodeRejected { findings, creation: Box::new(creation) })
}
