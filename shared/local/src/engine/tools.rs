//! The tenant's tools in the local engine's turn: which tool a customer's message asks
//! for (by the words it shares with the tool's name and description, and by meaning when
//! the embedding engine runs), the arguments the message gives (by each property's
//! schema: an enum value, a pattern, a number, an email, an identifier), the question for
//! one it lacks, and the words a tool's answer is told in.

use oratio_core::llm::{Prompt, ToolSpec};
use oratio_core::tools::BUILT_IN;
use serde_json::{Map, Value};

use super::LocalEngine;
use super::lexicon::{GENERIC_KEYS, Terms};

/// How close in meaning a message must come to a tool's description for the tool to be
/// asked for on meaning alone.
const MEANS: f32 = 0.86;
/// Closer than this, the message asks for the tool if it also gives an argument or shares
/// a word with it.
const MAY_MEAN: f32 = 0.82;

/// What a customer's message asks of a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub tool: ToolSpec,
    pub arguments: Map<String, Value>,
    /// The first required argument the message did not give.
    pub missing: Option<String>,
}

/// The tenant's tools a prompt offers.
pub fn offered(prompt: &Prompt) -> Vec<&ToolSpec> {
    prompt.tools.iter().filter(|t| !BUILT_IN.contains(&t.name.as_str())).collect()
}

fn properties(tool: &ToolSpec) -> Vec<(String, Value)> {
    tool.input_schema["properties"]
        .as_object()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn required(tool: &ToolSpec) -> Vec<String> {
    tool.input_schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// "order_id" → "order id".
fn humane(key: &str) -> String {
    key.replace(['_', '-'], " ").trim().to_lowercase()
}

/// What the property is, in a few words: its description up to the first comma or
/// bracket ("the order number, e.g. A-1042" → "the order number"), or its name.
fn what(key: &str, property: &Value) -> String {
    let described = property["description"].as_str().unwrap_or_default();
    let short = described.split([',', '(', ';', '.']).next().unwrap_or_default().trim();
    if !short.is_empty() && short.split_whitespace().count() <= 8 {
        let lower = short.to_lowercase();
        if lower.starts_with("the ") || lower.starts_with("your ") || lower.starts_with("a ") {
            return lower;
        }
        return format!("the {lower}");
    }
    format!("the {}", humane(key))
}

/// The question the agent asks for a tool's missing argument.
pub fn ask(tool: &ToolSpec, key: &str) -> String {
    let property = &tool.input_schema["properties"][key];
    format!("To look that up, could you tell me {}?", what(key, property))
}

/// The tool and argument the agent's last words asked for, if they did.
pub fn asked<'a>(tools: &[&'a ToolSpec], last_agent: Option<&str>) -> Option<(&'a ToolSpec, String)> {
    let said = last_agent?.trim();
    tools.iter().find_map(|tool| {
        properties(tool).into_iter().find(|(key, _)| said.ends_with(&ask(tool, key))).map(|(key, _)| (*tool, key))
    })
}

fn looks_like_identifier(key: &str, property: &Value) -> bool {
    const IDS: &[&str] = &[
        "id",
        "number",
        "no",
        "ref",
        "reference",
        "code",
        "order",
        "booking",
        "tracking",
        "account",
        "invoice",
        "ticket",
        "confirmation",
        "policy",
        "membership",
        "reservation",
        "claim",
        "case",
        "serial",
        "sku",
    ];
    let words = format!("{} {}", humane(key), property["description"].as_str().unwrap_or_default().to_lowercase());
    words.split(|c: char| !c.is_alphanumeric()).any(|w| IDS.contains(&w))
}

/// The message's tokens, trimmed of the punctuation around them.
fn tokens(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric() && c != '#' && c != '-' && c != '@' && c != '.'))
        .map(|t| t.trim_start_matches('#').trim_end_matches(['.', '-']))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The value the message gives for one property, if it gives one.
