//! AgentCreator's model steps. Each step is one prompt: the system text names the step on
//! its first line (`Task: oratio.creator.<step>`) and says what to produce; the user turn
//! is the step's input as JSON; the answer is one JSON object, parsed into the same types
//! the rules produce and checked before it is used. A real model (Claude through Bedrock,
//! an OpenAI-compatible endpoint) follows the instructions; the deterministic local engine
//! recognises the task line and answers with [`answer_by_rules`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::plan::{Plan, Review, draft_plan, review_completeness, review_safety};
use super::sop::{Requirements, parse_sop};
use crate::llm::{Llm, LlmError, Message, Prompt};

const TASK_LINE: &str = "Task: oratio.creator.";

/// A step AgentCreator asks its model to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Requirements,
    Plan,
    /// Review cycle 1.
    ReviewCompleteness,
    /// Review cycle 2.
    ReviewSafety,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Self::Requirements => "requirements",
            Self::Plan => "plan",
            Self::ReviewCompleteness => "review-completeness",
            Self::ReviewSafety => "review-safety",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Requirements, Self::Plan, Self::ReviewCompleteness, Self::ReviewSafety]
            .into_iter()
            .find(|s| s.name() == name)
    }

    fn instructions(self) -> &'static str {
        match self {
            Self::Requirements => {
                "You turn a business's standard operating procedure (SOP) into the requirements of a customer-facing \
                 AI agent. The input is {\"sop\": text, \"handoff_conditions\": [extra conditions from the business]}. \
                 Answer {\"purpose\": the SOP's subject, \"intents\": [what customers come for], \"steps\": [the \
                 procedure, in order, one instruction each], \"required_data\": [short names of what the agent must \
                 collect], \"handoff_conditions\": [when a person must take over, including every extra condition], \
                 \"tone\": how the agent speaks, \"forbidden\": [what the agent must never do, as written]}. If the \
                 SOP describes no procedure, answer {\"error\": a sentence telling the business what to add}."
            }
            Self::Plan => {
                "You plan the conversation of a customer-facing AI agent from its requirements. The input is \
                 {\"requirements\": ..., \"agent_name\": text, \"greeting\": text or null}. Answer {\"greeting\": the \
                 first thing the agent says (the given greeting if there is one), \"tone\": text, \"flow\": [{\"id\": \
                 \"step-1\", \"instruction\": text, \"collects\": [required data this step collects]}], \"handoff\": \
                 [{\"reason\": the condition, \"triggers\": [short lowercase phrases a customer would say]}], \
                 \"guardrails\": [], \"refusal\": \"\", \"knowledge_policy\": \"\"}."
            }
            Self::ReviewCompleteness => {
                "You review an AI agent's conversation plan for completeness against its requirements. The input is \
                 {\"requirements\": ..., \"plan\": ...}. Every required datum must be collected by a step, collected \
                 details must be confirmed back, every handoff rule needs triggers. Answer {\"review\": {\"cycle\": 1, \
                 \"focus\": \"completeness\", \"findings\": [what was missing], \"changes\": [what you changed]}, \
                 \"plan\": the corrected plan, same shape}."
            }
            Self::ReviewSafety => {
                "You review an AI agent's conversation plan for safety against its requirements. The input is \
                 {\"requirements\": ..., \"plan\": ...}. Every forbidden action must be a guardrail (as written), the \
                 plan needs a refusal that offers a person, a handoff when the customer asks for a person, and a \
                 knowledge policy (answer facts only from the documents and cite them). Answer {\"review\": \
                 {\"cycle\": 2, \"focus\": \"safety\", \"findings\": [...], \"changes\": [...]}, \"plan\": the \
                 corrected plan, same shape}."
            }
        }
    }

    /// The prompt for this step.
    pub fn prompt(self, input: &Value) -> Prompt {
        let system = format!(
            "{TASK_LINE}{}\n\n{}\n\nAnswer with exactly one JSON object and nothing else.",
            self.name(),
            self.instructions()
        );
        let mut prompt = Prompt::new(system, vec![Message::user(input.to_string())]);
        prompt.max_tokens = 4096;
        prompt.temperature = 0.0;
        prompt
    }
}

/// A plan and the review that produced it.
#[derive(Debug, serde::Deserialize)]
pub struct Reviewed {
    pub review: Review,
    pub plan: Plan,
}

/// Why a model step produced nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Model(#[from] LlmError),
    /// The model said the SOP cannot become an agent.
    #[error("{0}")]
    Refusal(String),
    /// The answer was not the requested JSON, even after it was shown its mistake.
    #[error("the model did not return usable {step}: {reason}")]
    Unusable { step: &'static str, reason: String },
}

