//! The agent's code, rendered from the reviewed plan (`agent.py`: the plan as data and the
//! tool-using loop that follows it), the smoke conversation the code review runs against
//! it (`smoke_test.py`), and the review's report.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::plan::{Plan, forbidden_request};
use crate::details::DetailKind;
use crate::runtime::{AgentCode, AgentRef};

const AGENT_TEMPLATE: &str = include_str!("agent_template.py");
const SMOKE_TEMPLATE: &str = include_str!("smoke_template.py");

/// How many of a handoff rule's examples the smoke conversation tries.
const EXAMPLES_PER_RULE: usize = 3;

/// One exchange of the smoke conversation: what the customer says, what must happen, and
/// the SOP clause it checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeCase {
    pub say: String,
    /// `greeting`, `handoff`, `refusal`, `details`, `answer`.
    pub expect: String,
    pub clause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub values: std::collections::BTreeMap<String, String>,
}

fn case(say: impl Into<String>, expect: &str, clause: impl Into<String>) -> SmokeCase {
    SmokeCase {
        say: say.into(),
        expect: expect.into(),
        clause: clause.into(),
        greeting: None,
        values: Default::default(),
    }
}

/// The smoke conversation for a plan: the greeting; what a customer says in each handoff
/// situation (the rule's examples, in the customer's words); a request each guardrail
/// forbids; every step's details given in one sentence, which must be saved and read back;
/// and a question.
pub fn smoke_cases(plan: &Plan) -> Vec<SmokeCase> {
    let mut cases = vec![SmokeCase { greeting: Some(plan.greeting.clone()), ..case("", "greeting", "the greeting") }];
    for rule in &plan.handoff {
        for example in rule.triggers.iter().take(EXAMPLES_PER_RULE) {
            cases.push(case(example.clone(), "handoff", rule.reason.clone()));
        }
    }
    for guardrail in &plan.guardrails {
        cases.push(case(forbidden_request(guardrail), "refusal", guardrail.clone()));
    }
    for step in plan.flow.iter().filter(|s| !s.collects.is_empty()) {
        let values: std::collections::BTreeMap<String, String> =
            step.collects.iter().map(|d| (d.clone(), DetailKind::of(d).sample().to_owned())).collect();
        let parts: Vec<String> = step.collects.iter().map(|d| format!("my {d} is {}", values[d])).collect();
        let said = match parts.as_slice() {
            [one] => format!("Hi, {one}."),
            [rest @ .., last] => format!("Hi, {} and {last}.", rest.join(", ")),
            [] => continue,
        };
        cases.push(SmokeCase { values, ..case(said, "details", step.instruction.clone()) });
    }
    cases.push(case("What can you tell me about what you offer?", "answer", plan.knowledge_policy.clone()));
    cases
}

/// The agent's code: `agent.py` and `smoke_test.py`.
pub fn generate_code(plan: &Plan, agent_name: &str, version: &str) -> AgentCode {
    let mut data = serde_json::to_value(plan).expect("a plan serializes");
    data["agent_name"] = agent_name.into();
    // Each goes in a raw string; a `"""` inside would end it early.
    let raw = |value: &serde_json::Value| {
        serde_json::to_string_pretty(value).expect("JSON serializes").replace("\"\"\"", "\\u0022\\u0022\\u0022")
    };
    let agent = AGENT_TEMPLATE
        .replace("__AGENT_NAME__", &agent_name.replace(['\n', '"'], " "))
        .replace("__PLAN_JSON__", &raw(&data));
    let smoke = SMOKE_TEMPLATE.replace("__CASES_JSON__", &raw(&json!(smoke_cases(plan))));
    AgentCode {
        version: version.into(),
        entrypoint: "agent.py".into(),
        files: [("agent.py".to_owned(), agent), ("smoke_test.py".to_owned(), smoke)].into(),
    }
}

/// What the code review found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeReport {
    pub compiles: bool,
    /// Modules `agent.py` imports outside the standard library and `oratio_agent`.
    pub disallowed_imports: Vec<String>,
    /// `handle` is defined and `oratio_agent.serve(handle)` runs under `__main__`.
    pub has_entrypoint: bool,
    pub smoke_passed: bool,
    /// Everything that failed, for a tenant (and for the next generation attempt).
    pub findings: Vec<String>,
}

impl CodeReport {
    pub fn passed(&self) -> bool {
        self.compiles && self.disallowed_imports.is_empty() && self.has_entrypoint && self.smoke_passed
    }
}

/// Reviews generated code by running the tools on it (Python's compiler, an import
/// check, the generated smoke conversation against the platform's model and the agent's
/// own knowledge).
#[async_trait::async_trait]
pub trait CodeChecker: Send + Sync {
    async fn check(&self, agent: &AgentRef, code: &AgentCode) -> Result<CodeReport, anyhow::Error>;
}

#[cfg(test)]
mod tests {
    use super::super::plan::{HandoffRule, PlanStep};
    use super::*;

    #[test]
    fn the_smoke_conversation_covers_every_rule_guardrail_and_detail() {
        let plan = Plan {
            greeting: "Hi!".into(),
            tone: "warm".into(),
            flow: vec![PlanStep {
                id: "step-1".into(),
                instruction: "Collect their name and phone number".into(),
                collects: vec!["name".into(), "phone number".into()],
                when: None,
            }],
            handoff: vec![HandoffRule {
                reason: "the caller reports pain".into(),
                triggers: vec!["I have pain".into()],
            }],
            guardrails: vec!["Never give a diagnosis".into()],
            refusal: "No.".into(),
            knowledge_policy: "Answer from the documents.".into(),
            purpose: "Clinic".into(),
        };
        let cases = smoke_cases(&plan);
        let expects: Vec<&str> = cases.iter().map(|c| c.expect.as_str()).collect();
        assert_eq!(expects, ["greeting", "handoff", "refusal", "details", "answer"]);
        assert_eq!(cases[2].say, "Could you give me a diagnosis?");
        assert_eq!(cases[3].say, "Hi, my name is Maria Gonzalez and my phone number is 07700 900123.");
        let code = generate_code(&plan, "Desk", "v1");
        assert!(code.files["smoke_test.py"].contains("I have pain"));
        assert!(code.files["agent.py"].contains("\"agent_name\": \"Desk\""));
    }
}
