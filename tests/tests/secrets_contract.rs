//! The `SecretBox` contract on both adapters: the key file of one machine, and KMS
//! envelope encryption on moto (`GenerateDataKey` and `Decrypt` with the tenant's
//! encryption context).

use oratio_core::ids::TenantId;
use oratio_core::secrets::{Sealed, Secret, SecretBox};
use oratio_tests::moto;

async fn a_secret_opens_for_its_tenant_only(secrets: &dyn SecretBox) {
    let (tenant, other) = (TenantId::generate(), TenantId::generate());
    let token = Secret::new("9f8e7d6c5b4a39281706f5e4d3c2b1a0");
    let sealed = secrets.seal(&tenant, &token).await.expect("sealed");
    assert!(!sealed.0.contains(token.expose()), "{}", sealed.0);
    assert_eq!(secrets.open(&tenant, &sealed).await.expect("opened").expose(), token.expose());
    // Sealing twice gives two envelopes (a data key and a nonce each).
    assert_ne!(secrets.seal(&tenant, &token).await.expect("sealed").0, sealed.0);
    assert!(secrets.open(&other, &sealed).await.is_err(), "another tenant's box does not open it");
    let mut tampered = sealed.0.clone();
    let last = tampered.pop().expect("a character");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(secrets.open(&tenant, &Sealed(tampered)).await.is_err(), "a tampered secret does not open");
    assert!(secrets.open(&tenant, &Sealed("not sealed".into())).await.is_err());
}

#[tokio::test]
async fn the_key_file_box_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("a directory");
    let secrets =
        oratio_local::secrets::KeyFileSecretBox::open_or_create(&dir.path().join("secrets.key")).expect("a box");
    a_secret_opens_for_its_tenant_only(&secrets).await;
}

#[tokio::test]
async fn the_kms_box_keeps_the_contract_on_moto() {
    let config = moto::config().await;
    let kms = oratio_aws::kms_client(&config);
    let key = kms.create_key().description("oratio secrets test").send().await.expect("a key on moto");
    let key_id = key.key_metadata().expect("metadata").key_id().to_owned();
    let secrets = oratio_aws::KmsSecretBox::new(kms, key_id);
    a_secret_opens_for_its_tenant_only(&secrets).await;
}
