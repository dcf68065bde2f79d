//! AgentCreator: an SOP becomes structured requirements, the requirements a plan, the plan
//! is reviewed in two cycles (completeness, then safety), each review recording what it
//! found and what it changed, and the plan becomes reviewed Python code. Each of the first
//! four steps is a model prompt ([`model`]); the rules in this module are what the
//! deterministic local engine answers them with, and what a model's answer is checked
//! against in shape.

pub mod model;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::llm::{Llm, LlmError};
use model::{Reviewed, Step, StepError, ask};

/// What the SOP asks of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirements {
    /// What the SOP is for (its first line).
    pub purpose: String,
    /// What customers come for.
    pub intents: Vec<String>,
    /// The procedure, in order.
    pub steps: Vec<String>,
    /// What the agent must collect from the customer.
    pub required_data: Vec<String>,
    /// When a person must take over.
    pub handoff_conditions: Vec<String>,
    pub tone: String,
    /// What the agent must never do.
    pub forbidden: Vec<String>,
}

/// Why an SOP cannot become an agent; for the tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSop(pub String);

const BULLETS: &[&str] = &["-", "*", "•"];

/// A numbered or bulleted line's text.
fn step_text(line: &str) -> Option<&str> {
    let line = line.trim();
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 {
        let rest = &line[digits..];
        return rest.strip_prefix('.').or_else(|| rest.strip_prefix(')')).map(str::trim).filter(|s| !s.is_empty());
    }
    BULLETS.iter().find_map(|b| line.strip_prefix(b)).map(str::trim).filter(|s| !s.is_empty())
}

fn sentences(text: &str) -> Vec<String> {
    text.split(['.', '!', '?', '\n']).map(str::trim).filter(|s| s.len() > 2).map(str::to_owned).collect()
}

fn contains_any(text: &str, words: &[&str]) -> bool {
    let lower = text.to_lowercase();
    words.iter().any(|w| lower.contains(w))
}

/// Splits "a, b and c" / "a or b" into its items.
fn items(list: &str) -> Vec<String> {
    list.split([',', ';'])
        .flat_map(|part| part.split(" and ").flat_map(|p| p.split(" or ")))
        .map(|item| {
            item.trim()
                .trim_start_matches("their ")
                .trim_start_matches("the ")
                .trim_start_matches("a ")
                .trim()
                .to_owned()
        })
        .filter(|item| !item.is_empty() && item.len() <= 60)
        .collect()
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.iter().any(|existing| existing.eq_ignore_ascii_case(&item)) {
        list.push(item);
    }
}

const FORBIDDEN_MARKERS: &[&str] =
    &["never ", "do not ", "don't ", "must not ", "not allowed", "under no circumstances"];
const HANDOFF_MARKERS: &[&str] =
    &["escalate", "transfer", "hand off", "hand over", "handoff", "a human", "a person", "a manager", "staff member"];
const COLLECT_MARKERS: &[&str] = &["collect ", "ask for ", "take down ", "record ", "get their "];

/// Reads an SOP (and the tenant's explicit handoff conditions) into requirements.
pub fn parse_sop(sop: &str, extra_handoff_conditions: &[String]) -> Result<Requirements, InvalidSop> {
    let text = sop.trim();
    if text.chars().count() < 40 {
        return Err(InvalidSop("the SOP is too short to describe a procedure: write at least a few steps".into()));
    }
    let purpose = text.lines().next().unwrap_or_default().trim().trim_start_matches('#').trim().to_owned();
    let steps: Vec<String> = text.lines().filter_map(step_text).map(str::to_owned).collect();
    if steps.is_empty() {
        return Err(InvalidSop("the SOP has no steps: list the procedure as numbered or bulleted lines".into()));
    }
    let mut tone = "friendly and professional".to_owned();
    let mut forbidden = Vec::new();
    let mut handoff_conditions = Vec::new();
    let mut required_data = Vec::new();
    let mut intents = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Tone:").or_else(|| line.trim().strip_prefix("tone:")) {
            tone = rest.trim().trim_end_matches('.').to_owned();
        }
    }
    for sentence in sentences(text) {
        let lower = sentence.to_lowercase();
        if contains_any(&sentence, FORBIDDEN_MARKERS) {
            push_unique(&mut forbidden, sentence.clone());
            continue;
        }
        if contains_any(&sentence, HANDOFF_MARKERS) {
            let condition = ["if ", "when "]
                .iter()
                .find_map(|m| lower.find(m).map(|at| sentence[at + m.len()..].to_owned()))
                .unwrap_or_else(|| sentence.clone());
            push_unique(&mut handoff_conditions, condition);
        }
        for marker in COLLECT_MARKERS {
            if let Some(at) = lower.find(marker) {
                for item in items(&sentence[at + marker.len()..]) {
                    push_unique(&mut required_data, item);
                }
            }
        }
        for marker in ["want to ", "wants to ", "would like to ", "needs to "] {
            if let Some(at) = lower.find(marker) {
                let rest = &sentence[at + marker.len()..];
                let intent = rest.split([',', ';']).next().unwrap_or(rest).trim().to_owned();
                if !intent.is_empty() {
                    push_unique(&mut intents, intent);
                }
            }
        }
    }
    for condition in extra_handoff_conditions.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        push_unique(&mut handoff_conditions, condition.to_owned());
    }
    push_unique(&mut intents, "ask a question the documents answer".into());
    Ok(Requirements { purpose, intents, steps, required_data, handoff_conditions, tone, forbidden })
}

