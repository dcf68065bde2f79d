//! An RS256 signing key and its public JWK.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, pkcs8::LineEnding};
use serde::Serialize;
use serde_json::{Value, json};

const BITS: usize = 2048;

/// A private key that signs tokens, named by its `kid`.
pub struct SigningKey {
    kid: String,
    pem: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

impl SigningKey {
    /// A fresh 2048-bit RSA key.
    pub fn generate() -> Result<Self, String> {
        let private =
            RsaPrivateKey::new(&mut rand_core_compat(), BITS).map_err(|e| format!("generating an RSA key: {e}"))?;
        let pem = private.to_pkcs1_pem(LineEnding::LF).map_err(|e| format!("encoding an RSA key: {e}"))?;
        Self::from_pem(&pem)
    }

    /// A key from its PKCS#1 PEM, as [`SigningKey::pem`] gives it.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let private = RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| format!("reading an RSA key: {e}"))?;
        let public = private.to_public_key();
        let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
        // The kid names the key by its modulus, so it is stable across restarts.
        let kid = n[..16].to_owned();
        let jwk = json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": n, "e": e});
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| format!("loading an RSA key: {e}"))?;
        let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| format!("loading an RSA key: {e}"))?;
        Ok(Self { kid, pem: pem.to_owned(), encoding, decoding, jwk })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document that publishes this key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Checks a token this key signed and returns its claims (expiry included, no other
    /// claim checked).
    pub fn verify(&self, token: &str) -> Result<Value, String> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Value>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|e| e.to_string())
    }

    /// Signs `claims` as an RS256 JWT with this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| format!("signing a token: {e}"))
    }
}

fn rand_core_compat() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}
