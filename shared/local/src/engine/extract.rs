//! Finding the details a customer gives, in the words they give them: names ("I'm Ada
//! Lovelace", "my name is ada"), phone numbers, emails, dates ("Saturday the 5th", "14/05",
//! "next Tuesday"), times, order numbers and other references, postcodes, addresses,
//! counts and amounts, and anything labelled ("my reason for calling is …"). Several in
//! one sentence are all found.

use std::collections::BTreeMap;

use oratio_core::details::DetailKind;
use oratio_core::language::{is_question, stem, words};

use super::brief::Detail;

/// Where a value ends when a customer lists several: `, and my`, `; `, a full stop.
fn value_end(text: &str) -> usize {
    let lower = text.to_lowercase();
    let mut end = text.len();
    for stop in [
        ", and ",
        " and my ",
        " and the ",
        " and i",
        ", my ",
        ", i ",
        ", it",
        "; ",
        ". ",
        "! ",
        "? ",
        " but ",
        ", but",
        " because ",
        " so ",
        ", please",
        " please",
        ", thanks",
        " thanks",
        " thank you",
        ", which",
        " if ",
    ] {
        if let Some(at) = lower.find(stop) {
            end = end.min(at);
        }
    }
    end
}

fn clean(value: &str) -> String {
    value.trim().trim_matches(|c: char| matches!(c, '.' | ',' | '!' | '?' | ';' | ':' | '"' | '\'')).trim().to_owned()
}

/// `my {name} is X`, `{name}: X`, `{name} is X`, `the {name} is X`.
fn labelled(message: &str, name: &str) -> Option<String> {
    let lower = message.to_lowercase();
    let name = name.to_lowercase();
    let mut forms = vec![
        format!("my {name} is "),
        format!("my {name} would be "),
        format!("my {name}'s "),
        format!("the {name} is "),
        format!("{name} is "),
        format!("{name}: "),
        format!("{name} - "),
        format!("{name} = "),
        format!("{name} would be "),
        format!("{name} will be "),
    ];
    // "my number is", "my reference is": the name's last word alone.
    if let Some(last) = name.split_whitespace().last().filter(|_| name.contains(' ')) {
        forms.push(format!("my {last} is "));
    }
    for form in forms {
        if let Some(at) = lower.find(&form) {
            let start = at + form.len();
            let rest = message.get(start..)?;
            let value = clean(&rest[..value_end(rest)]);
            if !value.is_empty() && value.split_whitespace().count() <= 12 {
                return Some(value);
            }
        }
    }
    None
}

#[rustfmt::skip]
const WEEKDAYS: &[&str] = &[
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mon", "tue", "tues", "wed", "thu",
    "thur", "thurs", "fri", "sat", "sun", "weekday", "weekend",
];
#[rustfmt::skip]
const MONTHS: &[&str] = &[
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];
const RELATIVE_DAYS: &[&str] = &["today", "tomorrow", "tonight", "yesterday"];

/// A token of the original text with its byte span.
struct Token<'a> {
    text: &'a str,
    lower: String,
    start: usize,
    end: usize,
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let part = c.is_alphanumeric() || matches!(c, '/' | '-' | ':' | '@' | '+' | '#' | '\'' | '.' | '_');
        match (part, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push_token(&mut out, text, s, i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push_token(&mut out, text, s, text.len());
    }
    out
}

fn push_token<'a>(out: &mut Vec<Token<'a>>, text: &'a str, start: usize, end: usize) {
    let raw = &text[start..end];
    let trimmed = raw.trim_end_matches(['.', '\'', '-', ':']);
    let end = start + trimmed.len();
    if !trimmed.is_empty() {
        out.push(Token { text: &text[start..end], lower: trimmed.to_lowercase(), start, end });
    }
}

fn is_ordinal(word: &str) -> bool {
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    !digits.is_empty()
        && digits.len() <= 2
        && matches!(&word[digits.len()..], "st" | "nd" | "rd" | "th")
        && digits.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
}

fn is_numeric_date(word: &str) -> bool {
    let parts: Vec<&str> = word.split(['/', '-', '.']).collect();
    (parts.len() == 2 || parts.len() == 3)
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_digit()))
        && (parts[0].len() == 4 || parts[0].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d)))
        && parts[1].parse::<u32>().is_ok_and(|m| (1..=31).contains(&m))
        && !(parts.len() == 2 && parts[0].len() <= 2 && parts[1].len() == 2 && word.contains('.'))
}

fn is_day_number(word: &str) -> bool {
    word.len() <= 2 && word.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
}

