//! A thesaurus of customer-service language: words and phrases that mean the same thing
//! to a business ("money back", "reimburse", "refund"), grouped into concepts. Text is read
//! as concepts, so a rule written with one word is recognised in a customer's other words.
//! The embedding engine does the rest of the understanding; this carries the engine when
//! no embedding engine runs, and sharpens it when one does.

use std::collections::HashMap;
use std::sync::OnceLock;

use oratio_core::language::{is_stopword, stem, words};

/// Concepts and the phrases that express them (plain words; matched on their stems).
const CONCEPTS: &[(&str, &[&str])] = &[
    (
        "pain",
        &[
            "pain",
            "painful",
            "hurt",
            "hurts",
            "hurting",
            "ache",
            "aching",
            "sore",
            "agony",
            "agonising",
            "agonizing",
            "throbbing",
            "throbs",
            "killing me",
            "excruciating",
            "unbearable",
            "toothache",
            "stabbing",
            "sting",
            "stinging",
            "burning pain",
        ],
    ),
    (
        "severe",
        &[
            "severe",
            "bad",
            "terrible",
            "awful",
            "really bad",
            "so bad",
            "extreme",
            "intense",
            "serious",
            "unbearable",
            "excruciating",
            "worst",
            "can't sleep",
            "can not sleep",
            "cannot bear",
            "very",
            "heavily",
            "heavy",
            "killing me",
            "won't stop",
            "will not stop",
            "keeps getting worse",
            "getting worse",
            "a lot",
        ],
    ),
    ("bleeding", &["bleeding", "bleed", "bleeds", "blood", "bloody", "haemorrhage", "hemorrhage"]),
    (
        "swelling",
        &["swelling", "swollen", "swell", "swelled", "puffed up", "puffy", "puffed", "inflamed", "lump", "bump"],
    ),
    (
        "emergency",
        &[
            "emergency",
            "urgent",
            "urgently",
            "asap",
            "right now",
            "immediately",
            "life threatening",
            "critical",
            "as soon as possible",
            "straight away",
            "help now",
        ],
    ),
    (
        "injury",
        &[
            "injury",
            "injured",
            "hurt myself",
            "wound",
            "cut",
            "fell",
            "fall",
            "accident",
            "broken bone",
            "fracture",
            "fractured",
            "sprain",
            "burn",
            "burned",
            "burnt",
        ],
    ),
    (
        "breathing",
        &[
            "breathing",
            "breathe",
            "breath",
            "can't breathe",
            "short of breath",
            "choking",
            "choke",
            "wheezing",
            "asthma",
        ],
    ),
    ("chest", &["chest", "heart", "heart attack", "cardiac"]),
    (
        "unconscious",
        &[
            "unconscious",
            "collapsed",
            "collapse",
            "fainted",
            "faint",
            "passed out",
            "unresponsive",
            "seizure",
            "fit",
            "convulsion",
        ],
    ),
    ("allergy", &["allergy", "allergic", "reaction", "anaphylaxis", "anaphylactic", "hives", "epipen"]),
    ("poison", &["poison", "poisoned", "poisoning", "toxic", "swallowed", "ate", "eaten", "chocolate", "ingested"]),
    ("vomit", &["vomit", "vomiting", "throwing up", "threw up", "sick", "nausea", "diarrhoea", "diarrhea"]),
    ("fever", &["fever", "temperature", "feverish", "high temperature"]),
    ("infection", &["infection", "infected", "abscess", "pus", "septic"]),
    ("gas", &["gas", "smell gas", "gas leak", "smells of gas", "rotten eggs", "carbon monoxide", "co alarm"]),
    ("fire", &["fire", "smoke", "smoking", "flames", "burning", "sparks", "sparking", "scorch"]),
    (
        "water",
        &[
            "flood",
            "flooding",
            "flooded",
            "leak",
            "leaking",
            "leaks",
            "water everywhere",
            "pouring",
            "burst",
            "burst pipe",
            "overflowing",
            "soaked",
            "dripping",
            "water coming through",
            "wet",
        ],
    ),
    (
        "electric",
        &[
            "electric",
            "electrical",
            "electricity",
            "power",
            "shock",
            "live wire",
            "outage",
            "no power",
            "blackout",
            "tripped",
            "fuse",
        ],
    ),
    ("heating", &["heating", "heat", "boiler", "radiator", "radiators", "hot water", "freezing", "cold"]),
    (
        "danger",
        &[
            "danger",
            "dangerous",
            "unsafe",
            "hazard",
            "risk",
            "threat",
            "threatening",
            "scared",
            "afraid",
            "frightened",
            "at risk",
        ],
    ),
    (
        "vulnerable",
        &[
            "vulnerable",
            "elderly",
            "old",
            "mum",
            "dad",
            "grandmother",
            "grandfather",
            "baby",
            "infant",
            "newborn",
            "pregnant",
            "disabled",
            "disability",
            "child",
            "kid",
            "toddler",
            "carer",
        ],
    ),
    (
        "selfharm",
        &[
            "suicide",
            "suicidal",
            "kill myself",
            "end my life",
            "self harm",
            "self-harm",
            "hurt myself",
            "don't want to live",
            "want to die",
            "end it all",
        ],
    ),
    ("death", &["died", "dead", "death", "passed away", "bereavement", "funeral", "deceased", "lost my"]),
    (
        "violence",
        &[
            "violence",
            "violent",
            "attack",
            "attacked",
            "assault",
            "assaulted",
            "hit me",
            "abuse",
            "abusive",
            "harass",
            "harassed",
            "harassment",
            "stalking",
            "threatened",
            "weapon",
        ],
    ),
    (
        "theft",
        &[
            "stolen", "steal", "stole", "theft", "thief", "robbed", "robbery", "break in", "broke in", "burglary",
            "burgled", "nicked", "pinched", "taken", "took", "missing", "lost",
        ],
    ),
    (
        "fraud",
        &[
            "fraud",
            "fraudulent",
            "scam",
            "scammed",
            "unauthorised",
            "unauthorized",
            "didn't make",
            "did not make",
            "never made",
            "wasn't me",
            "was not me",
            "not me",
            "don't recognise",
            "do not recognise",
            "don't recognize",
            "unknown payment",
            "suspicious",
            "phishing",
            "identity theft",
        ],
    ),
    ("hacked", &["hacked", "hack", "compromised", "someone logged in", "breach", "breached", "account takeover"]),
    (
        "legal",
        &[
            "legal",
            "lawyer",
            "lawyers",
            "solicitor",
            "attorney",
            "sue",
            "suing",
            "lawsuit",
            "court",
            "tribunal",
            "ombudsman",
            "legal action",
            "trading standards",
            "small claims",
        ],
    ),
    (
        "complaint",
        &[
            "complaint",
            "complain",
            "complaining",
            "unhappy",
            "dissatisfied",
            "not happy",
            "disappointed",
            "furious",
            "angry",
            "livid",
            "outraged",
            "fed up",
            "unacceptable",
            "disgusted",
            "appalling",
            "terrible service",
            "worst service",
            "rude",
            "ridiculous",
            "sick of",
            "had enough",
            "annoyed",
            "upset",
            "frustrated",
        ],
    ),
    (
        "refund",
        &[
            "refund",
            "refunded",
            "money back",
            "reimburse",
            "reimbursed",
            "reimbursement",
            "repay",
            "pay me back",
            "give me back my money",
            "chargeback",
            "charge back",
            "return my money",
            "credit back",
        ],
    ),
    (
        "compensation",
        &[
            "compensation",
            "compensate",
            "compensated",
            "damages",
            "goodwill",
            "make it up",
            "make up for",
            "voucher",
            "discount for the trouble",
        ],
    ),
    (
        "cancel",
        &[
            "cancel",
            "cancellation",
            "cancelling",
            "canceling",
            "terminate",
            "termination",
            "end my",
            "close my account",
            "close account",
            "stop my",
            "quit",
            "unsubscribe",
            "leave",
            "leaving",
            "shut down",
            "get rid of",
            "end the contract",
            "end my contract",
        ],
    ),
    ("close", &["close", "closing", "closure", "shut", "shut down", "delete", "deactivate", "for good"]),
    ("account", &["account", "profile", "membership", "subscription", "plan", "contract"]),
    (
        "person",
        &[
            "person",
            "human",
            "human being",
            "someone",
            "somebody",
            "real person",
            "actual person",
            "live person",
            "agent",
            "operator",
            "representative",
            "rep",
            "staff",
            "member of staff",
            "team member",
            "colleague",
            "employee",
            "somebody real",
            "someone real",
            "a real one",
            "not a bot",
            "not a robot",
            "no bot",
            "no robot",
            "talk to someone",
            "speak to someone",
            "speak with someone",
        ],
    ),
    (
        "manager",
        &[
            "manager",
            "supervisor",
            "boss",
            "owner",
            "someone in charge",
            "person in charge",
            "head",
            "senior",
            "management",
            "director",
        ],
    ),
    (
        "speak",
        &[
            "speak",
            "talk",
            "chat",
            "discuss",
            "put me through",
            "transfer me",
            "connect me",
            "call me",
            "phone me",
            "ring me",
            "get me",
        ],
    ),
    (
        "diagnosis",
        &[
            "diagnosis",
            "diagnose",
            "diagnosed",
            "what's wrong",
            "what is wrong",
            "what it is",
            "what do i have",
            "is it serious",
            "is it an infection",
            "is this",
            "do i have",
            "could it be",
            "what is causing",
            "what's causing",
            "condition",
            "symptom",
            "symptoms",
        ],
    ),
    (
        "medication",
        &[
            "medication",
            "medicine",
            "medicines",
            "drug",
            "drugs",
            "prescribe",
            "prescription",
            "painkiller",
            "painkillers",
            "antibiotic",
            "antibiotics",
            "ibuprofen",
            "paracetamol",
            "dose",
            "dosage",
            "pill",
            "pills",
            "tablets",
            "take for",
        ],
    ),
    (
        "advice",
        &[
            "advice",
            "advise",
            "recommend",
            "recommendation",
            "should i",
            "what should",
            "tell me what to",
            "guidance",
            "opinion",
            "suggest",
        ],
    ),
    (
        "invest",
        &[
            "invest",
            "investment",
            "investing",
            "stocks",
            "shares",
            "crypto",
            "bitcoin",
            "fund",
            "funds",
            "portfolio",
            "returns",
            "financial advice",
            "pension",
        ],
    ),
    (
        "price",
        &[
            "price",
            "prices",
            "cost",
            "costs",
            "how much",
            "fee",
            "fees",
            "charge",
            "charges",
            "rate",
            "rates",
            "quote",
            "quotation",
            "tariff",
            "expensive",
            "cheap",
            "pay",
            "payment",
        ],
    ),
    (
        "discount",
        &[
            "discount",
            "deal",
            "cheaper",
            "lower price",
            "reduce",
            "reduction",
            "knock off",
            "price match",
            "better price",
            "negotiate",
            "offer",
            "promo",
            "promotion",
            "coupon",
            "voucher code",
        ],
    ),
    (
        "password",
        &[
            "password",
            "passcode",
            "pin",
            "pin number",
            "security code",
            "cvv",
            "login details",
            "credentials",
            "one time code",
            "otp",
            "verification code",
        ],
    ),
    (
        "other_people",
        &[
            "other people",
            "someone else",
            "somebody else",
            "other patients",
            "another patient",
            "other customers",
            "another customer",
            "other guests",
            "another guest",
            "other clients",
            "another client",
            "other members",
            "other users",
            "other tenants",
            "neighbour",
            "neighbor",
            "neighbours",
            "neighbors",
            "my wife's",
            "my husband's",
            "my partner's",
            "my ex",
            "my friend's",
            "who else",
            "anyone else's",
            "someone else's",
            "mrs",
            "mr",
        ],
    ),
    (
        "personal_data",
        &[
            "information",
            "info",
            "details",
            "data",
            "personal",
            "where they live",
            "where she lives",
            "where he lives",
            "contact details",
            "home address",
            "their address",
            "their number",
            "records",
            "file",
        ],
    ),
    (
        "promise",
        &[
            "promise",
            "guarantee",
            "guaranteed",
            "commit",
            "assure",
            "certain",
            "definitely",
            "for sure",
            "swear",
            "exact date",
            "exactly when",
        ],
    ),
    (
        "delivery",
        &[
            "delivery",
            "deliver",
            "delivered",
            "shipping",
            "shipped",
            "ship",
            "parcel",
            "package",
            "courier",
            "arrive",
            "arrival",
            "dispatch",
            "dispatched",
            "tracking",
            "order",
        ],
    ),
    (
        "late",
        &[
            "late",
            "delayed",
            "delay",
            "still waiting",
            "hasn't arrived",
            "has not arrived",
            "not arrived",
            "never arrived",
            "never came",
            "overdue",
            "taking forever",
            "where is my",
        ],
    ),
    (
        "damaged",
        &[
            "damaged",
            "damage",
            "broken",
            "broke",
            "cracked",
            "smashed",
            "faulty",
            "defective",
            "not working",
            "doesn't work",
            "does not work",
            "stopped working",
            "dead on arrival",
            "dented",
            "scratched",
            "torn",
            "ripped",
        ],
    ),
    ("wrong", &["wrong", "incorrect", "mistake", "error", "not what i ordered", "different item", "mixed up"]),
    (
        "overcharged",
        &[
            "overcharged",
            "double charged",
            "charged twice",
            "billed twice",
            "too much",
            "extra charge",
            "unexpected charge",
            "billing error",
            "wrong amount",
            "hidden fee",
        ],
    ),
    (
        "debt",
        &[
            "debt",
            "arrears",
            "can't pay",
            "can not pay",
            "cannot afford",
            "can't afford",
            "behind on",
            "owe",
            "bailiff",
            "bailiffs",
            "collections",
            "hardship",
            "struggling financially",
            "payment plan",
        ],
    ),
    ("eviction", &["evict", "eviction", "evicted", "kicked out", "notice to quit", "homeless"]),
    ("vehicle", &["car", "vehicle", "van", "motorbike", "bike", "truck", "lorry"]),
    (
        "crash",
        &["crash", "crashed", "collision", "collided", "accident", "hit", "rear ended", "write off", "written off"],
    ),
    (
        "breakdown",
        &[
            "breakdown",
            "broken down",
            "broke down",
            "won't start",
            "will not start",
            "flat tyre",
            "flat tire",
            "stranded",
            "stuck",
            "tow",
            "towing",
            "roadside",
        ],
    ),
    ("locked", &["locked out", "lost my keys", "lost keys", "can't get in", "cannot get in", "keys", "lock"]),
    (
        "pest",
        &[
            "rats",
            "rat",
            "mice",
            "mouse",
            "cockroach",
            "cockroaches",
            "bedbugs",
            "bed bugs",
            "wasps",
            "infestation",
            "pests",
            "vermin",
        ],
    ),
    ("mould", &["mould", "mold", "damp", "mildew", "condensation"]),
    ("privacy", &["privacy", "gdpr", "data protection", "delete my data", "my data", "data breach", "consent"]),
    ("flight", &["flight", "plane", "airline", "boarding", "missed my flight", "cancelled flight", "canceled flight"]),
    ("luggage", &["luggage", "baggage", "suitcase", "bag", "bags"]),
    (
        "booking",
        &[
            "book",
            "booking",
            "appointment",
            "reservation",
            "reserve",
            "schedule",
            "slot",
            "visit",
            "table",
            "session",
            "check up",
            "check-up",
            "consultation",
        ],
    ),
    (
        "reschedule",
        &[
            "reschedule",
            "move",
            "change the date",
            "change my appointment",
            "different day",
            "another day",
            "postpone",
            "push back",
            "rearrange",
            "bring forward",
        ],
    ),
    ("hours", &["open", "opening", "opening hours", "hours", "close", "closing", "what time", "when are you", "times"]),
    ("location", &["where", "address", "located", "location", "directions", "find you", "parking", "park"]),
    ("pet", &["dog", "puppy", "cat", "kitten", "pet", "rabbit", "hamster", "animal"]),
    ("tooth", &["tooth", "teeth", "molar", "gum", "gums", "jaw", "filling", "crown", "wisdom tooth"]),
    ("face", &["face", "cheek", "cheeks", "jaw", "lip", "lips", "eye", "eyes"]),
    ("alcohol", &["alcohol", "drunk", "beer", "wine", "spirits", "vodka", "underage", "id check"]),
    ("weapon", &["gun", "knife", "weapon", "firearm"]),
    ("competitor", &["competitor", "competitors", "other companies", "other shops", "rivals", "elsewhere"]),
    (
        "internal",
        &[
            "internal",
            "confidential",
            "secret",
            "staff only",
            "stock levels",
            "margins",
            "supplier",
            "suppliers",
            "cost price",
            "wholesale",
        ],
    ),
];

