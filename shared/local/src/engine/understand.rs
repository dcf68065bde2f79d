//! Understanding a customer: does a message describe one of the situations a handoff rule
//! names, or ask for something a guardrail forbids, or want what a step collects details
//! for? Each rule is known by anchors (its wording, each alternative it lists, the same in
//! the customer's voice, the examples the plan gives); a message matches a rule when it
//! carries the rule's concepts (the lexicon), or when it means what an anchor of the rule
//! means more closely than it means anything ordinary a customer says (the embedding
//! engine), which holds for phrasings nobody wrote down.

use oratio_core::creator::plan::{facets, first_person, forbidden_action, forbidden_request};
use oratio_core::language::{is_question, words};

use super::brief::Brief;
use super::lexicon::{GENERIC_KEYS, Terms};

/// What customers of any business say that is neither an emergency nor a forbidden request:
/// the backdrop a rule must stand out from.
#[rustfmt::skip]
pub const ORDINARY: &[&str] = &[
    "Hello, I have a question.", "Hi there, can you help me?", "Good morning.", "Thank you very much.",
    "Goodbye, have a nice day.", "What are your opening hours?", "When are you open on Saturday?",
    "How much does it cost?", "What are your prices?", "Where are you located?", "Is there parking nearby?",
    "Do you accept card payments?", "Can I pay by bank transfer?", "I'd like to make a booking.",
    "I want to book an appointment for next week.", "Can I change the time of my booking?",
    "Do you have anything available on Friday?", "How long does it take?", "Do you offer that service?",
    "Can you send me more information by email?", "What's your phone number?", "My name is John Smith.",
    "My phone number is 07700 900123.", "My email is john@example.com.", "My order number is 12345.",
    "Yes, that's correct.", "No, that's not right.", "I'm just looking for some information.",
    "What do I need to bring?", "Do you deliver to my area?", "How do I get a quote?",
    "Is it possible to come in earlier?", "What is included in the price?",
    "Do you have a website where I can read more?", "I'd like to know more about your services.",
    "Could you explain how it works?", "Can I come with my child?", "Is there a discount for students?",
    "What's the difference between the two options?", "Sounds good, thanks.",
];

/// Whether a condition is something the customer asks for (a refund, a manager), which a
/// question expresses, rather than something they report (pain, a leak).
fn is_request(reason: &str) -> bool {
    words(reason).iter().any(|w| {
        ["ask", "want", "request", "demand", "speak", "talk", "person", "human", "manager", "supervisor", "insist"]
            .iter()
            .any(|root| w == root || w.strip_prefix(root).is_some_and(|end| matches!(end, "s" | "ed" | "ing")))
    })
}

/// Whether a question only asks about a topic ("How much is an emergency appointment?")
/// rather than telling of the customer's own situation.
pub fn asks_about(message: &str) -> bool {
    if !is_question(message) {
        return false;
    }
    let said = words(message);
    let own = said.windows(2).any(|w| {
        matches!(
            (w[0].as_str(), w[1].as_str()),
            ("i", "have" | "am" | "can" | "think" | "got" | "feel" | "need" | "want")
                | ("my", _)
                | ("it", "hurts" | "is")
                | ("we", "have" | "are")
                | ("there", "is")
        )
    });
    !own
}

/// Whether a question asks how the customer does something themselves ("How do I update
/// my card details?"): a question about their own step, not a request of the agent.
pub fn asks_how_to(message: &str) -> bool {
    let said = words(message);
    is_question(message)
        && said.windows(3).take(3).any(|w| {
            matches!(
                (w[0].as_str(), w[1].as_str(), w[2].as_str()),
                ("how" | "where" | "when", "do" | "can" | "should" | "shall", "i" | "we")
            )
        })
}

/// The facet's keys that say which situation it is (its concepts and rarer words).
fn keys_of(text: &str) -> Vec<String> {
    Terms::of(text).keys().into_iter().filter(|k| !GENERIC_KEYS.contains(&k.as_str()) && k.len() > 1).collect()
}

