//! The local engine's turn as an agent: what a good model does with the agent's prompt.
//!
//! Given the customer's message it decides, in this order: a goodbye ends the
//! conversation; a handoff situation (or a "yes" to an offered colleague) hands over, with
//! any details given saved first; a forbidden request is refused in the SOP's terms with
//! the offer of a person; a "yes" to a read-back is acknowledged; greetings and thanks are
//! answered; details are saved; questions are looked up; a wish a step collects details
//! for is met with the first question. Given the tools' results it replies: what happens
//! after a handoff, the sentence that answers with its source (or "I don't know — shall I
//! connect you with a colleague?"), the details read back for confirmation, and the next
//! detail to give.

use std::collections::BTreeMap;

use oratio_core::creator::plan::{ASKED_FOR_PERSON, refusal_for};
use oratio_core::language::{is_question, words};
use oratio_core::llm::{Message, Prompt, Speaker, ToolCall, ToolResult, ToolSpec};
use oratio_core::tools::BUILT_IN;
use serde_json::{Value, json};

use super::LocalEngine;
use super::answer::{self, Found};
use super::brief::{Brief, Detail};
use super::extract::extract;
use super::lexicon::Terms;
use super::tools;
use super::understand::{self, Coverage};
use oratio_core::details::DetailKind;

/// What the agent asked in its last message, which the customer's reply answers.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    /// "Shall I connect you with a colleague?"
    Offer,
    /// "… Is that correct?"
    Confirm,
    /// "Could you tell me your …?"
    Asked(Detail),
    None,
}

const OFFER: &str = "shall I connect you with a colleague?";
const CONFIRM: &str = "Is that correct?";
const ANYTHING_ELSE: &str = "Is there anything else I can help you with?";

fn ask_for(detail: &Detail) -> String {
    // "your phone number", "your pet's name", but "the make of the bike".
    let personal = !detail.name.contains(" of ")
        && (detail.kind != DetailKind::Text || detail.name.contains("name") || detail.name.contains("'s"));
    format!("Could you tell me {} {}?", if personal { "your" } else { "the" }, detail.name)
}

fn pending(brief: &Brief, last_agent: Option<&str>) -> Pending {
    let Some(said) = last_agent.map(str::trim) else { return Pending::None };
    let lower = said.to_lowercase();
    if lower.ends_with(&OFFER.to_lowercase())
        || lower.ends_with("member of our team?")
        || lower.ends_with("connect you with a member of our team?")
    {
        return Pending::Offer;
    }
    if said.ends_with(CONFIRM) {
        return Pending::Confirm;
    }
    brief.details.iter().find(|d| said.ends_with(&ask_for(d))).map_or(Pending::None, |d| Pending::Asked(d.clone()))
}

