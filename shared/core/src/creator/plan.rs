//! The agent's plan (greeting, tone, the procedure with what each step collects, handoff
//! rules with what a customer might say, guardrails, a refusal, a knowledge policy), the
//! rules that draft it from requirements, and the two review cycles that complete it.

use serde::{Deserialize, Serialize};

use super::sop::{Requirements, collection_topic, items};
use crate::language::{lower_first, upper_first, words};

/// One step of the conversation the agent leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub id: String,
    pub instruction: String,
    /// The data this step collects.
    pub collects: Vec<String>,
    /// What the customer wants when this step applies ("to book an appointment", "a
    /// table"), if the SOP says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// When to hand over: the condition, and things a customer in that situation might say.
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
    /// What the business is and what the agent is for.
    #[serde(default)]
    pub purpose: String,
}

/// What one review cycle found and changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub cycle: u32,
    pub focus: String,
    pub findings: Vec<String>,
    pub changes: Vec<String>,
}

/// Who a condition is about, at its start ("the caller reports …").
#[rustfmt::skip]
const SUBJECTS: &[&str] = &[
    "the caller", "the customer", "the patient", "the client", "the guest", "the user", "the person", "the tenant",
    "the member", "the owner", "the pet owner", "the driver", "the parent", "the student", "the buyer",
    "the passenger", "the resident", "a caller", "a customer", "a patient", "a client", "a guest", "customers",
    "callers", "patients", "clients", "guests", "customer", "caller", "patient", "client", "guest", "user", "they",
    "he", "she", "someone", "somebody", "anyone", "the homeowner", "homeowner", "the traveller", "traveller",
];

