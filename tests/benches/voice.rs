//! What a voice turn costs, from the end of the caller's speech to the first byte of the
//! agent's audio, over the voice socket of a running platform with the embedded engines;
//! beside it, in the same run, each engine measured alone on the same inputs (the
//! baseline); and the recogniser's word error rate on the evaluation corpus's questions.
//!
//! Callers are flite's `slt` voice saying the corpus's questions (the `facts` of every
//! entry), streamed in real time in 20 ms frames, one voice agent per corpus entry.
//! The same questions are then asked on a phone call (a simulated Twilio: the signed
//! webhook, then Media Streams in μ-law at 8 kHz, in real time): end of the caller's speech
//! to the first μ-law byte back, beside the voice socket's figure; and through the voice
//! relay (API Gateway's shape, `/ws/voice`: each message posted to the call's inbox in the
//! table, a worker reading it), the same figure again.
//! Then how many concurrent real-time sessions one process carries ([`load`]).
//! Run: `cargo bench -p oratio-tests --bench voice` (`-- load`: only the concurrency part).

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use oratio::Config;
use oratio_core::runtime::{AgentRef, Invocation};
use oratio_core::speech::{Audio, Recognizer, Synthesizer, VoiceSettings, resample, word_error_rate};
use oratio_local::speech::LocalSpeech;
use oratio_tests::platform::{TestPlatform, test_config};
use oratio_tests::speech::{caller_says, worker_url};
use oratio_tests::twilio;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[path = "voice/load.rs"]
mod load;

const TURNS: usize = 50;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!("{name:<44} p50 {:>7.0} ms   p95 {:>7.0} ms", percentile(&values, 0.5), percentile(&values, 0.95));
}

/// Speech with flite's own leading and trailing silence cut, so that its end is known.
fn trimmed(audio: Audio) -> Audio {
    let audio = resample(&audio, 16_000).expect("16 kHz");
    let loud = |s: &i16| s.unsigned_abs() > 300;
    let from = audio.samples.iter().position(loud).unwrap_or(0);
    let to = audio.samples.iter().rposition(loud).unwrap_or(audio.samples.len() - 1);
    Audio::new(16_000, audio.samples[from..=to].to_vec())
}

struct Turn {
    heard: String,
    to_first_audio_ms: f64,
    timings: Value,
    reply: String,
}

/// One question spoken in real time on an open call: 300 ms of silence, the speech, then
/// silence until the reply's first audio and its end.
async fn ask(
    sink: &mut (impl futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin),
    events: &mut tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>,
    frame: &mut u64,
    speech: &Audio,
) -> Turn {
    let mut line = vec![0i16; 4_800];
    line.extend_from_slice(&speech.samples);
    let speech_ends = line.len();
    line.extend(std::iter::repeat_n(0, 16_000 * 8));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut ended_at, mut first_audio, mut heard) = (None, None, String::new());
    for (i, samples) in line.chunks(320).enumerate() {
        tick.tick().await;
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
        let message = json!({"type": "input_audio_buffer.append", "seq": *frame, "audio": audio});
        *frame += 1;
        sink.send(Message::Text(message.to_string().into())).await.expect("sent");
        if (i + 1) * 320 >= speech_ends && ended_at.is_none() {
            ended_at = Some(Instant::now());
        }
        while let Ok((at, event)) = events.try_recv() {
            match event["type"].as_str() {
                Some("conversation.item.input_audio_transcription.completed") => {
                    heard = event["transcript"].as_str().unwrap_or_default().to_owned();
                }
                Some("response.audio.delta") if first_audio.is_none() => first_audio = Some(at),
                Some("response.done") => {
                    let ended = ended_at.expect("speech ended before the reply");
                    return Turn {
                        heard,
                        to_first_audio_ms: first_audio.expect("audio before done").duration_since(ended).as_secs_f64()
                            * 1e3,
                        timings: event["timings"].clone(),
                        reply: event["transcript"].as_str().unwrap_or_default().to_owned(),
                    };
                }
                Some("error") => panic!("{event}"),
                _ => {}
            }
        }
    }
    panic!("no reply within 8 s of silence")
}