/// One step of the conversation the agent leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub id: String,
    pub instruction: String,
    /// The data this step collects.
    pub collects: Vec<String>,
}

/// When to hand over: any of `triggers` in the customer's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffRule {
    pub reason: String,
    pub triggers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub greeting: String,
    pub tone: String,
    pub flow: Vec<PlanStep>,
    pub handoff: Vec<HandoffRule>,
    /// Things the agent refuses, as written in the SOP.
    pub guardrails: Vec<String>,
    pub refusal: String,
    pub knowledge_policy: String,
}

/// What one review cycle found and changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub cycle: u32,
    pub focus: String,
    pub findings: Vec<String>,
    pub changes: Vec<String>,
}

/// The trigger phrases of a handoff condition ("severe pain, bleeding or asks for a manager").
fn triggers(condition: &str) -> Vec<String> {
    items(&condition.to_lowercase())
        .into_iter()
        .map(|t| {
            let t = ["the customer ", "the caller ", "they ", "customer ", "caller "]
                .iter()
                .fold(t, |t, p| t.trim_start_matches(p).to_owned());
            let t =
                ["reports ", "mentions ", "has ", "says ", "asks for ", "asks about ", "wants ", "requests ", "needs "]
                    .iter()
                    .fold(t, |t, p| t.trim_start_matches(p).to_owned());
            ["a ", "an ", "the "].iter().fold(t, |t, p| t.trim_start_matches(p).to_owned())
        })
        .filter(|t| t.len() >= 3)
        .collect()
}

pub fn draft_plan(requirements: &Requirements, agent_name: &str, greeting: Option<&str>) -> Plan {
    let flow = requirements
        .steps
        .iter()
        .enumerate()
        .map(|(i, instruction)| PlanStep {
            id: format!("step-{}", i + 1),
            instruction: instruction.clone(),
            collects: requirements
                .required_data
                .iter()
                .filter(|d| instruction.to_lowercase().contains(&d.to_lowercase()))
                .cloned()
                .collect(),
        })
        .collect();
    Plan {
        greeting: greeting
            .map(str::to_owned)
            .unwrap_or_else(|| format!("Hello! You're speaking with {agent_name}. How can I help you today?")),
        tone: requirements.tone.clone(),
        flow,
        handoff: requirements
            .handoff_conditions
            .iter()
            .map(|c| HandoffRule { reason: c.clone(), triggers: triggers(c) })
            .collect(),
        guardrails: Vec::new(),
        refusal: String::new(),
        knowledge_policy: String::new(),
    }
}

