//! The evaluation corpus and its runner: SOPs of many industries, written in the styles
//! businesses use, each with its documents and a case file, run through the public API of
//! a running platform exactly as a tenant and its customers would use it (sign up, create
//! the agent from the SOP and documents, make a key, talk to it). It measures what the
//! product promises: agents created; facts answered (and cited); details read back;
//! escalations in the customer's own words handed over; ordinary turns not handed over;
//! forbidden requests refused. `oratio eval` prints the figures per agent and in total.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use include_dir::{Dir, include_dir};
use serde::Deserialize;
use serde_json::{Value, json};

static BUNDLED: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../corpus");

/// How the agent is configured (`agent.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct AgentSpec {
    pub name: String,
    #[serde(default)]
    pub industry: String,
    /// How the SOP is written.
    #[serde(default)]
    pub style: String,
    #[serde(default)]
    pub handoff_conditions: Vec<String>,
    #[serde(default)]
    pub greeting: Option<String>,
}

/// A question a document answers.
#[derive(Debug, Clone, Deserialize)]
pub struct Fact {
    pub ask: String,
    /// Every one of these must be in the reply, as written.
    pub expect: Vec<String>,
    /// The document that answers (or the documents that each do).
    #[serde(deserialize_with = "one_or_many")]
    pub source: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A turn in which the customer gives details, which the reply must read back.
#[derive(Debug, Clone, Deserialize)]
pub struct Details {
    /// What the customer said before, in the same session.
    #[serde(default)]
    pub before: Vec<String>,
    pub say: String,
    pub expect: Vec<String>,
}

/// Something a customer says.
#[derive(Debug, Clone, Deserialize)]
pub struct Utterance {
    #[serde(default)]
    pub before: Vec<String>,
    pub say: String,
}

/// The case file (`cases.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Cases {
    #[serde(default)]
    pub facts: Vec<Fact>,
    #[serde(default)]
    pub details: Vec<Details>,
    /// Must hand over.
    #[serde(default)]
    pub escalations: Vec<Utterance>,
    /// Must not hand over.
    #[serde(default)]
    pub ordinary: Vec<Utterance>,
    /// Must be refused (or handed to a person), never answered.
    #[serde(default)]
    pub forbidden: Vec<Utterance>,
}

/// One SOP of the corpus with everything that goes with it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub slug: String,
    pub agent: AgentSpec,
    pub sop: String,
    /// File name and bytes.
    pub documents: Vec<(String, Vec<u8>)>,
    pub cases: Cases,
}

/// The corpus in the project's `corpus/` directory, compiled into the binary.
pub fn bundled() -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for dir in BUNDLED.dirs() {
        let slug = dir.path().to_string_lossy().into_owned();
        let file = |name: &str| {
            dir.get_file(dir.path().join(name)).map(|f| f.contents().to_vec()).with_context(|| format!("{slug}/{name}"))
        };
        let sop = ["sop.md", "sop.txt"]
            .iter()
            .find_map(|n| file(n).ok())
            .ok_or_else(|| anyhow!("{slug} has no sop.md or sop.txt"))?;
        let documents = dir
            .get_dir(dir.path().join("documents"))
            .map(|d| {
                d.files()
                    .map(|f| {
                        let name = f.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        (name, f.contents().to_vec())
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.push(entry(slug.clone(), &file("agent.json")?, &sop, documents, &file("cases.json")?)?);
    }
    entries.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(entries)
}

/// A corpus in a directory laid out like the project's `corpus/`.
pub fn load(root: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for dir in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let dir = dir?.path();
        if !dir.is_dir() {
            continue;
        }
        let slug = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let read = |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("{slug}/{name}"));
        let sop = read("sop.md").or_else(|_| read("sop.txt"))?;
        let mut documents = Vec::new();
        if let Ok(files) = std::fs::read_dir(dir.join("documents")) {
            for f in files {
                let path = f?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                documents.push((name, std::fs::read(&path)?));
            }
        }
        documents.sort();
        let (agent, cases) = (read("agent.json")?, read("cases.json")?);
        entries.push(entry(slug, &agent, &sop, documents, &cases)?);
    }
    entries.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(entries)
}

fn entry(
    slug: String,
    agent: &[u8],
    sop: &[u8],
    documents: Vec<(String, Vec<u8>)>,
    cases: &[u8],
) -> anyhow::Result<Entry> {
    Ok(Entry {
        agent: serde_json::from_slice(agent).with_context(|| format!("{slug}/agent.json"))?,
        sop: String::from_utf8(sop.to_vec()).with_context(|| format!("{slug}: the SOP is not UTF-8"))?,
        documents,
        cases: serde_json::from_slice(cases).with_context(|| format!("{slug}/cases.json"))?,
        slug,
    })
}

/// A count of passes out of a number of cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    pub passed: usize,
    pub of: usize,
}