/// How many answers a step may give before its output counts as unusable.
const ATTEMPTS: usize = 2;

/// Asks the model for one step's artifact; a malformed answer is shown back to the
/// model with what is wrong with it, once.
pub async fn ask<T: DeserializeOwned>(
    model: &dyn Llm,
    step: Step,
    input: &Value,
    check: impl Fn(&T) -> Result<(), String>,
) -> Result<T, StepError> {
    let mut prompt = step.prompt(input);
    let mut reason = String::new();
    for _ in 0..ATTEMPTS {
        let completion = model.complete(&prompt).await?;
        let parsed = json_object(&completion.text).and_then(|value| {
            if let Some(error) = value.get("error").and_then(Value::as_str) {
                return Err(Err(error.to_owned()));
            }
            let artifact: T = serde_json::from_value(value).map_err(|e| Ok(e.to_string()))?;
            check(&artifact).map_err(Ok)?;
            Ok(artifact)
        });
        match parsed {
            Ok(artifact) => return Ok(artifact),
            Err(Err(refusal)) => return Err(StepError::Refusal(refusal)),
            Err(Ok(problem)) => reason = problem,
        }
        prompt.messages.push(Message::assistant(completion.text));
        prompt.messages.push(Message::user(format!(
            "That answer cannot be used: {reason}. Answer again with exactly one JSON object of the requested shape."
        )));
    }
    Err(StepError::Unusable { step: step.name(), reason })
}

/// The JSON object in a model's answer (models like to fence it or add a sentence).
/// `Err(Ok(problem))` when there is none.
fn json_object(text: &str) -> Result<Value, Result<String, String>> {
    let start = text.find('{').ok_or_else(|| Ok("the answer holds no JSON object".to_owned()))?;
    let end = text.rfind('}').filter(|&end| end > start).ok_or_else(|| Ok("the JSON object is cut off".to_owned()))?;
    match serde_json::from_str::<Value>(&text[start..=end]) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(Ok("the answer is not a JSON object".into())),
        Err(e) => Err(Ok(format!("the JSON does not parse ({e})"))),
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("artifacts serialize")
}

/// The deterministic engine's answer to a creator step: the rules of [`super`]. `None`
/// when the prompt is not a creator step.
pub fn answer_by_rules(prompt: &Prompt) -> Option<String> {
    let step = prompt.system.lines().next()?.strip_prefix(TASK_LINE).and_then(Step::parse)?;
    let input: Value = prompt.messages.first().and_then(|m| serde_json::from_str(&m.text()).ok())?;
    fn field<T: DeserializeOwned>(input: &Value, name: &str) -> Option<T> {
        serde_json::from_value(input[name].clone()).ok()
    }
    let answer = match step {
        Step::Requirements => {
            let sop = input["sop"].as_str().unwrap_or_default();
            let extra: Vec<String> = field(&input, "handoff_conditions").unwrap_or_default();
            match parse_sop(sop, &extra) {
                Ok(requirements) => to_json(&requirements),
                Err(invalid) => json!({"error": invalid.0}),
            }
        }
        Step::Plan => {
            let requirements: Requirements = field(&input, "requirements")?;
            to_json(&draft_plan(&requirements, input["agent_name"].as_str()?, input["greeting"].as_str()))
        }
        Step::ReviewCompleteness | Step::ReviewSafety => {
            let requirements: Requirements = field(&input, "requirements")?;
            let plan: Plan = field(&input, "plan")?;
            let review = if step == Step::ReviewCompleteness { review_completeness } else { review_safety };
            let (review, plan) = review(&requirements, plan);
            json!({"review": review, "plan": plan})
        }
    };
    Some(answer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_in_fenced_and_chatty_answers() {
        assert_eq!(json_object("```json\n{\"a\": 1}\n```").unwrap(), json!({"a": 1}));
        assert_eq!(json_object("Here it is: {\"a\": {\"b\": 2}} Hope that helps.").unwrap(), json!({"a": {"b": 2}}));
        assert!(json_object("no json").is_err());
        assert!(json_object("{\"a\": ").is_err());
    }

    #[test]
    fn the_rules_answer_only_creator_steps() {
        let input =
            json!({"sop": "Desk\n1. Greet the caller and ask how you can help them today.", "handoff_conditions": []});
        let answer = answer_by_rules(&Step::Requirements.prompt(&input)).expect("a creator step");
        let requirements: Requirements = serde_json::from_str(&answer).expect("requirements");
        assert_eq!(requirements.steps, ["Greet the caller and ask how you can help them today"]);
        assert!(answer_by_rules(&Prompt::new("You are a helpful agent.", vec![Message::user("hi")])).is_none());
    }
}
