//! `TokenVerifier` over a JWKS URL. Issuer and JWKS URL are configured separately: moto
//! (and some proxies) serve the keys somewhere other than under the issuer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use oratio_core::identity::{AccessClaims, TokenError, TokenVerifier, UserId};
use serde::Deserialize;
use tokio::sync::RwLock;

/// How soon an unknown `kid` may trigger another fetch of the key set.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The `iss` every token must carry (Cognito: `https://cognito-idp.<region>.amazonaws.com/<pool>`).
    pub issuer: String,
    pub jwks_url: String,
    /// The app client tokens must be issued to.
    pub client_id: String,
}

pub struct JwksVerifier {
    config: VerifierConfig,
    http: reqwest::Client,
    keys: RwLock<KeySet>,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    token_use: String,
    #[serde(default)]
    client_id: Option<String>,
    exp: i64,
    /// Issued at: a token from the future (beyond the leeway) is refused.
    #[serde(default)]
    iat: Option<i64>,
}

/// Seconds of clock difference tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: i64 = 5;

impl JwksVerifier {
    pub fn new(config: VerifierConfig) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        Self { config, http, keys: RwLock::new(KeySet::default()) }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, TokenError> {
        let response = self.http.get(&self.config.jwks_url).send().await.map_err(|e| {
            tracing::warn!(cause = %e, url = %self.config.jwks_url, "fetching the JWKS failed");
            TokenError::KeysUnavailable
        })?;
        let set: JwkSet =
            response.error_for_status().map_err(|_| TokenError::KeysUnavailable)?.json().await.map_err(|e| {
                tracing::warn!(cause = %e, "the JWKS did not parse");
                TokenError::KeysUnavailable
            })?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect())
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        if let Some(key) = self.keys.read().await.keys.get(kid) {
            return Ok(key.clone());
        }
        let mut set = self.keys.write().await;
        if let Some(key) = set.keys.get(kid) {
            return Ok(key.clone());
        }
        if set.fetched_at.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
            return Err(TokenError::Invalid("signed by an unknown key".into()));
        }
        set.keys = self.fetch().await?;
        set.fetched_at = Some(Instant::now());
        set.keys.get(kid).cloned().ok_or_else(|| TokenError::Invalid("signed by an unknown key".into()))
    }
}

#[async_trait]
impl TokenVerifier for JwksVerifier {
    async fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid("malformed".into()))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid("unexpected signing algorithm".into()));
        }
        let kid = header.kid.ok_or_else(|| TokenError::Invalid("no key id".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS as u64;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet".into()),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => TokenError::Invalid("issued by someone else".into()),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Invalid("bad signature".into()),
                _ => TokenError::Invalid("malformed".into()),
            })?
            .claims;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(TokenError::Invalid("issued in the future".into()));
        }
        if claims.token_use != "access" {
            return Err(TokenError::Invalid("not an access token".into()));
        }
        if claims.client_id.as_deref() != Some(self.config.client_id.as_str()) {
            return Err(TokenError::Invalid("issued to another client".into()));
        }
        let user_id = UserId::parse(&claims.sub).map_err(|_| TokenError::Invalid("malformed subject".into()))?;
        Ok(AccessClaims { user_id, client_id: self.config.client_id.clone(), expires_at: claims.exp })
    }
}