/// Whether a key of the rule is negated in the message ("no pain", "not bleeding").
fn negated(message: &str, key: &str) -> bool {
    let said = words(message);
    let terms: Vec<Terms> = said.iter().map(|w| Terms::of(w)).collect();
    said.iter().enumerate().any(|(i, _)| {
        terms[i].has_key(key)
            && (i.saturating_sub(2)..i)
                .any(|j| matches!(said[j].as_str(), "no" | "not" | "never" | "without" | "nothing"))
    })
}

/// How much of a rule's wording a message must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// A situation (a handoff condition): every key, its modifiers too ("severe pain").
    Whole,
    /// A request (a forbidden action): its concepts (most of them, when there are many),
    /// and some of its other words.
    Gist,
}

/// Whether the message carries a facet's keys, as `coverage` asks.
pub fn lexically(message: &str, facet: &str, coverage: Coverage) -> bool {
    let keys = keys_of(facet);
    if keys.is_empty() {
        return false;
    }
    let said = Terms::of(message);
    let (concepts, stems): (Vec<&String>, Vec<&String>) = keys.iter().partition(|k| k.starts_with('#'));
    let count = |keys: &[&String]| keys.iter().filter(|k| said.has_key(k)).count();
    let enough = match coverage {
        Coverage::Whole => {
            let covered = keys.iter().filter(|k| said.has_key(k)).count();
            covered == keys.len() || (keys.len() >= 3 && covered + 1 >= keys.len())
        }
        Coverage::Gist if concepts.is_empty() => {
            let covered = count(&stems);
            covered > 0 && covered * 2 >= stems.len()
        }
        // Two concepts are both needed ("medical advice" is not any advice); of more, most.
        // Two concepts met say what is asked; one needs half the other words too.
        Coverage::Gist => {
            let covered = count(&concepts);
            let needed = if concepts.len() <= 2 { concepts.len() } else { concepts.len().div_ceil(2) };
            covered >= needed && (covered >= 2 || count(&stems) * 2 >= stems.len())
        }
    };
    // A situation denied is not the situation ("no pain" is not "severe pain"), unless
    // the situation is a lack ("no heating"); a request is a request however it is put.
    enough
        && (coverage == Coverage::Gist
            || !keys.iter().any(|k| said.has_key(k) && negated(message, k) && !negated(facet, k)))
}

/// The texts a handoff rule is known by.
pub fn rule_anchors(reason: &str, examples: &[String]) -> Vec<String> {
    let mut anchors = vec![reason.to_owned()];
    for facet in facets(reason) {
        anchors.push(first_person(&facet));
        anchors.push(facet);
    }
    anchors.extend(examples.iter().cloned());
    anchors.dedup();
    anchors
}

/// The texts a guardrail is known by.
pub fn guardrail_anchors(guardrail: &str) -> Vec<String> {
    let action = forbidden_action(guardrail);
    let mut anchors = vec![guardrail.to_owned(), forbidden_request(guardrail), format!("I want you to {action}")];
    // Each thing it forbids on its own ("… how much tax they will owe or whether an expense
    // is deductible").
    // An alternative that is a bare word ("… advice or dosages") would forbid a topic, not
    // a request: only alternatives of two terms or more stand alone.
    let alternatives: Vec<String> = facets(&action).into_iter().filter(|a| keys_of(a).len() >= 2).collect();
    if alternatives.len() > 1 {
        anchors.extend(alternatives.iter().map(|a| forbidden_request(a)));
        anchors.extend(alternatives);
    }
    anchors.push(action);
    anchors
}

/// What the brief counts as ordinary: the generic backdrop, its procedure, and what giving
/// each detail and wanting each collected thing sounds like.
pub fn ordinary_anchors(brief: &Brief) -> Vec<String> {
    let mut anchors: Vec<String> = ORDINARY.iter().map(|s| (*s).to_owned()).collect();
    anchors.extend(brief.procedure.iter().filter(|s| !s.to_lowercase().contains("escalat")).cloned());
    for detail in &brief.details {
        anchors.push(format!("My {} is {}.", detail.name, detail.kind.sample()));
        if let Some(when) = &detail.when {
            anchors.push(format!("I would like {when}."));
        }
    }
    anchors
}