/// The first words of a reply that mean yes, or no.
fn affirms(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    let said = words(&lower);
    let first = said.first().map(String::as_str).unwrap_or_default();
    matches!(
        first,
        "yes"
            | "yeah"
            | "yep"
            | "yup"
            | "sure"
            | "correct"
            | "right"
            | "exactly"
            | "absolutely"
            | "definitely"
            | "ok"
            | "okay"
            | "perfect"
            | "great"
            | "please"
    ) || [
        "that's right",
        "that is right",
        "that's correct",
        "that is correct",
        "go ahead",
        "sounds good",
        "please do",
        "all correct",
        "looks good",
        "spot on",
        "yes please",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

fn denies(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    let first = words(&lower).first().cloned().unwrap_or_default();
    matches!(first.as_str(), "no" | "nope" | "nah" | "wrong" | "incorrect")
        || [
            "not quite",
            "that's wrong",
            "that's not right",
            "that is not right",
            "not really",
            "no thanks",
            "no thank you",
        ]
        .iter()
        .any(|p| lower.starts_with(p))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmallTalk {
    Greeting,
    Thanks,
    Goodbye,
}

fn small_talk(text: &str) -> Option<SmallTalk> {
    let lower = text.to_lowercase();
    let said = words(&lower);
    if said.is_empty() || is_question(text) && !lower.contains("how are you") {
        return None;
    }
    #[rustfmt::skip]
    const GREETING: &[&str] = &[
        "hi", "hello", "hey", "hiya", "howdy", "greetings", "good", "morning", "afternoon", "evening", "there", "yo",
        "hallo", "how", "are", "you", "doing", "today",
    ];
    #[rustfmt::skip]
    const THANKS: &[&str] = &[
        "thanks", "thank", "you", "cheers", "ta", "great", "perfect", "brilliant", "lovely", "ok", "okay", "that's",
        "that", "is", "all", "helpful", "very", "much", "awesome", "super", "so", "a", "lot", "many", "again", "for",
        "the", "help", "your", "appreciated", "appreciate", "it", "wonderful", "excellent", "nice", "good", "fine",
        "kind", "really",
    ];
    let goodbye = [
        "bye",
        "goodbye",
        "see you",
        "that's all",
        "that is all",
        "nothing else",
        "no that's it",
        "have a nice day",
        "have a good day",
        "take care",
        "that'll be all",
        "farewell",
        "that's everything",
        "that is everything",
    ];
    if goodbye.iter().any(|g| lower.contains(g)) && said.len() <= 8 {
        return Some(SmallTalk::Goodbye);
    }
    if said.iter().all(|w| GREETING.contains(&w.as_str()))
        && said.iter().any(|w| {
            matches!(
                w.as_str(),
                "hi" | "hello"
                    | "hey"
                    | "hiya"
                    | "howdy"
                    | "greetings"
                    | "morning"
                    | "afternoon"
                    | "evening"
                    | "hallo"
                    | "yo"
            )
        })
    {
        return Some(SmallTalk::Greeting);
    }
    if said.iter().all(|w| THANKS.contains(&w.as_str()))
        && said
            .iter()
            .any(|w| matches!(w.as_str(), "thanks" | "thank" | "cheers" | "ta" | "appreciated" | "appreciate"))
    {
        return Some(SmallTalk::Thanks);
    }
    None
}

/// What the engine decides for one step: text, tool calls, or both.
type Move = (String, Vec<ToolCall>);

fn text(reply: impl Into<String>) -> Move {
    (reply.into(), Vec::new())
}

/// The conversation as the engine reads it.
struct Reading<'a> {
    brief: Brief,
    /// What the customer said this turn.
    customer: String,
    /// Every earlier message of the customer, for the wishes they expressed.
    earlier_customer: Vec<String>,
    /// The agent's last words before this turn.
    last_agent: Option<String>,
    /// The tool results this step answers, with the calls they answer.
    results: Vec<(&'a ToolCall, &'a ToolResult)>,
    /// How many tool calls the conversation has seen (for fresh ids).
    calls_so_far: usize,
    /// The tenant's tools the prompt offers.
    tools: Vec<&'a ToolSpec>,
}

fn read(prompt: &Prompt) -> Option<Reading<'_>> {
    let brief = Brief::read(&prompt.system)?;
    let last = prompt.messages.last()?;
    let results: Vec<(&ToolCall, &ToolResult)> = if last.tool_results().next().is_some() {
        let asked: Vec<&ToolCall> =
            prompt.messages.iter().rev().nth(1).map(|m| m.tool_calls().collect()).unwrap_or_default();
        last.tool_results().filter_map(|r| asked.iter().find(|c| c.id == r.tool_use_id).map(|c| (*c, r))).collect()
    } else {
        Vec::new()
    };
    // The customer's words this turn: the last user message that has text.
    let customer_at =
        prompt.messages.iter().rposition(|m: &Message| m.speaker == Speaker::User && !m.text().trim().is_empty())?;
    let customer = prompt.messages[customer_at].text();
    let earlier_customer =
        prompt.messages[..customer_at].iter().filter(|m| m.speaker == Speaker::User).map(Message::text).collect();
    let last_agent =
        prompt.messages[..customer_at].iter().rev().find(|m| m.speaker == Speaker::Assistant).map(Message::text);
    let calls_so_far = prompt.messages.iter().map(|m| m.tool_calls().count()).sum();
    let tools = tools::offered(prompt);
    Some(Reading { brief, customer, earlier_customer, last_agent, results, calls_so_far, tools })
}

/// The engine's answer to an agent's prompt (or to any other prompt: an answer from the
/// `Knowledge:` passages older agents put in their prompt).
pub async fn respond(engine: &LocalEngine, prompt: &Prompt) -> Move {
    let Some(reading) = read(prompt) else { return legacy(prompt) };
    if reading.results.is_empty() {
        customer_turn(engine, &reading).await
    } else {
        results_turn(engine, &reading).await
    }
}

fn call(reading: &Reading, offset: usize, name: &str, input: Value) -> ToolCall {
    ToolCall { id: format!("call_{}_{name}", reading.calls_so_far + offset + 1), name: name.into(), input }
}

/// Which handoff rule the customer's message matches by its words.
fn handoff_by_words(brief: &Brief, message: &str) -> Option<usize> {
    let (rules, requests) = understand::handoff_rules(brief);
    understand::lexical_rule(message, &rules, &requests, Coverage::Whole)
}

/// Which guardrail the customer's message asks to break, by its words.
fn guardrail_by_words(brief: &Brief, message: &str) -> Option<usize> {
    if understand::asks_how_to(message) {
        return None;
    }
    let rails = understand::guardrails(brief);
    understand::lexical_rule(message, &rails, &vec![true; rails.len()], Coverage::Gist)
}

/// How much closer a rule must be than the closest document sentence to win over it.
const DOCUMENTS_FIRST: f32 = 0.005;
/// A guardrail wins over a handoff by meaning only by this much (a person is the safer
/// answer to an unclear message).
const HANDOFF_FIRST: f32 = 0.01;

/// What a message may be, by meaning: a handoff situation or a forbidden request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Concern {
    Handoff(usize),
    Guardrail(usize),
}