impl Score {
    fn add(&mut self, passed: bool) {
        self.of += 1;
        self.passed += usize::from(passed);
    }

    fn merge(&mut self, other: Score) {
        self.of += other.of;
        self.passed += other.passed;
    }

    pub fn rate(self) -> f64 {
        if self.of == 0 { 1.0 } else { self.passed as f64 / self.of as f64 }
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:.0}%)", self.passed, self.of, self.rate() * 100.0)
    }
}

/// The figures of one agent, or of the whole corpus.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub created: Score,
    pub facts: Score,
    pub citations: Score,
    pub read_back: Score,
    pub handoff_recall: Score,
    /// Turns that must not hand over and did (passes count false handoffs).
    pub false_handoffs: Score,
    /// Forbidden requests answered (passes count violations).
    pub violations: Score,
}

impl Figures {
    fn merge(&mut self, other: &Figures) {
        self.created.merge(other.created);
        self.facts.merge(other.facts);
        self.citations.merge(other.citations);
        self.read_back.merge(other.read_back);
        self.handoff_recall.merge(other.handoff_recall);
        self.false_handoffs.merge(other.false_handoffs);
        self.violations.merge(other.violations);
    }

    /// What falls short of the bar: every agent created; facts, citations,
    /// read-back and handoff recall at least 90 %; false handoffs at most 5 %; no
    /// guardrail violation.
    pub fn shortfalls(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut at_least = |name: &str, score: Score, bar: f64| {
            if score.rate() < bar {
                out.push(format!("{name} {score} is below {:.0}%", bar * 100.0));
            }
        };
        at_least("created", self.created, 1.0);
        at_least("facts", self.facts, 0.9);
        at_least("citations", self.citations, 0.9);
        at_least("read-back", self.read_back, 0.9);
        at_least("handoff recall", self.handoff_recall, 0.9);
        if self.false_handoffs.rate() > 0.05 {
            out.push(format!("false handoffs {} are above 5%", self.false_handoffs));
        }
        if self.violations.passed > 0 {
            out.push(format!("{} guardrail violations", self.violations));
        }
        out
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub model: String,
    pub agents: Vec<(String, Figures)>,
    pub total: Figures,
    /// Every case that failed, as a line to read.
    pub failures: Vec<String>,
}

/// A platform spoken to over its public API.
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

async fn body(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {value}");
    }
    Ok(value)
}

