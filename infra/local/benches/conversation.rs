//! What a conversation turn costs on top of the agent itself, measured in the same run.
//!
//! An agent is created from the clinic SOP on a running platform with the local engine and
//! the bundled embedding engine. The baseline invokes its runtime directly (AgentCore's
//! contract, the same invocation the platform sends: the message, the history so far, the
//! live configuration); the agent runs its tool loop (a model call that searches the
//! documents, the search, a model call that answers). The measured path is a customer's
//! `POST /v1/agents/{id}/messages` over HTTP: API-key check and rate limit, the lease
//! transaction that stores the customer's turn, the history query, the same invocation,
//! the transaction that stores the reply with its tool trace, and the dashboard events.
//! The difference is what the platform adds to a turn.
//! Run: `cargo bench -p oratio --bench conversation`.

use std::time::{Duration, Instant};

use oratio::{Config, EmbeddingsConfig};
use oratio_core::llm::Speaker;
use oratio_core::runtime::{AgentRef, HistoryTurn, Invocation};
use serde_json::{Value, json};

const TURNS: usize = 120;
const PASSWORD: &str = "Correct-Horse-Battery-9";
const SOP: &str = "Front desk procedure for Bright Smile Dental
1. Greet the caller and ask how you can help.
2. If they want to book an appointment, collect their full name, phone number and preferred date.
3. Confirm the booking details back to the caller.
Escalate to a human if the caller reports severe pain.
Never give a medical diagnosis.";
const FAQ: &str = "# Opening hours\nWe open Monday to Friday 8am to 6pm and Saturdays 9am to 1pm.\n";

async fn json(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{name:<34} mean {:>7.2} ms   p50 {:>7.2} ms   p95 {:>7.2} ms",
        mean.as_secs_f64() * 1e3,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3
    );
    mean
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let embeddings = EmbeddingsConfig::Bundled { python: venv.exists().then_some(venv) };
    let config = Config {
        port: 0,
        data_dir: dir.path().to_path_buf(),
        workflow_time_scale: 0.05,
        embeddings,
        document_reader: env!("CARGO_BIN_EXE_oratio").into(),
        ..Config::default()
    };
    let platform = oratio::start(config).await.expect("platform");
    let (url, http) = (platform.url(), reqwest::Client::new());
    let post = async |path: &str, token: Option<&str>, body: Value| {
        let mut request = http.post(format!("{url}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    };

    let email = "bench@example.com";
    json(
        post("/v1/auth/register", None, json!({"email": email, "password": PASSWORD, "organization_name": "Bench"}))
            .await,
    )
    .await;
    let mail = json(http.get(format!("{url}/local/outbox?to={email}")).send().await.expect("outbox")).await;
    let text = mail["mails"][0]["text"].as_str().expect("a mail");
    let code = text.split_whitespace().find(|w| w.len() == 6 && w.chars().all(|c| c.is_ascii_digit())).expect("code");
    json(post("/v1/auth/confirm", None, json!({"email": email, "code": code})).await).await;
    let tokens = json(post("/v1/auth/login", None, json!({"email": email, "password": PASSWORD})).await).await;
    let token = tokens["access_token"].as_str().expect("token").to_owned();
    let me = json(http.get(format!("{url}/v1/me")).bearer_auth(&token).send().await.expect("me")).await;

    let form = reqwest::multipart::Form::new()
        .text("config", json!({"name": "Front desk", "kind": "text", "sop": SOP}).to_string())
        .part("documents", reqwest::multipart::Part::bytes(FAQ.as_bytes()).file_name("faq.md"));
    let created =
        json(http.post(format!("{url}/v1/agents")).bearer_auth(&token).multipart(form).send().await.expect("create"))
            .await;
    let agent = created["agent_id"].as_str().expect("agent").to_owned();
    loop {
        let view =
            json(http.get(format!("{url}/v1/agents/{agent}")).bearer_auth(&token).send().await.expect("get")).await;
        match view["status"].as_str() {
            Some("active") => break,
            Some("creating") => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the agent did not become active: {other:?}"),
        }
    }
    let key = json(
        post(
            &format!("/v1/agents/{agent}/keys"),
            Some(&token),
            json!({"name": "bench", "rate_limit_per_minute": 100000}),
        )
        .await,
    )
    .await["secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    let question = "What time do you open on Saturdays?";
    let runtime = platform.agents();
    let reference = AgentRef {
        tenant: me["tenant"]["id"].as_str().expect("tenant").parse().expect("tenant id"),
        agent: agent.parse().expect("agent id"),
    };
    let health = json(http.get(format!("{url}/health")).send().await.expect("health")).await;
    println!("embeddings: {}", health["components"]["embeddings"]);
    let invocation = |history: &[HistoryTurn]| Invocation {
        message: question.into(),
        history: history.iter().rev().take(20).rev().cloned().collect(),
        session_id: "baseline-session".into(),
        customer: Default::default(),
        details: Default::default(),
        config: Default::default(),
    };
    // Warm both paths once.
    runtime.invoke(&reference, "warm", &invocation(&[]), None).await.expect("warm");

    // The two paths take turns, so that whatever else the machine does weighs on both.
    let mut direct = Vec::with_capacity(TURNS);
    let mut platform_path = Vec::with_capacity(TURNS);
    let mut history: Vec<HistoryTurn> = Vec::new();
    let mut session = Value::Null;
    for _ in 0..TURNS {
        let started = Instant::now();
        let answer = runtime.invoke(&reference, "baseline-session", &invocation(&history), None).await.expect("answer");
        direct.push(started.elapsed());
        history.push(HistoryTurn { role: Speaker::User, text: question.into() });
        history.push(HistoryTurn { role: Speaker::Assistant, text: answer.reply });

        let mut body = json!({"message": question});
        if !session.is_null() {
            body["session_id"] = session.clone();
        }
        let started = Instant::now();
        let reply = json(
            http.post(format!("{url}/v1/agents/{agent}/messages"))
                .header("x-api-key", &key)
                .json(&body)
                .send()
                .await
                .expect("message"),
        )
        .await;
        platform_path.push(started.elapsed());
        session = reply["session_id"].clone();
    }

    println!("{TURNS} turns of one conversation, each a question answered from a document:");
    let baseline = report("runtime invoke (baseline)", direct);
    let measured = report("POST /messages (platform)", platform_path);
    println!(
        "ratio {:.2}x; the platform adds {:.2} ms a turn",
        measured.as_secs_f64() / baseline.as_secs_f64(),
        (measured.as_secs_f64() - baseline.as_secs_f64()) * 1e3
    );
    platform.stop().await.expect("clean stop");
}
