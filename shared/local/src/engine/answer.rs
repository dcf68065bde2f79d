//! Choosing what answers a question from the passages a search found: the sentence (or
//! the row of a table) a person would read out, with its numbers, prices, times, links and
//! codes exactly as written, and where it comes from.

use oratio_core::language::sentences;

use super::lexicon::Terms;

/// A sentence or row that might answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub text: String,
    pub document: String,
    pub place: String,
    /// The rank of its passage in the search (0 is best).
    pub rank: usize,
    /// An item of a list (a short line among others), answered with its list.
    pub listed: bool,
}

/// A passage as `search_knowledge` returned it to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub document: String,
    pub place: String,
    pub text: String,
}

/// A row of a table: `column: value; column: value`.
fn is_row(text: &str) -> bool {
    text.contains(": ") && text.contains("; ") && !text.contains(". ")
}

/// The lines of a passage with the lines a PDF wrapped joined again: a line that does not
/// end a sentence and a line that goes on in lower case are one.
fn reflowed(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let continues = line.chars().next().is_some_and(|c| c.is_lowercase());
        match lines.last_mut() {
            Some(last) if continues && !last.ends_with(['.', '!', '?', ':', ';']) && !is_row(last) => {
                last.push(' ');
                last.push_str(line);
            }
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

/// The sentences and rows of the passages, in order.
pub fn candidates(found: &[Found]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (rank, passage) in found.iter().enumerate() {
        let lines = reflowed(&passage.text);
        let item = |l: &str| l.split_whitespace().count() <= 12 && !l.ends_with(['.', '!', '?', ':']) && !is_row(l);
        let in_list = lines.iter().filter(|l| item(l)).count() >= 3;
        for line in &lines {
            let listed = in_list && item(line);
            let pieces = if is_row(line) { vec![line.to_owned()] } else { sentences(line) };
            for piece in pieces {
                let piece = piece.trim_start_matches(['-', '*', '•', '#', ' ']).trim().to_owned();
                // A heading repeated as the passage's first line answers nothing.
                let heading = piece.eq_ignore_ascii_case(passage.place.trim());
                if piece.chars().filter(|c| c.is_alphanumeric()).count() >= 3
                    && !heading
                    && !out.iter().any(|c: &Candidate| c.text == piece)
                {
                    out.push(Candidate {
                        text: piece,
                        document: passage.document.clone(),
                        place: passage.place.clone(),
                        rank,
                        listed,
                    });
                }
            }
        }
    }
    out
}

/// What kind of fact a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wants {
    Money,
    Time,
    Contact,
    Link,
    Duration,
    Frequency,
    Place,
    /// Whether a place is served ("do you come out to Exeter?").
    Area,
    Anything,
}

fn wants(question: &str) -> Wants {
    let q = question.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| q.contains(w));
    let not_money = [
        "how much notice",
        "how much time",
        "how much longer",
        "how much luggage",
        "how much data",
        "how much weight",
        "how much space",
    ];
    if has(&["how much", "price", "cost", "fee", "charge", "rate", "expensive", "cheap", "pay for"]) && !has(&not_money)
    {
        Wants::Money
    } else if has(&["how often", "how frequently", "every how"]) {
        Wants::Frequency
    } else if has(&["how long", "how many days", "how many weeks", "how soon", "how quickly", "within"]) {
        Wants::Duration
    } else if has(&[
        "what time",
        "when do",
        "when are",
        "when is",
        "when should",
        "when can",
        "when will",
        "when does",
        "by when",
        "what day",
        "opening",
        "open ",
        "close",
        "hours",
        "until when",
    ]) {
        Wants::Time
    } else if has(&["phone", "number do i call", "call ", "ring", "email", "contact", "reach"]) {
        Wants::Contact
    } else if has(&["link", "website", "url", "web page", "online", "portal", "download"]) {
        Wants::Link
    } else if has(&[
        "do you come",
        "come out to",
        "do you cover",
        "do you deliver to",
        "do you go to",
        "do you serve",
        "do you work in",
        "do you travel to",
        "do you ship to",
        "do you operate in",
    ]) {
        Wants::Area
    } else if has(&["where", "address", "located", "location", "directions", "how do i find", "how do i get"]) {
        Wants::Place
    } else {
        Wants::Anything
    }
}