type Events = tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>;
type Sink = futures::stream::SplitSink<oratio_tests::speech::Socket, Message>;

/// A voice call at `url` with the agent's key, started: its sink, its server events (with
/// when each arrived) and the task reading them.
async fn open_call(url: &str, key: &str) -> (Sink, Events, tokio::task::JoinHandle<()>) {
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert("x-api-key", key.parse().expect("header"));
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("connected");
    let (mut sink, mut stream) = socket.split();
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                let _ = tx.send((Instant::now(), serde_json::from_str::<Value>(&text).expect("JSON")));
            }
        }
    });
    sink.send(Message::Text(json!({"type": "session.start"}).to_string().into())).await.expect("start");
    (sink, events, reader)
}

async fn end_call(sink: &mut Sink, reader: tokio::task::JoinHandle<()>) {
    sink.send(Message::Text(json!({"type": "session.end"}).to_string().into())).await.expect("end");
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
}

/// The agent's questions asked over a simulated Twilio call to a number of its own: for
/// each, the time from the end of the caller's speech to the first μ-law byte back.
async fn phone_call(p: &TestPlatform, token: &str, agent: &str, questions: &[(String, Audio)]) -> Vec<f64> {
    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const AUTH: &str = "0123456789abcdef0123456789abcdef";
    let number = format!("+1555{:07}", rand_number(agent));
    let call_sid = format!("CA{:032x}", rand_number(agent));
    let assigned = p
        .post_json(
            "/v1/phone-numbers",
            Some(token),
            json!({"number": number, "agent_id": agent,
            "twilio": {"account_sid": ACCOUNT, "auth_token": AUTH}}),
        )
        .await;
    assert_eq!(assigned.status(), 201);
    let url = format!("{}/telephony/twilio/voice", p.url);
    let params = twilio::call_params(ACCOUNT, &call_sid, "+15550000001", &number);
    let twiml = p
        .http
        .post(&url)
        .form(&params)
        .header("x-twilio-signature", twilio::sign(AUTH, &url, &params))
        .send()
        .await
        .expect("the webhook")
        .text()
        .await
        .expect("TwiML");
    let (media, grant) = twilio::stream_of(&twiml).expect("a stream");
    let mut call = twilio::TwilioStream::open(&media, &grant, ACCOUNT, &call_sid).await;
    let mut out = Vec::new();
    for (_, said) in questions {
        if let Some(waited) = call.time_to_answer(said, Duration::from_secs(8)).await {
            out.push(waited.as_secs_f64() * 1e3);
        }
        call.until_quiet(Duration::from_millis(1_500)).await;
    }
    call.stop(ACCOUNT, &call_sid).await;
    out
}

