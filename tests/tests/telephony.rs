//! Phone calls end to end on the embedded platform: a tenant assigns a number, a simulated
//! Twilio (webhooks signed by the `twilio` package's validator, Media Streams spoken byte
//! for byte) calls it, and the caller's synthesised question is answered from the
//! documents in μ-law at 8 kHz.

use std::time::Duration;

use oratio::Config;
use oratio_core::speech::Recognizer;
use oratio_local::speech::LocalSpeech;
use oratio_tests::platform::{TestPlatform, test_config};
use oratio_tests::speech::{caller_says, caller_says_with, worker_url};
use oratio_tests::twilio::{TwilioStream, call_params, sign, stream_of};
use reqwest::Method;
use serde_json::{Value, json};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const CALLER: &str = "+14155550123";
const CALL_SID: &str = "CA11112222333344445555666677778888";

async fn platform() -> TestPlatform {
    oratio_tests::init_logs();
    let config = Config { speech: oratio::SpeechConfig::Running { url: worker_url() }, ..test_config() };
    TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await
}

/// A tenant with an active voice agent from a corpus entry; (token, agent).
async fn voice_agent(p: &TestPlatform, email: &str, slug: &str) -> (String, String) {
    let account = p.sign_up(email, "Phone Test Org").await;
    let entry = oratio::eval::bundled().expect("the corpus").into_iter().find(|e| e.slug == slug).expect(slug);
    let config = json!({"name": entry.agent.name, "kind": "voice", "sop": entry.sop,
        "handoff_conditions": entry.agent.handoff_conditions});
    let documents = entry.documents.iter().map(|(name, bytes)| (name.as_str(), bytes.clone())).collect();
    let agent = p.create_active_agent_from(&account.access_token, config, documents).await;
    (account.access_token, agent)
}