/// How much closer to a rule than to anything ordinary a message must be to match by
/// meaning alone, in cosine similarity (tuned on the evaluation corpus).
pub const CERTAIN: f32 = 0.03;
/// Between this and [`CERTAIN`] the engine looks the message up before deciding: what the
/// documents say counts as ordinary too.
pub const UNSURE: f32 = -0.005;

/// The rule a message matches by its words alone. A rule that is not a request
/// (`requests[i]`) is not matched by a question about its topic.
pub fn lexical_rule(message: &str, rules: &[Vec<String>], requests: &[bool], coverage: Coverage) -> Option<usize> {
    let about = asks_about(message);
    rules.iter().enumerate().find_map(|(i, anchors)| {
        if about && !requests[i] {
            return None;
        }
        anchors.iter().any(|a| lexically(message, a, coverage)).then_some(i)
    })
}

/// Rules of a brief, as anchor sets, with whether each is a request.
pub fn handoff_rules(brief: &Brief) -> (Vec<Vec<String>>, Vec<bool>) {
    let anchors = brief.handoff.iter().map(|r| rule_anchors(&r.reason, &r.examples)).collect();
    let requests = brief.handoff.iter().map(|r| is_request(&r.reason)).collect();
    (anchors, requests)
}

/// The guardrails of a brief, as anchor sets.
pub fn guardrails(brief: &Brief) -> Vec<Vec<String>> {
    brief.never.iter().map(|g| guardrail_anchors(g)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_recognised_in_other_words_but_not_when_denied_or_asked_about() {
        let facet = "the caller reports bleeding";
        assert!(lexically("there's blood all over my pillow", facet, Coverage::Whole));
        assert!(!lexically("there's no blood, it just feels odd", facet, Coverage::Whole));
        assert!(lexically("I want my money back", "the caller asks for a refund", Coverage::Whole));
        let rules = vec![rule_anchors("the caller reports severe pain, bleeding or swelling", &[])];
        assert_eq!(lexical_rule("my gum is bleeding a lot", &rules, &[false], Coverage::Whole), Some(0));
        assert_eq!(lexical_rule("Do you treat bleeding gums?", &rules, &[false], Coverage::Whole), None);
        assert_eq!(lexical_rule("my tooth hurts a bit", &rules, &[false], Coverage::Whole), None, "not severe");
        let refund = vec![rule_anchors("the caller asks for a refund", &[])];
        assert_eq!(lexical_rule("Can I get my money back?", &refund, &[true], Coverage::Whole), Some(0));
        let diagnosis = vec![guardrail_anchors("Never give a medical diagnosis")];
        assert_eq!(lexical_rule("can you diagnose my toothache", &diagnosis, &[true], Coverage::Gist), Some(0));
        // The chat a guardrail names is the conversation itself; a request need not name it.
        let rails = vec![
            guardrail_anchors("never ask for full card details in the chat"),
            guardrail_anchors("we don't take orders for same-day delivery after 1pm"),
        ];
        let card = "here's my card number 4929 1234 5678 9012, expiry 08/27 and CVV 123, can you take payment?";
        assert_eq!(lexical_rule(card, &rails, &[true, true], Coverage::Gist), Some(0));
        let late = "It's 3pm now, can you still get a bouquet out to her today?";
        assert_eq!(lexical_rule(late, &rails, &[true, true], Coverage::Gist), Some(1));
        assert_eq!(
            lexical_rule("can I order a large bouquet for Saturday?", &rails, &[true, true], Coverage::Gist),
            None
        );
        let payout = vec![guardrail_anchors("Never estimate what a claim will pay out.")];
        let guess = "Roughly how much do you think you'll pay out for a dented door and bumper?";
        assert_eq!(lexical_rule(guess, &payout, &[true], Coverage::Gist), Some(0));
        assert!(asks_how_to("how do I update my card details?") && !asks_how_to("can you take my card details?"));
    }
}
