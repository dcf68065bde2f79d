//! The voice socket in its serverless shape, end to end on the embedded platform: API
//! Gateway's WebSocket API (emulated at `/ws/voice`: one handler invocation per message,
//! concurrently, as API Gateway invokes the relay Lambda), each message posted to its
//! call's inbox in the table, and a voice worker running the session and answering through
//! `@connections`. Callers are flite's voices; the agents come from the evaluation corpus.

use std::time::Duration;

use futures::SinkExt;
use oratio::Config;
use oratio_core::speech::{Recognizer, word_error_rate};
use oratio_core::voice::VoiceLimits;
use oratio_local::speech::LocalSpeech;
use oratio_tests::platform::{TestPlatform, test_config};
use oratio_tests::speech::{VoiceClient, caller_says_with, worker_url};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn platform(voice: VoiceLimits) -> TestPlatform {
    oratio_tests::init_logs();
    let config = Config { speech: oratio::SpeechConfig::Running { url: worker_url() }, voice, ..test_config() };
    TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await
}

/// A signed-up tenant with an active agent made from a corpus entry; (token, agent, key).
async fn agent_of(p: &TestPlatform, email: &str, slug: &str, kind: &str) -> (String, String, String) {
    let account = p.sign_up(email, "Relay Test Org").await;
    let entry = oratio::eval::bundled().expect("the corpus").into_iter().find(|e| e.slug == slug).expect(slug);
    let config = json!({"name": entry.agent.name, "kind": kind, "sop": entry.sop,
        "handoff_conditions": entry.agent.handoff_conditions});
    let documents = entry.documents.iter().map(|(name, bytes)| (name.as_str(), bytes.clone())).collect();
    let agent = p.create_active_agent_from(&account.access_token, config, documents).await;
    let (_, key) = p.create_key(&account.access_token, &agent).await;
    (account.access_token, agent, key)
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// The error a refused relay connection gets, and that it is closed after it.
async fn refused_with(call: &mut VoiceClient) -> String {
    let error = call.until("error").await;
    assert!(call.close_code().await.is_some(), "closed after {error}");
    error["code"].as_str().expect("a code").to_owned()
}

async fn session_view(
    p: &TestPlatform,
    token: &str,
    agent: &str,
    session: &str,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/v1/agents/{agent}/sessions/{session}");
    let mut view = Value::Null;
    for _ in 0..100 {
        view = p.get_json(&path, Some(token)).await;
        if until(&view) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_talks_through_the_relay_and_hears_the_answer_from_the_documents() {
    let p = platform(VoiceLimits::default()).await;
    let (token, agent, key) = agent_of(&p, "ops@wheelwright.example.com", "bike-repair", "voice").await;
    let mut call = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("connected");
    let created = call.start(json!({"customer": {"name": "Joost"}})).await;
    assert_eq!((created["protocol"].as_str(), created["resumed"].as_bool()), (Some("oratio.voice.v1"), Some(false)));
    let session = created["session_id"].as_str().expect("an id").to_owned();

    // The frames go out in real time; the relay takes each in its own invocation, so some
    // overtake others, and the worker puts them back in order.
    let question = "Hello, how much do you charge to fix a flat tire on my bike?";
    call.say(&caller_says_with("rms", question), 1_200, true).await;
    let heard = call.until("conversation.item.input_audio_transcription.completed").await;
    let transcript = heard["transcript"].as_str().expect("a transcript");
    assert!(word_error_rate(question, transcript) <= 0.3, "{transcript:?} {:?}", of_type(&call.events, "error"));
    let from = call.events.len();
    let done = call.until("response.done").await;
    assert!(done["transcript"].as_str().expect("text").contains("14.50"), "{done}");
    assert_eq!((done["customer_turn"].as_u64(), done["turn"].as_u64()), (Some(1), Some(2)));
    let spoken = call.agent_audio(from);
    let back = LocalSpeech::new(worker_url()).transcribe(&spoken).await.expect("recognised").to_lowercase();
    // What was played is the reply: recognised back, its words are the transcript's (the
    // price itself is left to voice.rs; Whisper hears 14.50 as 40.50 now and then).
    let said = done["transcript"].as_str().expect("text");
    assert!(word_error_rate(said, &back) <= 0.5, "{said:?} was heard as {back:?}");
    let frame_errors: Vec<_> = of_type(&call.events, "error").into_iter().map(|e| e["code"].clone()).collect();
    assert!(frame_errors.is_empty(), "no frame refused: {frame_errors:?}");
    let chunks = of_type(&call.events, "response.audio.delta");
    assert!(chunks.windows(2).all(|w| w[1]["seq"].as_u64() == w[0]["seq"].as_u64().map(|s| s + 1)));
    assert!(call.events.windows(2).all(|w| w[1]["event_seq"].as_u64() == w[0]["event_seq"].as_u64().map(|s| s + 1)));

    call.send(json!({"type": "conversation.item.create", "text": "and are you open on a monday"})).await;
    assert_eq!(call.until("response.done").await["turn"], 4);
    call.send(json!({"type": "session.end"})).await;
    assert_eq!(call.until("session.ended").await["reason"], "customer");
    assert!(call.close_code().await.is_some(), "the worker closes the connection");

    let view = session_view(&p, &token, &agent, &session, |v| v["session"]["status"] == "ended").await;
    assert_eq!(view["session"]["channel"], "voice", "{view}");
    assert_eq!(view["turns"].as_array().map(Vec::len), Some(4), "{view}");
    let path = format!("/v1/agents/{agent}/sessions/{session}/recording");
    let mut status = 0;
    for _ in 0..50 {
        status = p.request(reqwest::Method::GET, &path, Some(&token)).send().await.expect("answered").status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the recording is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_call_dropped_on_the_relay_resumes_on_a_new_connection_and_only_for_its_caller() {
    let limits = VoiceLimits { resume_window: Duration::from_secs(3), ..VoiceLimits::default() };
    let p = platform(limits).await;
    let (token, agent, key) = agent_of(&p, "frontdesk@pawsandclaws.example.com", "vet-clinic", "voice").await;
    let (_, _, stranger_key) = agent_of(&p, "ops@otherclinic.example.com", "vet-clinic", "voice").await;

    // A browser cannot set headers: the key rides as a subprotocol, and the relay agrees
    // on the protocol's own.
    let url = format!("{}/ws/voice?agent_id={agent}", p.url.replacen("http://", "ws://", 1));
    let mut request = url.as_str().into_client_request().expect("a request");
    let offered = format!("oratio.voice.v1, oratio-key.{key}");
    request.headers_mut().insert("sec-websocket-protocol", offered.parse().expect("a header"));
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("connected");
    assert_eq!(response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some("oratio.voice.v1"));
    let mut call = VoiceClient { socket, events: Vec::new(), frame: 1, rate: 16_000 };
    let created = call.start(json!({})).await;
    let (session, resume) = (created["session_id"].clone(), created["resume_token"].clone());
    let seen = created["event_seq"].as_u64().expect("seq");
    call.send(json!({"type": "conversation.item.create", "text": "hi, till what time are you open on saturdays?"}))
        .await;
    drop(call);
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    // Another tenant's caller, with the id and the token, resumes nothing.
    let url = format!("{}/ws/voice?agent_id={agent}", p.url.replacen("http://", "ws://", 1));
    let refused = VoiceClient::connect_relay(&p.url, &agent, Some(&stranger_key)).await.err().expect("refused");
    assert_eq!(refused.0, 403, "another tenant's key opens no call to this agent: {refused:?}");
    let mut thief = VoiceClient::open(url.as_str().into_client_request().expect("a request")).await.expect("upgraded");
    thief
        .send(json!({"type": "session.start", "api_key": stranger_key, "session_id": session, "resume_token": resume}))
        .await;
    assert_eq!(refused_with(&mut thief).await, "key_agent_mismatch");
    // Nor does the right key with a wrong token, or an id no call holds.
    let mut thief = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("upgraded");
    thief.send(json!({"type": "session.start", "session_id": session, "resume_token": "y".repeat(43)})).await;
    assert_eq!(refused_with(&mut thief).await, "session_not_resumable");
    let mut thief = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("upgraded");
    thief
        .send(json!({"type": "session.start", "session_id": "ses_01jzzzzzzzzzzzzzzzzzzzzzzz", "resume_token": resume}))
        .await;
    assert_eq!(refused_with(&mut thief).await, "session_not_resumable");

    // Back with the id, the token and the key in session.start: what was said meanwhile
    // arrives once, then the call goes on in the same numbering.
    let mut back = VoiceClient::open(url.as_str().into_client_request().expect("a request")).await.expect("upgraded");
    back.send(json!({"type": "session.start", "api_key": key, "session_id": session, "resume_token": resume,
        "last_event_seq": seen}))
        .await;
    assert_eq!(back.until("session.created").await["resumed"], true);
    let answer = match of_type(&back.events, "response.done").first() {
        Some(done) => (*done).clone(),
        None => back.until("response.done").await,
    };
    assert!(answer["transcript"].as_str().expect("text").contains("13:00"), "{answer}");
    let mut numbers: Vec<u64> = back.events.iter().filter_map(|e| e["event_seq"].as_u64()).collect();
    assert!(numbers.iter().all(|n| *n > seen), "nothing seen twice: {numbers:?}");
    numbers.dedup();
    assert_eq!(numbers.len(), back.events.len(), "nothing sent twice");
    back.send(json!({"type": "conversation.item.create", "text": "what does microchipping a kitten cost"})).await;
    let next = back.until("response.done").await;
    assert_eq!((next["customer_turn"].as_u64(), next["turn"].as_u64()), (Some(3), Some(4)), "{next}");

    // Away past the window: the session ends as disconnected, no turn lost or doubled.
    drop(back);
    let session = session.as_str().expect("id");
    let view = session_view(&p, &token, &agent, session, |v| v["session"]["status"] == "ended").await;
    assert_eq!(view["session"]["end_reason"], "disconnected", "{view}");
    assert_eq!(view["turns"].as_array().map(Vec::len), Some(4), "{view}");
    // Its call is over: the id resumes nothing now.
    let mut late = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("upgraded");
    late.send(json!({"type": "session.start", "session_id": session, "resume_token": resume})).await;
    assert_eq!(refused_with(&mut late).await, "session_not_resumable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callers_of_the_relay_get_their_error_and_the_call_goes_on() {
    let p = platform(VoiceLimits::default()).await;
    let (token, agent, key) = agent_of(&p, "ops@cyclefix.example.com", "bike-repair", "voice").await;
    let (_, _, other_key) = agent_of(&p, "ops@inn.example.com", "hotel-front-desk", "voice").await;

    // Keys at $connect: a wrong one, another agent's; no agent at all.
    assert_eq!(VoiceClient::connect_relay(&p.url, &agent, Some("ok_live_wrong")).await.err().map(|e| e.0), Some(401));
    assert_eq!(VoiceClient::connect_relay(&p.url, &agent, Some(&other_key)).await.err().map(|e| e.0), Some(403));
    assert_eq!(VoiceClient::connect_relay(&p.url, "nobody", Some(&key)).await.err().map(|e| e.0), Some(404));
    // No key until session.start: another agent's there, or none.
    let mut call = VoiceClient::connect_relay(&p.url, &agent, None).await.expect("upgraded");
    call.send(json!({"type": "session.start", "api_key": other_key})).await;
    assert_eq!(refused_with(&mut call).await, "key_agent_mismatch");
    let mut call = VoiceClient::connect_relay(&p.url, &agent, None).await.expect("upgraded");
    call.send(json!({"type": "session.start"})).await;
    assert_eq!(refused_with(&mut call).await, "missing_api_key");
    // The first message must be session.start; the audio format one the server takes.
    let mut call = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("upgraded");
    call.send(json!({"type": "input_audio_buffer.commit"})).await;
    assert_eq!(refused_with(&mut call).await, "session_start_expected");
    let mut call = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("upgraded");
    call.send(json!({"type": "session.start", "audio": {"encoding": "mulaw", "sample_rate": 16000}})).await;
    assert_eq!(refused_with(&mut call).await, "unsupported_audio_format");

    // Within a session: unknown events, bad JSON, bad frames, binary; the session goes on.
    let mut call = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("upgraded");
    call.start(json!({})).await;
    call.send(json!({"type": "session.start"})).await;
    assert_eq!(call.until("error").await["code"], "session_already_started");
    call.send(json!({"type": "response.cancel"})).await;
    assert_eq!(call.until("error").await["code"], "unknown_event");
    call.socket.send(Message::Text("{\"type\": \"input_audio".into())).await.expect("sent");
    assert_eq!(call.until("error").await["code"], "invalid_json");
    call.send(json!({"type": "input_audio_buffer.append", "seq": 1, "audio": "AAAA"})).await;
    assert_eq!(call.until("error").await["code"], "invalid_audio_frame");
    call.socket.send(Message::Binary(vec![0u8; 640].into())).await.expect("sent");
    assert_eq!(call.until("error").await["code"], "binary_not_supported");
    call.send(json!({"type": "conversation.item.create", "text": "do you do e-bike repairs?"})).await;
    let done = call.until("response.done").await;
    assert_eq!(done["turn"], 2, "{done}");
    // A frame over API Gateway's 32 KB closes the connection (1009, as API Gateway does).
    call.send(json!({"type": "conversation.item.create", "text": "x".repeat(40_000)})).await;
    assert_eq!(call.close_code().await, Some(1009));

    // A paused agent takes no calls; a text agent has no voice.
    let paused = p.request(reqwest::Method::POST, &format!("/v1/agents/{agent}/pause"), Some(&token)).send().await;
    assert_eq!(paused.expect("paused").status(), 200);
    let mut call = VoiceClient::connect_relay(&p.url, &agent, Some(&key)).await.expect("upgraded");
    call.send(json!({"type": "session.start"})).await;
    assert_eq!(refused_with(&mut call).await, "agent_paused");
    let account = p.sign_up("ops@typeonly.example.com", "Type Only").await;
    let text_agent = p.create_active_agent(&account.access_token, "Type Only").await;
    let (_, text_key) = p.create_key(&account.access_token, &text_agent).await;
    let mut call = VoiceClient::connect_relay(&p.url, &text_agent, Some(&text_key)).await.expect("upgraded");
    call.send(json!({"type": "session.start"})).await;
    assert_eq!(refused_with(&mut call).await, "not_a_voice_agent");
}