fn is_year(word: &str) -> bool {
    word.len() == 4 && word.parse::<u32>().is_ok_and(|y| (1900..=2100).contains(&y))
}

/// The first date in the text, as the customer wrote it.
pub fn find_date(text: &str) -> Option<String> {
    let tokens = tokens(text);
    let strong = |t: &Token| {
        WEEKDAYS.contains(&t.lower.as_str())
            || MONTHS.contains(&t.lower.trim_end_matches('.'))
            || RELATIVE_DAYS.contains(&t.lower.as_str())
            || is_ordinal(&t.lower)
            || is_numeric_date(&t.lower)
    };
    let glue = |t: &Token| matches!(t.lower.as_str(), "the" | "of" | "on" | "next" | "this" | "coming" | "week" | "at");
    let weak = |t: &Token| is_day_number(&t.lower) || is_year(&t.lower);
    let first = tokens.iter().position(strong)?;
    let mut start = first;
    while start > 0
        && (weak(&tokens[start - 1]) || matches!(tokens[start - 1].lower.as_str(), "next" | "this" | "coming" | "the"))
    {
        start -= 1;
    }
    let mut end = first;
    while end + 1 < tokens.len() {
        let next = &tokens[end + 1];
        if strong(next) || weak(next) {
            end += 1;
        } else if glue(next) && tokens.get(end + 2).is_some_and(|t| strong(t) || weak(t)) {
            end += 2;
        } else {
            break;
        }
    }
    while start < end && matches!(tokens[start].lower.as_str(), "the" | "on" | "at") {
        start += 1;
    }
    Some(text[tokens[start].start..tokens[end].end].to_owned())
}

/// The first time of day in the text.
pub fn find_time(text: &str) -> Option<String> {
    let tokens = tokens(text);
    for (i, t) in tokens.iter().enumerate() {
        let w = t.lower.as_str();
        let next = tokens.get(i + 1).map(|n| n.lower.as_str());
        let clock = |s: &str| {
            let (h, m) = s.split_once([':', '.'])?;
            (h.parse::<u32>().ok()? <= 24 && m.len() == 2 && m.parse::<u32>().ok()? < 60).then_some(())
        };
        let meridiem = |s: &str| ["am", "pm", "a.m", "p.m"].iter().any(|m| s.ends_with(m));
        if clock(w.trim_end_matches("am").trim_end_matches("pm")).is_some() {
            let end = if next.is_some_and(meridiem) { tokens[i + 1].end } else { t.end };
            return Some(text[t.start..end].to_owned());
        }
        if meridiem(w)
            && w.trim_end_matches(|c: char| c.is_alphabetic() || c == '.').parse::<u32>().is_ok_and(|h| h <= 12)
        {
            return Some(t.text.to_owned());
        }
        if w.parse::<u32>().is_ok_and(|h| (1..=12).contains(&h))
            && next.is_some_and(|n| matches!(n, "am" | "pm" | "a.m" | "p.m" | "o'clock" | "oclock"))
        {
            return Some(text[t.start..tokens[i + 1].end].to_owned());
        }
        if matches!(w, "noon" | "midday" | "midnight") {
            return Some(t.text.to_owned());
        }
        if matches!(w, "half" | "quarter") && matches!(next, Some("past" | "to")) && tokens.get(i + 2).is_some() {
            return Some(text[t.start..tokens[i + 2].end].to_owned());
        }
    }
    let lower = text.to_lowercase();
    for part in ["in the morning", "in the afternoon", "in the evening", "first thing", "after lunch", "lunchtime"] {
        if let Some(at) = lower.find(part) {
            return Some(text[at..at + part.len()].to_owned());
        }
    }
    None
}

/// The first email address.
pub fn find_email(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '@' || c == '.' || c == '_' || c == '-' || c == '+'))
        })
        .map(|w| w.trim_end_matches('.'))
        .find(|w| {
            w.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.ends_with('.'))
        })
        .map(str::to_owned)
}