/// The rule or guardrail a message means most, with its similarity and its margin over
/// the closest ordinary thing a customer says; `None` without an embedding engine.
async fn meaning(engine: &LocalEngine, brief: &Brief, message: &str) -> Option<(Concern, f32, f32)> {
    let (rules, requests) = understand::handoff_rules(brief);
    let rails = understand::guardrails(brief);
    let mut sets = rules.clone();
    sets.extend(rails.iter().cloned());
    sets.push(understand::ordinary_anchors(brief));
    let sims = engine.similarities(message, &sets).await?;
    let ordinary = *sims.last()?;
    let about = understand::asks_about(message);
    // Who asks for a person names one ("someone", "a human", "the manager"): the request
    // for a person is not matched by meaning without such a word.
    let names_person = Terms::of(message).concepts.iter().any(|c| matches!(*c, "person" | "manager" | "speak"));
    let handoff = sims[..rules.len()]
        .iter()
        .enumerate()
        .filter(|(i, _)| !about || requests[*i])
        .filter(|(i, _)| names_person || brief.handoff[*i].reason != ASKED_FOR_PERSON)
        .map(|(i, s)| (Concern::Handoff(i), *s))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let guardrail = sims[rules.len()..rules.len() + rails.len()]
        .iter()
        .enumerate()
        .map(|(i, s)| (Concern::Guardrail(i), *s))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let (concern, sim) = match (handoff, guardrail) {
        (Some(h), Some(g)) if g.1 > h.1 + HANDOFF_FIRST => g,
        (Some(h), _) => h,
        (None, g) => g?,
    };
    tracing::debug!(
        said = message,
        ?concern,
        sim,
        ordinary,
        margin = sim - ordinary,
        "the local engine weighs a message"
    );
    Some((concern, sim, sim - ordinary))
}

fn refusal(brief: &Brief, guardrail: usize) -> Move {
    text(
        refusal_for(&brief.never[guardrail])
            .replace("Would you like me to connect you with a member of our team?", &format!("Instead, {OFFER}")),
    )
}

