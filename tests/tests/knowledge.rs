//! The embedded knowledge base: documents of every supported format in, cited passages out.

use std::sync::Arc;

use oratio_core::blob::{BlobKey, BlobStore};
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::knowledge::{
    IngestionJob, IngestionStatus, KnowledgeBase, KnowledgeError, KnowledgeScope, SourceDocument,
};
use oratio_local::knowledge::LocalKnowledgeBase;
use oratio_local::{DirBlobStore, SqliteTable};
use oratio_tests::fixtures::pdf;

struct Fixture {
    kb: LocalKnowledgeBase,
    blobs: Arc<DirBlobStore>,
    scope: KnowledgeScope,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = Arc::new(DirBlobStore::open(dir.path().join("blobs"), "http://127.0.0.1").expect("blobs"));
    let table = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let kb = LocalKnowledgeBase::new(
        dir.path().join("knowledge"),
        blobs.clone(),
        table,
        oratio_tests::embeddings::embeddings(),
    );
    let scope = KnowledgeScope { tenant: TenantId::generate(), agent: AgentId::generate() };
    Fixture { kb, blobs, scope, _dir: dir }
}

impl Fixture {
    async fn document(&self, name: &str, content_type: &str, bytes: Vec<u8>) -> SourceDocument {
        let key = BlobKey::for_tenant(&self.scope.tenant, &format!("agents/{}/documents/{name}", self.scope.agent))
            .expect("key");
        self.blobs.put(&key, bytes, content_type).await.expect("stored");
        SourceDocument {
            document_id: format!("doc-{name}"),
            title: name.into(),
            blob: key.to_string(),
            content_type: content_type.into(),
        }
    }

    async fn ingest(&self, scope: &KnowledgeScope, documents: &[SourceDocument]) -> IngestionStatus {
        let job: IngestionJob = self.kb.ingest(scope, documents).await.expect("started");
        loop {
            match self.kb.status(scope, &job).await.expect("status") {
                IngestionStatus::InProgress => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                done => return done,
            }
        }
    }
}

const FAQ: &str = "# Welcome\nBright Smile Dental cares for the whole family.\n\n# Opening hours\nWe are open Monday to Friday 8am to 6pm and on Saturdays from 9am to 1pm. We are closed on Sundays.\n\n# Parking\nFree parking is available behind the clinic.\n";
const PRICES: &str = "service,price,notes\nCheck-up,45,includes x-rays\nHygienist cleaning,60,30 minutes\nTeeth whitening,250,two sessions\n";
const POLICY: &str = "<html><head><style>h2{color:red}</style></head><body><h2>Cancellation policy</h2><p>Cancel at least 24 hours ahead or a &pound;20 fee applies.</p><script>track()</script></body></html>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_of_every_format_answer_with_their_source_and_place() {
    let f = fixture().await;
    let documents = vec![
        f.document("faq.md", "text/markdown", FAQ.into()).await,
        f.document("prices.csv", "text/csv", PRICES.into()).await,
        f.document("policy.html", "text/html", POLICY.into()).await,
        f.document(
            "emergencies.pdf",
            "application/pdf",
            pdf(&["Welcome to our emergency guide.", "For a dental emergency after hours call 0800 555 0199."]),
        )
        .await,
        f.document("notes.txt", "text/plain", "Dr. Patel speaks Hindi and Gujarati.\n".into()).await,
    ];
    let status = f.ingest(&f.scope, &documents).await;
    let IngestionStatus::Complete { documents: 5, passages } = status else { panic!("{status:?}") };
    assert!(passages.is_some_and(|p| p >= 6));

    let cases = [
        ("When are you open on Saturday?", "faq.md", "Opening hours", "Saturdays from 9am"),
        ("How much does teeth whitening cost?", "prices.csv", "row 4", "Teeth whitening; price: 250"),
        ("what is the cancellation fee", "policy.html", "Cancellation policy", "24 hours"),
        ("emergency phone number after hours", "emergencies.pdf", "page 2", "0800 555 0199"),
        ("Which languages does Dr Patel speak?", "notes.txt", "lines 1-1", "Gujarati"),
    ];
    for (question, title, location, excerpt) in cases {
        let passages = f.kb.retrieve(&f.scope, question, 3).await.expect("retrieved");
        let best = passages.first().unwrap_or_else(|| panic!("nothing for {question:?}"));
        assert_eq!((best.title.as_str(), best.location.as_str()), (title, location), "{question}: {passages:?}");
        assert!(best.text.contains(excerpt) && best.score > 0.0, "{question}: {best:?}");
        assert_eq!(best.document_id, format!("doc-{title}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_document_fails_the_ingestion_with_a_readable_reason() {
    let f = fixture().await;
    let documents = vec![
        f.document("faq.md", "text/markdown", FAQ.into()).await,
        f.document("scan.pdf", "application/pdf", b"%PDF-1.7 this is not really a pdf".to_vec()).await,
    ];
    let IngestionStatus::Failed { reason } = f.ingest(&f.scope, &documents).await else { panic!("should fail") };
    assert!(reason.contains("scan.pdf") && reason.contains("could not be read"), "{reason}");
    assert!(!reason.contains("panicked") && !reason.contains("src/"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_stays_within_its_agent_and_tenant() {
    let f = fixture().await;
    let faq = f.document("faq.md", "text/markdown", FAQ.into()).await;
    assert!(matches!(f.ingest(&f.scope, std::slice::from_ref(&faq)).await, IngestionStatus::Complete { .. }));
    let other_agent = KnowledgeScope { tenant: f.scope.tenant.clone(), agent: AgentId::generate() };
    assert!(f.kb.retrieve(&other_agent, "opening hours", 3).await.expect("retrieved").is_empty());
    let other_tenant = KnowledgeScope { tenant: TenantId::generate(), agent: f.scope.agent.clone() };
    assert!(f.kb.retrieve(&other_tenant, "opening hours", 3).await.expect("retrieved").is_empty());
    let stolen = f.kb.ingest(&other_tenant, &[faq]).await;
    assert!(matches!(stolen, Err(KnowledgeError::Invalid(_))), "another tenant's document is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingesting_again_replaces_the_knowledge_and_remove_forgets_it() {
    let f = fixture().await;
    let faq = f.document("faq.md", "text/markdown", FAQ.into()).await;
    f.ingest(&f.scope, &[faq]).await;
    let prices = f.document("prices.csv", "text/csv", PRICES.into()).await;
    f.ingest(&f.scope, &[prices]).await;
    assert!(
        f.kb.retrieve(&f.scope, "Saturday opening hours", 3)
            .await
            .expect("retrieved")
            .iter()
            .all(|p| p.title != "faq.md")
    );
    assert_eq!(f.kb.retrieve(&f.scope, "whitening", 3).await.expect("retrieved")[0].title, "prices.csv");
    f.kb.remove(&f.scope).await.expect("removed");
    assert!(f.kb.retrieve(&f.scope, "whitening", 3).await.expect("retrieved").is_empty());
    assert!(matches!(f.kb.status(&f.scope, &IngestionJob("nope".into())).await, Err(KnowledgeError::UnknownJob)));
}