/// The first phone number: a run of digits (with spaces, dashes, dots, brackets and a
/// leading +) holding 7 to 15 digits.
pub fn find_phone(text: &str) -> Option<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let starts =
            c.is_ascii_digit() || ((c == '+' || c == '(') && chars.get(i + 1).is_some_and(|(_, n)| n.is_ascii_digit()));
        let preceded_by_word = i > 0 && chars[i - 1].1.is_alphanumeric();
        if starts && !preceded_by_word {
            let mut j = i;
            let mut digits = 0;
            let mut last_digit = i;
            while j < chars.len() {
                let ch = chars[j].1;
                if ch.is_ascii_digit() {
                    digits += 1;
                    last_digit = j;
                } else if !(matches!(ch, ' ' | '-' | '.' | '(' | ')') || (ch == '+' && j == i)) {
                    break;
                }
                if ch == ' ' && chars.get(j + 1).is_some_and(|(_, n)| !(n.is_ascii_digit() || *n == '(')) {
                    break;
                }
                j += 1;
            }
            let followed_by_letter = chars.get(last_digit + 1).is_some_and(|(_, n)| n.is_alphabetic());
            if (7..=15).contains(&digits) && !followed_by_letter {
                let end = chars.get(last_digit + 1).map_or(text.len(), |(at, _)| *at);
                return Some(text[start..end].trim().to_owned());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

/// A UK, Dutch or US-style postcode.
pub fn find_postcode(text: &str) -> Option<String> {
    let tokens = tokens(text);
    let outward = |w: &str| {
        let c: Vec<char> = w.chars().collect();
        (2..=4).contains(&c.len())
            && c[0].is_ascii_alphabetic()
            && c.iter().all(|x| x.is_ascii_alphanumeric())
            && c.iter().any(|x| x.is_ascii_digit())
    };
    let inward = |w: &str| {
        let c: Vec<char> = w.chars().collect();
        c.len() == 3 && c[0].is_ascii_digit() && c[1].is_ascii_alphabetic() && c[2].is_ascii_alphabetic()
    };
    for pair in tokens.windows(2) {
        if outward(pair[0].text) && inward(pair[1].text) {
            return Some(text[pair[0].start..pair[1].end].to_uppercase());
        }
        let dutch = pair[0].text.len() == 4 && pair[0].text.chars().all(|c| c.is_ascii_digit());
        if dutch && pair[1].text.len() == 2 && pair[1].text.chars().all(|c| c.is_ascii_alphabetic()) {
            return Some(text[pair[0].start..pair[1].end].to_uppercase());
        }
    }
    tokens
        .iter()
        .find(|t| {
            let w = t.text;
            (w.len() == 5 || w.len() == 10)
                && w.chars().all(|c| c.is_ascii_digit() || c == '-')
                && w.chars().next().is_some_and(|c| c.is_ascii_digit())
                || (5..=7).contains(&w.len()) && outward(&w[..w.len() - 3]) && inward(&w[w.len() - 3..])
        })
        .map(|t| t.text.to_uppercase())
}

/// An order, booking or account number: a token with digits (letters, dashes and slashes
/// allowed), preferring one right after "number", "reference", "#"…
pub fn find_reference(text: &str, name: &str) -> Option<String> {
    find_reference_cued(text, name, false)
}

/// A payment card number in the text (13 to 19 digits, spaces or dashes between groups).
pub fn card_number(text: &str) -> Option<String> {
    let mut run = String::new();
    let mut digits = 0;
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            run.push(c);
            digits += 1;
        } else if (c == ' ' || c == '-') && digits > 0 && !run.ends_with([' ', '-']) {
            run.push(c);
        } else {
            if (13..=19).contains(&digits) {
                return Some(run.trim_end_matches([' ', '-']).to_owned());
            }
            run.clear();
            digits = 0;
        }
    }
    None
}

/// Short forms customers use for the words of a detail's name.
fn short_forms(word: &str) -> &'static [&'static str] {
    match word {
        "registration" => &["reg", "plate", "registration"],
        "reference" => &["ref", "reference"],
        "number" => &["no", "nr", "num", "#", "number"],
        "identification" | "identity" => &["id"],
        "membership" => &["member", "membership"],
        _ => &[],
    }
}