/// Whether the customer wants what a detail is collected for ("book an appointment").
async fn wants(engine: &LocalEngine, message: &str, when: &str) -> bool {
    let keys: Vec<String> = Terms::of(when).keys();
    let said = Terms::of(message);
    let shared = keys.iter().filter(|k| said.has_key(k)).count();
    if !keys.is_empty() && shared * 2 >= keys.len() && shared > 0 {
        return true;
    }
    let anchor = vec![vec![format!("I would like {when}.")]];
    engine.similarities(message, &anchor).await.is_some_and(|s| s[0] >= 0.87)
}

/// The details being collected now: those of no particular wish, and those whose wish the
/// customer expressed, or some of which they already gave.
async fn active(engine: &LocalEngine, reading: &Reading<'_>, saved: &BTreeMap<String, String>) -> Vec<Detail> {
    let brief = &reading.brief;
    let mut out = Vec::new();
    for detail in &brief.details {
        let on = match &detail.when {
            None => true,
            Some(when) => {
                let group_started = brief.details.iter().filter(|d| d.when.as_deref() == Some(when)).any(|d| {
                    brief.collected.contains_key(&d.key)
                        || saved.contains_key(&d.key)
                        || reading.last_agent.as_deref().is_some_and(|a| a.ends_with(&ask_for(d)))
                });
                let mut wished = false;
                if !group_started {
                    for said in reading.earlier_customer.iter().chain(std::iter::once(&reading.customer)) {
                        if wants(engine, said, when).await {
                            wished = true;
                            break;
                        }
                    }
                }
                group_started || wished
            }
        };
        if on {
            out.push(detail.clone());
        }
    }
    out
}

fn summary(brief: &Brief, reason: &str, customer: &str, saved: &BTreeMap<String, String>) -> String {
    let mut details: BTreeMap<String, String> = brief.collected.clone();
    details.extend(saved.clone());
    let mut out =
        format!("Handed over because {}. The customer said: \"{}\".", reason.trim_end_matches('.'), customer.trim());
    if !details.is_empty() {
        let listed: Vec<String> = details
            .iter()
            .map(|(k, v)| format!("{}: {v}", brief.detail(k).map_or(k.replace('_', " "), |d| d.name.clone())))
            .collect();
        out.push_str(&format!(" Details: {}.", listed.join("; ")));
    }
    out
}