fn value_for(text: &str, key: &str, property: &Value, only: bool) -> Option<Value> {
    if let Some(options) = property["enum"].as_array() {
        let lower = text.to_lowercase();
        return options.iter().find(|o| o.as_str().is_some_and(|o| contains_word(&lower, &o.to_lowercase()))).cloned();
    }
    let kind = property["type"].as_str().unwrap_or("string");
    let found = tokens(text);
    match kind {
        "integer" => found.iter().find_map(|t| t.replace(',', "").parse::<i64>().ok()).map(Value::from),
        "number" => found.iter().find_map(|t| t.replace(',', "").parse::<f64>().ok()).map(Value::from),
        "string" => {
            if let Some(pattern) = property["pattern"].as_str() {
                let re = regex::Regex::new(pattern).ok()?;
                return found
                    .iter()
                    .flat_map(|t| [t.clone(), t.to_uppercase()])
                    .find(|t| re.is_match(t))
                    .map(Value::String);
            }
            if property["format"] == "email" {
                return found.iter().find(|t| t.contains('@') && t.contains('.')).map(|t| Value::String(t.clone()));
            }
            if looks_like_identifier(key, property) {
                // An identifier has a digit; of several, the one with letters too, else the longest.
                let mut ids: Vec<&String> =
                    found.iter().filter(|t| t.len() >= 3 && t.chars().any(|c| c.is_ascii_digit())).collect();
                ids.sort_by_key(|t| (!t.chars().any(char::is_alphabetic), std::cmp::Reverse(t.len())));
                return ids.first().map(|t| Value::String((*t).clone()));
            }
            const FREE: &[&str] =
                &["query", "question", "message", "text", "request", "topic", "search", "description"];
            (only && FREE.contains(&key)).then(|| Value::String(text.trim().to_owned()))
        }
        _ => None,
    }
}

fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = text[at + word.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

/// The arguments `texts` give (the first that gives each wins), and the first required
/// one none gives.
fn arguments(tool: &ToolSpec, texts: &[&str]) -> (Map<String, Value>, Option<String>) {
    let props = properties(tool);
    let strings = props.iter().filter(|(_, p)| p["type"].as_str().unwrap_or("string") == "string").count();
    let mut out = Map::new();
    for (key, property) in &props {
        if let Some(value) = texts.iter().find_map(|t| value_for(t, key, property, strings == 1)) {
            out.insert(key.clone(), value);
        }
    }
    let missing = required(tool).into_iter().find(|k| !out.contains_key(k));
    (out, missing)
}

/// How many of a tool's own words the message shares.
fn shared_words(tool: &ToolSpec, said: &str) -> usize {
    let about = Terms::of(&format!("{}. {}", humane(&tool.name), tool.description));
    let said = Terms::of(said);
    about.keys().iter().filter(|k| !GENERIC_KEYS.contains(&k.as_str()) && said.has_key(k)).count()
}

/// The tool the customer's message asks for, if one: given the answer to the agent's
/// question for an argument, that tool; else the tool it shares most words with or comes
/// closest to in meaning, when clearly enough.
pub async fn wanted(
    engine: &LocalEngine,
    tools: &[&ToolSpec],
    said: &str,
    last_agent: Option<&str>,
    earlier: &[String],
) -> Option<Wanted> {
    if tools.is_empty() {
        return None;
    }
    if let Some((tool, key)) = asked(tools, last_agent) {
        let property = &tool.input_schema["properties"][key.as_str()];
        // The whole reply answers a question for a free-form value ("Sanne de Vries").
        let value = value_for(said, &key, property, true).or_else(|| {
            (property["type"].as_str().unwrap_or("string") == "string" && !looks_like_identifier(&key, property))
                .then(|| Value::String(said.trim().trim_end_matches('.').to_owned()))
        });
        if let Some(value) = value {
            let texts: Vec<&str> = earlier.iter().rev().map(String::as_str).collect();
            let (mut arguments, _) = arguments(tool, &texts);
            arguments.insert(key, value);
            let missing = required(tool).into_iter().find(|k| !arguments.contains_key(k));
            return Some(Wanted { tool: tool.clone(), arguments, missing });
        }
    }
    let anchors: Vec<Vec<String>> = tools
        .iter()
        .map(|t| {
            let mut set = vec![humane(&t.name), t.description.clone()];
            set.extend(t.description.split(". ").filter(|s| s.split_whitespace().count() >= 3).map(str::to_owned));
            set
        })
        .collect();
    let sims = engine.similarities(said, &anchors).await;
    let mut best: Option<(f32, &ToolSpec)> = None;
    for (i, tool) in tools.iter().enumerate() {
        let words = shared_words(tool, said);
        let sim = sims.as_ref().map_or(0.0, |s| s[i]);
        let (given, _) = arguments(tool, &[said]);
        let gives = !given.is_empty();
        tracing::debug!(said, tool = %tool.name, words, sim, gives, "the local engine weighs a tool");
        let asks = words >= 2 || (words >= 1 && gives) || sim >= MEANS || (sim >= MAY_MEAN && (gives || words >= 1));
        let score = words as f32 * 0.05 + sim;
        if asks && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, tool));
        }
    }
    let (_, tool) = best?;
    let texts: Vec<&str> = std::iter::once(said).chain(earlier.iter().rev().map(String::as_str)).collect();
    let (arguments, missing) = arguments(tool, &texts);
    Some(Wanted { tool: tool.clone(), arguments, missing })
}