/// A reference; with `strict`, only one right after a word of the detail's own name
/// ("policy AMI-7731902", "reg KX19 TRD"), for details of a kind others share.
fn find_reference_cued(text: &str, name: &str, strict: bool) -> Option<String> {
    let tokens = tokens(text);
    let name_words: Vec<String> =
        words(name).into_iter().filter(|w| !matches!(w.as_str(), "the" | "of" | "a")).collect();
    // A payment card's number is never a reference (nor kept at all).
    let card = card_number(text);
    let codelike = |t: &Token| {
        let w = t.text.trim_start_matches('#');
        if card.as_ref().is_some_and(|c| c.contains(w)) {
            return false;
        }
        let digits = w.chars().filter(char::is_ascii_digit).count();
        let valid = w.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '.'));
        valid
            && digits >= 1
            && w.len() >= 3
            && !is_numeric_date(w)
            && !is_ordinal(&w.to_lowercase())
            && !(digits <= 2 && w.len() <= 3)
            && !w.contains(':')
            && !(w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
            && (digits >= 3 || w.chars().any(|c| c.is_ascii_alphabetic()))
    };
    // "KX19 TRD": a code and a short upper-case part after it are one value.
    let value = |i: usize| {
        let t = &tokens[i];
        let end = match tokens.get(i + 1) {
            Some(n)
                if (2..=4).contains(&n.text.len())
                    && n.text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                    && n.text.chars().any(|c| c.is_ascii_uppercase())
                    && text[t.end..n.start].trim().is_empty() =>
            {
                n.end
            }
            _ => t.end,
        };
        text[t.start..end].trim_start_matches('#').to_owned()
    };
    let own = |w: &str| name_words.iter().any(|n| n == w || short_forms(n).contains(&w));
    let generic = |w: &str| {
        matches!(w, "number" | "no" | "nr" | "ref" | "reference" | "id" | "code" | "is" | "#" | "num" | "are")
    };
    for (i, t) in tokens.iter().enumerate() {
        if !codelike(t) || i == 0 {
            continue;
        }
        // The cue is the word before, or two before ("policy number AMI-…", "reg is KX19").
        let cued_by_own =
            own(&tokens[i - 1].lower) || (i > 1 && own(&tokens[i - 2].lower) && generic(&tokens[i - 1].lower));
        if cued_by_own || (!strict && generic(&tokens[i - 1].lower)) {
            return Some(value(i));
        }
    }
    if strict {
        return None;
    }
    tokens.iter().position(|t| codelike(t) && find_phone(t.text).is_none()).map(value)
}

const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fifteen",
    "twenty",
];

/// How many (people, guests, items); `noun` is what the detail counts ("bedrooms").
pub fn find_count(text: &str, noun: &str, anywhere: bool) -> Option<String> {
    let tokens = tokens(text);
    let counts_noun = |w: &str| !noun.is_empty() && (w == noun || stem(w) == stem(noun));
    let number = |w: &str| (w.len() <= 3 && w.chars().all(|c| c.is_ascii_digit())) || NUMBER_WORDS.contains(&w);
    for (i, t) in tokens.iter().enumerate() {
        if !number(&t.lower) {
            continue;
        }
        let next = tokens.get(i + 1).map(|n| n.lower.as_str());
        let before = i.checked_sub(1).map(|p| tokens[p].lower.as_str());
        let counted = matches!(
            next,
            Some(
                "people"
                    | "guests"
                    | "persons"
                    | "adults"
                    | "children"
                    | "kids"
                    | "of"
                    | "pax"
                    | "diners"
                    | "seats"
                    | "tickets"
                    | "rooms"
                    | "nights"
                    | "items"
                    | "units"
            )
        ) || matches!(before, Some("of" | "for" | "party"))
            || next.is_some_and(counts_noun);
        if counted || anywhere {
            let end = if matches!(next, Some("people" | "guests" | "persons" | "adults" | "children" | "kids" | "pax"))
            {
                tokens[i + 1].end
            } else {
                t.end
            };
            return Some(text[t.start..end].to_owned());
        }
    }
    None
}

/// An amount of money.
pub fn find_amount(text: &str) -> Option<String> {
    let tokens = tokens(text);
    let currency = |w: &str| {
        matches!(
            w,
            "eur" | "euro" | "euros" | "usd" | "dollars" | "dollar" | "gbp" | "pounds" | "pound" | "quid" | "chf" | "k"
        )
    };
    for (i, t) in tokens.iter().enumerate() {
        let w = t.lower.as_str();
        let numeric = w.trim_start_matches(['$', '£', '€']).replace(',', "");
        let is_number = !numeric.is_empty() && numeric.chars().all(|c| c.is_ascii_digit() || c == '.');
        let symbol_before = t.start > 0 && text[..t.start].ends_with(['$', '£', '€']);
        if is_number && (symbol_before || w.starts_with(['$', '£', '€'])) {
            let start = if symbol_before {
                t.start - text[..t.start].chars().last().map_or(0, char::len_utf8)
            } else {
                t.start
            };
            return Some(text[start..t.end].to_owned());
        }
        if is_number && tokens.get(i + 1).is_some_and(|n| currency(&n.lower)) {
            return Some(text[t.start..tokens[i + 1].end].to_owned());
        }
    }
    None
}

#[rustfmt::skip]
const STREET_WORDS: &[&str] = &[
    "street", "st", "road", "rd", "avenue", "ave", "lane", "ln", "close", "drive", "dr", "way", "place", "pl",
    "court", "ct", "crescent", "gardens", "square", "sq", "boulevard", "blvd", "terrace", "hill", "row", "mews",
    "parade", "grove", "park", "straat", "weg", "laan", "gracht", "plein", "strasse", "straße",
];

