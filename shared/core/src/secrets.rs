//! The `SecretBox` port: secrets the platform keeps for tenants (a Twilio auth token, a
//! tool's signing secret) are sealed before they are stored and opened only where they
//! are used. Envelope encryption: a KMS data key per secret in AWS, a key file on one
//! machine. A sealed secret is bound to its tenant: another tenant's box cannot open it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

/// A secret as stored: opaque text, safe to log and to keep in a table item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

/// A secret in the clear. Its `Debug` says nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Sealed for another tenant, tampered with, or under a key this box does not hold.
    #[error("the sealed secret cannot be opened")]
    Unopenable,
    #[error("the key service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the key service failed")]
    Backend(#[source] anyhow::Error),
}

#[async_trait]
pub trait SecretBox: Send + Sync {
    async fn seal(&self, tenant: &TenantId, secret: &Secret) -> Result<Sealed, SecretError>;
    async fn open(&self, tenant: &TenantId, sealed: &Sealed) -> Result<Secret, SecretError>;
}

/// What binds a sealed secret to its tenant (the AEAD's associated data; KMS's encryption
/// context says the same).
pub fn context(tenant: &TenantId) -> String {
    format!("oratio/tenant/{tenant}")
}

/// A fresh 256-bit data key.
pub fn data_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    key
}

/// The envelope's inner layer: `secret` under `data_key` (AES-256-GCM, random nonce),
/// bound to the tenant; base64url of nonce and ciphertext.
pub fn encrypt(data_key: &[u8; 32], tenant: &TenantId, secret: &Secret) -> String {
    let cipher = Aes256Gcm::new(data_key.into());
    let mut nonce = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let aad = context(tenant);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.expose().as_bytes(), aad: aad.as_bytes() })
        .expect("AES-GCM seals any length we keep");
    B64.encode([nonce.as_slice(), &sealed].concat())
}

pub fn decrypt(data_key: &[u8], tenant: &TenantId, sealed: &str) -> Result<Secret, SecretError> {
    let bytes = B64.decode(sealed).map_err(|_| SecretError::Unopenable)?;
    if bytes.len() < 12 + 16 || data_key.len() != 32 {
        return Err(SecretError::Unopenable);
    }
    let cipher = Aes256Gcm::new_from_slice(data_key).map_err(|_| SecretError::Unopenable)?;
    let aad = context(tenant);
    let plain = cipher
        .decrypt(Nonce::from_slice(&bytes[..12]), Payload { msg: &bytes[12..], aad: aad.as_bytes() })
        .map_err(|_| SecretError::Unopenable)?;
    String::from_utf8(plain).map(Secret).map_err(|_| SecretError::Unopenable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_for_its_tenant_only() {
        let (key, tenant, other) = (data_key(), TenantId::generate(), TenantId::generate());
        let sealed = encrypt(&key, &tenant, &Secret::new("hunter2"));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(decrypt(&key, &tenant, &sealed).unwrap().expose(), "hunter2");
        assert!(decrypt(&key, &other, &sealed).is_err());
        assert!(decrypt(&data_key(), &tenant, &sealed).is_err());
        assert!(decrypt(&key, &tenant, "AAAA").is_err());
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(…)");
    }
}
