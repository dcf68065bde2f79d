//! Reading an SOP into requirements, in the styles businesses write them: numbered or
//! bulleted lists (`-`, `*`, `•`), `Step N:` lines, sub-bullets that belong to their step,
//! sections under headings (procedure, escalation, never, tone, what to collect) written
//! as Markdown headings, bold labels or `Label:` lines, and plain prose, whose instructions
//! become steps. The tenant's own handoff conditions are merged with the SOP's.

use serde::{Deserialize, Serialize};

use crate::language::{lower_first, sentences, upper_first, words};

/// What the SOP asks of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirements {
    /// What the SOP is for (its title, or its first line).
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

/// What a part of the SOP is about, as its heading or label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Procedure,
    Escalation,
    Never,
    Tone,
    Data,
    Context,
}

/// The words a heading or label names its section by, in the order they are tried.
#[rustfmt::skip]
const SECTION_WORDS: &[(Section, &[&str])] = &[
    (Section::Never, &["never", "don't", "do not", "must not", "not allowed", "prohibit", "forbidden", "avoid",
        "restrict", "guardrail", "off limits", "off-limits", "what not to", "limits", "boundaries", "not to do",
        "red line"]),
    (Section::Escalation, &["escalat", "hand off", "handoff", "hand-off", "hand over", "handover", "transfer",
        "human", "emergenc", "urgent", "when to involve", "red flag", "get help", "supervisor", "manager",
        "call a person", "exception", "pass to", "pass on", "refer to", "send to", "hand to", "put through",
        "to a person", "to the team", "alert"]),
    (Section::Tone, &["tone", "voice", "style", "manner", "how to speak", "how we speak", "communication",
        "personality", "language"]),
    (Section::Data, &["collect", "information to gather", "information we need", "required information",
        "details to", "what to ask", "data to", "information needed", "intake", "to capture", "to record",
        "details we need", "what we need"]),
    (Section::Context, &["purpose", "about us", "overview", "introduction", "background", "who we are", "scope",
        "goal", "context", "about this"]),
];

fn section_of(heading: &str) -> Section {
    let h = heading.to_lowercase();
    SECTION_WORDS
        .iter()
        .find(|(_, words)| words.iter().any(|w| h.contains(w)))
        .map_or(Section::Procedure, |(section, _)| *section)
}

/// Labels that introduce a section when written `Label: …` without emphasis.
#[rustfmt::skip]
const PLAIN_LABELS: &[&str] = &[
    "tone", "voice", "style", "escalation", "escalations", "escalate", "escalate if", "escalate when", "handoff",
    "hand off", "transfer", "never", "do not", "don't", "forbidden", "rules", "guardrails", "collect",
    "required information", "information to collect", "purpose", "goal", "note", "important", "always", "procedure",
    "steps", "process",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Number,
    Bullet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Blank,
    Heading(String),
    /// `**Tone:** warm` — a label with text after it.
    Label(String, String),
    Item {
        indent: usize,
        marker: Marker,
        text: String,
    },
    Text(String),
}

fn strip_emphasis(text: &str) -> &str {
    text.trim().trim_matches(|c| c == '*' || c == '_').trim()
}

/// `**Label:** rest`, `**Label**: rest`, `__Label__ rest` → (label, rest).
fn bold_label(line: &str) -> Option<(String, String)> {
    let fence = if line.starts_with("**") {
        "**"
    } else if line.starts_with("__") {
        "__"
    } else {
        return None;
    };
    let inner = &line[2..];
    let close = inner.find(fence)?;
    let label = inner[..close].trim().trim_end_matches(':').trim().to_owned();
    let rest = inner[close + 2..].trim().trim_start_matches(':').trim().to_owned();
    (!label.is_empty()).then_some((label, rest))
}

const BULLETS: &[char] = &['-', '*', '•', '–', '—', '+', '·', '▪', '◦', '○', '●', '✓', '✔', '►', '>'];