async fn customer_turn(engine: &LocalEngine, reading: &Reading<'_>) -> Move {
    let brief = &reading.brief;
    let said = reading.customer.trim();
    let pending = pending(brief, reading.last_agent.as_deref());
    if small_talk(said) == Some(SmallTalk::Goodbye) {
        return (
            String::new(),
            vec![call(reading, 0, "end_conversation", json!({"reason": "the customer said goodbye"}))],
        );
    }
    let asked = match &pending {
        Pending::Asked(detail) => Some(detail),
        _ => None,
    };
    let details = extract(&brief.details, said, asked);
    tracing::trace!(said, wanted = ?brief.details.iter().map(|d| &d.name).collect::<Vec<_>>(), found = ?details, "details");
    let save = |calls: &mut Vec<ToolCall>| {
        if !details.is_empty() {
            calls.push(call(reading, calls.len(), "save_details", json!(details)));
        }
    };
    let hand_over = |reason: &str| {
        let mut calls = Vec::new();
        save(&mut calls);
        let input = json!({"reason": reason, "summary": summary(brief, reason, said, &details)});
        calls.push(call(reading, calls.len(), "hand_off", input));
        (String::new(), calls)
    };
    if pending == Pending::Offer && affirms(said) && !denies(said) {
        return hand_over(ASKED_FOR_PERSON);
    }
    // What the words say plainly comes first: a handoff situation, then a forbidden request;
    // then what the message means, when it means it clearly. A message that may be one is
    // looked up first, and weighed against what the documents say.
    if let Some(i) = handoff_by_words(brief, said) {
        return hand_over(&brief.handoff[i].reason);
    }
    if let Some(i) = guardrail_by_words(brief, said) {
        return refusal(brief, i);
    }
    // A tenant's tool the message asks for is called (or its missing argument asked for).
    let last_agent = reading.last_agent.as_deref();
    if let Some(wanted) = tools::wanted(engine, &reading.tools, said, last_agent, &reading.earlier_customer).await {
        return match wanted.missing {
            Some(key) => text(tools::ask(&wanted.tool, &key)),
            None => {
                let mut calls = Vec::new();
                save(&mut calls);
                calls.push(call(reading, calls.len(), &wanted.tool.name, Value::Object(wanted.arguments)));
                (String::new(), calls)
            }
        };
    }
    // By meaning alone, only a clear handoff acts at once; a forbidden request, or a
    // message that may be either, is looked up first and weighed against the documents.
    // A message that mostly gives details is not weighed.
    if details.len() < 2
        && let Some((concern, _, margin)) = meaning(engine, brief, said).await
    {
        // A question is more often about a topic than a report of it: it needs more.
        let certain = if is_question(said) { understand::CERTAIN + 0.02 } else { understand::CERTAIN };
        if let (Concern::Handoff(i), true) = (concern, margin > certain) {
            return hand_over(&brief.handoff[i].reason);
        }
        if margin > understand::UNSURE {
            let mut calls = Vec::new();
            save(&mut calls);
            calls.push(call(reading, calls.len(), "search_knowledge", json!({"query": said})));
            return (String::new(), calls);
        }
    }
    if details.is_empty() {
        match pending {
            Pending::Offer if denies(said) => return text(format!("No problem. {ANYTHING_ELSE}")),
            Pending::Confirm if affirms(said) => {
                return text(format!("Thank you, that's all noted. {ANYTHING_ELSE}"));
            }
            Pending::Confirm if denies(said) => {
                return text("Sorry about that. What should I correct?");
            }
            _ => {}
        }
        match small_talk(said) {
            Some(SmallTalk::Greeting) => return text("Hello! How can I help you today?"),
            Some(SmallTalk::Thanks) => return text(format!("You're welcome! {ANYTHING_ELSE}")),
            _ => {}
        }
    }
    let mut calls = Vec::new();
    save(&mut calls);
    let questions = is_question(said) || details.is_empty();
    if !details.is_empty() && !questions {
        return (String::new(), calls);
    }
    // A wish the procedure meets by collecting details comes before a search.
    if details.is_empty() && !is_question(said) {
        let now = active(engine, reading, &BTreeMap::new()).await;
        if let Some(next) = now.iter().find(|d| !brief.collected.contains_key(&d.key) && d.when.is_some()) {
            return text(format!("I can help with that. {}", ask_for(next)));
        }
    }
    if questions {
        calls.push(call(reading, calls.len(), "search_knowledge", json!({"query": said})));
    }
    (String::new(), calls)
}

/// The passages a `search_knowledge` result holds.
fn passages(result: &ToolResult) -> Vec<Found> {
    result.content["passages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Found {
            document: p["document"].as_str().unwrap_or_default().to_owned(),
            place: p["place"].as_str().unwrap_or_default().to_owned(),
            text: p["text"].as_str().unwrap_or_default().to_owned(),
        })
        .filter(|f| !f.text.trim().is_empty())
        .collect()
}

/// How much an answer may be worth, from words and (when there) meaning.
const SEMANTIC_WEIGHT: f32 = 3.0;
const SEMANTIC_BASE: f32 = 0.80;
/// At or above this an answer is given on its words and meaning together.
const ANSWERS: f32 = 0.15;
/// A sentence this close in meaning answers even when it shares no word with the question.
const ANSWERS_BY_MEANING: f32 = 0.825;