/// A tool's answer in words.
pub fn tell(result: &Value) -> String {
    const SAYS: &[&str] = &["message", "reply", "answer", "text", "summary"];
    match result {
        Value::Null => "That's done.".into(),
        Value::String(text) => text.clone(),
        Value::Object(fields) => {
            if let Some(text) = SAYS.iter().find_map(|k| fields.get(*k).and_then(Value::as_str)) {
                return text.to_owned();
            }
            let listed: Vec<String> =
                fields.iter().filter_map(|(k, v)| scalar(v).map(|v| format!("{}: {v}", humane(k)))).take(8).collect();
            if listed.is_empty() {
                "That's done.".into()
            } else {
                format!("Here's what I found — {}.", listed.join("; "))
            }
        }
        Value::Array(items) => {
            let listed: Vec<String> = items.iter().filter_map(scalar).take(5).collect();
            format!("Here's what I found: {}.", listed.join(", "))
        }
        other => format!("Here's what I found: {other}."),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        Value::Array(items) => {
            let listed: Vec<String> = items.iter().filter_map(scalar).take(5).collect();
            (!listed.is_empty()).then(|| listed.join(", "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_status() -> ToolSpec {
        ToolSpec {
            name: "order_status".into(),
            description: "Look up where a customer's order is: its status, carrier and expected delivery.".into(),
            input_schema: json!({"type": "object", "properties": {"order_id": {"type": "string", "description": "the order number, e.g. A-1042"}}, "required": ["order_id"]}),
        }
    }

    #[test]
    fn arguments_are_found_by_their_schema() {
        let tool = order_status();
        let (found, missing) = arguments(&tool, &["hiya, parcel still not here!! order #A-2077 pls"]);
        assert_eq!((found.get("order_id"), missing), (Some(&json!("A-2077")), None));
        let (_, missing) = arguments(&tool, &["where is my stuff"]);
        assert_eq!(missing.as_deref(), Some("order_id"));
        let patterned = ToolSpec {
            input_schema: json!({"type": "object", "properties": {
                "booking": {"type": "string", "pattern": "^BK[0-9]{5}$"},
                "nights": {"type": "integer"},
                "room": {"type": "string", "enum": ["single", "double", "suite"]}}}),
            ..tool.clone()
        };
        let (found, _) = arguments(&patterned, &["can I change bk12345 to a Suite for 3 nights?"]);
        assert_eq!(found.get("booking"), Some(&json!("BK12345")));
        assert_eq!(found.get("nights"), Some(&json!(3)));
        assert_eq!(found.get("room"), Some(&json!("suite")));
    }

    #[test]
    fn answers_are_told_in_words_and_questions_asked_in_the_tools_terms() {
        let told = tell(&json!({"order_id": "A-1042", "status": "shipped", "carrier": "DHL", "eta": {"day": "Thu"}}));
        assert_eq!(told, "Here's what I found — carrier: DHL; order id: A-1042; status: shipped.");
        assert_eq!(tell(&json!({"message": "Your table is booked."})), "Your table is booked.");
        assert_eq!(ask(&order_status(), "order_id"), "To look that up, could you tell me the order number?");
        let tool = order_status();
        assert_eq!(
            asked(&[&tool], Some("Sure. To look that up, could you tell me the order number?")).map(|(_, k)| k),
            Some("order_id".into())
        );
    }
}
