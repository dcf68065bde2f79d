//! Sign-up to sign-out, members and roles, and API keys, end to end over HTTP.

use std::time::Duration;

use oratio_tests::platform::{PASSWORD, TestPlatform};
use reqwest::Method;
use serde_json::{Value, json};

async fn body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_refused(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!((answer.0, answer.1["code"].as_str()), (status, Some(code)), "{}", answer.1);
    assert!(answer.1["request_id"].is_string() && answer.1["error"].is_string(), "{}", answer.1);
}

#[tokio::test]
async fn registration_errors_each_have_their_own_code() {
    let p = TestPlatform::start().await;
    let register = |email: &str, password: &str, org: Option<&str>| {
        let mut body = json!({"email": email, "password": password});
        if let Some(org) = org {
            body["organization_name"] = org.into();
        }
        p.post_json("/v1/auth/register", None, body)
    };
    assert_refused(&body(register("not-an-email", PASSWORD, Some("Acme")).await).await, 400, "invalid_email");
    assert_refused(&body(register("ada@example.com", "short", Some("Acme")).await).await, 400, "weak_password");
    assert_refused(
        &body(register("ada@example.com", PASSWORD, Some("   ")).await).await,
        400,
        "invalid_organization_name",
    );
    assert_refused(&body(register("ada@example.com", PASSWORD, None).await).await, 400, "invalid_body");
    let malformed = p
        .request(Method::POST, "/v1/auth/register", None)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await;
    assert_refused(&body(malformed.expect("request")).await, 400, "malformed_json");
    assert_eq!(register("ada@example.com", PASSWORD, Some("Acme")).await.status(), 201);
    assert_refused(&body(register("ADA@example.com", PASSWORD, Some("Other")).await).await, 409, "duplicate_email");
}

#[tokio::test]
async fn sign_in_errors_each_have_their_own_code_and_repeated_failures_are_throttled() {
    let p = TestPlatform::start().await;
    let registered = p
        .post_json(
            "/v1/auth/register",
            None,
            json!({"email": "ada@example.com", "password": PASSWORD, "organization_name": "Acme"}),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let login = |email: &str, password: &str| {
        p.post_json("/v1/auth/login", None, json!({"email": email, "password": password}))
    };

    assert_refused(&body(login("ada@example.com", PASSWORD).await).await, 403, "user_not_confirmed");
    let wrong_code =
        p.post_json("/v1/auth/confirm", None, json!({"email": "ada@example.com", "code": "000000x"})).await;
    assert_refused(&body(wrong_code).await, 400, "invalid_code");
    p.confirm_and_sign_in("ada@example.com").await;
    assert_refused(&body(login("nobody@example.com", PASSWORD).await).await, 401, "unknown_user");
    for _ in 0..4 {
        assert_refused(&body(login("ada@example.com", "Wrong-Password-123").await).await, 401, "wrong_password");
    }
    // The fifth failure in the window locks the email, even for the right password.
    assert_refused(&body(login("ada@example.com", "Wrong-Password-123").await).await, 401, "wrong_password");
    let throttled = login("ada@example.com", PASSWORD).await;
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=900).contains(&retry_after));
    assert_refused(&body(throttled).await, 429, "too_many_attempts");
}

#[tokio::test]
async fn tokens_refresh_and_sign_out_revokes_the_refresh_token() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Acme Dental").await;
    let me = body(p.request(Method::GET, "/v1/me", Some(&ada.access_token)).send().await.expect("me")).await;
    assert_eq!(me.0, 200);
    assert_eq!(
        (me.1["role"].as_str(), me.1["tenant"]["organization_name"].as_str()),
        (Some("admin"), Some("Acme Dental"))
    );
    assert_eq!(me.1["user"]["email"], "ada@example.com");

    let refreshed =
        body(p.post_json("/v1/auth/refresh", None, json!({"refresh_token": ada.refresh_token})).await).await;
    assert_eq!(refreshed.0, 200);
    let fresh = refreshed.1["access_token"].as_str().expect("a new access token");
    assert_eq!(p.request(Method::GET, "/v1/me", Some(fresh)).send().await.expect("me").status(), 200);

    let logout = p.request(Method::POST, "/v1/auth/logout", Some(&ada.access_token)).send().await.expect("logout");
    assert_eq!(logout.status(), 204);
    let refused = p.post_json("/v1/auth/refresh", None, json!({"refresh_token": ada.refresh_token})).await;
    assert_refused(&body(refused).await, 401, "invalid_refresh_token");
}