/// A street address: a house number and the street.
pub fn find_address(text: &str) -> Option<String> {
    let tokens = tokens(text);
    for (i, t) in tokens.iter().enumerate() {
        let numbered = t.lower.chars().next().is_some_and(|c| c.is_ascii_digit()) && t.lower.len() <= 5;
        if !numbered {
            continue;
        }
        for j in i + 1..(i + 6).min(tokens.len()) {
            if STREET_WORDS.contains(&tokens[j].lower.trim_end_matches('.'))
                || STREET_WORDS.iter().any(|s| s.len() > 4 && tokens[j].lower.ends_with(s))
            {
                // The town and postcode that follow, if any: capitalised words and codes.
                let mut end = j;
                while end + 1 < tokens.len() && end < j + 4 {
                    let next = tokens[end + 1].text;
                    let capital = next.chars().next().is_some_and(|c| c.is_uppercase() || c.is_ascii_digit());
                    if !capital || NAME_STOPS.contains(&tokens[end + 1].lower.as_str()) {
                        break;
                    }
                    end += 1;
                }
                return Some(text[t.start..tokens[end].end].to_owned());
            }
        }
    }
    None
}

/// Words that follow "I'm" and are not a name.
#[rustfmt::skip]
const NOT_NAMES: &[&str] = &[
    "calling", "looking", "not", "in", "a", "an", "the", "trying", "having", "so", "very", "really", "just", "still",
    "here", "interested", "wondering", "afraid", "sorry", "fine", "good", "ok", "okay", "new", "booked", "going",
    "getting", "hoping", "phoning", "ringing", "writing", "after", "on", "at", "from", "with", "unable", "able",
    "worried", "concerned", "happy", "unhappy", "bleeding", "sick", "ill", "moving", "selling", "buying", "also",
    "about", "available", "free", "busy", "stuck", "locked", "unsure", "sure", "confused", "planning", "based",
    "a patient", "your", "their", "his", "her", "my", "coming", "travelling", "traveling", "staying", "away",
];

/// Words that end a name ("my name is ada and …").
const NAME_STOPS: &[&str] = &[
    "and", "my", "i", "from", "calling", "here", "speaking", "phone", "number", "email", "but", "so", "please",
    "thanks", "thank", "it", "is", "the", "a", "on", "at", "for", "with", "to", "i'm", "im", "mobile", "we", "our",
    "you", "would", "like", "want", "need", "can", "could", "need",
];

/// A person's name, after "my name is", "I'm", "this is", "call me", "name's".
pub fn find_person_name(text: &str, asked: bool) -> Option<String> {
    let lower = text.to_lowercase();
    let markers: &[(&str, bool)] = &[
        ("my name is ", false),
        ("my full name is ", false),
        ("name's ", false),
        ("name is ", false),
        ("my name's ", false),
        ("call me ", false),
        ("surname ", false),
        ("surname is ", false),
        ("last name ", false),
        ("last name is ", false),
        ("first name ", false),
        ("family name ", false),
        ("name: ", false),
        ("this is ", true),
        ("i'm ", true),
        ("i am ", true),
        ("it's ", true),
        ("it is ", true),
    ];
    for (marker, needs_capital) in markers {
        let mut search_from = 0;
        while let Some(found) = lower[search_from..].find(marker) {
            let at = search_from + found;
            search_from = at + marker.len();
            if at > 0 && lower[..at].ends_with(|c: char| c.is_alphanumeric()) {
                continue;
            }
            let rest = &text[at + marker.len()..];
            let mut name = Vec::new();
            for word in rest.split_whitespace() {
                let bare = word.trim_matches(|c: char| !(c.is_alphabetic() || c == '-' || c == '\''));
                let ends = word.ends_with([',', '.', '!', '?', ';']);
                let lower_word = bare.to_lowercase();
                if bare.is_empty() || NAME_STOPS.contains(&lower_word.as_str()) || name.len() >= 4 {
                    break;
                }
                let capital = bare.chars().next().is_some_and(char::is_uppercase);
                let particle = !name.is_empty() && NAME_PARTICLES.contains(&lower_word.as_str());
                if (*needs_capital && !capital && !asked && !particle)
                    || (name.is_empty() && NOT_NAMES.contains(&lower_word.as_str()))
                {
                    break;
                }
                if bare.chars().any(|c| c.is_ascii_digit()) {
                    break;
                }
                name.push(bare);
                if ends {
                    break;
                }
            }
            // A lone letter nobody asked for is not a name.
            let stray = name.len() == 1 && *needs_capital && !asked && name[0].len() < 2;
            if !name.is_empty() && !stray {
                return Some(name.join(" "));
            }
        }
    }
    // "Ada Lovelace here" / "hiya, Ada Lovelace speaking": the capitalised words before the cue.
    for cue in [" here", " speaking"] {
        let mut from = 0;
        while let Some(found) = lower[from..].find(cue) {
            let at = from + found;
            from = at + cue.len();
            if lower[from..].starts_with(|c: char| c.is_alphanumeric()) {
                continue;
            }
            let mut name: Vec<&str> = Vec::new();
            for word in text[..at].split_whitespace().rev() {
                let capital = word.chars().next().is_some_and(char::is_uppercase);
                let plain = word.chars().all(|c| c.is_alphabetic() || c == '-' || c == '\'');
                if !capital || !plain || name.len() == 3 || word == "I" {
                    break;
                }
                name.insert(0, word);
            }
            if name.first().is_some_and(|w| !NOT_NAMES.contains(&w.to_lowercase().as_str())) {
                return Some(name.join(" "));
            }
        }
    }
    None
}

