//! Plain-language helpers the SOP reader and the local engine share: sentences (cut as
//! Unicode's sentence rules cut them, so `4.95 EUR`, `version 7.4` and `https://id.example`
//! stay whole), words with contractions expanded, and English stems (Snowball).

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// Abbreviations after which a full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g.", "i.e.", "etc.", "mr.", "mrs.", "ms.", "dr.", "st.", "no.", "nr.", "tel.", "approx.", "vs.", "inc.", "ltd.",
    "co.", "dept.", "ext.", "min.", "max.", "p.m.", "a.m.", "incl.", "excl.", "fig.", "jan.", "feb.", "mar.", "apr.",
    "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.", "mon.", "tue.", "wed.", "thu.", "fri.", "sat.",
    "sun.",
];

/// The sentences of `text`, trimmed, in order; line breaks end sentences too.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut pending = String::new();
        for piece in line.split_sentence_bounds() {
            pending.push_str(piece);
            let trimmed = pending.trim_end();
            let last_word = trimmed.rsplit(char::is_whitespace).next().unwrap_or_default().to_lowercase();
            if ABBREVIATIONS.contains(&last_word.as_str()) {
                continue;
            }
            let sentence = pending.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_owned());
            }
            pending.clear();
        }
        let sentence = pending.trim();
        if !sentence.is_empty() {
            out.push(sentence.to_owned());
        }
    }
    out
}

/// Words every sentence has, which say little about what it is about.
#[rustfmt::skip]
pub const STOPWORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "being", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "get",
    "got", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "just", "let", "me", "might", "more", "most", "much", "my", "myself", "of", "off", "on",
    "once", "only", "or", "other", "our", "ours", "out", "over", "own", "please", "same", "shall", "she", "should",
    "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this",
    "those", "through", "to", "too", "under", "until", "up", "us", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
    "hi", "hello", "hey", "thanks", "thank", "ok", "okay", "yes", "yeah", "well", "really", "actually", "still",
    "maybe", "want", "like", "need", "know", "tell", "wondering", "wonder", "quick", "question", "im", "u", "ur",
    "pls", "cheers", "dear", "there's", "it's", "i'm", "am", "s", "t", "d", "ll", "re", "ve", "m", "come", "go",
    "going", "get", "getting", "make", "exactly", "never", "been", "even", "any", "anything", "something", "thing",
    "things", "lot", "bit", "sure", "right", "now", "today",
];

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Contractions spelled out, so `can't` and `cannot` read alike.
fn expand(word: &str) -> Vec<String> {
    let w = word.replace(['’', '‘'], "'");
    let whole: Option<&[&str]> = match w.as_str() {
        "can't" | "cannot" | "cant" => Some(&["can", "not"]),
        "won't" | "wont" => Some(&["will", "not"]),
        "i'm" | "im" => Some(&["i", "am"]),
        "shan't" => Some(&["shall", "not"]),
        "ain't" => Some(&["is", "not"]),
        _ => None,
    };
    if let Some(parts) = whole {
        return parts.iter().map(|p| (*p).to_owned()).collect();
    }
    for (suffix, replacement) in
        [("n't", "not"), ("'re", "are"), ("'ve", "have"), ("'ll", "will"), ("'d", "would"), ("'m", "am")]
    {
        if let Some(stem) = w.strip_suffix(suffix)
            && !stem.is_empty()
        {
            return vec![stem.to_owned(), replacement.to_owned()];
        }
    }
    if let Some(stem) = w.strip_suffix("'s") {
        return vec![stem.to_owned()];
    }
    vec![w.trim_matches('\'').to_owned()]
}

/// The lowercase words of `text`, contractions expanded; numbers stay as written
/// (`4.95`, `7.4`).
pub fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '.' || c == ',')) {
        // A full stop or comma belongs to a word only between digits (4.95, 10,000).
        let mut word = String::new();
        let chars: Vec<char> = raw.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            let between_digits =
                i > 0 && i + 1 < chars.len() && chars[i - 1].is_ascii_digit() && chars[i + 1].is_ascii_digit();
            if (c == '.' || c == ',') && !between_digits {
                if !word.is_empty() {
                    out.extend(expand(&std::mem::take(&mut word)));
                }
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            out.extend(expand(&word));
        }
    }
    out.retain(|w| !w.is_empty());
    out
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// The English stem of a lowercase word (`bleeding` → `bleed`, `appointments` → `appoint`).
pub fn stem(word: &str) -> String {
    stemmer().stem(word).into_owned()
}

/// The stems of the words of `text` that carry meaning, in order.
pub fn content_stems(text: &str) -> Vec<String> {
    words(text).into_iter().filter(|w| !is_stopword(w)).map(|w| stem(&w)).collect()
}

/// Whether `text` asks something (a question mark, or the shape of a question).
pub fn is_question(text: &str) -> bool {
    let text = text.trim();
    if text.ends_with('?') {
        return true;
    }
    let words = words(text);
    let first = words.first().map(String::as_str).unwrap_or_default();
    const OPENERS: &[&str] = &[
        "what", "when", "where", "which", "who", "whom", "whose", "why", "how", "do", "does", "did", "is", "are",
        "can", "could", "would", "will", "should", "may", "might", "am", "was", "were", "have", "has", "any",
    ];
    OPENERS.contains(&first)
        || words.iter().any(|w| matches!(w.as_str(), "wondering" | "wonder" | "wondered"))
        || words.windows(3).any(|w| w[0] == "do" && w[1] == "you" && w[2] == "know")
        || text.to_lowercase().starts_with("tell me")
        || text.to_lowercase().contains("i'd like to know")
        || text.to_lowercase().contains("i would like to know")
}

/// The first letter in lower case (for a clause inside a sentence).
pub fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if chars.clone().next().is_some_and(|c| !c.is_uppercase()) => {
            first.to_lowercase().chain(chars).collect()
        }
        Some(first) => std::iter::once(first).chain(chars).collect(),
        None => String::new(),
    }
}

/// The first letter in upper case.
pub fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_keep_decimals_versions_urls_and_abbreviations_whole() {
        let text = "A cleaning costs 4.95 EUR. Install version 7.4 first. Reset it at https://id.example.com/reset. \
                    Ask Dr. Patel, e.g. on Mondays. Done!\nNew line here";
        assert_eq!(
            sentences(text),
            [
                "A cleaning costs 4.95 EUR.",
                "Install version 7.4 first.",
                "Reset it at https://id.example.com/reset.",
                "Ask Dr. Patel, e.g. on Mondays.",
                "Done!",
                "New line here"
            ]
        );
    }

    #[test]
    fn words_expand_contractions_and_keep_numbers() {
        assert_eq!(words("I can't pay 4.95, won't I?"), ["i", "can", "not", "pay", "4.95", "will", "not", "i"]);
        assert_eq!(words("It’s 10,000 EUR"), ["it", "10,000", "eur"]);
        assert_eq!(content_stems("The bleeding won't stop"), ["bleed", "not", "stop"]);
    }

    #[test]
    fn questions_are_recognised_without_a_question_mark() {
        assert!(is_question("what time do you open on saturday"));
        assert!(is_question("I was wondering whether you take cards"));
        assert!(!is_question("My name is Ada Lovelace."));
    }
}
