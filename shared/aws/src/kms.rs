//! `SecretBox` on KMS, by envelope encryption: each secret is sealed under its own data key
//! (`GenerateDataKey`, AES-256, encryption context `tenant_id`), and the data key is kept
//! beside it encrypted by KMS; opening asks KMS to `Decrypt` that data key, with the same
//! context, so a secret sealed for one tenant does not open for another.

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use oratio_core::ids::TenantId;
use oratio_core::secrets::{self, Sealed, Secret, SecretBox, SecretError};

const PREFIX: &str = "kms1.";

#[derive(Clone)]
pub struct KmsSecretBox {
    client: Client,
    key_id: String,
}

impl KmsSecretBox {
    /// `key_id`: the key's id, ARN or alias (`SECRETS_KEY_ID`).
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

fn failed<E: std::error::Error + Send + Sync + 'static>(e: SdkError<E>) -> SecretError
where
    SdkError<E>: ProvideErrorMetadata,
{
    let transient = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
        || matches!(e.code(), Some("ThrottlingException" | "KMSInternalException" | "DependencyTimeoutException"));
    let invalid = matches!(e.code(), Some("InvalidCiphertextException" | "IncorrectKeyException"));
    let source = anyhow!("{}", DisplayErrorContext(e));
    if invalid {
        SecretError::Unopenable
    } else if transient {
        SecretError::Unavailable(source)
    } else {
        SecretError::Backend(source)
    }
}

#[async_trait]
impl SecretBox for KmsSecretBox {
    async fn seal(&self, tenant: &TenantId, secret: &Secret) -> Result<Sealed, SecretError> {
        let key = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context("tenant_id", tenant.as_str())
            .send()
            .await
            .map_err(failed)?;
        let plain = key.plaintext().ok_or_else(|| SecretError::Backend(anyhow!("KMS sent no plaintext key")))?;
        let plain: [u8; 32] =
            plain.as_ref().try_into().map_err(|_| SecretError::Backend(anyhow!("KMS sent a key of another size")))?;
        let wrapped =
            key.ciphertext_blob().ok_or_else(|| SecretError::Backend(anyhow!("KMS sent no encrypted key")))?;
        Ok(Sealed(format!("{PREFIX}{}.{}", B64.encode(wrapped.as_ref()), secrets::encrypt(&plain, tenant, secret))))
    }

    async fn open(&self, tenant: &TenantId, sealed: &Sealed) -> Result<Secret, SecretError> {
        let (wrapped, inner) =
            sealed.0.strip_prefix(PREFIX).and_then(|rest| rest.split_once('.')).ok_or(SecretError::Unopenable)?;
        let wrapped = B64.decode(wrapped).map_err(|_| SecretError::Unopenable)?;
        let key = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context("tenant_id", tenant.as_str())
            .send()
            .await
            .map_err(failed)?;
        let plain = key.plaintext().ok_or(SecretError::Unopenable)?;
        secrets::decrypt(plain.as_ref(), tenant, inner)
    }
}
