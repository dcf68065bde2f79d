//! The voice socket end to end on the embedded platform, with the embedded speech engines:
//! callers (flite's voices, not the agent's) speak to voice agents built from the
//! evaluation corpus's SOPs and documents, over PCM16 at 16 kHz and μ-law at 8 kHz.

use std::time::Duration;

use futures::SinkExt;
use oratio::Config;
use oratio_core::speech::{Recognizer, word_error_rate};
use oratio_core::voice::VoiceLimits;
use oratio_local::speech::LocalSpeech;
use oratio_tests::platform::{TestPlatform, test_config};
use oratio_tests::speech::{VoiceClient, caller_says, caller_says_with, wav_parts, worker_url};
use serde_json::{Value, json};

async fn platform(voice: VoiceLimits) -> TestPlatform {
    oratio_tests::init_logs();
    let config = Config { speech: oratio::SpeechConfig::Running { url: worker_url() }, voice, ..test_config() };
    TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await
}

/// A signed-up tenant with an active agent made from a corpus entry; (token, agent, key).
async fn agent_of(p: &TestPlatform, email: &str, slug: &str, kind: &str) -> (String, String, String) {
    let account = p.sign_up(email, "Voice Test Org").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_asks_by_voice_and_hears_the_answer_from_the_documents() {
    let p = platform(VoiceLimits::default()).await;
    let (token, agent, key) = agent_of(&p, "ops@spokeandchain.example.com", "bike-repair", "voice").await;
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    let created = call.start(json!({"customer": {"name": "Sanne"}})).await;
    assert_eq!(created["protocol"], "oratio.voice.v1");
    assert_eq!(created["output_audio"], json!({"encoding": "pcm16", "sample_rate": 16000}));
    assert!(created["resume_token"].as_str().is_some_and(|t| t.len() >= 32), "{created}");
    let session = created["session_id"].as_str().expect("an id").to_owned();

    let question = "Hi there, what's it cost to fix a puncture?";
    call.say(&caller_says_with("awb", question), 1_200, false).await;
    let heard = call.until("conversation.item.input_audio_transcription.completed").await;
    let transcript = heard["transcript"].as_str().expect("a transcript");
    assert!(word_error_rate(question, transcript) <= 0.25, "{transcript:?}");
    let from = call.events.len();
    let done = call.until("response.done").await;
    assert!(done["transcript"].as_str().expect("text").contains("14.50"), "{done}");
    assert_eq!((done["customer_turn"].as_u64(), done["turn"].as_u64()), (Some(1), Some(2)));
    let timings = &done["timings"];
    assert!(timings["total_ms"].as_u64().expect("total") >= timings["synthesis_ms"].as_u64().expect("synthesis"));
    // What the agent said is what it was heard to say: the price, recognised from its audio.
    let spoken = call.agent_audio(from);
    assert!(spoken.seconds() > 1.0, "{} s of audio", spoken.seconds());
    let back = LocalSpeech::new(worker_url()).transcribe(&spoken).await.expect("recognised").to_lowercase();
    assert!(back.contains("14") || back.contains("fourteen"), "{back:?}");
    // Chunks are numbered, within the frame limit, and the events counted without gaps.
    let chunks = of_type(&call.events, "response.audio.delta");
    assert!(chunks.windows(2).all(|w| w[1]["seq"].as_u64() == w[0]["seq"].as_u64().map(|s| s + 1)));
    assert!(call.events.windows(2).all(|w| w[1]["event_seq"].as_u64() == w[0]["event_seq"].as_u64().map(|s| s + 1)));

    // Typed text in the same call, then the caller hangs up.
    call.send(json!({"type": "conversation.item.create", "text": "are you open on mondays?"})).await;
    let done = call.until("response.done").await;
    assert_eq!(done["turn"], 4, "{done}");
    call.send(json!({"type": "session.end"})).await;
    assert_eq!(call.until("session.ended").await["reason"], "customer");
    assert_eq!(call.close_code().await, Some(1000));

    // The session's history, recording and transcript.
    let view = p.get_json(&format!("/v1/agents/{agent}/sessions/{session}"), Some(&token)).await;
    assert_eq!(view["session"]["channel"], "voice", "{view}");
    assert_eq!(view["turns"].as_array().map(Vec::len), Some(4), "{view}");
    assert!(view["turns"][1]["text"].as_str().expect("text").contains("14.50"));
    let links = p.get_json(&format!("/v1/agents/{agent}/sessions/{session}/recording"), Some(&token)).await;
    let wav = p.http.get(links["recording_url"].as_str().expect("a link")).send().await.expect("download");
    assert_eq!(wav.status(), 200);
    let wav = wav.bytes().await.expect("bytes");
    let (rate, channels, data) = wav_parts(&wav);
    assert_eq!((rate, channels), (16_000, 2));
    assert!(data.len() as u32 / 4 > rate * 3, "at least the question and the answer");
    let kept: Value = p
        .http
        .get(links["transcript_url"].as_str().expect("a link"))
        .send()
        .await
        .expect("download")
        .json()
        .await
        .expect("JSON");
    assert_eq!(kept["turns"].as_array().map(Vec::len), Some(4), "{kept}");
    assert!(kept["turns"][1]["timings"]["total_ms"].is_u64(), "{kept}");
    assert!(kept["turns"][0]["speech_started_ms"].is_u64(), "{kept}");
    assert_eq!(kept["recording"]["channels"], json!(["caller", "agent"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_line_at_8_khz_mu_law_is_understood_and_answered_in_kind() {
    let p = platform(VoiceLimits::default()).await;
    let (token, agent, key) = agent_of(&p, "desk@canalhotel.example.com", "hotel-front-desk", "both").await;
    // The tenant gives the agent a greeting: it is spoken as the call opens.
    let greeting = "Good evening, Canal Hotel front desk, how can I help?";
    let patched = p
        .request(reqwest::Method::PATCH, &format!("/v1/agents/{agent}"), Some(&token))
        .json(&json!({"greeting": greeting}))
        .send()
        .await
        .expect("patched");
    assert_eq!(patched.status(), 200);
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    let created = call.start(json!({"audio": {"encoding": "mulaw", "sample_rate": 8000}})).await;
    assert_eq!(created["output_audio"], json!({"encoding": "mulaw", "sample_rate": 8000}));
    assert_eq!(call.until("response.audio_transcript.delta").await["text"], greeting);
    call.until("response.audio.delta").await;
    call.say(&caller_says("Hello, what time can we check in?"), 1_200, false).await;
    let done = call.until("response.done").await;
    assert!(done["transcript"].as_str().expect("text").contains("15:00"), "{done}");
    let chunk = of_type(&call.events, "response.audio.delta")[0].clone();
    // 100 ms of μ-law at 8 kHz is 800 bytes.
    assert_eq!(chunk["duration_ms"], 100);
    assert_eq!(chunk["audio"].as_str().map(str::len), Some(800usize.div_ceil(3) * 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_speaks_over_the_agent_stops_it_and_the_turn_keeps_what_they_heard() {
    let p = platform(VoiceLimits::default()).await;
    let (token, agent, key) = agent_of(&p, "ops@pipes.example.com", "plumbing-heating", "voice").await;
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    let session = call.start(json!({})).await["session_id"].as_str().expect("id").to_owned();
    call.send(json!({"type": "conversation.item.create",
        "text": "What do you charge for a yearly boiler service, and what's the weekend callout charge?"}))
        .await;
    // The client plays two chunks (200 ms), then the caller talks over the agent.
    let first = call.until("response.audio.delta").await["seq"].as_u64().expect("seq");
    call.send(json!({"type": "output_audio.mark", "seq": first})).await;
    call.send(json!({"type": "output_audio.mark", "seq": first + 1})).await;
    call.say(&caller_says("Sorry, hang on, actually I meant the gas safety check."), 1_200, false).await;
    let interrupted = call.until("response.interrupted").await;
    assert_eq!(interrupted["played_ms"], 200, "{interrupted}");
    let heard = interrupted["heard"].as_str().expect("heard").to_owned();
    let done = call.until("response.done").await;
    assert_eq!(done["transcript"], heard, "the stored turn is what was heard");
    let interrupted_turn = done["turn"].as_u64().expect("turn");
    // No audio of the interrupted reply comes after the interruption; the next turn answers.
    let cut = call.events.iter().position(|e| e["type"] == "response.interrupted").expect("there");
    let next_reply = call.events.iter().position(|e| e["type"] == "response.done").expect("there");
    assert!(call.events[cut..next_reply].iter().all(|e| e["type"] != "response.audio.delta"), "{:?}", call.events);
    let next = call.until("response.done").await;
    assert_eq!(next["customer_turn"].as_u64(), Some(interrupted_turn + 1), "{next}");

    let view = p.get_json(&format!("/v1/agents/{agent}/sessions/{session}"), Some(&token)).await;
    let stored = &view["turns"][interrupted_turn as usize - 1];
    assert_eq!(
        (stored["text"].as_str(), stored["interrupted"].as_bool()),
        (Some(heard.as_str()), Some(true)),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_resumes_where_it_was_and_one_that_stays_away_ends() {
    let limits = VoiceLimits { resume_window: Duration::from_secs(3), ..VoiceLimits::default() };
    let p = platform(limits).await;
    let (token, agent, key) = agent_of(&p, "ops@vet.example.com", "vet-clinic", "voice").await;
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    let created = call.start(json!({})).await;
    let (session, resume) = (created["session_id"].clone(), created["resume_token"].clone());
    let seen = created["event_seq"].as_u64().expect("seq");
    // The question goes out and the line drops before any answer.
    call.send(json!({"type": "conversation.item.create", "text": "what time do you close on saturday"})).await;
    drop(call);
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // Back with the id and token: what was said meanwhile arrives once, then the call goes on.
    let mut back = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    back.send(json!({"type": "session.start", "session_id": session, "resume_token": resume, "last_event_seq": seen}))
        .await;
    let resumed = back.until("session.created").await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    // Produced while away (replayed before `session.created`) or just after.
    let answer = match of_type(&back.events, "response.done").first() {
        Some(done) => (*done).clone(),
        None => back.until("response.done").await,
    };
    assert!(answer["transcript"].as_str().expect("text").contains("13:00"), "{answer}");
    let mut numbers: Vec<u64> = back.events.iter().filter_map(|e| e["event_seq"].as_u64()).collect();
    assert!(numbers.iter().all(|n| *n > seen), "nothing seen twice: {numbers:?}");
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), back.events.len(), "nothing sent twice");
    back.send(json!({"type": "conversation.item.create", "text": "and how much is it to get my cat microchipped?"}))
        .await;
    let next = back.until("response.done").await;
    assert_eq!((next["customer_turn"].as_u64(), next["turn"].as_u64()), (Some(3), Some(4)), "{next}");

    // A wrong token resumes nothing.
    let mut thief = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    thief.send(json!({"type": "session.start", "session_id": session, "resume_token": "x".repeat(43)})).await;
    assert_eq!(thief.close_code().await, Some(4410));

    // Gone for longer than the window: the session ends as disconnected, recording kept.
    drop(back);
    let path = format!("/v1/agents/{agent}/sessions/{}", session.as_str().expect("id"));
    let mut view = Value::Null;
    for _ in 0..100 {
        view = p.get_json(&path, Some(&token)).await;
        if view["session"]["status"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view["session"]["end_reason"], "disconnected", "{view}");
    assert_eq!(view["turns"].as_array().map(Vec::len), Some(4), "no turn lost or doubled: {view}");
    // The recording is written as the session ends.
    let mut status = 0;
    for _ in 0..50 {
        let links = p.request(reqwest::Method::GET, &format!("{path}/recording"), Some(&token)).send().await;
        status = links.expect("answered").status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_wants_their_money_back_is_handed_to_a_person_who_takes_the_call() {
    let p = platform(VoiceLimits::default()).await;
    let (token, agent, key) = agent_of(&p, "jeroen@spokeandchain.example.com", "bike-repair", "voice").await;
    let (mut dashboard, _) = tokio_tungstenite::connect_async(p.dashboard_socket(&token)).await.expect("socket");
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    let created = call.start(json!({})).await;
    let session = created["session_id"].as_str().expect("a session").to_owned();
    call.say(
        &caller_says_with("rms", "The repair didn't fix anything, so I want the eighty nine euros back."),
        1_200,
        true,
    )
    .await;
    let handoff = call.until("handoff.requested").await;
    assert!(handoff["reason"].as_str().is_some_and(|r| !r.is_empty()), "{handoff}");
    // The dashboards heard the caller's words as they were spoken, before the turn was stored.
    let partial = loop {
        let event = oratio_tests::platform::next_event(&mut dashboard).await;
        if event["type"] == "transcript.partial" {
            break event;
        }
        assert_ne!(event["type"], "handoff.requested", "no partial came before the handoff");
    };
    assert_eq!(partial["session_id"], session.as_str());
    assert!(partial["text"].as_str().is_some_and(|t| !t.is_empty()), "{partial}");
    assert_eq!(of_type(&call.events, "response.done")[0]["status"], "handoff_requested");

    // A person takes the call: the caller is told, and hears what the person writes in
    // the agent's voice.
    let taken = p.post_json(&format!("/v1/sessions/{session}/takeover"), Some(&token), json!({})).await;
    assert_eq!(taken.status(), 200);
    assert_eq!(call.until("session.updated").await["status"], "taken_over");
    let said = "Hello, this is Sanne from the workshop. I will refund you today.";
    let wrote = p.post_json(&format!("/v1/sessions/{session}/messages"), Some(&token), json!({"text": said})).await;
    assert_eq!(wrote.status(), 200);
    let message = call.until("conversation.item.operator").await;
    assert_eq!(message["text"], said);
    let from = call.events.len();
    let first_chunk = call.until("response.audio.delta").await;
    assert!(first_chunk["seq"].is_u64());
    // The person's words, spoken: read until the audio stops coming.
    while tokio::time::timeout(Duration::from_secs(3), call.next()).await.is_ok_and(|e| e.is_some()) {}
    let heard = LocalSpeech::new(worker_url()).transcribe(&call.agent_audio(from)).await.expect("recognised");
    assert!(heard.to_lowercase().contains("refund"), "{heard:?}");

    // The caller answers: their words are stored, the agent says nothing.
    call.say(&caller_says("Thank you, that is kind."), 1_200, false).await;
    call.until("conversation.item.input_audio_transcription.completed").await;
    let transcript = loop {
        let view = p.get_json(&format!("/v1/sessions/{session}/messages"), Some(&token)).await;
        if view["turns"].as_array().is_some_and(|t| t.last().is_some_and(|t| t["role"] == "customer")) {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let roles: Vec<&str> =
        transcript["turns"].as_array().unwrap().iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["customer", "agent", "system", "operator", "customer"], "{transcript}");
    assert_eq!(of_type(&call.events, "response.done").len(), 1, "the agent stayed silent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callers_get_their_error_or_close_code_and_nothing_breaks() {
    let p = platform(VoiceLimits { keepalive: Duration::from_secs(1), ..VoiceLimits::default() }).await;
    let (token, agent, key) = agent_of(&p, "ops@bikes.example.com", "bike-repair", "voice").await;
    let (_, other_agent, other_key) = agent_of(&p, "ops@hotel.example.com", "hotel-front-desk", "voice").await;

    // Keys: a wrong one, and another agent's, before the upgrade and in session.start.
    let refused = VoiceClient::connect(&p.url, &agent, Some("ok_live_wrong")).await.err().expect("refused");
    assert_eq!(refused.0, 401, "{refused:?}");
    let refused = VoiceClient::connect(&p.url, &agent, Some(&other_key)).await.err().expect("refused");
    assert_eq!(refused.0, 403, "{refused:?}");
    assert!(refused.1.contains("key_agent_mismatch"), "{refused:?}");
    let mut call = VoiceClient::connect(&p.url, &agent, None).await.expect("upgraded");
    call.send(json!({"type": "session.start", "api_key": other_key})).await;
    assert_eq!(call.close_code().await, Some(4403));
    assert_eq!(call.events[0]["code"], "key_agent_mismatch");
    let mut call = VoiceClient::connect(&p.url, &agent, None).await.expect("upgraded");
    call.send(json!({"type": "input_audio_buffer.commit"})).await;
    assert_eq!(call.close_code().await, Some(4400), "the first message must be session.start");

    // An audio format the server does not take.
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("upgraded");
    call.send(json!({"type": "session.start", "audio": {"encoding": "pcm16", "sample_rate": 44100}})).await;
    assert_eq!(call.close_code().await, Some(4400));
    assert_eq!(call.events[0]["code"], "unsupported_audio_format");

    // Within a session: unknown events, bad JSON, bad frames, frames out of order, binary.
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("upgraded");
    call.start(json!({})).await;
    call.send(json!({"type": "response.create"})).await;
    assert_eq!(call.until("error").await["code"], "unknown_event");
    call.socket.send(tokio_tungstenite::tungstenite::Message::Text("{\"type\": ".into())).await.expect("sent");
    assert_eq!(call.until("error").await["code"], "invalid_json");
    call.send(json!({"type": "input_audio_buffer.append", "seq": 1, "audio": "not base64!"})).await;
    assert_eq!(call.until("error").await["code"], "invalid_audio");
    call.send(json!({"type": "input_audio_buffer.append", "seq": 1, "audio": "AAAA"})).await;
    assert_eq!(call.until("error").await["code"], "invalid_audio_frame", "2 samples is not 20 ms");
    call.say(&oratio_core::speech::Audio::new(16_000, vec![0; 3_200]), 0, false).await;
    call.send(json!({"type": "input_audio_buffer.append", "seq": 2, "audio": ""})).await;
    assert_eq!(call.until("error").await["code"], "frame_out_of_order");
    call.socket.send(tokio_tungstenite::tungstenite::Message::Binary(vec![0u8; 640].into())).await.expect("sent");
    assert_eq!(call.until("error").await["code"], "binary_not_supported");
    // The session still works after all that.
    call.send(json!({"type": "conversation.item.create", "text": "Do you fix e-bikes too?"})).await;
    assert!(call.until("response.done").await["transcript"].is_string());
    // A frame over 32 KB closes the connection.
    call.send(json!({"type": "conversation.item.create", "text": "x".repeat(40_000)})).await;
    assert_eq!(call.close_code().await, Some(1009));

    // A client that stops reading (it answers no ping) is let go after two keepalives, and
    // the session goes on: its turns are all stored, and it can be resumed.
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("upgraded");
    let created = call.start(json!({})).await;
    let questions = [
        "Do you sell second-hand bikes?",
        "Can I borrow a bike while mine is in the shop?",
        "how long does a full service take",
        "do second hand bikes come with any guarantee",
    ];
    for question in questions {
        call.send(json!({"type": "conversation.item.create", "text": question})).await;
    }
    let path = format!("/v1/agents/{agent}/sessions/{}", created["session_id"].as_str().expect("id"));
    let mut view = Value::Null;
    for _ in 0..120 {
        view = p.get_json(&path, Some(&token)).await;
        if view["turns"].as_array().map(Vec::len) == Some(2 * questions.len()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(view["turns"].as_array().map(Vec::len), Some(2 * questions.len()), "{view}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Ended by the server: with 4008, or reset if the close frame was still unread when
    // the client's pong reached a closed socket.
    let ended = call.close_code().await;
    assert!(matches!(ended, Some(4008) | None), "let go for not reading: {ended:?}");
    let mut back = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    back.send(json!({"type": "session.start", "session_id": created["session_id"],
        "resume_token": created["resume_token"], "last_event_seq": 1}))
        .await;
    assert_eq!(back.until("session.created").await["resumed"], true);
    while of_type(&back.events, "response.done").len() < questions.len() {
        back.until("response.done").await;
    }
    assert_eq!(of_type(&back.events, "response.done").len(), questions.len(), "every answer, once");

    // A paused agent takes no calls; a text agent has no voice.
    let paused = p.request(reqwest::Method::POST, &format!("/v1/agents/{agent}/pause"), Some(&token)).send().await;
    assert_eq!(paused.expect("paused").status(), 200);
    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("upgraded");
    call.send(json!({"type": "session.start"})).await;
    assert_eq!(call.close_code().await, Some(4409));
    assert_eq!(call.events[0]["code"], "agent_paused");
    let _ = other_agent;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_agent_has_no_voice_and_voice_needs_its_engines() {
    let config = Config { speech: oratio::SpeechConfig::Off, ..test_config() };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await;
    let account = p.sign_up("ops@texty.example.com", "Texty").await;
    let text_agent = p.create_active_agent(&account.access_token, "Texty").await;
    let (_, key) = p.create_key(&account.access_token, &text_agent).await;
    let mut call = VoiceClient::connect(&p.url, &text_agent, Some(&key)).await.expect("upgraded");
    call.send(json!({"type": "session.start"})).await;
    assert_eq!(call.close_code().await, Some(4403));
    assert_eq!(call.events[0]["code"], "not_a_voice_agent");

    let health = p.get_json("/health", None).await;
    let speech = &health["components"]["speech"];
    assert_eq!(speech["status"], "degraded", "{health}");
    assert!(speech["detail"].as_str().is_some_and(|d| d.contains("ORATIO_SPEECH=off")), "{health}");
    // Without a WebSocket client the route says what it wants.
    let plain = p.http.get(format!("{}/v1/agents/{text_agent}/voice", p.url)).header("x-api-key", &key).send().await;
    assert_eq!(plain.expect("answered").status(), 426);
}