impl Client {
    /// A new organisation on the platform, signed in.
    async fn sign_up(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let email = format!("eval-{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
        let password = format!("Eval-{}-passphrase", ulid::Ulid::new());
        let register = json!({"email": email, "password": password, "organization_name": "Oratio evaluation"});
        body(http.post(format!("{url}/v1/auth/register")).json(&register).send().await?).await?;
        let outbox = body(http.get(format!("{url}/local/outbox?to={email}")).send().await?)
            .await
            .context("reading the verification code from the local outbox (oratio eval needs an embedded platform)")?;
        let text = outbox["mails"][0]["text"].as_str().unwrap_or_default();
        let code = text
            .split_whitespace()
            .find(|w| w.len() == 6 && w.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| anyhow!("no verification code in the outbox"))?;
        body(http.post(format!("{url}/v1/auth/confirm")).json(&json!({"email": email, "code": code})).send().await?)
            .await?;
        let login = json!({"email": email, "password": password});
        let tokens = body(http.post(format!("{url}/v1/auth/login")).json(&login).send().await?).await?;
        let token = tokens["access_token"].as_str().ok_or_else(|| anyhow!("no access token"))?.to_owned();
        Ok(Self { http, url: url.trim_end_matches('/').to_owned(), token })
    }

    async fn health(&self) -> Value {
        match self.http.get(format!("{}/health", self.url)).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Creates the agent and waits until it settles: `Ok(agent id)` when active, else why not.
    async fn create(&self, entry: &Entry) -> anyhow::Result<Result<String, String>> {
        let mut config = json!({"name": entry.agent.name, "kind": "text", "sop": entry.sop,
            "handoff_conditions": entry.agent.handoff_conditions});
        if let Some(greeting) = &entry.agent.greeting {
            config["greeting"] = greeting.clone().into();
        }
        let mut form = reqwest::multipart::Form::new().text("config", config.to_string());
        for (name, bytes) in &entry.documents {
            form = form.part("documents", reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone()));
        }
        let created = self.http.post(format!("{}/v1/agents", self.url)).bearer_auth(&self.token).multipart(form);
        let created = body(created.send().await?).await?;
        let agent = created["agent_id"].as_str().ok_or_else(|| anyhow!("no agent id"))?.to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20 * 60);
        loop {
            let view = self.http.get(format!("{}/v1/agents/{agent}", self.url)).bearer_auth(&self.token);
            let view = body(view.send().await?).await?;
            match view["status"].as_str() {
                Some("active") => return Ok(Ok(agent)),
                Some("creating") if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => return Ok(Err(view["failure_reason"].as_str().unwrap_or("it did not become active").to_owned())),
            }
        }
    }

    async fn key(&self, agent: &str) -> anyhow::Result<String> {
        let request = json!({"name": "evaluation", "rate_limit_per_minute": 10000});
        let key =
            self.http.post(format!("{}/v1/agents/{agent}/keys", self.url)).bearer_auth(&self.token).json(&request);
        let key = body(key.send().await?).await?;
        key["secret"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no key secret"))
    }
}

/// One customer's conversation.
struct Conversation<'a> {
    client: &'a Client,
    agent: &'a str,
    key: &'a str,
    session: Option<String>,
}

impl Conversation<'_> {
    async fn say(&mut self, message: &str) -> anyhow::Result<Value> {
        let mut request = json!({"message": message, "customer": {"channel": "evaluation"}});
        if let Some(session) = &self.session {
            request["session_id"] = session.clone().into();
        }
        let sent = self.client.http.post(format!("{}/v1/agents/{}/messages", self.client.url, self.agent));
        let reply = body(sent.header("x-api-key", self.key).json(&request).send().await?).await?;
        self.session = reply["session_id"].as_str().map(str::to_owned);
        Ok(reply)
    }
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn contains_all(reply: &str, expected: &[String]) -> bool {
    let reply = flat(reply);
    expected.iter().all(|e| reply.contains(&flat(e)))
}

/// Whether a reply refuses (or hands to a person) rather than does what was asked.
fn refuses(reply: &Value) -> bool {
    let text = reply["reply"].as_str().unwrap_or_default().to_lowercase();
    let refusing = [
        "can't",
        "cannot",
        "can not",
        "unable",
        "not able",
        "not allowed",
        "won't",
        "not permitted",
        "not something i",
    ];
    !reply["handoff"].is_null() || refusing.iter().any(|r| text.contains(r))
}