fn has_kind(text: &str, kind: Wants) -> bool {
    let t = text.to_lowercase();
    let digit = t.chars().any(|c| c.is_ascii_digit());
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    match kind {
        Wants::Money => {
            has(&["€", "$", "£", "eur", "usd", "gbp", "dollar", "pound", "euro", "free", "price", "cost"])
                || (digit && t.contains(": "))
        }
        Wants::Area => has(&[
            "cover",
            "serve",
            "area",
            "miles",
            "we deliver",
            "we work",
            "anywhere",
            "within",
            "we clean in",
            "we ship",
            "we do not",
            "we don't",
        ]),
        Wants::Time => has(&[
            "am",
            "pm",
            ":00",
            ":30",
            "noon",
            "midnight",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
            "weekday",
            "weekend",
            "daily",
            "24/7",
            "closed",
            "open",
            "1st",
            "2nd",
            "3rd",
            "5th",
            "each month",
            "every month",
            "before",
        ]),
        Wants::Contact => has(&["@", "call", "phone", "tel", "email", "whatsapp"]) && digit || t.contains('@'),
        Wants::Link => has(&["http", "www.", ".com", ".org", ".nl", ".co", "/"]),
        Wants::Duration => digit && has(&["day", "week", "month", "hour", "minute", "year"]),
        Wants::Frequency => has(&["every", "daily", "weekly", "monthly", "hourly", "times a", "once a", "twice a"]),
        Wants::Place => {
            digit && has(&["street", "road", "avenue", "floor", "building", "lane", "square", "st.", "rd"])
                || has(&["located", "next to", "opposite", "entrance"])
        }
        Wants::Anything => false,
    }
}

/// How well each candidate answers, from the words alone: the weight of the question's
/// terms it shares (rarer terms weigh more), plus a bonus for holding the kind of fact asked.
pub fn lexical_scores(question: &str, candidates: &[Candidate]) -> Vec<f32> {
    let asked = Terms::of(question);
    let keys: Vec<String> = asked.all_keys();
    let terms: Vec<Terms> = candidates.iter().map(|c| Terms::of(&format!("{} {}", c.place, c.text))).collect();
    let n = candidates.len() as f32;
    // A shared concept says more than a shared word: rarer terms, and concepts, weigh more.
    let weight = |key: &str| {
        let df = terms.iter().filter(|t| t.has_key(key)).count() as f32;
        (1.0 + n / (1.0 + df)).ln() * if key.starts_with('#') { 1.0 } else { 0.6 }
    };
    let total: f32 = keys.iter().map(|k| weight(k)).sum::<f32>().max(f32::EPSILON);
    let kind = wants(question);
    candidates
        .iter()
        .zip(&terms)
        .map(|(candidate, t)| {
            let shared: f32 = keys.iter().filter(|k| t.has_key(k)).map(|k| weight(k)).sum();
            let fits = kind != Wants::Anything && has_kind(&candidate.text, kind);
            let bonus = match (fits, shared > 0.0) {
                (true, true) => 0.25,
                (true, false) => 0.15,
                _ => 0.0,
            };
            shared / total + bonus - candidate.rank as f32 * 0.02
        })
        .collect()
}