async fn assign(p: &TestPlatform, token: &str, number: &str, agent: &str, auth_token: &str) -> (u16, Value) {
    let body = json!({"number": number, "agent_id": agent, "label": "main line",
        "twilio": {"account_sid": ACCOUNT, "auth_token": auth_token}});
    let response = p.post_json("/v1/phone-numbers", Some(token), body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// Twilio's webhook for a call to `to`, signed with `auth_token` (or not signed); the
/// status, content type and body.
async fn ring(p: &TestPlatform, to: &str, auth_token: Option<&str>) -> (u16, String, String) {
    let url = format!("{}/telephony/twilio/voice", p.url);
    let params = call_params(ACCOUNT, CALL_SID, CALLER, to);
    let mut request = p.http.post(&url).form(&params);
    if let Some(token) = auth_token {
        request = request.header("x-twilio-signature", sign(token, &url, &params));
    }
    let response = request.send().await.expect("the webhook answers");
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    (status, kind, response.text().await.expect("a body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_caller_is_answered_from_the_documents_and_can_talk_over_the_agent() {
    let p = platform().await;
    let (token, agent) = voice_agent(&p, "ops@spokeandchain.example.com", "bike-repair").await;
    let (status, number) = assign(&p, &token, "+1 (415) 555-0100", &agent, AUTH_TOKEN).await;
    assert_eq!(status, 201, "{number}");
    assert_eq!(number["number"], "+14155550100");
    assert!(!number.to_string().contains(AUTH_TOKEN), "the auth token is never returned: {number}");
    let webhook = number["voice_webhook_url"].as_str().expect("the webhook URL");
    assert_eq!(webhook, format!("{}/telephony/twilio/voice", p.url));

    // Twilio rings the webhook and is told to connect a stream.
    let (status, kind, twiml) = ring(&p, "+14155550100", Some(AUTH_TOKEN)).await;
    assert_eq!((status, kind.as_str()), (200, "text/xml; charset=utf-8"), "{twiml}");
    assert!(
        twiml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="ws://"#),
        "{twiml}"
    );
    let (url, grant) = stream_of(&twiml).expect("a stream and its token");
    assert!(url.ends_with("/telephony/twilio/media"), "{url}");

    let mut call = TwilioStream::open(&url, &grant, ACCOUNT, CALL_SID).await;
    call.say(&caller_says_with("awb", "Hi, how much do you charge to fix a puncture?"), 1_200, false).await;
    // The agent's answer arrives as media, each chunk followed by its mark.
    let first = call.until("media").await;
    assert!(first["media"]["payload"].as_str().is_some_and(|p| !p.is_empty()));
    call.until("mark").await;
    call.until_quiet(Duration::from_secs(3)).await;
    let answer = call.heard();
    assert!(answer.seconds() > 1.0, "{} s of the agent", answer.seconds());
    let back = LocalSpeech::new(worker_url()).transcribe(&answer).await.expect("recognised").to_lowercase();

    // The caller talks over the agent's next answer: Twilio is told to clear its buffer.
    call.say(&caller_says("And what do you charge for a full service, and how long does it take?"), 1_200, false).await;
    call.until("media").await;
    call.say(&caller_says("Sorry, actually, never mind that, do you sell inner tubes?"), 1_200, false).await;
    call.until("clear").await;
    call.until_quiet(Duration::from_secs(3)).await;

    call.stop(ACCOUNT, CALL_SID).await;
    assert_eq!(call.close_code().await, Some(1000));

    // The call is a voice session: the caller's number masked, the call SID, the
    // recording and the transcript.
    let mut ended = Value::Null;
    for _ in 0..100 {
        ended = p.get_json("/v1/sessions?status=ended", Some(&token)).await;
        if ended["sessions"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = &ended["sessions"][0];
    assert_eq!(session["channel"], "voice", "{ended}");
    assert_eq!(session["customer"]["channel"], "phone", "{session}");
    assert_eq!(session["customer"]["attributes"]["caller"], "+•••••••0123", "{session}");
    assert_eq!(session["customer"]["attributes"]["call_sid"], CALL_SID, "{session}");
    assert!(!ended.to_string().contains("5550123"), "the caller's number is kept masked: {ended}");
    let id = session["session_id"].as_str().expect("an id");
    let view = p.get_json(&format!("/v1/agents/{agent}/sessions/{id}"), Some(&token)).await;
    let turns = view["turns"].as_array().expect("turns");
    assert!(turns.len() >= 4, "{view}");
    let answered = turns[1]["text"].as_str().expect("text");
    assert!(answered.contains("14.50"), "{view}");
    // What the caller heard is that answer: its row of the price list (Whisper tiny.en at
    // 8 kHz sometimes hears "fourteen" as "forty", so the words are checked, and the cents).
    let words = ["repair", "tube", "price", "tyre", "tire"].iter().filter(|w| back.contains(*w)).count();
    assert!(words >= 2 && back.contains("50"), "the caller heard {back:?} for {answered:?}");
    assert!(turns.iter().any(|t| t["interrupted"] == true), "the interrupted answer is marked: {view}");
    let links = p.get_json(&format!("/v1/agents/{agent}/sessions/{id}/recording"), Some(&token)).await;
    for link in ["recording_url", "transcript_url"] {
        let got = p.http.get(links[link].as_str().expect("a link")).send().await.expect("download");
        assert_eq!(got.status(), 200, "{link}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_pressed_on_the_phone_reach_the_agent_as_the_callers_words() {
    let p = platform().await;
    let (token, agent) = voice_agent(&p, "desk@canalhotel.example.com", "hotel-front-desk").await;
    assert_eq!(assign(&p, &token, "+44 20 7946 0958", &agent, AUTH_TOKEN).await.0, 201);
    let (_, _, twiml) = ring(&p, "+442079460958", Some(AUTH_TOKEN)).await;
    let (url, grant) = stream_of(&twiml).expect("a stream");
    let mut call = TwilioStream::open(&url, &grant, ACCOUNT, CALL_SID).await;
    call.say(&caller_says("Hello?"), 600, false).await;
    call.press("1234#").await;
    call.until("media").await;
    call.until_quiet(Duration::from_secs(3)).await;
    call.stop(ACCOUNT, CALL_SID).await;
    call.close_code().await;
    let ended = p.get_json("/v1/sessions?status=ended", Some(&token)).await;
    let id = ended["sessions"][0]["session_id"].as_str().expect("a session");
    let view = p.get_json(&format!("/v1/agents/{agent}/sessions/{id}"), Some(&token)).await;
    assert!(
        view["turns"].as_array().expect("turns").iter().any(|t| t["role"] == "customer" && t["text"] == "1234"),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_and_unknown_calls_are_refused_and_nothing_is_left_behind() {
    let p = platform().await;
    let (token, agent) = voice_agent(&p, "front@dental.example.com", "dental-clinic").await;
    let number = "+18005550100";
    assert_eq!(assign(&p, &token, number, &agent, AUTH_TOKEN).await.0, 201);

    // Unsigned, signed with another account's token, or signed for other parameters: 403.
    for signer in [None, Some("00000000000000000000000000000000")] {
        let (status, _, body) = ring(&p, number, signer).await;
        assert_eq!(status, 403, "{body}");
        let error: Value = serde_json::from_str(&body).expect("the standard error body");
        assert_eq!(error["code"], "invalid_signature");
    }
    let url = format!("{}/telephony/twilio/voice", p.url);
    let params = call_params(ACCOUNT, CALL_SID, CALLER, number);
    let signature = sign(AUTH_TOKEN, &url, &params);
    let mut tampered = params.clone();
    tampered[2] = ("CallSid", "CA99999999999999999999999999999999");
    let response =
        p.http.post(&url).form(&tampered).header("x-twilio-signature", &signature).send().await.expect("answered");
    assert_eq!(response.status(), 403);
    let not_a_form = p.http.post(&url).json(&json!({"To": number})).send().await.expect("answered");
    assert_eq!(not_a_form.status(), 400);

    // A number nobody has, and a paused agent, are told so in words.
    let (status, _, twiml) = ring(&p, "+18005550199", Some(AUTH_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say>Sorry, the number you have called is not in service. Goodbye.</Say><Hangup/>"),
        "{twiml}"
    );
    assert_eq!(
        p.request(Method::POST, &format!("/v1/agents/{agent}/pause"), Some(&token))
            .send()
            .await
            .expect("pause")
            .status(),
        200
    );
    let (_, _, twiml) = ring(&p, number, Some(AUTH_TOKEN)).await;
    assert!(twiml.contains("we cannot take your call right now"), "{twiml}");
    assert!(!twiml.contains("<Connect>"), "{twiml}");
    assert_eq!(
        p.request(Method::POST, &format!("/v1/agents/{agent}/resume"), Some(&token))
            .send()
            .await
            .expect("resume")
            .status(),
        200
    );

    // A stream without the webhook's grant, or with one altered, is closed before a session.
    let (_, _, twiml) = ring(&p, number, Some(AUTH_TOKEN)).await;
    let (media, grant) = stream_of(&twiml).expect("a stream");
    for bad in ["", "not-a-grant", &format!("{grant}0")] {
        let mut call = TwilioStream::open(&media, bad, ACCOUNT, CALL_SID).await;
        assert_eq!(call.close_code().await, Some(4401), "{bad:?}");
    }
    let live = p.get_json("/v1/sessions", Some(&token)).await;
    assert_eq!(live["sessions"], json!([]), "no session was opened: {live}");
    // A grant opens one stream: the same token again is refused while the call goes on.
    let mut first = TwilioStream::open(&media, &grant, ACCOUNT, CALL_SID).await;
    for _ in 0..100 {
        let live = p.get_json("/v1/sessions", Some(&token)).await;
        if live["sessions"].as_array().is_some_and(|s| s.len() == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut replayed = TwilioStream::open(&media, &grant, ACCOUNT, CALL_SID).await;
    assert_eq!(replayed.close_code().await, Some(4409));
    first.stop(ACCOUNT, CALL_SID).await;
    assert_eq!(first.close_code().await, Some(1000));

    // Bad assignments are refused with their codes, and leave nothing.
    for (body, code) in [
        (
            json!({"number": "415 555 0100", "agent_id": agent, "twilio": {"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN}}),
            "invalid_phone_number",
        ),
        (
            json!({"number": "+1415555010O", "agent_id": agent, "twilio": {"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN}}),
            "invalid_phone_number",
        ),
        (
            json!({"number": "+14155550111", "agent_id": agent, "twilio": {"account_sid": "AC123", "auth_token": AUTH_TOKEN}}),
            "invalid_request",
        ),
        (
            json!({"number": "+14155550111", "agent_id": agent, "twilio": {"account_sid": ACCOUNT, "auth_token": "short"}}),
            "invalid_request",
        ),
        (json!({"number": "+14155550111", "agent_id": agent}), "invalid_body"),
        (
            json!({"number": number, "agent_id": agent, "twilio": {"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN}}),
            "number_taken",
        ),
    ] {
        let response = p.post_json("/v1/phone-numbers", Some(&token), body.clone()).await;
        let status = response.status().as_u16();
        let error: Value = response.json().await.expect("JSON");
        assert_eq!(error["code"], code, "{body} → {status} {error}");
        assert!((400..500).contains(&status));
    }
    let text_agent = p.create_agent(&token, "Chat only").await;
    let (status, error) = assign(&p, &token, "+14155550111", &text_agent, AUTH_TOKEN).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("not_a_voice_agent")), "{error}");
    // Another tenant cannot take the number either.
    let other_agent = voice_agent(&p, "it@otherco.example.com", "bike-repair").await;
    let (status, error) = assign(&p, &other_agent.0, number, &other_agent.1, AUTH_TOKEN).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("number_taken")), "{error}");
    let listed = p.get_json("/v1/phone-numbers", Some(&token)).await;
    assert_eq!(listed["numbers"].as_array().map(Vec::len), Some(1), "{listed}");

    // An operator reads the numbers but does not change them.
    let op = &p.invite(&token, "op@dental.example.com", "operator").await;
    assert_eq!(p.get_json("/v1/phone-numbers", Some(op)).await["numbers"].as_array().map(Vec::len), Some(1));
    let refused = p.request(Method::DELETE, "/v1/phone-numbers/+18005550100", Some(op)).send().await.expect("delete");
    assert_eq!(refused.status(), 403);

    // Removed, the number answers nobody.
    let removed =
        p.request(Method::DELETE, "/v1/phone-numbers/%2B18005550100", Some(&token)).send().await.expect("delete");
    assert_eq!(removed.status(), 200);
    let (_, _, twiml) = ring(&p, number, Some(AUTH_TOKEN)).await;
    assert!(twiml.contains("not in service"), "{twiml}");
    let gone = p.request(Method::GET, "/v1/phone-numbers/+18005550100", Some(&token)).send().await.expect("get");
    assert_eq!(gone.status(), 404);
}
