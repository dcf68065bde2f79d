//! The Nova 2 Sonic engine end to end on the embedded platform: the voice socket in front,
//! the `NovaSonic` adapter on the real SDK behind, talking HTTP/2 over TLS to a local
//! server that plays a recorded Sonic exchange (`oratio_tests::sonic`). The agent decides
//! through Sonic's tool use; the stream is renewed with the history replayed; Sonic's
//! `INTERRUPTED` is barge-in.

use std::time::Duration;

use oratio::{Config, SpeechConfig};
use oratio_aws::SonicSettings;
use oratio_tests::platform::{TestPlatform, test_config};
use oratio_tests::sonic::SonicServer;
use oratio_tests::speech::{VoiceClient, caller_says_with};
use serde_json::{Value, json};

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter_map(|e| e["event"].get(name)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_talks_to_an_agent_through_nova_sonic() {
    oratio_tests::init_logs();
    let sonic = SonicServer::start().await;
    let dir = tempfile::tempdir().expect("a directory");
    let ca = dir.path().join("sonic-ca.pem");
    std::fs::write(&ca, &sonic.ca_pem).expect("the CA written");
    let settings = SonicSettings {
        renew_after: Duration::from_secs(4),
        renew_by: Duration::from_secs(60),
        ..SonicSettings::default()
    };
    let aws = Some(Box::new(oratio_tests::moto::test_config(Some(&sonic.url)).await));
    let speech = SpeechConfig::Sonic { settings, aws, ca_bundle: Some(ca) };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), Config { speech, ..test_config() }).await;

    let account = p.sign_up("desk@spokeandchain.example.com", "Spoke and Chain").await;
    let entry =
        oratio::eval::bundled().expect("the corpus").into_iter().find(|e| e.slug == "bike-repair").expect("bike");
    let config = json!({"name": entry.agent.name, "kind": "voice", "sop": entry.sop,
        "handoff_conditions": entry.agent.handoff_conditions});
    let documents = entry.documents.iter().map(|(name, bytes)| (name.as_str(), bytes.clone())).collect();
    let agent = p.create_active_agent_from(&account.access_token, config, documents).await;
    let (_, key) = p.create_key(&account.access_token, &agent).await;

    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    let created = call.start(json!({"customer": {"name": "Sanne"}})).await;
    let session = created["session_id"].as_str().expect("an id").to_owned();

    // Turn one: Sonic hears the caller, asks the agent, says its answer.
    call.say(&caller_says_with("awb", "Hi there, what's it cost to fix a puncture?"), 600, false).await;
    let heard = call.until("conversation.item.input_audio_transcription.completed").await;
    assert_eq!(heard["transcript"], "hi there whats it cost to fix a puncture");
    let from = call.events.len();
    let spoken = call.until("response.audio_transcript.delta").await;
    assert_eq!(spoken["text"], "A flat tyre repair is fourteen euros fifty, while you wait.");
    // The turn is done once Sonic has said it all.
    let done = call.until("response.done").await;
    assert!(done["transcript"].as_str().expect("text").contains("14.50"), "the agent's answer: {done}");
    assert_eq!((done["customer_turn"].as_u64(), done["turn"].as_u64()), (Some(1), Some(2)));
    assert!(done["timings"]["total_ms"].as_u64() > Some(0), "{done}");
    let audio = call.agent_audio(from);
    assert!(audio.seconds() > 1.5, "Sonic's 24 kHz speech reaches the caller at 16 kHz: {} s", audio.seconds());

    let first = &sonic.received()[0];
    assert!(first.http2, "the SDK speaks HTTP/2 to Bedrock");
    assert_eq!(first.model, "amazon.nova-2-sonic-v1:0");
    let prompt = named(&first.events, "promptStart")[0];
    assert_eq!(prompt["audioOutputConfiguration"]["sampleRateHertz"], 24_000);
    assert_eq!(prompt["audioOutputConfiguration"]["voiceId"], "matthew");
    assert_eq!(prompt["toolConfiguration"]["tools"][0]["toolSpec"]["name"], "ask_agent");
    let audio_start = named(&first.events, "contentStart").into_iter().find(|c| c["type"] == "AUDIO").expect("audio");
    assert_eq!(audio_start["audioInputConfiguration"]["sampleRateHertz"], 16_000);
    let result = named(&first.events, "toolResult")[0];
    assert!(
        result["content"].as_str().expect("content").contains("14.50"),
        "the agent's answer goes to Sonic: {result}"
    );
    let tool_start = named(&first.events, "contentStart").into_iter().find(|c| c["type"] == "TOOL").expect("tool");
    assert_eq!(tool_start["toolResultInputConfiguration"]["toolUseId"], "tooluse_8Qe1");

    // The stream is renewed between replies, with the conversation so far as history.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sonic.received().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the Sonic stream was not renewed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = &sonic.received()[1];
    let history: Vec<&str> = named(&second.events, "textInput").iter().filter_map(|t| t["content"].as_str()).collect();
    assert!(history.contains(&"hi there whats it cost to fix a puncture"), "{history:?}");
    assert!(history.iter().any(|t| t.contains("14.50")), "{history:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while named(&sonic.received()[0].events, "sessionEnd").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the old stream was not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Turn two, on the new stream: the caller talks over a long answer.
    call.say(&caller_says_with("awb", "And when are you open on Saturdays?"), 600, false).await;
    call.until("response.audio.delta").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    call.say(&caller_says_with("awb", "Sorry, one more thing."), 300, true).await;
    let interrupted = call.until("response.interrupted").await;
    let played = interrupted["played_ms"].as_u64().expect("played");
    assert!(played > 0, "{interrupted}");
    let done = call.until("response.done").await;
    assert_eq!((done["customer_turn"].as_u64(), done["turn"].as_u64()), (Some(3), Some(4)));

    call.send(json!({"type": "session.end"})).await;
    let ended = call.until("session.ended").await;
    assert_eq!(ended["reason"], "customer");
    let second = &sonic.received()[1];
    let closing: Vec<&str> = second
        .events
        .iter()
        .rev()
        .take(3)
        .filter_map(|e| e["event"].as_object())
        .filter_map(|e| e.keys().next().map(String::as_str))
        .collect();
    assert_eq!(closing, ["sessionEnd", "promptEnd", "contentEnd"], "Sonic's stream is closed in order");

    let view = p.get_json(&format!("/v1/agents/{agent}/sessions/{session}"), Some(&account.access_token)).await;
    assert_eq!(view["session"]["channel"], "voice", "{view}");
    let turns = view["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 4, "{view}");
    assert_eq!(turns[0]["text"], "hi there whats it cost to fix a puncture");
    assert_eq!(turns[3]["interrupted"], true, "the stored turn is what the caller heard: {}", turns[3]);
    let links =
        p.get_json(&format!("/v1/agents/{agent}/sessions/{session}/recording"), Some(&account.access_token)).await;
    let wav = p.http.get(links["recording_url"].as_str().expect("a link")).send().await.expect("download");
    assert_eq!(wav.status(), 200, "the recording of a Sonic call is kept");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_sonic_stream_is_refused_ends_failed_and_says_why() {
    oratio_tests::init_logs();
    let sonic = SonicServer::refusing().await;
    let dir = tempfile::tempdir().expect("a directory");
    let ca = dir.path().join("sonic-ca.pem");
    std::fs::write(&ca, &sonic.ca_pem).expect("the CA written");
    let aws = Some(Box::new(oratio_tests::moto::test_config(Some(&sonic.url)).await));
    let speech = SpeechConfig::Sonic { settings: SonicSettings::default(), aws, ca_bundle: Some(ca) };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), Config { speech, ..test_config() }).await;
    let account = p.sign_up("desk@quietline.example.com", "Quiet Line").await;
    let config =
        json!({"name": "Line", "kind": "voice", "sop": "Answer the caller's questions about the shop politely."});
    let agent =
        p.create_active_agent_from(&account.access_token, config, vec![("shop.txt", b"Open 9 to 5.".to_vec())]).await;
    let (_, key) = p.create_key(&account.access_token, &agent).await;

    let mut call = VoiceClient::connect(&p.url, &agent, Some(&key)).await.expect("connected");
    let created = call.start(json!({})).await;
    let session = created["session_id"].as_str().expect("an id").to_owned();
    call.say(&caller_says_with("awb", "Hello, are you open on Sunday?"), 300, false).await;
    let error = call.until("error").await;
    assert_eq!(error["code"], "engine_error", "{error}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("access")), "Bedrock's reason is passed on: {error}");
    let ended = call.until("session.ended").await;
    assert_eq!(ended["reason"], "failed");
    assert_eq!(sonic.received().len(), 2, "one retry, then the call gives up");

    let view = p.get_json(&format!("/v1/agents/{agent}/sessions/{session}"), Some(&account.access_token)).await;
    assert_eq!(
        (view["session"]["status"].as_str(), view["session"]["end_reason"].as_str()),
        (Some("ended"), Some("failed"))
    );
    p.stop().await;
}