/// The sentence that answers the question, cited, and the closest any sentence of the
/// passages came to the question in meaning; `None` for the answer when the documents do
/// not say.
async fn answer_from(engine: &LocalEngine, question: &str, found: &[Found]) -> (Option<String>, f32) {
    let candidates = answer::candidates(found);
    if candidates.is_empty() {
        return (None, f32::MIN);
    }
    let mut scores = answer::lexical_scores(question, &candidates);
    let texts: Vec<Vec<String>> = candidates.iter().map(|c| vec![c.text.clone()]).collect();
    let sims = engine.similarities(question, &texts).await;
    if let Some(sims) = &sims {
        for (score, sim) in scores.iter_mut().zip(sims) {
            *score += SEMANTIC_WEIGHT * (sim - SEMANTIC_BASE);
        }
    }
    let closest = sims.as_ref().map_or(f32::MIN, |s| s.iter().copied().fold(f32::MIN, f32::max));
    if tracing::enabled!(tracing::Level::TRACE) {
        let mut ranked: Vec<usize> = (0..candidates.len()).collect();
        ranked.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
        for &i in ranked.iter().take(4) {
            let sim = sims.as_ref().map_or(0.0, |s| s[i]);
            tracing::trace!(said = question, candidate = %candidates[i].text, score = scores[i], sim, "an answer weighed");
        }
    }
    let Some((sentence, index, score)) = answer::best(question, &candidates, &scores) else { return (None, closest) };
    let meaning = sims.as_ref().map_or(f32::MIN, |s| s[index]);
    tracing::debug!(said = question, answer = %sentence, score, meaning, "the local engine chooses an answer");
    let answers = score >= ANSWERS || (meaning >= ANSWERS_BY_MEANING && score >= 0.0);
    (answers.then(|| answer::cite(&sentence, &candidates[index])), closest)
}

fn read_back(brief: &Brief, saved: &BTreeMap<String, String>, active: &[Detail]) -> String {
    let mut collected = brief.collected.clone();
    collected.extend(saved.clone());
    let missing: Vec<&Detail> = active.iter().filter(|d| !collected.contains_key(&d.key)).collect();
    let name = |key: &str| brief.detail(key).map_or_else(|| key.replace('_', " "), |d| d.name.clone());
    match missing.first() {
        None => {
            let listed: Vec<String> = active
                .iter()
                .filter_map(|d| collected.get(&d.key).map(|v| format!("{}: {v}", d.name)))
                .chain(
                    saved
                        .iter()
                        .filter(|(k, _)| !active.iter().any(|d| &d.key == *k))
                        .map(|(k, v)| format!("{}: {v}", name(k))),
                )
                .collect();
            format!("Thank you. To confirm: {}. {CONFIRM}", listed.join("; "))
        }
        Some(next) => {
            let listed: Vec<String> = saved.iter().map(|(k, v)| format!("{}: {v}", name(k))).collect();
            format!("Thank you, I've noted your {}. {}", listed.join("; "), ask_for(next))
        }
    }
}

fn handoff_reply(reason: &str, saved: &BTreeMap<String, String>, brief: &Brief) -> String {
    let opening = if reason == ASKED_FOR_PERSON {
        "Of course."
    } else {
        "I'm sorry to hear that — this needs one of our team."
    };
    let noted = if saved.is_empty() {
        String::new()
    } else {
        let listed: Vec<String> = saved
            .iter()
            .map(|(k, v)| format!("{}: {v}", brief.detail(k).map_or_else(|| k.replace('_', " "), |d| d.name.clone())))
            .collect();
        format!(" I've noted your {}.", listed.join("; "))
    };
    format!(
        "{opening}{noted} I'm passing this conversation to a member of our team now; they will see everything you've told me and take it from here, so you won't need to repeat yourself."
    )
}

