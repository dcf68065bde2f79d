//! No password or API key secret reaches the data directory, the table or the logs, and
//! the audit trail names tenant and actor for sign-ins, keys and role changes.

mod common;

use std::process::{Command, Stdio};

use common::{PASSWORD, create_agent, post, signed_in, spawn_logging};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_key_secrets_appear_in_no_file_and_no_log_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log_path = dir.path().join("oratio.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let (child, base) = spawn_logging(&data, Stdio::from(log), "debug");
    let client = reqwest::Client::new();

    // Everything that handles a secret: sign-up, a failed and a good sign-in, an
    // invitation, a role change, a key created, used, revoked, and a sign-out.
    let token = signed_in(&base, "ada@example.com").await;
    let wrong = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": "Wrong-Password-77"}))
        .send()
        .await
        .expect("login");
    assert_eq!(wrong.status(), 401);
    let agent = create_agent(&base, &token, serde_json::json!({"name": "Front desk", "kind": "text"})).await;
    let agent = agent["agent_id"].as_str().expect("id").to_owned();
    let key =
        post(&format!("{base}/v1/agents/{agent}/keys"), Some(&token), serde_json::json!({"name": "widget"})).await;
    let secret = key["secret"].as_str().expect("secret").to_owned();
    let key_id = key["key_id"].as_str().expect("id").to_owned();
    let used =
        client.get(format!("{base}/v1/agents/{agent}/profile")).header("x-api-key", &secret).send().await.expect("use");
    assert_eq!(used.status(), 200);
    let revoked = client
        .delete(format!("{base}/v1/agents/{agent}/keys/{key_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    post(
        &format!("{base}/v1/members"),
        Some(&token),
        serde_json::json!({"email": "vic@example.com", "role": "viewer"}),
    )
    .await;
    let outbox: serde_json::Value = reqwest::get(format!("{base}/local/outbox?to=vic@example.com"))
        .await
        .expect("outbox")
        .json()
        .await
        .expect("json");
    let invitation = outbox["mails"][0]["text"]
        .as_str()
        .expect("mail")
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 24)
        .expect("code")
        .to_owned();
    let joined = post(
        &format!("{base}/v1/auth/register"),
        None,
        serde_json::json!({"email": "vic@example.com", "password": "Another-Secret-Pass-5", "invitation_code": invitation}),
    )
    .await;
    let vic = joined["user_id"].as_str().expect("user").to_owned();
    let tenant = joined["tenant_id"].as_str().expect("tenant").to_owned();
    let promoted = client
        .patch(format!("{base}/v1/members/{vic}"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"role": "operator"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(promoted.status(), 200);
    let out = client.post(format!("{base}/v1/auth/logout")).bearer_auth(&token).send().await.expect("logout");
    assert_eq!(out.status(), 204);

    // Stop cleanly so the write-ahead log is folded into the database file too.
    let stopped = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    let exit = child.wait_with_output().expect("exit");
    assert!(exit.status.success());

    // (Emailed codes are in the outbox by design: it is the embedded platform's mailbox.)
    let secrets = [PASSWORD, "Wrong-Password-77", "Another-Secret-Pass-5", secret.as_str(), &secret[12..]];
    let mut files = vec![log_path.clone()];
    let mut dirs = vec![data.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("table.sqlite3")), "the table was searched: {files:?}");
    for file in &files {
        let bytes = std::fs::read(file).expect("readable");
        for secret in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds a secret ({}…)", file.display(), &secret[..4]);
        }
    }

    // The audit trail.
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["audit"] == true)
        .collect();
    for action in [
        "tenant_registered",
        "sign_in",
        "api_key_created",
        "api_key_revoked",
        "member_invited",
        "member_joined",
        "role_changed",
        "sign_out",
    ] {
        let line = audit.iter().find(|l| l["action"] == action).unwrap_or_else(|| panic!("no audit line for {action}"));
        assert_eq!(line["tenant_id"], tenant.as_str(), "{action}: {line}");
        assert!(line["actor"].as_str().is_some_and(|a| !a.is_empty()), "{action}: {line}");
    }
    let promotion = audit.iter().find(|l| l["action"] == "role_changed").expect("role change");
    assert_eq!((promotion["member"].as_str(), promotion["to"].as_str()), (Some(vic.as_str()), Some("operator")));
}