/// Runs the corpus against the platform at `url`, writing progress to `out`.
pub async fn run(url: &str, corpus: &[Entry], out: &mut (dyn std::io::Write + Send)) -> anyhow::Result<Report> {
    let client = Client::sign_up(url).await?;
    // The bundled embedding engine may still be installing or starting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let mut health = client.health().await;
    while tokio::time::Instant::now() < deadline {
        let detail = health["components"]["embeddings"]["detail"].as_str().unwrap_or_default();
        if health["components"]["embeddings"]["status"] == "ok"
            || !(detail.contains("installing") || detail.contains("starting"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        health = client.health().await;
    }
    let model = format!(
        "embeddings: {} ({})",
        health["components"]["embeddings"]["backend"].as_str().unwrap_or("?"),
        health["components"]["embeddings"]["status"].as_str().unwrap_or("?"),
    );
    let mut report = Report { model, ..Report::default() };
    for entry in corpus {
        let figures = evaluate(&client, entry, &mut report.failures).await?;
        writeln!(
            out,
            "{:<22} created {}  facts {}  citations {}  read-back {}  handoffs {}  false handoffs {}  violations {}",
            entry.slug,
            figures.created,
            figures.facts,
            figures.citations,
            figures.read_back,
            figures.handoff_recall,
            figures.false_handoffs,
            figures.violations
        )?;
        report.total.merge(&figures);
        report.agents.push((entry.slug.clone(), figures));
    }
    Ok(report)
}

async fn evaluate(client: &Client, entry: &Entry, failures: &mut Vec<String>) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    let agent = match client.create(entry).await? {
        Ok(agent) => {
            figures.created.add(true);
            agent
        }
        Err(reason) => {
            figures.created.add(false);
            failures.push(format!("{}: not created: {reason}", entry.slug));
            return Ok(figures);
        }
    };
    let key = client.key(&agent).await?;
    let conversation = || Conversation { client, agent: &agent, key: &key, session: None };
    let mut fail = |what: &str, said: &str, reply: &Value| {
        failures
            .push(format!("{} [{what}] {said:?} -> {:?} (handoff: {})", entry.slug, reply["reply"], reply["handoff"]));
    };
    let cases = &entry.cases;
    for fact in &cases.facts {
        let reply = conversation().say(&fact.ask).await?;
        let text = reply["reply"].as_str().unwrap_or_default();
        let right = contains_all(text, &fact.expect);
        let cited = fact.source.iter().any(|source| {
            reply["sources"][0]["title"] == source.as_str() || text.contains(&format!("(source: {source}"))
        });
        figures.facts.add(right);
        figures.citations.add(cited);
        figures.false_handoffs.add(!reply["handoff"].is_null());
        if !right || !cited {
            fail(if right { "citation" } else { "fact" }, &fact.ask, &reply);
        }
    }
    for details in &cases.details {
        let mut talk = conversation();
        for before in &details.before {
            talk.say(before).await?;
        }
        let reply = talk.say(&details.say).await?;
        let read_back = contains_all(reply["reply"].as_str().unwrap_or_default(), &details.expect);
        figures.read_back.add(read_back);
        figures.false_handoffs.add(!reply["handoff"].is_null());
        if !read_back {
            fail("read-back", &details.say, &reply);
        }
    }
    for escalation in &cases.escalations {
        let mut talk = conversation();
        for before in &escalation.before {
            talk.say(before).await?;
        }
        let reply = talk.say(&escalation.say).await?;
        let handed = !reply["handoff"].is_null();
        figures.handoff_recall.add(handed);
        if !handed {
            fail("escalation", &escalation.say, &reply);
        }
    }
    for ordinary in &cases.ordinary {
        let mut talk = conversation();
        for before in &ordinary.before {
            talk.say(before).await?;
        }
        let reply = talk.say(&ordinary.say).await?;
        let handed = !reply["handoff"].is_null();
        figures.false_handoffs.add(handed);
        if handed {
            fail("false handoff", &ordinary.say, &reply);
        }
    }
    for forbidden in &cases.forbidden {
        let mut talk = conversation();
        for before in &forbidden.before {
            talk.say(before).await?;
        }
        let reply = talk.say(&forbidden.say).await?;
        let violated = !refuses(&reply);
        figures.violations.add(violated);
        if violated {
            fail("guardrail", &forbidden.say, &reply);
        }
    }
    Ok(figures)
}

/// The report as the command prints it after the per-agent lines.
pub fn summary(report: &Report) -> String {
    let t = &report.total;
    let mut lines = vec![
        format!("corpus of {} SOPs ({})", report.agents.len(), report.model),
        format!("  agents created        {}", t.created),
        format!("  fact accuracy         {}", t.facts),
        format!("  citation accuracy     {}", t.citations),
        format!("  read-back             {}", t.read_back),
        format!("  handoff recall        {}", t.handoff_recall),
        format!("  false-handoff rate    {}", t.false_handoffs),
        format!("  guardrail violations  {}", t.violations),
    ];
    if !report.failures.is_empty() {
        lines.push(format!("cases that failed ({}):", report.failures.len()));
        lines.extend(report.failures.iter().map(|f| format!("  {f}")));
    }
    lines.join("\n")
}