/// The text of a numbered (`1.`, `1)`, `(1)`, `a)`, `Step 1:`) or bulleted line.
fn item_text(line: &str) -> Option<(Marker, &str)> {
    let lower = line.to_lowercase();
    if let Some(rest) = lower.strip_prefix("step ") {
        let number: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
        let after = &rest[number.len()..];
        let spelled = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
        if (!number.is_empty() && number.chars().all(|c| c.is_ascii_digit())) || spelled.contains(&number.as_str()) {
            let after = after.trim_start_matches([':', '.', ')', '-', '–', ' ']);
            let text = line.len().checked_sub(after.len()).and_then(|start| line.get(start..))?;
            return Some((Marker::Number, text.trim())).filter(|(_, t)| !t.is_empty());
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && digits <= 3 {
        let rest = &line[digits..];
        let rest = rest.strip_prefix(['.', ')', ':']).filter(|r| r.starts_with(' '))?;
        return Some((Marker::Number, rest.trim())).filter(|(_, t)| !t.is_empty());
    }
    if let Some(rest) = line.strip_prefix('(') {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(')') {
            return Some((Marker::Number, rest[digits + 1..].trim())).filter(|(_, t)| !t.is_empty());
        }
    }
    let mut chars = line.chars();
    if let (Some(letter), Some(close)) = (chars.next(), chars.next())
        && letter.is_ascii_lowercase()
        && close == ')'
        && chars.next() == Some(' ')
    {
        return Some((Marker::Bullet, line[3..].trim())).filter(|(_, t)| !t.is_empty());
    }
    let first = line.chars().next()?;
    if BULLETS.contains(&first) {
        let rest = &line[first.len_utf8()..];
        // `**bold**` is emphasis, not a bullet; a bullet is followed by a space.
        if rest.starts_with(' ') || rest.starts_with('\t') {
            return Some((Marker::Bullet, rest.trim())).filter(|(_, t)| !t.is_empty());
        }
    }
    None
}

fn classify(raw: &str) -> Line {
    let indent: usize = raw.chars().take_while(|c| c.is_whitespace()).map(|c| if c == '\t' { 4 } else { 1 }).sum();
    let line = raw.trim();
    if line.is_empty() || line.chars().all(|c| matches!(c, '-' | '=' | '*' | '_')) {
        return Line::Blank;
    }
    if line.starts_with('#') {
        return Line::Heading(strip_emphasis(line.trim_start_matches('#')).trim_end_matches(':').trim().to_owned());
    }
    if let Some((label, rest)) = bold_label(line) {
        return if rest.is_empty() { Line::Heading(label) } else { Line::Label(label, rest) };
    }
    if let Some((marker, text)) = item_text(line) {
        if let Some((label, rest)) = bold_label(text).filter(|(_, rest)| !rest.is_empty()) {
            if section_of(&label) != Section::Procedure {
                return Line::Label(label, rest);
            }
            return Line::Item { indent, marker, text: format!("{label}: {rest}") };
        }
        return Line::Item { indent, marker, text: strip_emphasis(text).to_owned() };
    }
    let word_count = line.split_whitespace().count();
    if line.ends_with(':') && word_count <= 8 {
        return Line::Heading(strip_emphasis(line.trim_end_matches(':')).to_owned());
    }
    if let Some((label, rest)) = line.split_once(':') {
        let label = strip_emphasis(label).to_lowercase();
        if PLAIN_LABELS.contains(&label.as_str()) && !rest.trim().is_empty() && !rest.starts_with("//") {
            return Line::Label(label, rest.trim().to_owned());
        }
    }
    let letters: Vec<char> = line.chars().filter(|c| c.is_alphabetic()).collect();
    if word_count <= 6 && letters.len() >= 3 && letters.iter().all(|c| c.is_uppercase()) {
        return Line::Heading(line.to_owned());
    }
    Line::Text(strip_emphasis(line).to_owned())
}

/// The independent clauses of a sentence: "Check allergens in the menu; never say a dish
/// is safe" is a step and a rule.
fn clauses(sentence: &str) -> Vec<String> {
    // "We never promise exact delivery times and we don't take orders after 1pm": two rules.
    let lower = sentence.to_lowercase();
    // "Look up prices in our documents, never guess": a step and a rule.
    for joint in [", never ", ", don't ", ", do not "] {
        if let Some(at) = lower.find(joint)
            && is_instruction(&sentence[..at])
            && !is_forbidden(&lower[..at])
        {
            let rule = upper_first(sentence[at + 2..].trim());
            return vec![sentence[..at].trim().to_owned(), rule];
        }
    }
    for joint in [" and we don't ", " and we do not ", " and we never ", " and never ", " and don't ", " and do not "] {
        if let Some(at) = lower.find(joint)
            && is_forbidden(&lower[..at])
        {
            let second = format!("We {}", sentence[at + " and ".len()..].trim_start_matches("we ").trim());
            let mut out = clauses(sentence[..at].trim());
            out.extend(clauses(&second));
            return out;
        }
    }
    let parts: Vec<&str> = sentence.split("; ").map(str::trim).filter(|p| !p.is_empty()).collect();
    let independent = parts.len() > 1
        && parts.iter().all(|p| p.split_whitespace().count() >= 3)
        && parts
            .iter()
            .skip(1)
            .all(|p| is_instruction(p) || is_forbidden(&p.to_lowercase()) || is_handoff(&p.to_lowercase()));
    if independent { parts.iter().map(|p| (*p).to_owned()).collect() } else { vec![sentence.to_owned()] }
}

/// A unit of instruction: a list item (with its sub-items) or a sentence of prose.
#[derive(Debug, Clone)]
struct Unit {
    section: Section,
    text: String,
    children: Vec<String>,
    /// From a list (a list item is a step even without an instruction verb).
    listed: bool,
}

fn units(sop: &str) -> (Vec<Unit>, Option<String>) {
    let mut out: Vec<Unit> = Vec::new();
    let mut section = Section::Procedure;
    let mut title = None;
    // The last top-level item, for sub-items: (index in `out`, indent, marker).
    let mut parent: Option<(usize, usize, Marker)> = None;
    for raw in sop.lines() {
        match classify(raw) {
            Line::Blank => {}
            Line::Heading(heading) => {
                if title.is_none() && out.is_empty() && section_of(&heading) == Section::Procedure {
                    title = Some(heading.clone());
                }
                section = section_of(&heading);
                parent = None;
            }
            Line::Label(label, rest) => {
                let labelled = section_of(&label);
                if labelled == Section::Procedure && section != Section::Procedure {
                    // `Step 2: …` style labels inside another section keep that section.
                    out.push(Unit { section, text: format!("{label}: {rest}"), children: vec![], listed: true });
                } else {
                    for sentence in sentences(&rest) {
                        for clause in clauses(&sentence) {
                            out.push(Unit { section: labelled, text: clause, children: vec![], listed: true });
                        }
                    }
                }
                parent = None;
            }
            Line::Item { indent, marker, text } => {
                let child_of = parent.filter(|&(at, parent_indent, parent_marker)| {
                    indent > parent_indent
                        || (parent_marker == Marker::Number && marker == Marker::Bullet)
                        || (indent == parent_indent && out[at].text.ends_with(':') && marker != parent_marker)
                });
                match child_of {
                    Some((at, _, _)) => out[at].children.push(text),
                    None => {
                        for clause in clauses(&text) {
                            out.push(Unit { section, text: clause, children: vec![], listed: true });
                        }
                        parent = Some((out.len() - 1, indent, marker));
                    }
                }
            }
            Line::Text(text) => {
                parent = None;
                if title.is_none() && out.is_empty() && section == Section::Procedure {
                    let words = text.split_whitespace().count();
                    if words <= 12 && !text.ends_with('.') && !text.contains(':') {
                        title = Some(text);
                        continue;
                    }
                }
                for sentence in sentences(&text) {
                    for clause in clauses(&sentence) {
                        out.push(Unit { section, text: clause, children: vec![], listed: false });
                    }
                }
            }
        }
    }
    (out, title)
}

#[rustfmt::skip]
const FORBIDDEN_MARKERS: &[&str] = &[
    "never ", "do not ", "don't ", "dont ", "must not ", "mustn't ", "should not ", "shouldn't ", "not allowed",
    "under no circumstances", "not permitted", "refrain from", "is prohibited", "are prohibited", "forbidden",
    "avoid ", "may not ", "cannot ", "can't ",
];

#[rustfmt::skip]
const HANDOFF_VERBS: &[&str] = &[
    "escalate", "escalation", "transfer", "hand off", "hand over", "hand the", "handoff", "hand-off",
    "pass the call", "pass them", "pass it", "put them through", "put the caller through", "connect them",
    "connect the", "route them", "route the", "refer them", "refer the", "forward them", "forward the call",
    "alert ", "notify ", "page the", "bring in", "involve ", "get a ", "get the on-call", "call in", "go to ",
    "goes to ", "send to", "send straight to", "send them to", "sent to", "pass to", "passed to", "refer to",
    "put through to", "hand to",
];

#[rustfmt::skip]
const STAFF: &[&str] = &[
    "human", "person", "manager", "supervisor", "colleague", "staff", "team", "specialist", "live agent", "someone",
    "nurse", "doctor", "vet", "pharmacist", "technician", "engineer", "advisor", "adviser", "on-call", "on call",
    "owner", "dispatcher", "coordinator", "coordinator", "representative", "office", "department", "desk", "lead",
];

fn contains_any(text: &str, markers: &[&str]) -> bool {
    markers.iter().any(|m| text.contains(m))
}

/// Verb phrases that hand over whoever they name ("pass it to Helen").
const HANDING: &[&str] = &[
    "pass it to ",
    "pass them to ",
    "pass the call to ",
    "pass the chat to ",
    "put them through to ",
    "put the call through to ",
    "hand it to ",
    "hand them to ",
    "refer it to ",
    "forward it to ",
    "send it to ",
    "pass it on to ",
    "pass to ",
];

fn is_handoff(lower: &str) -> bool {
    // As verbs ("transfer the call"), not nouns ("questions about transfers").
    let said = words(lower);
    let direct = said.iter().any(|w| {
        matches!(
            w.as_str(),
            "escalate" | "escalated" | "escalating" | "escalation" | "transfer" | "transferred" | "handoff"
        )
    }) || contains_any(lower, &["hand off", "hand over", "hand-off", "hand it over", "hand them over"]);
    direct || contains_any(lower, HANDING) || (contains_any(lower, HANDOFF_VERBS) && contains_any(lower, STAFF))
}

fn starts_forbidding(lower: &str) -> bool {
    FORBIDDEN_MARKERS.iter().any(|m| lower.starts_with(m.trim()))
}

fn is_forbidden(lower: &str) -> bool {
    let padded = format!(" {lower}");
    FORBIDDEN_MARKERS.iter().any(|m| padded.contains(&format!(" {m}")) || lower.starts_with(m.trim()))
}

/// Verbs an instruction starts with.
#[rustfmt::skip]
const IMPERATIVES: &[&str] = &[
    "greet", "welcome", "ask", "collect", "check", "confirm", "offer", "tell", "explain", "answer", "book",
    "schedule", "take", "record", "note", "verify", "transfer", "escalate", "send", "provide", "give", "help",
    "find", "look", "let", "thank", "apologise", "apologize", "direct", "refer", "inform", "remind", "suggest",
    "recommend", "follow", "log", "create", "open", "close", "update", "cancel", "process", "issue", "arrange",
    "make", "keep", "use", "say", "read", "repeat", "end", "call", "email", "forward", "hand", "put", "advise",
    "reassure", "listen", "identify", "determine", "gather", "request", "capture", "obtain", "review", "quote",
    "share", "mention", "describe", "walk", "guide", "route", "triage", "assess", "ensure", "introduce", "start",
    "begin", "finish", "wrap", "close", "resolve", "acknowledge", "empathise", "empathize", "write", "add", "enter",
    "search", "consult", "contact", "reply", "respond", "point", "encourage", "invite", "get", "pass", "connect",
    "notify", "alert", "tag", "mark", "set", "fill", "complete", "submit", "approve", "decline", "refuse", "only",
    "always", "be", "stay", "remain", "speak", "sound", "clarify", "probe", "summarise", "summarize", "register",
    "sign", "reschedule", "move", "change", "calculate", "estimate", "dispatch", "prioritise", "prioritize", "hold",
    "wait", "stop", "never", "do", "don't",
];

#[rustfmt::skip]
const LEADS: &[&str] = &[
    "always", "then", "first", "firstly", "next", "finally", "lastly", "please", "also", "afterwards", "politely",
    "kindly", "immediately", "second", "secondly", "third", "thirdly", "now", "and",
];

/// Phrases by which prose tells the agent (or staff) to do something.
#[rustfmt::skip]
const AGENT_SUBJECTS: &[&str] = &[
    "you should", "you must", "you need to", "you have to", "make sure", "ensure", "be sure to", "remember to",
    "the agent should", "the agent must", "the assistant should", "staff should", "agents should",
    "reception should", "our team should", "it is important to", "is required", "are required", "needs to be",
    "must be", "should be",
];

/// Whether a sentence of prose tells the agent to do something.
fn is_instruction(sentence: &str) -> bool {
    let lower = sentence.to_lowercase();
    let said = words(&lower);
    let mut i = 0;
    while i < said.len() && LEADS.contains(&said[i].as_str()) {
        i += 1;
    }
    if said.get(i).is_some_and(|w| IMPERATIVES.contains(&w.as_str()) && w != "only") {
        return true;
    }
    // "If they …, ask for …" / "When a customer calls, greet them".
    if matches!(
        said.first().map(String::as_str),
        Some("if" | "when" | "once" | "before" | "after" | "whenever" | "for")
    ) && let Some((_, main)) = lower.split_once(',')
    {
        let main = words(main);
        let mut j = 0;
        while j < main.len() && LEADS.contains(&main[j].as_str()) {
            j += 1;
        }
        if main.get(j).is_some_and(|w| IMPERATIVES.contains(&w.as_str())) {
            return true;
        }
    }
    if contains_any(&lower, AGENT_SUBJECTS) {
        return true;
    }
    // "We always confirm …", "our agents ask …": a subject, perhaps an adverb, then a verb of the procedure.
    let subjects =
        ["we", "you", "agents", "staff", "reception", "receptionists", "the receptionist", "we'll", "you'll"];
    said.windows(3).any(|w| {
        subjects.contains(&w[0].as_str())
            && (IMPERATIVES.contains(&w[1].as_str())
                && !matches!(w[1].as_str(), "be" | "do" | "only" | "always" | "never")
                || matches!(w[1].as_str(), "always" | "usually" | "then" | "will" | "can" | "never" | "first" | "also")
                    && IMPERATIVES.contains(&w[2].as_str())
                    && !matches!(w[2].as_str(), "be" | "do"))
    })
}

fn is_tone(lower: &str) -> Option<String> {
    for lead in ["tone:", "our tone is", "the tone is", "tone should be", "your tone should be", "use a tone that is"] {
        if let Some(at) = lower.find(lead) {
            return Some(lower[at + lead.len()..].trim().trim_end_matches('.').to_owned());
        }
    }
    for lead in ["always be ", "be ", "stay ", "remain ", "sound ", "keep it ", "speak in a ", "speak "] {
        if let Some(rest) = lower.strip_prefix(lead) {
            #[rustfmt::skip]
            const MANNER: &[&str] = &[
                "friendly", "polite", "warm", "professional", "concise", "patient", "empathetic", "calm", "formal",
                "informal", "cheerful", "kind", "courteous", "brief", "clear", "reassuring", "upbeat", "respectful",
                "relaxed", "casual", "helpful", "positive", "gentle", "plain", "simple", "short", "tone", "manner",
            ];
            if contains_any(rest, MANNER) {
                return Some(rest.trim().trim_end_matches('.').to_owned());
            }
        }
    }
    if let Some(at) = lower.find(" tone") {
        let before = lower[..at].trim();
        let start = before.rfind(" a ").map_or(0, |a| a + 3);
        let adjectives = before[start..].trim();
        if !adjectives.is_empty() && adjectives.split_whitespace().count() <= 6 {
            return Some(adjectives.to_owned());
        }
    }
    None
}

/// How a condition says it is urgent, which is not part of the condition.
#[rustfmt::skip]
const URGENCY_TAILS: &[&str] = &[
    " counts as urgent", " counts as an emergency", " is urgent", " is an emergency", " is a priority",
    " are urgent", " counts as a priority",
];

/// The condition of a handoff sentence ("Escalate to a human if the caller reports severe
/// pain" → "the caller reports severe pain").
fn condition_of(sentence: &str) -> String {
    let mut text = sentence.trim().trim_end_matches(['.', '!', ';']).trim();
    // "X – pass the call to the engineer": the condition is before the dash.
    for separator in [" – ", " — ", " - ", ": ", "; "] {
        let Some((before, after)) = text.split_once(separator) else { continue };
        let (acts_before, acts_after) = (is_handoff(&before.to_lowercase()), is_handoff(&after.to_lowercase()));
        if (acts_after || is_instruction(after)) && !before.trim().is_empty() && !acts_before {
            text = before.trim();
        } else if acts_before && !acts_after && !after.trim().is_empty() {
            // "Emergencies (send straight to the manager): no water, …": after the label.
            text = after.trim();
        }
    }
    let lower_full = text.to_lowercase();
    for tail in URGENCY_TAILS {
        if lower_full.ends_with(tail) {
            text = &text[..text.len() - tail.len()];
        }
    }
    let lower = text.to_lowercase();
    let subordinators = [" if ", " when ", " whenever ", " in case ", " should the ", " in the event that ", " where "];
    for opener in ["if ", "when ", "whenever ", "in case ", "should "] {
        if let Some(rest) = lower.strip_prefix(opener) {
            // "If the caller reports X, escalate …": the condition ends at the comma before the main clause.
            let end = rest
                .match_indices(',')
                .map(|(at, _)| at)
                .find(|&at| is_instruction(rest[at + 1..].trim()))
                .unwrap_or(rest.len());
            return text[opener.len()..opener.len() + end].trim().to_owned();
        }
    }
    for sub in subordinators {
        if let Some(at) = lower.find(sub) {
            return text[at + sub.len()..].trim().to_owned();
        }
    }
    // "Customers who are angry should be transferred …": the subject is the condition.
    for modal in [" should be ", " must be ", " need to be ", " needs to be ", " are to be ", " is to be ", " go to "] {
        if let Some(at) = lower.find(modal) {
            let subject = text[..at].trim();
            if !subject.is_empty() {
                return subject.to_owned();
            }
        }
    }
    // "Escalate anything involving legal action": what follows the verb.
    for verb in ["escalate ", "transfer ", "hand off ", "hand over ", "refer "] {
        if let Some(at) = lower.find(verb) {
            let rest = &text[at + verb.len()..];
            let rest_lower = rest.to_lowercase();
            let cut = [" to a ", " to the ", " to an ", " to "]
                .iter()
                .filter_map(|m| rest_lower.find(m))
                .min()
                .unwrap_or(rest.len());
            let object = rest[..cut].trim();
            let object = object.strip_prefix("calls about ").or_else(|| object.strip_prefix("any ")).unwrap_or(object);
            if !object.is_empty()
                && !["them", "it", "the call", "calls", "the customer", "the caller"].contains(&object)
            {
                return object.to_owned();
            }
        }
    }
    text.to_owned()
}

/// Splits "a, b and c" / "a or b" / "a/b" into its items.
pub fn items(list: &str) -> Vec<String> {
    let list = strip_parentheses(list);
    list.split([',', ';', '/'])
        .flat_map(|part| part.split(" and ").flat_map(|p| p.split(" or ")))
        .map(clean_datum)
        .filter(|item| !item.is_empty() && item.chars().count() <= 60 && item.split_whitespace().count() <= 6)
        .collect()
}

fn strip_parentheses(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Where a detail's name ends ("phone number we can reach them on" → "phone number").
#[rustfmt::skip]
const DATUM_TAILS: &[&str] = &[
    " if ", " when ", " before ", " after ", " so that ", " so ", " which ", " that ", " to confirm", " on the ",
    " on their ", " associated with", " linked to", " used ", " they ", " in case", " for the booking",
    " for the appointment", " for the order", " for our records", " for reference", " from them", " from the",
    " as well", " first", " too", " please", " e.g", " such as", " for ", " to the ", " at the ", " we ", " you ",
    " i ", " by ", " itself",
];

/// Words before a detail's name that are not part of it.
#[rustfmt::skip]
const DATUM_LEADS: &[&str] = &[
    "their ", "the ", "a ", "an ", "any ", "your ", "his or her ", "his ", "her ", "customer's ", "caller's ",
    "patient's ", "client's ", "guest's ", "owner's ", "customers' ", "callers' ", "member's ", "user's ",
    "tenant's ", "the customer's ", "the caller's ", "the patient's ", "the client's ", "also ", "then ",
    "following ", "details of ",
];

fn clean_datum(item: &str) -> String {
    let mut item = item.trim().trim_end_matches(['.', ':', '!']).trim().to_lowercase();
    // "how many people it should feed" is the number of people.
    if let Some(counted) = item.strip_prefix("how many ").and_then(|rest| rest.split_whitespace().next()) {
        item = format!("number of {counted}");
    }
    for tail in DATUM_TAILS {
        if let Some(at) = item.find(tail) {
            item.truncate(at);
        }
    }
    let mut changed = true;
    while changed {
        changed = false;
        for lead in DATUM_LEADS {
            if let Some(rest) = item.strip_prefix(lead) {
                item = rest.to_owned();
                changed = true;
            }
        }
    }
    item.trim().replace(" their ", " your ")
}

#[rustfmt::skip]
const COLLECT_MARKERS: &[&str] = &[
    "collect ", "ask for ", "ask them for ", "ask the caller for ", "ask the customer for ", "ask the patient for ",
    "ask the client for ", "ask the guest for ", "ask for their ", "take down ", "take their ", "record ",
    "get their ", "note down ", "note their ", "write down ", "request ", "obtain ", "gather ", "capture ",
    "verify their ", "verify the ", "we need their ", "we need the ", "asking for ", "collecting ", "get the ",
    "check their ", "confirm their ", "take the ", "ask their ", "ask what their ", "ask for the ", "ask ",
];

/// What a step that collects details is for, as the customer would want it: "If they want
/// to book an appointment, collect …" → "to book an appointment"; "For a table take the
/// name …" → "a table"; `None` when the step collects unconditionally.
pub fn collection_topic(instruction: &str) -> Option<String> {
    let lower = instruction.to_lowercase();
    for marker in WISH_MARKERS {
        if let Some(at) = lower.find(marker) {
            let rest = &lower[at + marker.len()..];
            let wish = rest.split([',', ';', '.', ':']).next().unwrap_or(rest).trim();
            if !wish.is_empty() {
                return Some(format!("to {wish}"));
            }
        }
    }
    let at = COLLECT_MARKERS
        .iter()
        .filter_map(|m| lower.find(m).filter(|&at| at == 0 || !lower[..at].ends_with(|c: char| c.is_alphanumeric())))
        .min()?;
    let mut head = lower[..at].trim().trim_end_matches([',', ':', '-', '–']).trim();
    for lead in ["for ", "if ", "when ", "to ", "on "] {
        head = head.strip_prefix(lead).unwrap_or(head).trim();
    }
    let head = head.trim_end_matches([',', ':']).trim();
    if head.split_whitespace().count() < 1 || head.split_whitespace().count() > 10 {
        return None;
    }
    let verb = head.split_whitespace().next().is_some_and(|w| IMPERATIVES.contains(&w));
    Some(if verb { format!("to {head}") } else { head.to_owned() })
}

/// Details a unit asks the agent to collect.
fn data_of(text: &str, children: &[String]) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut data = Vec::new();
    // Sub-items are the details when the step names none itself ("Collect the following:").
    let mut children_are_data = false;
    for marker in COLLECT_MARKERS {
        if let Some(at) = lower.find(marker) {
            let preceded = at == 0 || !lower[..at].ends_with(|c: char| c.is_alphanumeric());
            if !preceded {
                continue;
            }
            let rest = &lower[at + marker.len()..];
            let rest = rest.split(['.', '!', '?']).next().unwrap_or_default();
            // "get their name and the date, then repeat it back": the list ends where the next action starts.
            let rest = [", then ", " then ", ", and then "].iter().fold(rest, |r, m| r.split(m).next().unwrap_or(r));
            let rest = rest.trim().strip_prefix("the following").unwrap_or(rest).trim_matches([':', ' ']);
            // "ask whether they are new or existing", "ask how we can help": a question, no detail.
            if *marker == "ask " && is_noise_datum(rest.split([',', ' ']).next().unwrap_or_default()) {
                break;
            }
            for item in items(rest) {
                if !is_noise_datum(&item) {
                    push_unique(&mut data, item);
                }
            }
            children_are_data = rest.is_empty();
            break;
        }
    }
    if children_are_data || text.trim_end().ends_with(':') {
        for child in children {
            for item in items(child) {
                if !is_noise_datum(&item) {
                    push_unique(&mut data, item);
                }
            }
        }
    }
    data
}

/// Words a collect-verb is followed by that are not a detail ("record the call").
#[rustfmt::skip]
const NOT_DETAILS: &[&str] = &[
    "call", "the call", "it", "them", "this", "that", "everything", "feedback", "help", "notes", "note", "reason",
    "details", "information", "info", "following", "all", "anything", "something", "payment", "card payment",
    "questions", "question", "problem", "issue", "request", "requests", "complaint", "consent", "permission",
];

/// Words a collect-verb is followed by that are not a detail ("record the call").
fn is_noise_datum(item: &str) -> bool {
    let asks = ["what", "which", "why", "where", "who", "since", "how", "whether", "if"];
    NOT_DETAILS.contains(&item)
        || item.split_whitespace().next().is_some_and(|w| asks.contains(&w.trim_end_matches("'s")))
}

fn push_unique(list: &mut Vec<String>, item: String) {
    let item = item.trim().to_owned();
    if !item.is_empty() && !list.iter().any(|existing| existing.eq_ignore_ascii_case(&item)) {
        list.push(item);
    }
}

/// How an SOP says what a customer wants.
#[rustfmt::skip]
const WISH_MARKERS: &[&str] = &[
    "want to ", "wants to ", "would like to ", "wish to ", "wishes to ", "wanting to ", "looking to ", "needs to ",
    "need to ", "asks to ", "asking to ", "requests to ", "trying to ", "calling to ", "calls to ",
];

/// What a customer comes for, when a sentence says ("if they want to book an appointment").
fn intents_of(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for marker in WISH_MARKERS {
        if let Some(at) = lower.find(marker) {
            let rest = &lower[at + marker.len()..];
            let intent = rest.split([',', ';', '.', ':']).next().unwrap_or(rest).trim();
            let intent = intent.split(" then ").next().unwrap_or(intent).trim();
            if !intent.is_empty() && intent.split_whitespace().count() <= 8 {
                out.push(intent.to_owned());
            }
        }
    }
    out
}

/// A forbidden rule as the agent's guardrail: as written, or `Never …` for a bare item of
/// a "Never" section.
fn as_rule(text: &str) -> String {
    let text = text.trim().trim_end_matches(['.', ';']).trim();
    if is_forbidden(&text.to_lowercase()) { text.to_owned() } else { format!("Never {}", lower_first(text)) }
}

/// How a sentence adds a condition to the handoff before it ("Same if …").
#[rustfmt::skip]
const ALSO_MARKERS: &[&str] = &[
    "same if ", "the same if ", "same goes if ", "same when ", "also if ", "likewise if ", "or if ", "and if ",
    "same for ",
];

/// Reads an SOP (and the tenant's explicit handoff conditions) into requirements.
pub fn parse_sop(sop: &str, extra_handoff_conditions: &[String]) -> Result<Requirements, InvalidSop> {
    let text = sop.trim();
    if text.chars().count() < 25 || text.split_whitespace().count() < 5 {
        return Err(InvalidSop(
            "the SOP is too short to describe a procedure: write what the agent should do, step by step".into(),
        ));
    }
    let (units, title) = units(text);
    let mut r = Requirements {
        purpose: String::new(),
        intents: Vec::new(),
        steps: Vec::new(),
        required_data: Vec::new(),
        handoff_conditions: Vec::new(),
        tone: String::new(),
        forbidden: Vec::new(),
    };
    let mut context = Vec::new();
    for unit in &units {
        let lower = unit.text.to_lowercase();
        for intent in intents_of(&unit.text) {
            push_unique(&mut r.intents, intent);
        }
        // "Same if they want their money back." after a handoff sentence is another condition.
        let handoffs = r.handoff_conditions.len();
        if handoffs > 0
            && let Some(rest) =
                ALSO_MARKERS.iter().find_map(|lead| lower.strip_prefix(lead).map(|_| &unit.text[lead.len()..]))
        {
            push_unique(&mut r.handoff_conditions, rest.trim().trim_end_matches(['.', '!']).to_owned());
            continue;
        }
        match unit.section {
            // Under an escalation heading an item is a condition ("the parcel shows
            // delivered but the customer never got it") unless it starts as a rule does.
            Section::Escalation if !starts_forbidding(&lower) || is_handoff(&lower) => {
                push_unique(&mut r.handoff_conditions, condition_of(&unit.text));
                for child in &unit.children {
                    push_unique(&mut r.handoff_conditions, condition_of(child));
                }
            }
            Section::Never | Section::Escalation => {
                push_unique(&mut r.forbidden, as_rule(&unit.text));
                for child in &unit.children {
                    push_unique(&mut r.forbidden, as_rule(child));
                }
            }
            Section::Tone => {
                let tone = is_tone(&lower).unwrap_or_else(|| lower.trim_end_matches('.').to_owned());
                r.tone = if r.tone.is_empty() { tone } else { format!("{}; {tone}", r.tone) };
            }
            Section::Data => {
                let mut found = data_of(&unit.text, &unit.children);
                if found.is_empty() {
                    found = items(&unit.text).into_iter().filter(|i| !is_noise_datum(i)).collect();
                    found.extend(unit.children.iter().flat_map(|c| items(c)));
                }
                for datum in found {
                    push_unique(&mut r.required_data, datum);
                }
            }
            Section::Context => context.push(unit.text.clone()),
            Section::Procedure => procedure_unit(unit, &lower, &mut r, &mut context),
        }
    }
    // The SOP itself must say what to do; the tenant's own conditions join it after.
    if r.steps.is_empty() && r.handoff_conditions.is_empty() && r.required_data.is_empty() && r.forbidden.is_empty() {
        return Err(InvalidSop(
            "the SOP describes no procedure: say what the agent should do, step by step (for example \"Greet the \
             customer. Ask for their order number. Escalate to a person if they want a refund.\")"
                .into(),
        ));
    }
    for condition in extra_handoff_conditions.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        push_unique(&mut r.handoff_conditions, condition.trim_end_matches('.').to_owned());
    }
    if r.steps.is_empty() {
        r.steps.push("Greet the customer and ask how you can help.".into());
        r.steps.push("Answer their questions from the documents.".into());
    }
    r.purpose = title
        .or_else(|| context.first().cloned())
        .unwrap_or_else(|| r.steps.first().cloned().unwrap_or_default())
        .trim()
        .trim_end_matches('.')
        .to_owned();
    if r.tone.is_empty() {
        r.tone = "friendly and professional".into();
    }
    push_unique(&mut r.intents, "ask a question the documents answer".into());
    Ok(r)
}

fn procedure_unit(unit: &Unit, lower: &str, r: &mut Requirements, context: &mut Vec<String>) {
    if is_handoff(lower) && !lower.starts_with("never") {
        push_unique(&mut r.handoff_conditions, condition_of(&unit.text));
        for child in &unit.children {
            push_unique(&mut r.steps, child.clone());
        }
        return;
    }
    if is_forbidden(lower) && !lower.starts_with("only ") {
        push_unique(&mut r.forbidden, as_rule(&unit.text));
        return;
    }
    if let Some(tone) = is_tone(lower) {
        r.tone = if r.tone.is_empty() { tone } else { format!("{}; {tone}", r.tone) };
        return;
    }
    if !unit.listed && !is_instruction(&unit.text) {
        context.push(unit.text.clone());
        return;
    }
    let data = data_of(&unit.text, &unit.children);
    let mut step = unit.text.trim().trim_end_matches(['.', ';']).to_owned();
    let mut handled = Vec::new();
    for child in &unit.children {
        let child_lower = child.to_lowercase();
        if is_handoff(&child_lower) {
            push_unique(&mut r.handoff_conditions, condition_of(child));
            handled.push(child);
        } else if is_forbidden(&child_lower) {
            push_unique(&mut r.forbidden, as_rule(child));
            handled.push(child);
        }
    }
    let rest: Vec<&String> = unit.children.iter().filter(|c| !handled.contains(c)).collect();
    if !rest.is_empty() {
        let joined = rest.iter().map(|c| c.trim().trim_end_matches(['.', ';'])).collect::<Vec<_>>().join("; ");
        step = format!("{}: {joined}", step.trim_end_matches(':'));
        for child in rest {
            for intent in intents_of(child) {
                push_unique(&mut r.intents, intent);
            }
            for datum in data_of(child, &[]) {
                push_unique(&mut r.required_data, datum);
            }
        }
    }
    for datum in data {
        push_unique(&mut r.required_data, datum);
    }
    push_unique(&mut r.steps, step);
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENTAL: &str = "Front desk procedure for Bright Smile Dental
Tone: warm, professional and concise.

1. Greet the caller and ask how you can help.
2. If they want to book an appointment, collect their full name, phone number and preferred date.
3. Check the opening hours in the FAQ before offering a time.
4. Confirm the booking details back to the caller.

Escalate to a human if the caller reports severe pain, bleeding or swelling.
Never give a medical diagnosis. Do not share other patients' information.
";

    #[test]
    fn a_numbered_sop_becomes_requirements() {
        let r = parse_sop(DENTAL, &["the caller asks for a refund".into()]).unwrap();
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
    fn prose_sentences_become_steps() {
        let sop = "We are a small bike repair shop in Utrecht. When someone calls, greet them and ask what is \
                   wrong with their bike. Ask for their name and a phone number so the mechanic can call back. \
                   If the customer is angry or wants compensation, transfer the call to the shop manager. You \
                   should never quote a repair price over the phone. Keep it relaxed and friendly.";
        let r = parse_sop(sop, &[]).unwrap();
        assert_eq!(r.steps.len(), 2, "{r:#?}");
        assert!(r.steps[0].starts_with("When someone calls, greet them"));
        assert_eq!(r.required_data, ["name", "phone number"]);
        assert_eq!(r.handoff_conditions, ["the customer is angry or wants compensation"]);
        assert_eq!(r.forbidden, ["You should never quote a repair price over the phone"]);
        assert_eq!(r.tone, "relaxed and friendly");
        assert_eq!(r.purpose, "We are a small bike repair shop in Utrecht");
    }

    #[test]
    fn headings_bold_labels_steps_and_sub_bullets_are_read() {
        let sop = "# Returns desk

## Procedure
Step 1: Greet the customer warmly.
Step 2: Ask for the order number.
   - Check the order date in the system
   - If it's over 30 days, explain the policy
Step 3: Offer a refund or an exchange.

**Tone:** upbeat, never pushy

**When to escalate**
* Customer mentions a chargeback
* Damaged item worth more than 200 EUR

**Never**
- promise a delivery date
- share stock levels
";
        let r = parse_sop(sop, &[]).unwrap();
        assert_eq!(r.purpose, "Returns desk");
        assert_eq!(r.steps.len(), 3, "{r:#?}");
        assert!(r.steps[1].contains("Check the order date") && r.steps[1].contains("explain the policy"));
        assert_eq!(r.required_data, ["order number"]);
        assert_eq!(r.tone, "upbeat, never pushy");
        assert_eq!(r.handoff_conditions, ["Customer mentions a chargeback", "Damaged item worth more than 200 EUR"]);
        assert_eq!(r.forbidden, ["Never promise a delivery date", "Never share stock levels"]);
    }

    #[test]
    fn collection_steps_with_sub_bullets_collect_each_item() {
        let sop = "Intake for new patients\n1. Welcome them.\n2. Collect the following:\n   - full name\n   - date of birth\n   - insurance number\n3. Book the first visit.";
        let r = parse_sop(sop, &[]).unwrap();
        assert_eq!(r.required_data, ["full name", "date of birth", "insurance number"]);
        assert_eq!(r.steps.len(), 3);
    }

    #[test]
    fn a_list_of_details_ends_where_the_next_action_starts() {
        let step = "When somebody wants a celebration cake, get their name, the date they need it and how many \
                    people it should feed, then repeat it back to them so nothing gets mixed up";
        assert_eq!(data_of(step, &[]), ["name", "date", "number of people"]);
    }

    #[test]
    fn sops_without_a_procedure_are_refused_with_what_to_add() {
        assert!(parse_sop("Be nice.", &[]).unwrap_err().0.contains("too short"));
        let prose = "We are a dental clinic in the city centre and we like to be helpful to everyone who calls us.";
        let refused = parse_sop(prose, &[]).unwrap_err().0;
        assert!(refused.contains("no procedure") && refused.contains("for example"), "{refused}");
    }
}