/// Seven digits of a number that is the agent's own.
fn rand_number(agent: &str) -> u64 {
    agent.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 10_000_000
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "load") {
        return load::run().await;
    }
    let config = Config { speech: oratio::SpeechConfig::Running { url: worker_url() }, ..test_config() };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await;
    let account = p.sign_up("bench@voice.example.com", "Voice bench").await;
    let token = account.access_token.clone();
    let speech = LocalSpeech::new(worker_url());
    let voice = VoiceSettings::default();
    let corpus = oratio::eval::bundled().expect("the corpus");

    let (mut turns, mut questions, mut phone, mut relayed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut raw_recognition, mut raw_agent, mut raw_synthesis) = (Vec::new(), Vec::new(), Vec::new());
    for entry in &corpus {
        if turns.len() >= TURNS {
            break;
        }
        let config = json!({"name": entry.agent.name, "kind": "voice", "sop": entry.sop,
            "handoff_conditions": entry.agent.handoff_conditions});
        let documents = entry.documents.iter().map(|(name, bytes)| (name.as_str(), bytes.clone())).collect();
        let agent = p.create_active_agent_from(&token, config, documents).await;
        let key = p
            .post_json(
                &format!("/v1/agents/{agent}/keys"),
                Some(&token),
                json!({"name": "bench", "rate_limit_per_minute": 100000}),
            )
            .await
            .json::<Value>()
            .await
            .expect("a key")["secret"]
            .as_str()
            .expect("secret")
            .to_owned();
        let (mut sink, mut events, reader) = open_call(&p.ws_url(&format!("/v1/agents/{agent}/voice")), &key).await;
        let mut frame = 1;
        let first_question = questions.len();
        let reference =
            AgentRef { tenant: account.tenant_id.parse().expect("tenant"), agent: agent.parse().expect("agent") };
        for fact in &entry.cases.facts {
            if turns.len() >= TURNS {
                break;
            }
            let said = trimmed(caller_says(&fact.ask));
            let turn = ask(&mut sink, &mut events, &mut frame, &said).await;
            // The same work, each engine alone.
            let started = Instant::now();
            speech.transcribe(&said).await.expect("recognised");
            raw_recognition.push(started.elapsed().as_secs_f64() * 1e3);
            let invocation = Invocation {
                message: fact.ask.clone(),
                history: Vec::new(),
                session_id: format!("bench-{}", turns.len()),
                customer: Default::default(),
                details: Default::default(),
                config: Default::default(),
            };
            let started = Instant::now();
            p.platform
                .as_ref()
                .expect("running")
                .agents()
                .invoke(&reference, "bench", &invocation, None)
                .await
                .expect("answered");
            raw_agent.push(started.elapsed().as_secs_f64() * 1e3);
            let first_sentence = turn.reply.split_inclusive(['.', '!', '?']).next().unwrap_or(&turn.reply).to_owned();
            let started = Instant::now();
            speech.synthesize(&first_sentence, &voice).await.expect("spoken");
            raw_synthesis.push(started.elapsed().as_secs_f64() * 1e3);
            questions.push((fact.ask.clone(), said));
            turns.push(turn);
        }
        end_call(&mut sink, reader).await;
        // The same questions through the relay (API Gateway's shape: an inbox in the table).
        let (mut sink, mut events, reader) = open_call(&p.ws_url(&format!("/ws/voice?agent_id={agent}")), &key).await;
        let mut frame = 1;
        for (_, said) in &questions[first_question..] {
            relayed.push(ask(&mut sink, &mut events, &mut frame, said).await.to_first_audio_ms);
        }
        end_call(&mut sink, reader).await;
        // The same questions on a phone call: Twilio's webhook, then its media stream.
        phone.extend(phone_call(&p, &token, &agent, &questions[first_question..]).await);
    }

    println!(
        "\n{} voice turns, {} corpus entries, callers spoken by flite slt, streamed in real time\n",
        turns.len(),
        corpus.len()
    );
    report("end of speech -> first agent audio (client)", turns.iter().map(|t| t.to_first_audio_ms).collect());
    let part = |name: &str| turns.iter().map(|t| t.timings[name].as_u64().unwrap_or(0) as f64).collect::<Vec<_>>();
    for name in ["endpointing_ms", "recognition_ms", "agent_ms", "synthesis_ms", "platform_ms", "total_ms"] {
        report(&format!("  server: {name}"), part(name));
    }
    report("end of speech -> first agent audio (relay, inbox read every 10 ms)", relayed);
    report("end of speech -> first mu-law byte (Twilio)", phone);
    println!("baseline, each engine alone on the same inputs:");
    report("  recogniser (whole question)", raw_recognition);
    report("  agent (whole reply, no socket)", raw_agent);
    report("  synthesiser (first sentence)", raw_synthesis);

    let said: Vec<&str> = questions.iter().map(|(ask, _)| ask.as_str()).collect();
    let socket: Vec<&str> = turns.iter().map(|t| t.heard.as_str()).collect();
    let mut telephone = Vec::new();
    for (_, audio) in &questions {
        let line = Audio::from_mulaw(&resample(audio, 8_000).expect("8 kHz").to_mulaw());
        telephone.push(speech.transcribe(&line).await.expect("recognised"));
    }
    println!(
        "\nword error rate on the corpus's {} questions: {:.1} % at 16 kHz (over the socket), {:.1} % at 8 kHz mu-law",
        said.len(),
        word_error_rate(&said.join(" "), &socket.join(" ")) * 100.0,
        word_error_rate(&said.join(" "), &telephone.join(" ")) * 100.0
    );
    drop(p);
    load::run().await;
}