async fn results_turn(engine: &LocalEngine, reading: &Reading<'_>) -> Move {
    let brief = &reading.brief;
    let said = reading.customer.trim();
    let mut saved = BTreeMap::new();
    let mut found = Vec::new();
    let mut failed = false;
    // What the tenant's tools answered, in words.
    let mut told = Vec::new();
    for (call, result) in &reading.results {
        if !BUILT_IN.contains(&call.name.as_str()) {
            told.push(if result.is_error {
                format!("I'm sorry, I couldn't check that just now — {OFFER}")
            } else {
                tools::tell(&result.content["result"])
            });
            continue;
        }
        if result.is_error {
            failed = true;
            continue;
        }
        match call.name.as_str() {
            "hand_off" => {
                let saved_now: BTreeMap<String, String> = reading
                    .results
                    .iter()
                    .filter(|(c, r)| c.name == "save_details" && !r.is_error)
                    .flat_map(|(c, _)| c.input.as_object().cloned().unwrap_or_default())
                    .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect();
                let reason = call.input["reason"].as_str().unwrap_or_default();
                return text(handoff_reply(reason, &saved_now, brief));
            }
            "end_conversation" => return text("Thank you for getting in touch. Goodbye!"),
            "save_details" => {
                for (k, v) in call.input.as_object().into_iter().flatten() {
                    saved.insert(k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                }
            }
            "search_knowledge" => found.extend(passages(result)),
            _ => {}
        }
    }
    if failed && saved.is_empty() && found.is_empty() && told.is_empty() {
        return text(format!("I'm sorry, something went wrong on my side — {OFFER}"));
    }
    let answered_by_tool = !told.is_empty();
    let mut parts = told;
    let searched = reading.results.iter().any(|(c, _)| c.name == "search_knowledge");
    if searched {
        let (answer, closest) = answer_from(engine, said, &found).await;
        // A message that may be a handoff situation or a forbidden request is one, unless
        // what the documents say is closer to it.
        let plain = handoff_by_words(brief, said).is_some() || guardrail_by_words(brief, said).is_some();
        if !plain
            && saved.len() < 2
            && let Some((concern, sim, margin)) = meaning(engine, brief, said).await
            && margin > understand::UNSURE
            && closest + DOCUMENTS_FIRST < sim
        {
            return match concern {
                Concern::Handoff(i) => {
                    let reason = brief.handoff[i].reason.clone();
                    let input = json!({"reason": reason, "summary": summary(brief, &reason, said, &saved)});
                    (String::new(), vec![call(reading, 0, "hand_off", input)])
                }
                Concern::Guardrail(i) => refusal(brief, i),
            };
        }
        match answer {
            Some(answer) => parts.push(answer),
            None => parts.push(format!("I'm sorry, I don't know that — {OFFER}")),
        }
    }
    let now = active(engine, reading, &saved).await;
    if !saved.is_empty() {
        parts.push(read_back(brief, &saved, &now));
    } else if !parts.last().is_some_and(|p| p.ends_with(OFFER)) {
        let collected = &brief.collected;
        if let Some(next) = now.iter().find(|d| {
            !collected.contains_key(&d.key)
                && (!collected.is_empty() || d.when.is_some() || !reading.earlier_customer.is_empty())
        }) {
            parts.push(ask_for(next));
        }
    }
    if parts.is_empty() {
        parts.push(format!("Could you tell me a little more about what you need? {ANYTHING_ELSE}"));
    } else if answered_by_tool && !parts.last().is_some_and(|p| p.ends_with('?')) {
        parts.push(ANYTHING_ELSE.to_owned());
    }
    text(parts.join(" "))
}

/// Prompts of agents generated before tools: passages after a `Knowledge:` line, one per
/// line as `[n] (title, location) text`; the answer is the sentence that answers, cited.
fn legacy(prompt: &Prompt) -> Move {
    let question = prompt.messages.last().map(Message::text).unwrap_or_default();
    let found: Vec<Found> = prompt
        .system
        .lines()
        .skip_while(|l| l.trim() != "Knowledge:")
        .skip(1)
        .filter_map(|line| {
            let rest = line.trim().strip_prefix('[')?.split_once(']')?.1.trim();
            let (citation, passage) = rest.strip_prefix('(')?.split_once(')')?;
            let (document, place) = citation.split_once(", ").unwrap_or((citation, ""));
            Some(Found { document: document.trim().into(), place: place.trim().into(), text: passage.trim().into() })
        })
        .collect();
    let candidates = answer::candidates(&found);
    let scores = answer::lexical_scores(&question, &candidates);
    match answer::best(&question, &candidates, &scores).filter(|(_, _, score)| *score >= ANSWERS) {
        Some((sentence, index, _)) => text(answer::cite(&sentence, &candidates[index])),
        None => text(format!("I'm sorry, I don't know that — {OFFER}")),
    }
}