fn find_kind(text: &str, detail: &Detail, asked: bool) -> Option<String> {
    match detail.kind {
        DetailKind::Email => find_email(text),
        DetailKind::Phone => find_phone(text),
        DetailKind::Postcode => find_postcode(text),
        DetailKind::Date => find_date(text),
        DetailKind::Time => find_time(text),
        DetailKind::Reference => find_reference(text, &detail.name),
        DetailKind::Count => find_count(text, detail.name.split_whitespace().last().unwrap_or_default(), asked),
        DetailKind::Amount => find_amount(text),
        DetailKind::Address => find_address(text),
        DetailKind::PersonName => find_person_name(text, asked),
        DetailKind::Text => find_called(text, &detail.name),
    }
}

/// Every value of a kind in the text, in order ("from LS6 3HN to S10 2TP").
fn all_of_kind(text: &str, detail: &Detail) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(value) = find_kind(rest, detail, false) {
        let Some(at) = rest.find(&value) else { break };
        out.push(value.clone());
        rest = &rest[at + value.len()..];
    }
    out
}

/// A name given with "called" or "named" ("he's called Biscuit"), for a detail that is a
/// name but not a person's (a pet's, a company's).
fn find_called(text: &str, name: &str) -> Option<String> {
    if !name.to_lowercase().contains("name") {
        return None;
    }
    let lower = text.to_lowercase();
    for marker in ["called ", "named ", "his name is ", "her name is ", "its name is ", "their name is ", "goes by "] {
        if let Some(at) = lower.find(marker) {
            let value: Vec<&str> = text[at + marker.len()..]
                .split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '\''))
                .take_while(|w| w.chars().next().is_some_and(char::is_uppercase))
                .take(3)
                .collect();
            if !value.is_empty() {
                return Some(value.join(" "));
            }
        }
    }
    None
}

/// Particles inside names ("Lotte de Vries").
const NAME_PARTICLES: &[&str] =
    &["de", "van", "der", "den", "von", "da", "di", "le", "la", "del", "du", "bin", "al", "el", "mac", "o"];

/// A person's name standing alone at the start of a reply ("Yes - Marco Bellini, 4
/// people…"): two to four capitalised words, as a list of details begins.
fn leading_name(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let mut start = 0;
    for lead in ["yes", "yeah", "sure", "ok", "okay", "hi", "hello", "hey", "of course", "it's", "it is"] {
        if lower.starts_with(lead) && lower[lead.len()..].starts_with([' ', ',', '-', '–', '!', '.']) {
            start = lead.len();
            break;
        }
    }
    let rest = text[start..].trim_start_matches([' ', ',', '-', '–', '!', '.']);
    let segment = rest.split([',', ';', '.', '(']).next()?.trim();
    let said: Vec<&str> = segment.split_whitespace().collect();
    let capitalised = |w: &&str| {
        w.chars().next().is_some_and(char::is_uppercase)
            && w.chars().all(|c| c.is_alphabetic() || c == '-' || c == '\'')
    };
    let names = said.iter().filter(|w| capitalised(w)).count();
    let fits = (2..=5).contains(&said.len())
        && names >= 2
        && said.iter().all(|w| capitalised(w) || NAME_PARTICLES.contains(&w.to_lowercase().as_str()))
        && !said.iter().any(|w| {
            let w = w.to_lowercase();
            WEEKDAYS.contains(&w.as_str()) || MONTHS.contains(&w.as_str()) || w == "i"
        });
    fits.then(|| segment.to_owned())
}

