//! The real-model path end to end: the platform configured with an OpenAI-compatible
//! model (a scripted one that makes tool calls) creates the clinic's agent through it, and
//! the agent's turns act through tools: details saved, knowledge searched and quoted,
//! the conversation handed to a person with a summary; replies stream token by token; a
//! primary model that is down is answered by the fallback, and the turn says so.

use oratio::Config;
use oratio_tests::platform::{TestPlatform, sse_events, test_config};
use oratio_tests::scripted_model::{Cue, ScriptedModel};
use reqwest::Method;
use serde_json::{Value, json};

fn cues() -> Vec<Cue> {
    vec![
        Cue {
            when: "my name is Ana Lopez",
            tool: "save_details",
            input: json!({"full_name": "Ana Lopez", "phone_number": "07700 900123"}),
            then: |result| {
                let still = result["still_needed"][0].as_str().unwrap_or("anything else");
                format!("Thank you, Ana. Which {still} would suit you?")
            },
        },
        Cue {
            when: "open on saturday",
            tool: "search_knowledge",
            input: json!({"query": "Saturday opening hours"}),
            then: |result| {
                let passage = &result["passages"][0];
                format!(
                    "{} (source: {})",
                    passage["text"].as_str().unwrap_or("?"),
                    passage["document"].as_str().unwrap_or("?")
                )
            },
        },
        Cue {
            when: "talk this through with someone",
            tool: "hand_off",
            input: json!({"reason": "the customer asks to speak to a person",
                "summary": "Ana Lopez (07700 900123) wants a Saturday appointment and would like to talk it through."}),
            then: |_| "Of course. I've asked a colleague to take over; they can see everything you told me.".into(),
        },
    ]
}

