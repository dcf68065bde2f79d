//! The `SecretBox` on one machine: envelope encryption under a key file of the data
//! directory (`secrets.key`, owner-only). Each secret gets its own data key, which is kept
//! beside it sealed under the key file's key, as KMS keeps a data key in AWS.

use std::path::Path;

use async_trait::async_trait;
use oratio_core::ids::TenantId;
use oratio_core::secrets::{self, Sealed, Secret, SecretBox, SecretError};

/// Sealed secrets of this box start with this.
const PREFIX: &str = "local1.";

pub struct KeyFileSecretBox {
    key: [u8; 32],
}

impl KeyFileSecretBox {
    /// The box of `path`, creating its key on first use.
    pub fn open_or_create(path: &Path) -> anyhow::Result<Self> {
        let bytes = crate::files::load_or_create_secret(path)?;
        let key: [u8; 32] = bytes[..32].try_into().expect("a key file holds at least 32 bytes");
        Ok(Self { key })
    }
}

#[async_trait]
impl SecretBox for KeyFileSecretBox {
    async fn seal(&self, tenant: &TenantId, secret: &Secret) -> Result<Sealed, SecretError> {
        let data_key = secrets::data_key();
        let wrapped = secrets::encrypt(&self.key, tenant, &Secret::new(hex::encode(data_key)));
        Ok(Sealed(format!("{PREFIX}{wrapped}.{}", secrets::encrypt(&data_key, tenant, secret))))
    }

    async fn open(&self, tenant: &TenantId, sealed: &Sealed) -> Result<Secret, SecretError> {
        let (wrapped, inner) =
            sealed.0.strip_prefix(PREFIX).and_then(|rest| rest.split_once('.')).ok_or(SecretError::Unopenable)?;
        let data_key = secrets::decrypt(&self.key, tenant, wrapped)?;
        let data_key = hex::decode(data_key.expose()).map_err(|_| SecretError::Unopenable)?;
        secrets::decrypt(&data_key, tenant, inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sealed_secrets_open_for_their_tenant_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let (tenant, other) = (TenantId::generate(), TenantId::generate());
        let sealed =
            KeyFileSecretBox::open_or_create(&path).unwrap().seal(&tenant, &Secret::new("tok_123")).await.unwrap();
        assert!(!sealed.0.contains("tok_123"));
        let again = KeyFileSecretBox::open_or_create(&path).unwrap();
        assert_eq!(again.open(&tenant, &sealed).await.unwrap().expose(), "tok_123");
        assert!(again.open(&other, &sealed).await.is_err());
        let elsewhere = KeyFileSecretBox::open_or_create(&dir.path().join("other.key")).unwrap();
        assert!(elsewhere.open(&tenant, &sealed).await.is_err());
    }
}