/// Review cycle 1: does the plan do everything the SOP asks?
pub fn review_completeness(requirements: &Requirements, mut plan: Plan) -> (Review, Plan) {
    let mut findings = Vec::new();
    let mut changes = Vec::new();
    for data in &requirements.required_data {
        if !plan.flow.iter().any(|s| s.collects.contains(data)) {
            findings.push(format!("no step collects {data}"));
            let step = PlanStep {
                id: format!("step-{}", plan.flow.len() + 1),
                instruction: format!("Ask for the customer's {data}."),
                collects: vec![data.clone()],
            };
            changes.push(format!("added {}: {}", step.id, step.instruction));
            plan.flow.push(step);
        }
    }
    let collects_anything = plan.flow.iter().any(|s| !s.collects.is_empty());
    let confirms = plan.flow.iter().any(|s| contains_any(&s.instruction, &["confirm", "repeat back", "read back"]));
    if collects_anything && !confirms {
        findings.push("collected details are never confirmed back".into());
        let step = PlanStep {
            id: format!("step-{}", plan.flow.len() + 1),
            instruction: "Confirm the collected details back to the customer.".into(),
            collects: vec![],
        };
        changes.push(format!("added {}: {}", step.id, step.instruction));
        plan.flow.push(step);
    }
    for rule in plan.handoff.iter_mut().filter(|r| r.triggers.is_empty()) {
        findings.push(format!("the handoff condition \"{}\" has no phrase to recognise", rule.reason));
        rule.triggers = vec![rule.reason.to_lowercase()];
        changes.push(format!("the whole condition \"{}\" became its trigger", rule.reason));
    }
    (Review { cycle: 1, focus: "completeness".into(), findings, changes }, plan)
}

/// Review cycle 2: is the plan safe?
pub fn review_safety(requirements: &Requirements, mut plan: Plan) -> (Review, Plan) {
    let mut findings = Vec::new();
    let mut changes = Vec::new();
    for rule in &requirements.forbidden {
        if !plan.guardrails.contains(rule) {
            findings.push(format!("the plan does not enforce: {rule}"));
            plan.guardrails.push(rule.clone());
            changes.push(format!("added the guardrail: {rule}"));
        }
    }
    if plan.refusal.is_empty() {
        findings.push("there is no answer for requests the agent must refuse".into());
        plan.refusal =
            "I'm sorry, I can't help with that. I can connect you with a member of our team if you'd like.".into();
        changes.push("added a refusal that offers a person".into());
    }
    let asks_for_person = ["speak to a human", "talk to a person", "real person", "speak to someone"];
    if !plan.handoff.iter().any(|r| r.triggers.iter().any(|t| asks_for_person.contains(&t.as_str()))) {
        findings.push("a customer who asks for a person cannot get one".into());
        plan.handoff.push(HandoffRule {
            reason: "the customer asked for a person".into(),
            triggers: asks_for_person.iter().map(|t| (*t).to_owned()).collect(),
        });
        changes.push("added a handoff when the customer asks for a person".into());
    }
    if plan.knowledge_policy.is_empty() {
        findings.push("the plan does not say how to use the documents".into());
        plan.knowledge_policy =
            "Answer factual questions only from the documents, cite the document, and say so when they do not answer."
                .into();
        changes.push("added the knowledge policy: answer from the documents and cite them".into());
    }
    (Review { cycle: 2, focus: "safety".into(), findings, changes }, plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOP: &str = "Front desk procedure for Bright Smile Dental
Tone: warm, professional and concise.

1. Greet the caller and ask how you can help.
2. If they want to book an appointment, collect their full name, phone number and preferred date.
3. Check the opening hours in the FAQ before offering a time.
4. Confirm the booking details back to the caller.

Escalate to a human if the caller reports severe pain, bleeding or swelling.
Never give a medical diagnosis. Do not share other patients' information.
";

    #[test]
    fn an_sop_becomes_requirements() {
        let r = parse_sop(SOP, &["the caller asks for a refund".into()]).unwrap();
        assert_eq!(r.purpose, "Front desk procedure for Bright Smile Dental");
        assert_eq!(r.steps.len(), 4);
        assert_eq!(r.tone, "warm, professional and concise");
        assert_eq!(r.required_data, ["full name", "phone number", "preferred date"]);
        assert_eq!(
            r.handoff_conditions,
            ["the caller reports severe pain, bleeding or swelling", "the caller asks for a refund"]
        );
        assert_eq!(r.forbidden, ["Never give a medical diagnosis", "Do not share other patients' information"]);
        assert!(r.intents.contains(&"book an appointment".to_owned()));
    }

    #[test]
    fn sops_without_a_procedure_are_refused_with_a_reason() {
        assert!(parse_sop("Be nice.", &[]).unwrap_err().0.contains("too short"));
        let prose = "We are a dental clinic in the city centre and we like to be helpful to everyone who calls us.";
        assert!(parse_sop(prose, &[]).unwrap_err().0.contains("no steps"));
    }

    #[test]
    fn reviews_complete_the_plan_and_record_what_they_changed() {
        let r = parse_sop(SOP, &[]).unwrap();
        let plan = draft_plan(&r, "Front desk", None);
        assert_eq!(plan.flow[1].collects, ["full name", "phone number", "preferred date"]);
        assert_eq!(plan.handoff[0].triggers, ["severe pain", "bleeding", "swelling"]);
        let (first, plan) = review_completeness(&r, plan);
        assert_eq!(first.cycle, 1);
        assert!(first.changes.is_empty(), "the SOP already confirms and collects everything: {first:?}");
        let (second, plan) = review_safety(&r, plan);
        assert_eq!(plan.guardrails, r.forbidden);
        assert!(second.changes.len() >= 3 && second.findings.len() == second.changes.len());
        assert!(plan.handoff.iter().any(|h| h.triggers.contains(&"speak to a human".to_owned())));
        // A second pass finds nothing more to change.
        let (again, _) = review_safety(&r, plan);
        assert!(again.changes.is_empty());
    }

    #[test]
    fn completeness_review_adds_missing_collection_and_confirmation() {
        let sop = "Billing line\n1. Greet the customer.\n2. Answer questions about invoices.\nAlways collect the invoice number.\n";
        let r = parse_sop(sop, &[]).unwrap();
        let (review, plan) = review_completeness(&r, draft_plan(&r, "Billing", Some("Hi!")));
        assert_eq!(review.findings, ["no step collects invoice number", "collected details are never confirmed back"]);
        assert_eq!(plan.flow.len(), 4);
        assert_eq!(plan.greeting, "Hi!");
    }
}

/// Words too common in guardrails to recognise a forbidden request by.
const GENERIC: &[&str] = &[
    "information",
    "customer",
    "customers",
    "caller",
    "callers",
    "patient",
    "patients",
    "people",
    "other",
    "anyone",
    "someone",
    "things",
    "details",
    "never",
    "under",
    "circumstances",
];

/// The stems that recognise a request a guardrail forbids ("Never give a medical
/// diagnosis" → `medica`, `diagno`).
pub fn guardrail_stems(guardrail: &str) -> Vec<String> {
    guardrail
        .to_lowercase()
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.len() >= 6 && !GENERIC.contains(w))
        .map(|w| w.chars().take(6).collect())
        .collect()
}

