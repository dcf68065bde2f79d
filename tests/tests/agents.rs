//! Creating agents through the API: SOP and documents in, an active agent out, followed
//! step by step; bad forms refused with nothing left behind.

use std::time::Duration;

use oratio_tests::fixtures::{SOP, clinic_documents};
use oratio_tests::platform::{TestPlatform, next_event};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn form(config: Value, documents: Vec<(&str, Vec<u8>)>) -> Form {
    let mut form = Form::new().text("config", config.to_string());
    for (name, bytes) in documents {
        form = form.part("documents", Part::bytes(bytes).file_name(name.to_owned()));
    }
    form
}

fn documents() -> Vec<(&'static str, Vec<u8>)> {
    clinic_documents().into_iter().map(|(name, _, bytes)| (name, bytes)).collect()
}

async fn post(p: &TestPlatform, token: &str, form: Form) -> (u16, Value) {
    let response = p.request(Method::POST, "/v1/agents", Some(token)).multipart(form).send().await.expect("post");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn settled(p: &TestPlatform, token: &str, agent: &str) -> Value {
    for _ in 0..600 {
        let view: Value = p.get_json(&format!("/v1/agents/{agent}"), Some(token)).await;
        if view["status"] != "creating" {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the agent is still being created")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sop_and_three_documents_become_an_active_agent_followed_live() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(p.dashboard_socket(&ada.access_token)).await.expect("socket");

    let config = json!({"name": "Front desk", "kind": "text", "sop": SOP, "handoff_conditions": ["the caller asks for a refund"]});
    let (status, created) = post(&p, &ada.access_token, form(config, documents())).await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["status"], "creating");
    assert_eq!(created["documents"].as_array().expect("documents").len(), 3);
    let agent = created["agent_id"].as_str().expect("id").to_owned();

    let view = settled(&p, &ada.access_token, &agent).await;
    assert_eq!(view["status"], "active", "{view}");
    let steps: Vec<String> = view["progress"]
        .as_array()
        .expect("progress")
        .iter()
        .map(|s| format!("{}:{}", s["step"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or("")))
        .collect();
    for step in
        ["validate:finished", "knowledge:finished", "agent_creator:finished", "deploy:finished", "activate:finished"]
    {
        assert!(steps.contains(&step.to_owned()), "{step}: {steps:?}");
    }

    // Every step reached the dashboard as it happened.
    let mut seen = Vec::new();
    while !seen.contains(&"activate".to_owned()) {
        let event = next_event(&mut socket).await;
        if event["type"] == "agent.progress" && event["agent_id"] == agent.as_str() {
            seen.push(event["step"]["step"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert!(seen.starts_with(&["validate".to_owned()]), "{seen:?}");

    let code: Value = p.get_json(&format!("/v1/agents/{agent}/code"), Some(&ada.access_token)).await;
    assert!(code["files"]["agent.py"].as_str().is_some_and(|c| c.contains("oratio_agent.serve(handle)")), "{code}");
    for artifact in ["requirements.json", "plan.json", "plan-review-1.json", "plan-review-2.json", "code-review-1.json"]
    {
        assert!(code["artifacts"][artifact].is_object(), "{artifact}");
    }
    assert_eq!(
        code["artifacts"]["requirements.json"]["required_data"],
        json!(["full name", "phone number", "preferred date"])
    );
}

/// A bakery's SOP as its owner wrote it: one paragraph, no list, no headings.
const PROSE_SOP: &str = "Crumb & Co is a small bakery in Leeds and most messages are about cake orders. \
When somebody wants a celebration cake, get their name, the date they need it and how many people it \
should feed, then repeat it back to them so nothing gets mixed up. Our prices and flavours are on the \
menu sheet. If a customer says a cake made someone ill or mentions a nut allergy reaction, pass it to \
Priya straight away. We never guarantee that anything is nut-free because everything is made in the \
same kitchen.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prose_sop_becomes_an_agent_that_follows_it() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Crumb & Co").await;
    let menu = b"# Celebration cakes\nA 6 inch sponge serves 8 to 10 people and costs 32 GBP.\n\
A 10 inch sponge serves 20 to 25 people and costs 58 GBP.\nWe need 72 hours' notice for any celebration cake.\n";
    let config = json!({"name": "Orders", "kind": "text", "sop": PROSE_SOP});
    let agent = p.create_active_agent_from(&ada.access_token, config, vec![("menu.md", menu.to_vec())]).await;
    let code: Value = p.get_json(&format!("/v1/agents/{agent}/code"), Some(&ada.access_token)).await;
    let requirements = &code["artifacts"]["requirements.json"];
    assert_eq!(requirements["required_data"], json!(["name", "date", "number of people"]), "{requirements}");
    assert_eq!(requirements["handoff_conditions"].as_array().map(Vec::len), Some(1), "{requirements}");
    assert_eq!(requirements["forbidden"].as_array().map(Vec::len), Some(1), "{requirements}");
    let (_, key) = p.create_key(&ada.access_token, &agent).await;
    let (_, notice) =
        p.message(&key, &agent, json!({"message": "how much notice do you need for a birthday cake?"})).await;
    assert!(notice["reply"].as_str().is_some_and(|r| r.contains("72 hours")), "{notice}");
    let (_, order) = p
        .message(
            &key,
            &agent,
            json!({"message": "hiya, Tom Baker here - I need a cake for Saturday 14th June, for about 20 people"}),
        )
        .await;
    let read_back = order["reply"].as_str().unwrap_or_default();
    assert!(["Tom Baker", "14th June", "20"].iter().all(|d| read_back.contains(d)), "read back: {order}");
    let (_, ill) = p
        .message(&key, &agent, json!({"message": "my son came out in hives after eating your brownie yesterday"}))
        .await;
    assert!(ill["handoff"].is_object(), "an allergic reaction goes to Priya: {ill}");
    let (_, promise) =
        p.message(&key, &agent, json!({"message": "can you promise the cake will be completely nut free?"})).await;
    assert!(
        promise["handoff"].is_null() && promise["reply"].as_str().is_some_and(|r| r.contains("can't")),
        "{promise}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_describes_no_procedure_ends_failed_saying_what_to_add() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let config = json!({"name": "Front desk", "kind": "text", "sop": "We are a friendly clinic and we always try to help everyone who calls."});
    let (status, created) = post(&p, &ada.access_token, form(config, vec![])).await;
    assert_eq!(status, 202);
    let view = settled(&p, &ada.access_token, created["agent_id"].as_str().expect("id")).await;
    assert_eq!(view["status"], "failed");
    assert!(
        view["failure_reason"].as_str().is_some_and(|r| r.contains("no procedure") && r.contains("for example")),
        "{view}"
    );
}

#[tokio::test]
async fn bad_forms_are_refused_and_leave_nothing_behind() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let config = json!({"name": "Front desk", "kind": "text", "sop": SOP});
    let cases = [
        (
            form(config.clone(), vec![("faq.md", b"ok".to_vec()), ("virus.exe", b"MZ".to_vec())]),
            415,
            "unsupported_document",
        ),
        (form(config.clone(), vec![("empty.txt", vec![])]), 400, "empty_document"),
        (form(json!({"name": "x", "kind": "text"}), vec![("faq.md", b"ok".to_vec())]), 400, "invalid_config"),
        (form(json!({"name": "", "kind": "text", "sop": SOP}), vec![("faq.md", b"ok".to_vec())]), 400, "invalid_agent"),
        (form(json!({"name": "x", "kind": "robot"}), vec![]), 400, "invalid_config"),
        (Form::new().text("config", config.to_string()).text("extra", "x"), 400, "unexpected_part"),
    ];
    for (form, status, code) in cases {
        let (got, body) = post(&p, &ada.access_token, form).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    }
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let (got, body) = post(&p, &ada.access_token, form(config, vec![("big.txt", big)])).await;
    assert!(got == 413, "{got} {body}");
    let listed: Value = p.get_json("/v1/agents", Some(&ada.access_token)).await;
    assert_eq!(listed["agents"], json!([]), "no agent was left behind");
    let blobs = p.data_path().join("blobs/objects/tenants");
    let files = walk(&blobs);
    assert!(files.is_empty(), "no document was left behind: {files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_created_agent_answers_from_its_documents_and_cites_them() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let agent = p.create_active_agent(&ada.access_token, "Front desk").await;
    let (_, key) = p.create_key(&ada.access_token, &agent).await;

    // A customer's application asks, over the public API, with the agent's key.
    let (status, hours) = p.message(&key, &agent, json!({"message": "What time do you open on Saturdays?"})).await;
    assert_eq!(status, 200, "{hours}");
    assert!(hours["reply"].as_str().is_some_and(|r| r.contains("9am") && r.contains("faq.md")), "{hours}");
    assert_eq!(hours["sources"][0]["title"], "faq.md");
    let session = hours["session_id"].clone();
    let ask = |message: &str| p.message(&key, &agent, json!({"message": message, "session_id": session}));
    let (_, emergency) = ask("Which number do I call for a dental emergency after hours?").await;
    assert!(emergency["reply"].as_str().is_some_and(|r| r.contains("0800 555 0199")), "{emergency}");
    assert_eq!(emergency["sources"][0]["location"], "page 1");
    let (_, pain) = ask("I have severe pain and swelling").await;
    assert_eq!(pain["handoff"]["reason"], "the caller reports severe pain, bleeding or swelling", "{pain}");
    assert_eq!(pain["status"], "handoff_requested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_apply_and_a_new_sop_asks_for_a_redeploy() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let (_, created) =
        post(&p, &ada.access_token, form(json!({"name": "Front desk", "kind": "both", "sop": SOP}), documents())).await;
    let agent = created["agent_id"].as_str().expect("id").to_owned();
    let first = settled(&p, &ada.access_token, &agent).await;
    assert_eq!((first["status"].as_str(), first["voice"]["language"].as_str()), (Some("active"), Some("en-US")));
    let patch = |body: Value| {
        p.request(Method::PATCH, &format!("/v1/agents/{agent}"), Some(&ada.access_token)).json(&body).send()
    };

    let changed: Value = patch(json!({"voice": {"voice": "ruth", "language": "en-GB", "speaking_rate": 1.2}, "handoff_conditions": ["the caller is angry"]}))
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!((changed["voice"]["voice"].as_str(), changed["needs_redeploy"].as_bool()), (Some("ruth"), Some(false)));
    assert_eq!(changed["status"], "active", "voice and handoff changes need no redeploy");
    for (bad, code) in [
        (json!({"voice": {"voice": "ruth", "language": "english", "speaking_rate": 1.0}}), "invalid_agent"),
        (json!({"voice": {"voice": "ruth", "language": "en-US", "speaking_rate": 9.0}}), "invalid_agent"),
        (json!({"name": ""}), "invalid_agent"),
        (json!({"colour": "blue"}), "invalid_body"),
    ] {
        let response = patch(bad.clone()).await.expect("patch");
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(response.json::<Value>().await.expect("json")["code"], code, "{bad}");
    }
    let new_sop = SOP.replace(
        "4. Confirm the booking details back to the caller.",
        "4. Confirm the booking details back to the caller.\n5. Thank the caller.",
    );
    let marked: Value = patch(json!({"sop": new_sop})).await.expect("patch").json().await.expect("json");
    assert_eq!(marked["needs_redeploy"], true);

    let redeploy = || p.request(Method::POST, &format!("/v1/agents/{agent}/redeploy"), Some(&ada.access_token)).send();
    let started = redeploy().await.expect("redeploy");
    assert_eq!(started.status(), 202);
    let busy = redeploy().await.expect("redeploy");
    assert!(
        busy.status() == 409 || busy.status() == 202,
        "a second redeploy while creating is refused or the first already ended"
    );
    let view = settled(&p, &ada.access_token, &agent).await;
    assert_eq!((view["status"].as_str(), view["needs_redeploy"].as_bool()), (Some("active"), Some(false)), "{view}");
    assert_ne!(view["version"], first["version"], "a new version was deployed");
    let code: Value = p.get_json(&format!("/v1/agents/{agent}/code"), Some(&ada.access_token)).await;
    assert_eq!(code["artifacts"]["requirements.json"]["steps"].as_array().expect("steps").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_stops_the_runtime_resuming_starts_it_and_archiving_stops_it_for_good() {
    use oratio_core::runtime::RuntimeStatus;
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let (_, created) =
        post(&p, &ada.access_token, form(json!({"name": "Front desk", "kind": "text", "sop": SOP}), vec![])).await;
    let agent = created["agent_id"].as_str().expect("id").to_owned();
    assert_eq!(settled(&p, &ada.access_token, &agent).await["status"], "active");
    let runtime = p.platform.as_ref().expect("running").agents();
    let reference =
        oratio_core::runtime::AgentRef { tenant: ada.tenant_id.parse().expect("t"), agent: agent.parse().expect("a") };
    let act =
        |action: &str| p.request(Method::POST, &format!("/v1/agents/{agent}/{action}"), Some(&ada.access_token)).send();

    let paused = act("pause").await.expect("pause");
    assert_eq!(paused.status(), 200);
    assert_eq!(paused.json::<Value>().await.expect("json")["status"], "paused");
    assert_eq!(runtime.status(&reference).await.expect("status"), RuntimeStatus::Stopped);
    let again = act("pause").await.expect("pause");
    assert_eq!(
        (again.status().as_u16(), again.json::<Value>().await.expect("json")["code"].as_str()),
        (409, Some("agent_busy"))
    );

    let resumed = act("resume").await.expect("resume");
    assert_eq!(resumed.status(), 200);
    let mut ready = false;
    for _ in 0..500 {
        if matches!(runtime.status(&reference).await.expect("status"), RuntimeStatus::Ready { .. }) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "the runtime came back");

    let archived = p
        .request(Method::DELETE, &format!("/v1/agents/{agent}"), Some(&ada.access_token))
        .send()
        .await
        .expect("delete");
    assert_eq!(archived.status(), 204);
    assert_eq!(runtime.status(&reference).await.expect("status"), RuntimeStatus::Stopped);
}