#[tokio::test]
async fn missing_malformed_forged_and_foreign_tokens_get_401() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Acme").await;
    let other = TestPlatform::start().await;
    let foreign = other.sign_up("eve@example.com", "Evil").await;
    let (header, rest) = ada.access_token.split_once('.').expect("jwt");
    let (claims, _) = rest.split_once('.').expect("jwt");
    let unsigned = format!("{header}.{claims}.");
    let cases = [
        (None, "missing_token"),
        (Some("not-a-token"), "invalid_token"),
        (Some(unsigned.as_str()), "invalid_token"),
        // Signed by another platform's key, for another issuer.
        (Some(foreign.access_token.as_str()), "invalid_token"),
    ];
    for (token, code) in cases {
        let answer = body(p.request(Method::GET, "/v1/me", token).send().await.expect("me")).await;
        assert_refused(&answer, 401, code);
    }
}

#[tokio::test]
async fn invited_members_join_with_their_role_and_viewers_only_read() {
    let p = TestPlatform::start().await;
    let admin = p.sign_up("ada@example.com", "Acme").await;
    let agent = p.create_agent(&admin.access_token, "Front desk").await;

    for (email, role) in [("vic@example.com", "viewer"), ("otto@example.com", "operator")] {
        let invited =
            p.post_json("/v1/members", Some(&admin.access_token), json!({"email": email, "role": role})).await;
        assert_eq!(invited.status(), 201);
        let outbox: Value = p.get(&format!("/local/outbox?to={email}")).await.json().await.expect("outbox");
        let text = outbox["mails"][0]["text"].as_str().expect("an invitation");
        let code = text.lines().map(str::trim).find(|l| l.len() == 24).expect("the code");
        let wrong_email = p
            .post_json(
                "/v1/auth/register",
                None,
                json!({"email": "mallory@example.com", "password": PASSWORD, "invitation_code": code}),
            )
            .await;
        assert_refused(&body(wrong_email).await, 400, "invalid_invitation");
        let joined = p
            .post_json(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "invitation_code": code}),
            )
            .await;
        assert_eq!(joined.status(), 201);
        let joined: Value = joined.json().await.expect("json");
        assert_eq!(joined["tenant_id"], admin.tenant_id.as_str());
        let reused = p
            .post_json(
                "/v1/auth/register",
                None,
                json!({"email": "x@example.com", "password": PASSWORD, "invitation_code": code}),
            )
            .await;
        assert_refused(&body(reused).await, 400, "invalid_invitation");
    }
    let viewer = p.confirm_and_sign_in("vic@example.com").await["access_token"].as_str().expect("token").to_owned();
    let operator = p.confirm_and_sign_in("otto@example.com").await["access_token"].as_str().expect("token").to_owned();

    // Viewers read everything and change nothing.
    for path in
        ["/v1/me", "/v1/members", "/v1/agents", &format!("/v1/agents/{agent}"), &format!("/v1/agents/{agent}/keys")]
    {
        assert_eq!(p.request(Method::GET, path, Some(&viewer)).send().await.expect("get").status(), 200, "{path}");
    }
    let form = reqwest::multipart::Form::new().text("config", r#"{"name":"x","kind":"text"}"#);
    let create = p.request(Method::POST, "/v1/agents", Some(&viewer)).multipart(form).send().await.expect("post");
    assert_refused(&body(create).await, 403, "forbidden");
    let delete = p.request(Method::DELETE, &format!("/v1/agents/{agent}"), Some(&viewer)).send().await.expect("delete");
    assert_refused(&body(delete).await, 403, "forbidden");
    let key = p.post_json(&format!("/v1/agents/{agent}/keys"), Some(&viewer), json!({"name": "k"})).await;
    assert_refused(&body(key).await, 403, "forbidden");

    // Operators manage agents but not keys or members.
    p.create_agent(&operator, "Billing").await;
    let key = p.post_json(&format!("/v1/agents/{agent}/keys"), Some(&operator), json!({"name": "k"})).await;
    assert_refused(&body(key).await, 403, "forbidden");
    let invite = p.post_json("/v1/members", Some(&operator), json!({"email": "z@example.com", "role": "viewer"})).await;
    assert_refused(&body(invite).await, 403, "forbidden");

    // Admins change roles; the last admin stays.
    let members: Value = p.get_json("/v1/members", Some(&admin.access_token)).await;
    assert_eq!(members["members"].as_array().expect("members").len(), 3);
    let vic =
        members["members"].as_array().expect("members").iter().find(|m| m["email"] == "vic@example.com").expect("vic");
    let vic_id = vic["user_id"].as_str().expect("id");
    let promoted = p
        .request(Method::PATCH, &format!("/v1/members/{vic_id}"), Some(&admin.access_token))
        .json(&json!({"role": "operator"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(promoted.status(), 200);
    p.create_agent(&viewer, "Now allowed").await;
    let demote_self = p
        .request(Method::PATCH, &format!("/v1/members/{}", admin.user_id), Some(&admin.access_token))
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .expect("patch");
    assert_refused(&body(demote_self).await, 409, "last_admin");
    let removed = p
        .request(Method::DELETE, &format!("/v1/members/{vic_id}"), Some(&admin.access_token))
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 204);
    let gone = p.request(Method::GET, "/v1/agents", Some(&viewer)).send().await.expect("get");
    assert_refused(&body(gone).await, 403, "not_a_member");
}

#[tokio::test]
async fn api_keys_are_shown_once_revoked_at_once_and_scoped_to_their_agent() {
    let p = TestPlatform::start().await;
    let admin = p.sign_up("ada@example.com", "Acme").await;
    let agent = p.create_agent(&admin.access_token, "Front desk").await;
    let other_agent = p.create_agent(&admin.access_token, "Billing").await;
    let (key_id, secret) = p.create_key(&admin.access_token, &agent).await;
    assert!(secret.starts_with("ora_") && secret.len() == 44);

    let profile = |agent: &str, secret: &str| {
        p.http.get(format!("{}/v1/agents/{agent}/profile", p.url)).header("x-api-key", secret).send()
    };
    let answer = body(profile(&agent, &secret).await.expect("profile")).await;
    assert_eq!((answer.0, answer.1["name"].as_str()), (200, Some("Front desk")));
    let bearer =
        p.http.get(format!("{}/v1/agents/{agent}/profile", p.url)).bearer_auth(&secret).send().await.expect("profile");
    assert_eq!(bearer.status(), 200, "the key is also accepted as a bearer token");
    assert_refused(&body(profile(&other_agent, &secret).await.expect("profile")).await, 403, "key_agent_mismatch");
    assert_refused(&body(p.get(&format!("/v1/agents/{agent}/profile")).await).await, 401, "missing_api_key");
    let guessed = format!("ora_{}", "A".repeat(40));
    assert_refused(&body(profile(&agent, &guessed).await.expect("profile")).await, 401, "invalid_api_key");

    // Metadata only, and usage is counted without the request waiting for it.
    let keys = || p.request(Method::GET, &format!("/v1/agents/{agent}/keys"), Some(&admin.access_token)).send();
    let mut listed: Value = keys().await.expect("keys").json().await.expect("json");
    for _ in 0..50 {
        if listed["keys"][0]["use_count"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        listed = keys().await.expect("keys").json().await.expect("json");
    }
    let key = &listed["keys"][0];
    assert_eq!((key["key_id"].as_str(), key["use_count"].as_u64()), (Some(key_id.as_str()), Some(2)), "{key}");
    assert!(
        key["last_used_at"].is_string() && key.get("secret").is_none() && key["prefix"].as_str() == Some(&secret[..12])
    );
    assert!(!listed.to_string().contains(&secret[12..]));

    let revoked = p
        .request(Method::DELETE, &format!("/v1/agents/{agent}/keys/{key_id}"), Some(&admin.access_token))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert_refused(&body(profile(&agent, &secret).await.expect("profile")).await, 401, "invalid_api_key");

    // Archiving an agent revokes its keys.
    let (_, second) = p.create_key(&admin.access_token, &agent).await;
    assert_eq!(profile(&agent, &second).await.expect("profile").status(), 200);
    let archived = p
        .request(Method::DELETE, &format!("/v1/agents/{agent}"), Some(&admin.access_token))
        .send()
        .await
        .expect("delete");
    assert_eq!(archived.status(), 204);
    assert_refused(&body(profile(&agent, &second).await.expect("profile")).await, 401, "invalid_api_key");
    let listed: Value = p.get_json("/v1/agents", Some(&admin.access_token)).await;
    assert_eq!(listed["agents"].as_array().expect("agents").len(), 1);
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let p = TestPlatform::start().await;
    let admin = p.sign_up("ada@example.com", "Acme").await;
    let agent = p.create_agent(&admin.access_token, "Front desk").await;
    let created = p
        .post_json(
            &format!("/v1/agents/{agent}/keys"),
            Some(&admin.access_token),
            json!({"name": "tight", "rate_limit_per_minute": 3}),
        )
        .await;
    let secret = created.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_owned();
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..8 {
        let response = p
            .http
            .get(format!("{}/v1/agents/{agent}/profile", p.url))
            .header("x-api-key", &secret)
            .send()
            .await
            .expect("profile");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("limited within 8 requests");
    let retry: u64 = limited.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry));
    assert_refused(&body(limited).await, 429, "rate_limited");
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 3, "{statuses:?}");
    let bad = p
        .post_json(
            &format!("/v1/agents/{agent}/keys"),
            Some(&admin.access_token),
            json!({"name": "x", "rate_limit_per_minute": 0}),
        )
        .await;
    assert_refused(&body(bad).await, 400, "invalid_rate_limit");
    let bad = p.post_json(&format!("/v1/agents/{agent}/keys"), Some(&admin.access_token), json!({"name": " "})).await;
    assert_refused(&body(bad).await, 400, "invalid_key_name");
}

#[tokio::test]
async fn tokens_outside_their_time_are_refused() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Acme").await;
    // Sign tokens exactly like the platform's, with its own key, changing only their times.
    let pem = std::fs::read_to_string(p.data_path().join("identity/signing-key.pem")).expect("the platform's key");
    let key = oratio_auth::SigningKey::from_pem(&pem).expect("a key");
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": ada.user_id, "iss": format!("{}/local/identity", p.url), "client_id": "oratio-local",
        "token_use": "access", "iat": now, "auth_time": now, "exp": now + 600, "jti": "x",
    });
    let with = |changes: &[(&str, i64)]| {
        let mut token = claims.clone();
        for (claim, value) in changes {
            token[*claim] = (*value).into();
        }
        key.sign(&token).expect("signed")
    };
    let refused = [
        (with(&[("iat", now - 7200), ("auth_time", now - 7200), ("exp", now - 3600)]), "token_expired"),
        (with(&[("nbf", now + 1800)]), "invalid_token"),
        (with(&[("iat", now + 1800)]), "invalid_token"),
    ];
    for (token, code) in refused {
        let answer = body(p.request(Method::GET, "/v1/me", Some(&token)).send().await.expect("me")).await;
        assert_refused(&answer, 401, code);
    }
    // The same token with its times right is accepted: only the times were wrong.
    assert_eq!(p.request(Method::GET, "/v1/me", Some(&with(&[]))).send().await.expect("me").status(), 200);
}