/// A short answer to the question the agent asked, as the value itself ("It's 020 7946
/// 0000" → "020 7946 0000").
fn bare_answer(message: &str) -> Option<String> {
    if is_question(message) || message.split_whitespace().count() > 14 {
        return None;
    }
    let mut value = message.trim().to_owned();
    loop {
        let lower = value.to_lowercase();
        let lead = [
            "yes, ",
            "yes ",
            "yeah, ",
            "yeah ",
            "sure, ",
            "sure ",
            "ok, ",
            "okay, ",
            "of course, ",
            "it's ",
            "it is ",
            "that's ",
            "that is ",
            "it would be ",
            "it'd be ",
            "i'd say ",
            "um, ",
            "um ",
            "well, ",
            "hi, ",
            "hello, ",
            "i'm with ",
            "we're with ",
            "i am with ",
            "we are with ",
            "with ",
        ]
        .iter()
        .find(|l| lower.starts_with(*l));
        match lead {
            Some(lead) => value = value[lead.len()..].trim().to_owned(),
            None => break,
        }
    }
    let value = clean(&value);
    (!value.is_empty()).then_some(value)
}

/// The details the message gives, by key. `asked` is the detail the agent just asked for.
pub fn extract(details: &[Detail], message: &str, asked: Option<&Detail>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for detail in details {
        if let Some(value) = labelled(message, &detail.name) {
            // A labelled value of a typed kind keeps only the part of that kind.
            let refined = find_kind(&value, detail, true).unwrap_or(value);
            found.insert(detail.key.clone(), refined);
        }
    }
    for detail in details {
        if found.contains_key(&detail.key) {
            continue;
        }
        let is_asked = asked.is_some_and(|a| a.key == detail.key);
        let taken: Vec<String> = found.values().cloned().collect();
        // A kind several details share (pickup and delivery postcodes, check-in and
        // check-out dates) is taken when asked for, when cued by the detail's own name,
        // or in order when the message gives one value for each.
        let sharing: Vec<&Detail> =
            details.iter().filter(|d| d.kind == detail.kind && !found.contains_key(&d.key)).collect();
        let value = if sharing.len() > 1 && !is_asked && detail.kind != DetailKind::Text {
            let cued = if detail.kind == DetailKind::Reference {
                find_reference_cued(message, &detail.name, true)
            } else {
                None
            };
            cued.or_else(|| {
                let values: Vec<String> =
                    all_of_kind(message, detail).into_iter().filter(|v| !taken.contains(v)).collect();
                let position = sharing.iter().position(|d| d.key == detail.key)?;
                (values.len() == sharing.len()).then(|| values[position].clone())
            })
        } else {
            // The first value of its kind another detail has not taken.
            all_of_kind(message, detail).into_iter().find(|v| !taken.contains(v))
        };
        if let Some(value) = value.filter(|v| !taken.contains(v)) {
            found.insert(detail.key.clone(), value);
        }
    }
    let missing = |kind: DetailKind, found: &BTreeMap<String, String>| {
        details.iter().find(|d| d.kind == kind && !found.contains_key(&d.key)).cloned()
    };
    // A name alone at the start, when a person's name is still wanted and other details
    // come with it (or the name was asked for).
    if let Some(person) = missing(DetailKind::PersonName, &found)
        && (!found.is_empty() || asked.is_some_and(|a| a.key == person.key))
        && let Some(name) = leading_name(message)
    {
        found.insert(person.key, name);
    }
    if let Some(asked) = asked
        && !found.contains_key(&asked.key)
        && matches!(asked.kind, DetailKind::Text | DetailKind::PersonName | DetailKind::Address)
        && let Some(value) = bare_answer(message)
    {
        found.insert(asked.key.clone(), value);
    }
    // What is left of a list of details, for the one free-text detail still wanted
    // ("…, 06 1234 5678, it's a Gazelle").
    let free: Vec<&Detail> =
        details.iter().filter(|d| d.kind == DetailKind::Text && !found.contains_key(&d.key)).collect();
    if found.len() >= 2 && free.len() == 1 {
        let values: Vec<String> = found.values().map(|v| v.to_lowercase()).collect();
        let leftover = message
            .split([',', ';', '.'])
            .flat_map(|part| part.split(" and "))
            .map(str::trim)
            .filter(|part| {
                let lower = part.to_lowercase();
                !part.is_empty()
                    && part.split_whitespace().count() <= 6
                    && !values.iter().any(|v| lower.contains(v.as_str()) || v.contains(&lower))
                    && !["yes", "sure", "hi", "hello", "ok", "okay", "thanks", "please"].contains(&lower.as_str())
            })
            .last();
        if let Some(value) = leftover.and_then(bare_answer) {
            found.insert(free[0].key.clone(), value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(key: &str, name: &str) -> Detail {
        Detail { key: key.into(), name: name.into(), when: None, kind: DetailKind::of(name) }
    }

    #[test]
    fn several_details_in_one_sentence_are_all_found() {
        let details = [
            detail("full_name", "full name"),
            detail("phone_number", "phone number"),
            detail("preferred_date", "preferred date"),
        ];
        let found = extract(
            &details,
            "Hi, I'm Ada Lovelace, you can reach me on 020 7946 0000 and Saturday the 5th works best.",
            None,
        );
        assert_eq!(found["full_name"], "Ada Lovelace");
        assert_eq!(found["phone_number"], "020 7946 0000");
        assert_eq!(found["preferred_date"], "Saturday the 5th");
        let labelled = extract(
            &details,
            "My full name is Maria Gonzalez, my phone number is 07700 900123 and my preferred date is Tuesday 14 May.",
            None,
        );
        assert_eq!(labelled["full_name"], "Maria Gonzalez");
        assert_eq!(labelled["phone_number"], "07700 900123");
        assert_eq!(labelled["preferred_date"], "Tuesday 14 May");
    }

    #[test]
    fn references_emails_postcodes_and_counts_are_found_in_untidy_text() {
        assert_eq!(find_reference("order no. #A-48213 hasn't come", "order number").as_deref(), Some("A-48213"));
        assert_eq!(find_reference("it's order 99812, placed monday", "order number").as_deref(), Some("99812"));
        assert_eq!(find_email("mail me at ada.l@example.co.uk.").as_deref(), Some("ada.l@example.co.uk"));
        assert_eq!(find_postcode("we're at ls6 2ab in leeds").as_deref(), Some("LS6 2AB"));
        assert_eq!(find_count("a table for 4 on friday", "guests", false).as_deref(), Some("4"));
        assert_eq!(find_count("there will be six people", "guests", false).as_deref(), Some("six people"));
        assert_eq!(find_count("it's a 2 bedroom flat", "bedrooms", false).as_deref(), Some("2"));
        assert_eq!(
            find_reference("Policy AMI-7731902, reg is KX19 TRD", "vehicle registration").as_deref(),
            Some("KX19 TRD")
        );
        assert_eq!(find_time("could we do 3pm?").as_deref(), Some("3pm"));
        assert_eq!(find_time("around 10:30 am please").as_deref(), Some("10:30 am"));
        assert_eq!(find_date("next Tuesday if possible").as_deref(), Some("next Tuesday"));
        assert_eq!(find_date("on 14/05/2025").as_deref(), Some("14/05/2025"));
        assert_eq!(find_amount("it cost me €49.95 last week").as_deref(), Some("€49.95"));
        assert_eq!(find_phone("costs 4.95 EUR"), None);
        assert_eq!(find_address("I live at 12 Elm Street, Leeds").as_deref(), Some("12 Elm Street, Leeds"));
        assert_eq!(
            find_address("27 Ridge Road, Saltash PL12 4RT, you can call me").as_deref(),
            Some("27 Ridge Road, Saltash PL12 4RT")
        );
    }

    #[test]
    fn names_are_told_from_other_things_customers_say_about_themselves() {
        assert_eq!(find_person_name("my name is ada lovelace and I need help", false).as_deref(), Some("ada lovelace"));
        assert_eq!(find_person_name("I'm calling about my order", false), None);
        assert_eq!(find_person_name("I'm in a lot of pain", false), None);
        assert_eq!(find_person_name("Hi, this is Tom Baker.", false).as_deref(), Some("Tom Baker"));
        assert_eq!(find_person_name("hiya, Tom Baker here - I need a cake", false).as_deref(), Some("Tom Baker"));
        assert_eq!(find_person_name("Priya speaking, how can I help", false).as_deref(), Some("Priya"));
        assert_eq!(find_person_name("I'm over here by the door", false), None);
        assert_eq!(
            find_person_name("Sure, I'm Lotte de Vries, 06 1234 5678", false).as_deref(),
            Some("Lotte de Vries")
        );
        assert_eq!(find_person_name("grace hopper", true), None);
        let answer = extract(&[detail("name", "name")], "grace hopper", Some(&detail("name", "name")));
        assert_eq!(answer["name"], "grace hopper");
    }
}