const TEMPLATE: &str = include_str!("creator_template.py");
const SMOKE_TEMPLATE: &str = include_str!("creator_smoke.py");

/// The agent's code: `agent.py` (the plan as data, and the logic that follows it) and
/// `smoke_test.py` (a conversation the code review runs against it).
pub fn generate_code(plan: &Plan, agent_name: &str, version: &str) -> crate::runtime::AgentCode {
    let guardrails: Vec<serde_json::Value> =
        plan.guardrails.iter().map(|g| serde_json::json!({"rule": g, "stems": guardrail_stems(g)})).collect();
    let mut data = serde_json::to_value(plan).expect("a plan serializes");
    data["guardrails"] = serde_json::Value::Array(guardrails);
    data["agent_name"] = agent_name.into();
    let plan_json = serde_json::to_string_pretty(&data).expect("a plan serializes");
    // The plan goes in a raw string; a `"""` inside it would end the string early.
    let plan_json = plan_json.replace("\"\"\"", "\\u0022\\u0022\\u0022");
    let agent =
        TEMPLATE.replace("__AGENT_NAME__", &agent_name.replace(['\n', '"'], " ")).replace("__PLAN_JSON__", &plan_json);
    crate::runtime::AgentCode {
        version: version.into(),
        entrypoint: "agent.py".into(),
        files: [("agent.py".to_owned(), agent), ("smoke_test.py".to_owned(), SMOKE_TEMPLATE.to_owned())].into(),
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
/// check, the generated smoke conversation).
#[async_trait::async_trait]
pub trait CodeChecker: Send + Sync {
    async fn check(&self, code: &crate::runtime::AgentCode) -> Result<CodeReport, anyhow::Error>;
}

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
        let report = checker.check(&creation.code).await.map_err(CreatorError::Checker)?;
        let passed = report.passed();
        creation.code_reviews.push(report);
        if passed {
            return Ok(creation);
        }
    }
    let findings = creation.code_reviews.last().map(|r| r.findings.clone()).unwrap_or_default();
    Err(CreatorError::CodeRejected { findings, creation: Box::new(creation) })
}
