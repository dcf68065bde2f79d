//! A thesaurus of customer-service language: words and phrases that mean the same thing
//! to a business ("money back", "reimburse", "refund"), grouped into concepts. Text is read
//! as concepts, so a rule written with one word is recognised in a customer's other words.
//! The embedding engine does the rest of the understanding; this carries the engine when
//! no embedding engine runs, and sharpens it when one does.

use std::collections::HashMap;
use std::sync::OnceLock;

use oratio_core::language::{is_stopword, stem, words};

/// Concepts and the phrases that express them (`concepts.txt`).
const CONCEPTS: &str = include_str!("concepts.txt");

struct Lexicon {
    /// Phrases as stem sequences, longest first, with their concept.
    phrases: Vec<(Vec<String>, &'static str)>,
    /// Single stems and their concepts.
    stems: HashMap<String, Vec<&'static str>>,
    /// Words whose stem collides with a concept's but that do not mean it ("medical" is
    /// not "medicine"): the table's `!` line.
    unrelated: Vec<String>,
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut phrases = Vec::new();
        let mut stems: HashMap<String, Vec<&'static str>> = HashMap::new();
        let mut unrelated = Vec::new();
        let table = CONCEPTS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        for (concept, entries) in table.filter_map(|l| l.split_once(':')) {
            let concept: &'static str = concept.trim();
            if concept == "!" {
                unrelated.extend(entries.split(',').map(|e| e.trim().to_owned()));
                continue;
            }
            for entry in entries.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let sequence: Vec<String> = words(entry).iter().map(|w| stem(w)).collect();
                match sequence.as_slice() {
                    [] => {}
                    [one] => {
                        let concepts = stems.entry(one.clone()).or_default();
                        if !concepts.contains(&concept) {
                            concepts.push(concept);
                        }
                    }
                    _ => phrases.push((sequence, concept)),
                }
            }
        }
        phrases.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Lexicon { phrases, stems, unrelated }
    })
}

/// What a text says, read as a bag of terms: content stems, and the concepts its words and
/// phrases express.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    pub stems: Vec<String>,
    pub concepts: Vec<&'static str>,
}

impl Terms {
    pub fn of(text: &str) -> Self {
        let all: Vec<String> = words(text);
        let stemmed: Vec<String> = all.iter().map(|w| stem(w)).collect();
        let lexicon = lexicon();
        let mut concepts: Vec<&'static str> = Vec::new();
        let mut covered = vec![false; stemmed.len()];
        for (phrase, concept) in &lexicon.phrases {
            if phrase.len() > stemmed.len() {
                continue;
            }
            for start in 0..=stemmed.len() - phrase.len() {
                if stemmed[start..start + phrase.len()] == phrase[..] {
                    if !concepts.contains(concept) {
                        concepts.push(concept);
                    }
                    covered[start..start + phrase.len()].iter_mut().for_each(|c| *c = true);
                }
            }
        }
        let mut stems = Vec::new();
        for (i, (word, stemmed)) in all.iter().zip(&stemmed).enumerate() {
            // A word inside a phrase means what the phrase means, not what it means alone.
            if is_clock_time(word) && !concepts.contains(&CLOCK_TIME) {
                concepts.push(CLOCK_TIME);
            }
            if let Some(found) = lexicon.stems.get(stemmed).filter(|_| !covered[i] && !lexicon.unrelated.contains(word))
            {
                for concept in found {
                    if !concepts.contains(concept) {
                        concepts.push(concept);
                    }
                }
            }
            if !is_stopword(word) && !covered[i] && !stems.contains(stemmed) {
                stems.push(stemmed.clone());
            }
        }
        Self { stems, concepts }
    }

    /// The terms a rule is recognised by: its concepts, and the stems no concept covers.
    pub fn keys(&self) -> Vec<String> {
        let lexicon = lexicon();
        let mut keys: Vec<String> = self.concepts.iter().map(|c| format!("#{c}")).collect();
        for s in &self.stems {
            if !lexicon.stems.contains_key(s) && !is_clock_time(s) && !keys.contains(s) {
                keys.push(s.clone());
            }
        }
        keys
    }

    /// Every term: the concepts, and every content stem (a concept's words too: for
    /// telling apart answers that share a concept, "dogs" from "pets").
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.concepts.iter().map(|c| format!("#{c}")).collect();
        keys.extend(self.stems.iter().cloned());
        keys
    }

    pub fn has_key(&self, key: &str) -> bool {
        match key.strip_prefix('#') {
            Some(concept) => self.concepts.contains(&concept),
            None => self.stems.iter().any(|s| s == key),
        }
    }
}

/// The concept of a time of day: "3pm", "10.30am" as much as the table's "noon".
const CLOCK_TIME: &str = "clock_time";

fn is_clock_time(word: &str) -> bool {
    let Some(digits) = word.strip_suffix("am").or_else(|| word.strip_suffix("pm")) else {
        return false;
    };
    let (hours, minutes) = digits.split_once('.').unwrap_or((digits, "00"));
    let numeric = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    numeric(hours) && numeric(minutes) && hours.parse::<u8>().is_ok_and(|h| h <= 12)
}

/// Words that say nothing about which situation a rule is about.
pub const GENERIC_KEYS: &[&str] = &[
    "caller", "custom", "patient", "client", "guest", "user", "report", "mention", "say", "ask", "want", "request",
    "wish", "need", "would", "like", "call", "anyth", "someth", "thing", "issu", "problem", "matter", "case", "situat",
    "involv", "regard", "about", "concern", "relat", "someon", "anyon", "becom", "seem", "sound", "get", "go", "make",
    "have", "not", "any", "again", "also", "more", "than", "other", "abl", "use", "tri", "give", "tell", "know",
    "never", "alway", "plea", "thank", "help", "take", "#channel",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customers_words_are_read_as_the_rules_concepts() {
        let said = Terms::of("I want my money back, this tooth is killing me");
        assert!(
            said.concepts.contains(&"refund") && said.concepts.contains(&"pain") && said.concepts.contains(&"tooth")
        );
        let rule = Terms::of("the caller reports severe pain");
        assert!(rule.keys().contains(&"#pain".to_owned()));
        // No two concepts share a word's stem by accident ("damages" is not "damaged").
        let rule = Terms::of("the order arrived damaged");
        assert_eq!(rule.concepts, ["delivery", "damaged"]);
        assert!(Terms::of("after 1pm").has_key("#clock_time") && Terms::of("at 10.30am?").has_key("#clock_time"));
        assert!(!Terms::of("2.5 hours, 100 kWh").has_key("#clock_time"));
        assert!(Terms::of("there's blood everywhere").has_key("#bleeding"));
    }
}
