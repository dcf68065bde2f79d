//! A property-based fuzzer (Schemathesis, from the test venv) over every operation of
//! `/openapi.json`, signed in as an admin with an API key: no answer may be a 5xx, none
//! may have a status the document does not list for its operation, and every answer has
//! the content type the document gives it.

use std::path::PathBuf;
use std::process::Command;

use oratio_tests::platform::TestPlatform;

/// Schemathesis beside the venv's Python (`scripts/test` installs it).
fn schemathesis() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin");
    let bin = std::env::var_os("ORATIO_MOTO_PYTHON")
        .map(PathBuf::from)
        .and_then(|python| python.parent().map(|dir| dir.join("schemathesis")))
        .unwrap_or_else(|| venv.join("schemathesis"));
    assert!(bin.exists(), "{} is missing: run scripts/test, which installs it", bin.display());
    bin
}

#[tokio::test]
async fn the_fuzzer_finds_no_server_error_and_no_undocumented_status() {
    let platform = TestPlatform::start().await;
    let admin = platform.sign_up("fuzz@lab.example", "Fuzz Lab").await;
    // Real identifiers, so that operations reach their handlers (and not only their 404s):
    // an active agent, a key of it, a session with it, the admin's own id. What the fuzzer
    // may destroy or disturb is a spare: a second key to revoke, a draft agent to archive,
    // pause, resume and redeploy (on the live one, a restarting runtime answers 503).
    let agent = platform.create_active_agent(&admin.access_token, "Reception").await;
    let (_, key) = platform.create_key(&admin.access_token, &agent).await;
    let (spare_key, _) = platform.create_key(&admin.access_token, &agent).await;
    let spare_agent = platform.create_agent(&admin.access_token, "Spare").await;
    let (status, reply) = platform.message(&key, &agent, serde_json::json!({"message": "When are you open?"})).await;
    assert_eq!(status, 200, "{reply}");
    let session = reply["session_id"].as_str().expect("a session").to_owned();
    // The customer's event stream of a live session lasts 50 s: the fuzzer follows an
    // ended one, whose stream closes once it has said everything.
    let (_, other) = platform.message(&key, &agent, serde_json::json!({"message": "Thanks, bye"})).await;
    let ended = other["session_id"].as_str().expect("a session").to_owned();
    let closed = platform
        .request(reqwest::Method::POST, &format!("/v1/agents/{agent}/sessions/{ended}/end"), None)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("end");
    // (The agent may have ended it itself, saying goodbye: 409 `session_ended`.)
    assert!(matches!(closed.status().as_u16(), 200 | 409), "{}", closed.status());
    let report = tempfile::tempdir().expect("a report directory");
    let config = report.path().join("schemathesis.toml");
    let parameters = format!(
        "[parameters]\nagent_id = \"{agent}\"\nkey_id = \"{spare_key}\"\nsession_id = \"{session}\"\nuser_id = \"{}\"\n\n\
         [[operations]]\ninclude-path = \"/v1/agents/{{agent_id}}\"\ninclude-method = \"DELETE\"\nparameters = {{ agent_id = \"{spare_agent}\" }}\n\n\
         [[operations]]\ninclude-path-regex = \"/(pause|resume|redeploy)$\"\nparameters = {{ agent_id = \"{spare_agent}\" }}\n\n\
         [[operations]]\ninclude-path-regex = \"/events$\"\nparameters = {{ session_id = \"{ended}\" }}\n",
        admin.user_id
    );
    std::fs::write(&config, parameters).expect("the fuzzer's configuration");
    let bin = schemathesis();
    let url = format!("{}/openapi.json", platform.url);
    let bearer = format!("Authorization: Bearer {}", admin.access_token);
    let api_key = format!("X-Api-Key: {key}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            // Its caches go with the report, not into the source tree.
            .current_dir(report.path())
            .arg("--config-file")
            .arg(&config)
            .args(["run", &url, "--checks", "not_a_server_error,status_code_conformance,content_type_conformance"])
            .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "30", "--seed", "20261202"])
            // One worker: Hypothesis's lambda descriptions are not thread-safe (an internal error).
            .args(["--workers", "1", "--no-color", "--request-timeout", "30"])
            // The credentials are ours; generated ones would only ever answer 401.
            .args(["--generation-with-security-parameters", "false"])
            // Signing out would end the fuzzer's own session half-way.
            .args(["--exclude-path", "/v1/auth/logout"])
            .args(["-H", &bearer, "-H", &api_key])
            .arg("--report-dir")
            .arg(report.path())
            .output()
            .expect("running schemathesis")
    })
    .await
    .expect("the fuzzer's thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the fuzzer found failures:\n{stdout}\n{stderr}");
}
