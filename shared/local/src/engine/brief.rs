//! What the local engine reads in an agent's system prompt: who it is, the procedure, the
//! details to collect and those already collected, when to hand over (with examples), what
//! it must never do, and its fallback refusal. Generated agents write these sections (see
//! AgentCreator's agent template); a real model reads the same prompt as prose.

use std::collections::BTreeMap;

use oratio_core::details::DetailKind;

/// A detail the agent collects.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// The key `save_details` takes (`full_name`).
    pub key: String,
    /// As the SOP names it (`full name`).
    pub name: String,
    /// What the customer wants when it is collected ("book an appointment"), if the SOP says.
    pub when: Option<String>,
    pub kind: DetailKind,
}

/// A handoff rule: the condition, and examples of what a customer would say.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub reason: String,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Brief {
    pub name: String,
    pub purpose: String,
    pub procedure: Vec<String>,
    pub details: Vec<Detail>,
    /// Collected so far, by key.
    pub collected: BTreeMap<String, String>,
    pub handoff: Vec<Rule>,
    pub never: Vec<String>,
    pub refusal: String,
}

impl Brief {
    /// Reads an agent prompt; `None` when the prompt is not an agent's (no sections).
    pub fn read(system: &str) -> Option<Self> {
        let mut brief = Brief::default();
        let mut section = String::new();
        let mut seen_section = false;
        for line in system.lines() {
            let line = line.trim();
            if let Some(heading) = line.strip_prefix("## ") {
                section = heading.to_lowercase();
                seen_section = true;
                continue;
            }
            if section.is_empty() {
                if let Some(rest) = line.strip_prefix("You are ") {
                    brief.name = rest.split(',').next().unwrap_or(rest).trim().to_owned();
                } else if let Some(rest) = line.strip_prefix("What this is about: ") {
                    brief.purpose = rest.trim_end_matches('.').to_owned();
                }
                continue;
            }
            let item = line.strip_prefix("- ");
            if section.starts_with("procedure") {
                let step = line.split_once(". ").filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
                if let Some((_, step)) = step {
                    brief.procedure.push(step.to_owned());
                }
            } else if section.starts_with("details to collect") {
                if let Some((key, rest)) = item.and_then(|i| i.split_once(": ")) {
                    let (name, when) = match rest.split_once(" (when the customer wants ") {
                        Some((name, when)) => (name, Some(when.trim_end_matches(')').to_owned())),
                        None => (rest, None),
                    };
                    brief.details.push(Detail {
                        key: key.trim().to_owned(),
                        name: name.trim().to_owned(),
                        when,
                        kind: DetailKind::of(name),
                    });
                }
            } else if section.starts_with("details collected") {
                if let Some((key, value)) = item.and_then(|i| i.split_once(": ")) {
                    brief.collected.insert(key.trim().to_owned(), value.trim().to_owned());
                }
            } else if section.starts_with("hand") {
                if let Some(item) = item {
                    let (reason, examples) = match item.split_once(" (for example: ") {
                        Some((reason, examples)) => (
                            reason,
                            examples
                                .trim_end_matches(')')
                                .split("; ")
                                .map(|e| e.trim().trim_matches('"').to_owned())
                                .filter(|e| !e.is_empty())
                                .collect(),
                        ),
                        None => (item, Vec::new()),
                    };
                    brief.handoff.push(Rule { reason: reason.trim().to_owned(), examples });
                }
            } else if section.starts_with("never") {
                if let Some(item) = item.filter(|i| !i.starts_with('(')) {
                    brief.never.push(item.trim().to_owned());
                } else if let Some(refusal) = line.split_once("Fallback refusal: ").map(|(_, r)| r) {
                    brief.refusal = refusal.trim().to_owned();
                }
            }
        }
        seen_section.then_some(brief)
    }

    /// The detail `key` names, or whose name `text` is.
    pub fn detail(&self, key_or_name: &str) -> Option<&Detail> {
        let wanted = key_or_name.trim().to_lowercase();
        self.details.iter().find(|d| d.key == wanted || d.name.to_lowercase() == wanted)
    }

    /// The details not collected yet, in order.
    pub fn missing(&self) -> impl Iterator<Item = &Detail> {
        self.details.iter().filter(|d| !self.collected.contains_key(&d.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_prompt_is_read_section_by_section() {
        let system = "You are Front desk, the assistant of this business, speaking with one of its customers.
What this is about: Bright Smile Dental.
Tone: warm.

## Procedure
1. Greet the caller.
2. Collect their name.

## Details to collect
- full_name: full name (when the customer wants to book an appointment)
- phone_number: phone number

## Details collected so far
- full_name: Ada Lovelace

## Hand the conversation to a person
Call hand_off, with the rule as the reason, when:
- the caller reports severe pain (for example: \"I have severe pain\"; \"I'm in agony\")
- the customer asked for a person

## Never
- Never give a medical diagnosis
If asked for any of these, refuse in those terms. Fallback refusal: I'm sorry, I can't help with that.
";
        let brief = Brief::read(system).expect("an agent prompt");
        assert_eq!(brief.name, "Front desk");
        assert_eq!(brief.purpose, "Bright Smile Dental");
        assert_eq!(brief.procedure, ["Greet the caller.", "Collect their name."]);
        assert_eq!(brief.details[0].when.as_deref(), Some("to book an appointment"));
        assert_eq!(brief.details[1].kind, DetailKind::Phone);
        assert_eq!(brief.collected["full_name"], "Ada Lovelace");
        assert_eq!(brief.handoff[0].examples, ["I have severe pain", "I'm in agony"]);
        assert_eq!(brief.never, ["Never give a medical diagnosis"]);
        assert_eq!(brief.refusal, "I'm sorry, I can't help with that.");
        assert_eq!(brief.missing().map(|d| d.key.as_str()).collect::<Vec<_>>(), ["phone_number"]);
        assert!(Brief::read("You are a helpful assistant.").is_none());
    }
}
