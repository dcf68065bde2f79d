//! The verifier against a JWKS served over HTTP, with good tokens and every kind of bad one.

use std::sync::Arc;

use oratio_auth::{JwksVerifier, SigningKey, VerifierConfig};
use oratio_core::identity::{TokenError, TokenVerifier};
use serde_json::{Value, json};

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test";
const CLIENT: &str = "client123";

struct Fixture {
    key: SigningKey,
    verifier: JwksVerifier,
}

async fn fixture() -> Fixture {
    let key = SigningKey::generate().expect("a key");
    let jwks = Arc::new(key.jwks());
    let app = axum::Router::new().route(
        "/keys.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json((*jwks).clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let url = format!("http://{}/keys.json", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let verifier = JwksVerifier::new(VerifierConfig { issuer: ISSUER.into(), jwks_url: url, client_id: CLIENT.into() });
    Fixture { key, verifier }
}

fn claims(overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": "5f1c2b7e-8a1d-4c3e-9f00-1234567890ab",
        "iss": ISSUER,
        "client_id": CLIENT,
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "iat": now,
        "auth_time": now,
        "exp": now + 3600,
        "jti": "b6c7",
        "username": "5f1c2b7e-8a1d-4c3e-9f00-1234567890ab",
    });
    for (k, v) in overrides.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

#[tokio::test]
async fn a_good_access_token_is_accepted() {
    let f = fixture().await;
    let token = f.key.sign(&claims(json!({}))).expect("signed");
    let verified = f.verifier.verify_access(&token).await.expect("valid");
    assert_eq!(verified.user_id.as_str(), "5f1c2b7e-8a1d-4c3e-9f00-1234567890ab");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let f = fixture().await;
    let past = chrono::Utc::now().timestamp() - 600;
    let token = f.key.sign(&claims(json!({"exp": past}))).expect("signed");
    assert_eq!(f.verifier.verify_access(&token).await, Err(TokenError::Expired));
}

#[tokio::test]
async fn tokens_with_the_wrong_claims_are_refused() {
    let f = fixture().await;
    for bad in [
        json!({"iss": "https://evil.example.com/pool"}),
        json!({"client_id": "another-client"}),
        json!({"client_id": null}),
        json!({"token_use": "id", "aud": CLIENT}),
        json!({"exp": null}),
        json!({"sub": "../../etc"}),
    ] {
        let token = f.key.sign(&claims(bad.clone())).expect("signed");
        let verdict = f.verifier.verify_access(&token).await;
        assert!(matches!(verdict, Err(TokenError::Invalid(_))), "{bad}: {verdict:?}");
    }
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_refused() {
    let f = fixture().await;
    // Signed by another key that claims the same kid.
    let other = SigningKey::generate().expect("a key");
    let forged = other.sign(&claims(json!({}))).expect("signed");
    let (header, _) = forged.split_once('.').expect("jwt");
    let genuine = f.key.sign(&claims(json!({}))).expect("signed");
    let (_, rest) = genuine.split_once('.').expect("jwt");
    let mut parts: Vec<&str> = rest.split('.').collect();
    let forged_signature = forged.rsplit('.').next().expect("signature");
    parts[1] = forged_signature;
    let spliced = format!("{}.{}", genuine.split('.').next().expect("header"), parts.join("."));
    for token in [forged.as_str(), spliced.as_str(), "", "not.a.jwt", "eyJhbGciOiJub25lIn0.e30.", header] {
        let verdict = f.verifier.verify_access(token).await;
        assert!(matches!(verdict, Err(TokenError::Invalid(_))), "{token:?}: {verdict:?}");
    }
    // An HS256 token "signed" with the public key (algorithm confusion).
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(f.key.kid().into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(f.key.jwks().to_string().as_bytes()),
    )
    .expect("encoded");
    assert!(matches!(f.verifier.verify_access(&hs).await, Err(TokenError::Invalid(_))));
}

#[tokio::test]
async fn an_unreachable_key_set_is_reported_as_such() {
    let key = SigningKey::generate().expect("a key");
    let verifier = JwksVerifier::new(VerifierConfig {
        issuer: ISSUER.into(),
        jwks_url: "http://127.0.0.1:9/keys.json".into(),
        client_id: CLIENT.into(),
    });
    let token = key.sign(&claims(json!({}))).expect("signed");
    assert_eq!(verifier.verify_access(&token).await, Err(TokenError::KeysUnavailable));
}

#[test]
fn a_key_survives_its_pem() {
    let key = SigningKey::generate().expect("a key");
    let again = SigningKey::from_pem(key.pem()).expect("reloaded");
    assert_eq!(again.kid(), key.kid());
    assert_eq!(again.jwks(), key.jwks());
}
