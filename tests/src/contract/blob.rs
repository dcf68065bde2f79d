//! The `BlobStore` contract.

use std::sync::Arc;
use std::time::Duration;

use oratio_core::blob::{BlobError, BlobKey, BlobStore};

type Subject = Arc<dyn BlobStore>;

fn key(k: &str) -> BlobKey {
    BlobKey::parse(k).expect("a valid key")
}

pub async fn put_then_get_keeps_bytes_and_content_type(store: Subject) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    store.put(&key("tenants/ten_a/docs/manual.pdf"), bytes.clone(), "application/pdf").await.expect("put");
    let blob = store.get(&key("tenants/ten_a/docs/manual.pdf")).await.expect("get").expect("present");
    assert_eq!((blob.bytes, blob.content_type.as_str()), (bytes, "application/pdf"));
    store.put(&key("tenants/ten_a/empty.txt"), vec![], "text/plain; charset=utf-8").await.expect("put");
    let blob = store.get(&key("tenants/ten_a/empty.txt")).await.expect("get").expect("present");
    assert_eq!((blob.bytes.len(), blob.content_type.as_str()), (0, "text/plain; charset=utf-8"));
}

pub async fn get_of_a_missing_blob_is_none(store: Subject) {
    assert_eq!(store.get(&key("tenants/ten_a/nothing")).await.expect("get"), None);
}

pub async fn put_replaces_a_blob(store: Subject) {
    store.put(&key("tenants/ten_a/code/agent.py"), b"v1".to_vec(), "text/x-python").await.expect("put");
    store.put(&key("tenants/ten_a/code/agent.py"), b"version 2".to_vec(), "text/plain").await.expect("put");
    let blob = store.get(&key("tenants/ten_a/code/agent.py")).await.expect("get").expect("present");
    assert_eq!((blob.bytes.as_slice(), blob.content_type.as_str()), (&b"version 2"[..], "text/plain"));
}

pub async fn list_finds_blobs_by_prefix_in_key_order(store: Subject) {
    for (k, size) in [
        ("tenants/ten_a/docs/b.pdf", 3),
        ("tenants/ten_a/docs/a.md", 1),
        ("tenants/ten_a/docs/sub/c.txt", 5),
        ("tenants/ten_a/docs", 2),
        ("tenants/ten_a/docsx", 4),
        ("tenants/ten_b/docs/a.md", 6),
    ] {
        store.put(&key(k), vec![b'x'; size], "text/plain").await.expect("put");
    }
    let listed = store.list("tenants/ten_a/docs/").await.expect("list");
    let names: Vec<(&str, u64)> = listed.iter().map(|m| (m.key.as_str(), m.size)).collect();
    assert_eq!(
        names,
        [("tenants/ten_a/docs/a.md", 1), ("tenants/ten_a/docs/b.pdf", 3), ("tenants/ten_a/docs/sub/c.txt", 5)]
    );
    let listed = store.list("tenants/ten_a/doc").await.expect("list");
    let names: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        names,
        [
            "tenants/ten_a/docs",
            "tenants/ten_a/docs/a.md",
            "tenants/ten_a/docs/b.pdf",
            "tenants/ten_a/docs/sub/c.txt",
            "tenants/ten_a/docsx"
        ]
    );
    assert!(store.list("tenants/ten_c/").await.expect("list").is_empty());
    assert_eq!(store.list("tenants/").await.expect("list").len(), 6);
    let recent = chrono::Utc::now() - chrono::Duration::minutes(10);
    assert!(listed.iter().all(|m| m.last_modified > recent), "last-modified times are real");
}

pub async fn delete_removes_and_deleting_nothing_is_fine(store: Subject) {
    store.put(&key("tenants/ten_a/x"), b"x".to_vec(), "text/plain").await.expect("put");
    store.delete(&key("tenants/ten_a/x")).await.expect("delete");
    assert_eq!(store.get(&key("tenants/ten_a/x")).await.expect("get"), None);
    assert!(store.list("tenants/ten_a/").await.expect("list").is_empty());
    store.delete(&key("tenants/ten_a/x")).await.expect("deleting an absent blob");
}

pub async fn signed_urls_download_the_blob(store: Subject) {
    let bytes = b"# FAQ\nOpening hours: 9 to 5.\n".to_vec();
    store.put(&key("tenants/ten_a/docs/faq.md"), bytes.clone(), "text/markdown").await.expect("put");
    let url =
        store.signed_download_url(&key("tenants/ten_a/docs/faq.md"), Duration::from_secs(300)).await.expect("url");
    let response = reqwest::get(&url).await.expect("download");
    assert_eq!(response.status(), 200, "{url}");
    assert_eq!(response.headers()["content-type"], "text/markdown");
    assert_eq!(response.bytes().await.expect("body").to_vec(), bytes);
}

pub async fn bad_content_types_and_lifetimes_are_refused(store: Subject) {
    let refused = store.put(&key("tenants/ten_a/x"), vec![], "no-slash").await;
    assert!(matches!(refused, Err(BlobError::InvalidContentType(_))));
    for ttl in [Duration::ZERO, Duration::from_secs(8 * 24 * 3600)] {
        let refused = store.signed_download_url(&key("tenants/ten_a/x"), ttl).await;
        assert!(matches!(refused, Err(BlobError::InvalidTtl)), "{ttl:?}");
    }
    assert!(store.list("tenants/").await.expect("list").is_empty());
}

#[macro_export]
macro_rules! blob_contract {
    ($factory:path) => {
        $crate::contract_cases!(
            $factory,
            blob,
            [
                put_then_get_keeps_bytes_and_content_type,
                get_of_a_missing_blob_is_none,
                put_replaces_a_blob,
                list_finds_blobs_by_prefix_in_key_order,
                delete_removes_and_deleting_nothing_is_fine,
                signed_urls_download_the_blob,
                bad_content_types_and_lifetimes_are_refused,
            ]
        );
    };
}