struct Lexicon {
    /// Phrases as stem sequences, longest first, with their concept.
    phrases: Vec<(Vec<String>, &'static str)>,
    /// Single stems and their concepts.
    stems: HashMap<String, Vec<&'static str>>,
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut phrases = Vec::new();
        let mut stems: HashMap<String, Vec<&'static str>> = HashMap::new();
        for (concept, entries) in CONCEPTS {
            for entry in *entries {
                let sequence: Vec<String> = words(entry).iter().map(|w| stem(w)).collect();
                match sequence.as_slice() {
                    [] => {}
                    [one] => stems.entry(one.clone()).or_default().push(concept),
                    _ => phrases.push((sequence, *concept)),
                }
            }
        }
        phrases.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Lexicon { phrases, stems }
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
            if let Some(found) = lexicon.stems.get(stemmed) {
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
            if !lexicon.stems.contains_key(s) && !keys.contains(s) {
                keys.push(s.clone());
            }
        }
        keys
    }

    pub fn has_key(&self, key: &str) -> bool {
        match key.strip_prefix('#') {
            Some(concept) => self.concepts.contains(&concept),
            None => self.stems.iter().any(|s| s == key),
        }
    }
}

/// Words that say nothing about which situation a rule is about.
pub const GENERIC_KEYS: &[&str] = &[
    "caller", "custom", "patient", "client", "guest", "user", "report", "mention", "say", "ask", "want", "request",
    "wish", "need", "would", "like", "call", "anyth", "someth", "thing", "issu", "problem", "matter", "case", "situat",
    "involv", "regard", "about", "concern", "relat", "someon", "anyon", "becom", "seem", "sound", "get", "go", "make",
    "have", "not", "any", "again", "also", "more", "than", "other", "abl", "use", "tri", "give", "tell", "know",
    "never", "alway", "plea", "thank", "help",
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
        assert!(Terms::of("there's blood everywhere").has_key("#bleeding"));
    }
}