async fn platform_on(llm: &ScriptedModel, fallback: Option<&ScriptedModel>) -> TestPlatform {
    oratio_tests::init_logs();
    let config = Config { llm: llm.config(), llm_fallback: fallback.map(ScriptedModel::config), ..test_config() };
    TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_a_model_acts_through_its_tools_streams_and_hands_over_with_a_summary() {
    let model = ScriptedModel::start("scripted-model", cues()).await;
    let p = platform_on(&model, None).await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let agent = p.create_active_agent(&ada.access_token, "Front desk").await;
    // AgentCreator's steps went to the model as prompts (no tools), before any turn.
    assert!(!model.requests().is_empty() && model.agent_requests().len() < model.requests().len());
    let before = model.agent_requests().len();
    let (_, key) = p.create_key(&ada.access_token, &agent).await;

    let (status, first) =
        p.message(&key, &agent, json!({"message": "Hi, my name is Ana Lopez, you can call me on 07700 900123"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["reply"], "Thank you, Ana. Which preferred date would suit you?");
    assert_eq!(first["details"], json!({"full name": "Ana Lopez", "phone number": "07700 900123"}));
    assert_eq!(first["tool_calls"][0]["name"], "save_details");
    assert_eq!(first["tool_calls"][0]["result"]["still_needed"], json!(["preferred date"]));
    assert!(first["tool_calls"][0]["duration_ms"].is_u64());
    assert_eq!((first["model"].as_str(), first["fallback_used"].as_bool()), (Some("scripted-model"), Some(false)));

    // What the agent sent the model: its SOP as instructions, its tools, the conversation.
    let sent = &model.agent_requests()[before];
    let system = sent["messages"][0]["content"].as_str().expect("a system prompt");
    for part in ["## Procedure", "full name, phone number and preferred date", "severe pain", "medical diagnosis"] {
        assert!(system.contains(part), "the system prompt has {part:?}: {system}");
    }
    let tools: Vec<&str> = sent["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["function"]["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(tools, ["search_knowledge", "save_details", "hand_off", "end_conversation"]);
    assert_eq!(sent["messages"].as_array().expect("messages").last().expect("last")["role"], "user");

    // A question the documents answer, streamed: the model's tokens arrive as they come.
    let session = first["session_id"].clone();
    let streamed = p
        .request(Method::POST, &format!("/v1/agents/{agent}/messages"), None)
        .header("x-api-key", &key)
        .header("accept", "text/event-stream")
        .json(&json!({"message": "Are you open on Saturday mornings?", "session_id": session}))
        .send()
        .await
        .expect("stream");
    let events = sse_events(&streamed.text().await.expect("body"));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let tokens: Vec<&str> =
        events.iter().filter(|(n, _)| n == "token").map(|(_, d)| d["text"].as_str().expect("text")).collect();
    assert!(tokens.len() >= 2, "several token events: {names:?}");
    assert_eq!(names.last(), Some(&"done"));
    let done = &events.last().expect("done").1;
    assert_eq!(tokens.concat(), done["reply"].as_str().expect("a reply"));
    assert!(done["reply"].as_str().is_some_and(|r| r.contains("Saturdays 9am to 1pm")), "{done}");
    assert_eq!(done["sources"][0]["title"], "faq.md");
    assert_eq!(done["tool_calls"][0]["name"], "search_knowledge");
    let searched = model.agent_requests();
    let turn = searched.iter().rev().find(|r| r["stream"] == true).expect("a streamed request");
    let history: Vec<&str> =
        turn["messages"].as_array().expect("messages").iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(history.iter().any(|m| m.contains("my name is Ana Lopez")), "the history went along: {history:?}");
    assert!(history.iter().any(|m| m.contains("Which preferred date")), "{history:?}");

    // The model hands over through its tool; the summary reaches the session.
    let (_, handed) = p
        .message(
            &key,
            &agent,
            json!({"message": "Actually I'd rather talk this through with someone", "session_id": session}),
        )
        .await;
    assert_eq!(handed["status"], "handoff_requested", "{handed}");
    assert_eq!(handed["handoff"]["reason"], "the customer asks to speak to a person");
    assert!(handed["handoff"]["summary"].as_str().is_some_and(|s| s.starts_with("Ana Lopez (07700 900123)")));
    let stored = p
        .get_json(&format!("/v1/agents/{agent}/sessions/{}", session.as_str().expect("id")), Some(&ada.access_token))
        .await;
    assert_eq!(stored["session"]["status"], "handoff_requested");
    assert_eq!(stored["session"]["details"]["full name"], "Ana Lopez");
    assert!(stored["session"]["handoff_summary"].as_str().is_some_and(|s| s.contains("Saturday appointment")));
    let agent_turns: Vec<&Value> =
        stored["turns"].as_array().expect("turns").iter().filter(|t| t["role"] == "agent").collect();
    let tools_used: Vec<&str> =
        agent_turns.iter().map(|t| t["tool_calls"][0]["name"].as_str().unwrap_or("-")).collect();
    assert_eq!(tools_used, ["save_details", "search_knowledge", "hand_off"]);
    assert_eq!(agent_turns[0]["model"], "scripted-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_model_that_is_down_is_answered_by_the_fallback_and_the_turn_says_so() {
    let primary = ScriptedModel::start("primary-model", cues()).await;
    primary.go_down();
    let fallback = ScriptedModel::start("fallback-model", cues()).await;
    let p = platform_on(&primary, Some(&fallback)).await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let agent = p.create_active_agent(&ada.access_token, "Front desk").await;
    let (_, key) = p.create_key(&ada.access_token, &agent).await;
    let (status, reply) = p.message(&key, &agent, json!({"message": "Are you open on Saturday?"})).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["reply"].as_str().is_some_and(|r| r.contains("9am")), "{reply}");
    assert_eq!((reply["model"].as_str(), reply["fallback_used"].as_bool()), (Some("fallback-model"), Some(true)));
    // The primary was asked first every time, and only the fallback answered.
    assert!(primary.agent_requests().len() >= fallback.agent_requests().len());
    assert!(!fallback.agent_requests().is_empty());
    let session = reply["session_id"].as_str().expect("a session");
    let stored = p.get_json(&format!("/v1/agents/{agent}/sessions/{session}"), Some(&ada.access_token)).await;
    assert_eq!(stored["turns"][1]["fallback_used"], true);
    assert_eq!(stored["turns"][1]["model"], "fallback-model");
}