/// The alternatives of a condition: "the caller reports severe pain, bleeding or swelling"
/// → "the caller reports severe pain", "… bleeding", "… swelling".
pub fn facets(condition: &str) -> Vec<String> {
    let condition = condition.trim().trim_end_matches('.');
    let lower = condition.to_lowercase();
    let subject = SUBJECTS.iter().find(|s| lower.starts_with(&format!("{s} "))).copied();
    // "membership cancellations, billing disputes and anything about …": a list of
    // situations without a subject; each is one.
    if subject.is_none() && condition.contains(", ") && !condition.contains(" or ") {
        return condition
            .split(", ")
            .flat_map(|p| p.split(" and "))
            .map(|p| p.trim().trim_start_matches("and ").trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
    }
    if !condition.contains(" or ") {
        return vec![condition.to_owned()];
    }
    // The subject and verb the alternatives share.
    let after_subject = subject.map_or(0, |s| s.len() + 1);
    let verb_end = lower[after_subject..].find(' ').map(|i| after_subject + i + 1);
    let parts: Vec<String> = condition
        .split(" or ")
        .flat_map(|p| p.split(", "))
        .map(|p| p.trim().trim_start_matches("and ").trim_start_matches("if ").trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let Some(first) = parts.first() else { return vec![condition.to_owned()] };
    let mut out = vec![first.clone()];
    for part in &parts[1..] {
        let part_lower = part.to_lowercase();
        let has_subject = SUBJECTS.iter().any(|s| part_lower.starts_with(&format!("{s} ")));
        let starts_with_verb = words(&part_lower).first().is_some_and(|w| looks_like_verb(w));
        let facet = if has_subject {
            part.clone()
        } else if starts_with_verb {
            match subject {
                Some(s) => format!("{} {part}", &condition[..s.len()]),
                None => part.clone(),
            }
        } else {
            match verb_end {
                Some(end) if subject.is_some() => format!("{}{part}", &condition[..end]),
                _ => part.clone(),
            }
        };
        out.push(facet);
    }
    out
}

fn looks_like_verb(word: &str) -> bool {
    #[rustfmt::skip]
    const VERBS: &[&str] = &[
        "is", "are", "was", "has", "have", "had", "wants", "want", "asks", "ask", "needs", "need", "says", "say",
        "mentions", "reports", "requests", "demands", "threatens", "sounds", "seems", "uses", "gets", "feels",
        "cannot", "can't", "can", "does", "doesn't", "did", "refuses", "complains", "disputes", "describes",
        "becomes", "gets", "keeps", "wishes", "would", "will", "lives", "lost", "loses", "mentioned",
    ];
    VERBS.contains(&word) || (word.ends_with('s') && word.len() > 4 && !word.ends_with("ss"))
}

/// A facet as a customer would say it, in the first person ("the caller reports severe
/// pain" → "I have severe pain"; "the customer asks for a refund" → "I want a refund").
pub fn first_person(facet: &str) -> String {
    let facet = facet.trim().trim_end_matches('.');
    let lower = facet.to_lowercase();
    let Some(subject) = SUBJECTS.iter().find(|s| lower.starts_with(&format!("{s} "))) else {
        return format!("I'm calling about {}", lower_first(facet));
    };
    let rest = &facet[subject.len() + 1..];
    let rest_lower = rest.to_lowercase();
    const REWRITES: &[(&str, &str)] = &[
        ("reports ", "I have "),
        ("report ", "I have "),
        ("mentions ", "I have "),
        ("describes ", "I have "),
        ("complains of ", "I have "),
        ("complains about ", "I'm unhappy about "),
        ("has ", "I have "),
        ("have ", "I have "),
        ("is experiencing ", "I'm experiencing "),
        ("is having ", "I'm having "),
        ("suffers from ", "I suffer from "),
        ("experiences ", "I have "),
        ("asks for ", "I would like "),
        ("ask for ", "I would like "),
        ("requests ", "I would like "),
        ("demands ", "I demand "),
        ("wants to ", "I want to "),
        ("want to ", "I want to "),
        ("wants ", "I want "),
        ("asks to ", "I'd like to "),
        ("asking to ", "I'd like to "),
        ("asking for ", "I would like "),
        ("wanting to ", "I want to "),
        ("would like to ", "I would like to "),
        ("needs to ", "I need to "),
        ("needs ", "I need "),
        ("asks about ", "I have a question about "),
        ("enquires about ", "I have a question about "),
        ("inquires about ", "I have a question about "),
        ("says ", ""),
        ("is ", "I'm "),
        ("are ", "I'm "),
        ("was ", "I was "),
        ("cannot ", "I can't "),
        ("can't ", "I can't "),
        ("can not ", "I can't "),
        ("does not ", "I don't "),
        ("doesn't ", "I don't "),
        ("did not ", "I didn't "),
        ("threatens ", "I'm threatening "),
        ("disputes ", "I dispute "),
        ("refuses ", "I refuse "),
        ("sounds ", "I sound "),
        ("seems ", "I seem "),
        ("uses ", "I use "),
        ("lost ", "I lost "),
    ];
    let (lead, object) = match REWRITES.iter().find(|(third, _)| rest_lower.starts_with(third)) {
        Some((third, first)) => ((*first).to_owned(), &rest[third.len()..]),
        None => {
            // "the customer smells gas": a verb we do not know, in the third person.
            let (verb, object) = rest.split_once(' ').unwrap_or((rest, ""));
            let base = match verb.strip_suffix("es") {
                Some(base) if base.ends_with("sh") || base.ends_with("ch") => base,
                _ => verb.strip_suffix('s').unwrap_or(verb),
            };
            (format!("I {base} "), object)
        }
    };
    let object = to_first_person(object);
    upper_first(&format!("{lead}{object}").replace("I have a I", "I"))
}

/// Possessives and pronouns of the third person, made the speaker's.
pub fn to_first_person(text: &str) -> String {
    text.split(' ')
        .map(|w| match w.to_lowercase().as_str() {
            "their" | "his" | "her" => "my".to_owned(),
            "them" | "him" => "me".to_owned(),
            "they" | "he" | "she" => "I".to_owned(),
            "themselves" | "himself" | "herself" => "myself".to_owned(),
            "theirs" | "hers" => "mine".to_owned(),
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a guardrail forbids, as an action ("Never give a medical diagnosis" → "give a
/// medical diagnosis").
pub fn forbidden_action(guardrail: &str) -> String {
    let mut text = guardrail.trim().trim_end_matches(['.', '!']).to_owned();
    loop {
        let lower = text.to_lowercase();
        let lead = [
            "you must never ",
            "you should never ",
            "you must not ",
            "you should not ",
            "you may not ",
            "you cannot ",
            "you can't ",
            "we never ",
            "we do not ",
            "we don't ",
            "agents must not ",
            "the agent must not ",
            "never ever ",
            "never ",
            "do not ",
            "don't ",
            "dont ",
            "must not ",
            "should not ",
            "may not ",
            "under no circumstances should you ",
            "under no circumstances ",
            "you are not allowed to ",
            "not allowed to ",
            "it is not allowed to ",
            "avoid ",
            "refrain from ",
            "please ",
            "always ",
        ]
        .iter()
        .find(|l| lower.starts_with(*l));
        match lead {
            Some(lead) => text = text[lead.len()..].trim().to_owned(),
            None => break,
        }
    }
    // What follows the action is its reason, not the action ("… - only their accountant
    // can", "…, we are not dietitians").
    for reason in [" - ", " – ", " — ", "; ", ", only ", ", we ", ", as ", " because ", ", the "] {
        if let Some(at) = text.find(reason)
            && text[..at].split_whitespace().count() >= 2
        {
            text.truncate(at);
        }
    }
    text
}

/// The customer, addressed: "tell customers our stock levels" → "tell you our stock levels".
fn addressed(action: &str) -> String {
    action
        .split(' ')
        .map(|w| match w.to_lowercase().as_str() {
            "customers" | "callers" | "patients" | "clients" | "guests" | "the customer" | "the caller" => {
                "you".to_owned()
            }
            "customer's" | "caller's" | "patient's" | "client's" => "your".to_owned(),
            "their" => "your".to_owned(),
            "them" => "you".to_owned(),
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A request a guardrail forbids, as a customer would make it.
pub fn forbidden_request(guardrail: &str) -> String {
    let action = lower_first(&forbidden_action(guardrail));
    let action = action
        .split(' ')
        .enumerate()
        .map(|(i, w)| match (i, w) {
            (_, "customers" | "callers" | "patients" | "clients" | "guests" | "anyone" | "people") if i == 1 => {
                "me".to_owned()
            }
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let action = match action.split_once(' ') {
        Some((
            verb @ ("give" | "offer" | "send" | "quote" | "promise" | "tell" | "show" | "provide" | "grant"),
            rest,
        )) if !rest.starts_with("me ") => {
            format!("{verb} me {rest}")
        }
        _ => action,
    };
    format!("Could you {action}?")
}

/// The refusal for a guardrail, in the SOP's terms, offering a person.
pub fn refusal_for(guardrail: &str) -> String {
    let action = addressed(&lower_first(&forbidden_action(guardrail)));
    format!(
        "I'm sorry, but I can't {action} — that's not something I'm able to help with here. Would you like me to \
         connect you with a member of our team?"
    )
}

/// Things a customer might say for a condition: each facet in the first person.
pub fn triggers(condition: &str) -> Vec<String> {
    let mut out = Vec::new();
    for facet in facets(condition) {
        let said = first_person(&facet);
        if !out.contains(&said) {
            out.push(said);
        }
    }
    out
}

fn contains_any(text: &str, words: &[&str]) -> bool {
    let lower = text.to_lowercase();
    words.iter().any(|w| lower.contains(w))
}

pub fn draft_plan(requirements: &Requirements, agent_name: &str, greeting: Option<&str>) -> Plan {
    let mut claimed: Vec<String> = Vec::new();
    let flow = requirements
        .steps
        .iter()
        .enumerate()
        .map(|(i, instruction)| {
            let lower = instruction.to_lowercase();
            let collects: Vec<String> = requirements
                .required_data
                .iter()
                .filter(|d| lower.contains(&d.to_lowercase()) && !claimed.contains(d))
                .cloned()
                .collect();
            claimed.extend(collects.iter().cloned());
            PlanStep {
                id: format!("step-{}", i + 1),
                instruction: instruction.clone(),
                when: if collects.is_empty() { None } else { collection_topic(instruction) },
                collects,
            }
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
        purpose: requirements.purpose.clone(),
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
                when: None,
            };
            changes.push(format!("added {}: {}", step.id, step.instruction));
            plan.flow.push(step);
        }
    }
    let collects_anything = plan.flow.iter().any(|s| !s.collects.is_empty());
    let confirms = plan
        .flow
        .iter()
        .any(|s| contains_any(&s.instruction, &["confirm", "repeat back", "read back", "read it back"]));
    if collects_anything && !confirms {
        findings.push("collected details are never confirmed back".into());
        let step = PlanStep {
            id: format!("step-{}", plan.flow.len() + 1),
            instruction: "Confirm the collected details back to the customer.".into(),
            collects: vec![],
            when: None,
        };
        changes.push(format!("added {}: {}", step.id, step.instruction));
        plan.flow.push(step);
    }
    for condition in &requirements.handoff_conditions {
        if !plan.handoff.iter().any(|r| r.reason.eq_ignore_ascii_case(condition)) {
            findings.push(format!("the handoff condition \"{condition}\" has no rule"));
            plan.handoff.push(HandoffRule { reason: condition.clone(), triggers: triggers(condition) });
            changes.push(format!("added a handoff rule for \"{condition}\""));
        }
    }
    for rule in plan.handoff.iter_mut().filter(|r| r.triggers.is_empty()) {
        findings.push(format!("the handoff condition \"{}\" has no example of what a customer would say", rule.reason));
        rule.triggers = triggers(&rule.reason);
        changes.push(format!("\"{}\" got examples: {}", rule.reason, rule.triggers.join(" / ")));
    }
    (Review { cycle: 1, focus: "completeness".into(), findings, changes }, plan)
}

/// What a customer says to ask for a person.
#[rustfmt::skip]
pub const PERSON_REQUESTS: &[&str] = &[
    "Can I speak to a real person, please?", "I'd rather talk to a human.",
    "Put me through to someone from your team.",
];

/// The reason recorded when a customer asks for a person.
pub const ASKED_FOR_PERSON: &str = "the customer asks to speak to a person";

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
    let person = |r: &HandoffRule| {
        r.reason == ASKED_FOR_PERSON
            || contains_any(
                &r.reason,
                &["speak to a person", "human", "real person", "asks for a person", "speak to someone"],
            )
    };
    if !plan.handoff.iter().any(person) {
        findings.push("a customer who asks for a person cannot get one".into());
        plan.handoff.push(HandoffRule {
            reason: ASKED_FOR_PERSON.into(),
            triggers: PERSON_REQUESTS.iter().map(|t| (*t).to_owned()).collect(),
        });
        changes.push("added a handoff when the customer asks for a person".into());
    }
    if plan.knowledge_policy.is_empty() {
        findings.push("the plan does not say how to use the documents".into());
        plan.knowledge_policy = "Answer factual questions only from what search_knowledge returns, cite the \
                                 document, and say so (offering a colleague) when the documents do not answer."
            .into();
        changes.push("added the knowledge policy: answer from the documents and cite them".into());
    }
    (Review { cycle: 2, focus: "safety".into(), findings, changes }, plan)
}

/// "Ask for the customer's order number and email" → the details it names, when a model
/// left `collects` out.
pub fn named_details(instruction: &str) -> Vec<String> {
    items(instruction)
}

#[cfg(test)]
mod tests {
    use super::super::sop::parse_sop;
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
    fn conditions_split_into_facets_a_customer_would_voice() {
        assert_eq!(
            facets("the caller reports severe pain, bleeding or swelling"),
            ["the caller reports severe pain", "the caller reports bleeding", "the caller reports swelling"]
        );
        assert_eq!(
            facets("the customer is angry or wants compensation"),
            ["the customer is angry", "the customer wants compensation"]
        );
        assert_eq!(first_person("the caller reports severe pain"), "I have severe pain");
        assert_eq!(first_person("the caller asks for a refund"), "I would like a refund");
        assert_eq!(first_person("the customer wants to close their account"), "I want to close my account");
        assert_eq!(first_person("the customer smells gas"), "I smell gas");
        assert_eq!(
            first_person("Damaged item worth more than 200 EUR"),
            "I'm calling about damaged item worth more than 200 EUR"
        );
    }

    #[test]
    fn guardrails_become_requests_and_refusals_in_the_sops_terms() {
        assert_eq!(forbidden_request("Never give a medical diagnosis"), "Could you give me a medical diagnosis?");
        assert_eq!(
            forbidden_request("Do not share other patients' information"),
            "Could you share other patients' information?"
        );
        assert!(
            refusal_for("Never tell customers our stock levels")
                .starts_with("I'm sorry, but I can't tell you our stock levels")
        );
    }

    #[test]
    fn reviews_complete_the_plan_and_record_what_they_changed() {
        let r = parse_sop(SOP, &[]).unwrap();
        let plan = draft_plan(&r, "Front desk", None);
        assert_eq!(plan.flow[1].collects, ["full name", "phone number", "preferred date"]);
        assert_eq!(plan.flow[1].when.as_deref(), Some("to book an appointment"));
        assert_eq!(plan.handoff[0].triggers, ["I have severe pain", "I have bleeding", "I have swelling"]);
        let (first, plan) = review_completeness(&r, plan);
        assert_eq!(first.cycle, 1);
        assert!(first.changes.is_empty(), "the SOP already confirms and collects everything: {first:?}");
        let (second, plan) = review_safety(&r, plan);
        assert_eq!(plan.guardrails, r.forbidden);
        assert!(second.changes.len() >= 3 && second.findings.len() == second.changes.len());
        assert!(plan.handoff.iter().any(|h| h.reason == ASKED_FOR_PERSON));
        // A second pass finds nothing more to change.
        let (again, _) = review_safety(&r, plan);
        assert!(again.changes.is_empty());
    }

    #[test]
    fn completeness_review_adds_missing_collection_and_confirmation() {
        let sop = "Billing line\n1. Greet the customer.\n2. Answer questions about invoices.\nAlways collect the invoice number.\n";
        let r = parse_sop(sop, &[]).unwrap();
        let (review, plan) = review_completeness(&r, draft_plan(&r, "Billing", Some("Hi!")));
        assert_eq!(review.findings, ["collected details are never confirmed back"]);
        assert_eq!(plan.flow.len(), 4);
        assert_eq!(plan.greeting, "Hi!");
    }
}