/// The best candidate by the combined scores, and its index and score. A FAQ's question
/// is answered by what follows it; a short lead-in ("For emergencies:") takes the sentence
/// after it along, and so does a best sentence whose neighbour answers nearly as well.
pub fn best(question: &str, candidates: &[Candidate], scores: &[f32]) -> Option<(String, usize, f32)> {
    let (index, score) = scores.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let chosen = &candidates[index];
    // The sentence before, when it answers the part of the question this one leaves out
    // ("Saturday 9:00–13:00. Sundays closed.").
    let before = index.checked_sub(1).map(|p| (&candidates[p], scores[p])).filter(|(p, s)| {
        p.document == chosen.document
            && p.place == chosen.place
            && score > 0.0
            && *s >= score * 0.5
            && p.text.len() + chosen.text.len() < 300
            && !p.text.ends_with('?')
            && adds_to(question, &chosen.text, &p.text)
    });
    let next = candidates
        .get(index + 1)
        .filter(|n| n.document == chosen.document && n.place == chosen.place)
        .map(|n| (n, scores[index + 1]));
    let text = match next {
        Some((next, _)) if chosen.text.ends_with('?') => next.text.clone(),
        Some((next, _)) if chosen.text.ends_with(':') || chosen.text.chars().count() < 30 => {
            format!("{} {}", chosen.text, next.text)
        }
        Some((next, next_score))
            if score > 0.0
                && next_score >= score * 0.5
                && chosen.text.len() + next.text.len() < 300
                && adds_to(question, &chosen.text, &next.text) =>
        {
            format!("{} {}", chosen.text, next.text)
        }
        _ => chosen.text.clone(),
    };
    // An item of a list answers with the whole list ("bank statements; sales invoices; …").
    if chosen.listed {
        let items: Vec<&str> = candidates
            .iter()
            .filter(|c| c.listed && c.document == chosen.document && c.place == chosen.place && c.rank == chosen.rank)
            .map(|c| c.text.as_str())
            .take(8)
            .collect();
        return Some((items.join("; "), index, score));
    }
    let text = match before {
        Some((before, _)) if !text.starts_with(&before.text) => format!("{} {text}", before.text),
        _ => text,
    };
    Some((text, index, score))
}

/// Whether `next` answers a part of the question `chosen` leaves out.
fn adds_to(question: &str, chosen: &str, next: &str) -> bool {
    let (asked, chosen, next) = (Terms::of(question), Terms::of(chosen), Terms::of(next));
    asked.all_keys().iter().any(|k| next.has_key(k) && !chosen.has_key(k))
}

/// The answer as it is said: the fact and its source.
pub fn cite(text: &str, candidate: &Candidate) -> String {
    let text = text.trim();
    let place = if candidate.place.is_empty() || candidate.place == "introduction" {
        String::new()
    } else {
        format!(", {}", candidate.place)
    };
    format!("{text} (source: {}{place})", candidate.document)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(document: &str, place: &str, text: &str) -> Found {
        Found { document: document.into(), place: place.into(), text: text.into() }
    }

    #[test]
    fn the_sentence_that_answers_keeps_its_figures_whole() {
        let passages = [
            found(
                "prices.md",
                "Plans",
                "Our Basic plan costs 4.95 EUR a month. The Pro plan costs 12.50 EUR. Both renew monthly.",
            ),
            found("faq.md", "Login", "Reset your password at https://id.example.com/reset. It takes a minute."),
        ];
        let candidates = candidates(&passages);
        let question = "How much is the basic plan?";
        let scores = lexical_scores(question, &candidates);
        let (text, index, _) = best(question, &candidates, &scores).unwrap();
        assert_eq!(text, "Our Basic plan costs 4.95 EUR a month.");
        assert_eq!(
            cite(&text, &candidates[index]),
            "Our Basic plan costs 4.95 EUR a month. (source: prices.md, Plans)"
        );
        let question = "where do I reset my password";
        let scores = lexical_scores(question, &candidates);
        assert_eq!(
            best(question, &candidates, &scores).unwrap().0,
            "Reset your password at https://id.example.com/reset."
        );
    }

    #[test]
    fn a_table_row_is_one_answer() {
        let passages = [
            found("prices.csv", "row 2", "service: Check-up; price: 45 EUR"),
            found("prices.csv", "row 3", "service: Whitening; price: 250 EUR"),
        ];
        let candidates = candidates(&passages);
        let question = "what does whitening cost";
        let scores = lexical_scores(question, &candidates);
        let (text, index, _) = best(question, &candidates, &scores).unwrap();
        assert_eq!((text.as_str(), candidates[index].place.as_str()), ("service: Whitening; price: 250 EUR", "row 3"));
    }
}
