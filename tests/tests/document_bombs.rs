//! Documents that are small on the wire and enormous once read: each is refused before
//! anything is stored, with `document_over_limit` naming the bound, and reading them costs
//! the platform's process no memory it keeps (they are read in a bounded child process).
//! Alone in its test binary, so that the resident memory measured is this test's.

use oratio_core::knowledge::{DocumentError, DocumentReader, ReadingLimits};
use oratio_local::documents::ChildReader;
use oratio_tests::hostile::{pdf_bomb, pdf_of_pages, resident_bytes};
use oratio_tests::platform::{TestPlatform, document_reader};
use serde_json::{Value, json};

/// How much the platform's resident memory may grow over all the bombs below (their
/// uploads are buffered on the way in; the reading happens elsewhere).
const RSS_BOUND: u64 = 64 * 1024 * 1024;

const SOP: &str = "1. Greet the customer.\n2. Answer questions about the catalogue from the documents.\n3. If they want to order, take their name and phone number.";

async fn upload(platform: &TestPlatform, token: &str, file: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("config", json!({"name": "Catalogue desk", "kind": "text", "sop": SOP}).to_string())
        .part("documents", reqwest::multipart::Part::bytes(bytes).file_name(file.to_owned()));
    let response =
        platform.request(reqwest::Method::POST, "/v1/agents", Some(token)).multipart(form).send().await.expect("post");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn documents_that_explode_when_read_are_refused_and_cost_the_platform_nothing() {
    let platform = TestPlatform::start().await;
    let admin = platform.sign_up("owner@printshop.example", "Print Shop").await;
    let token = admin.access_token.as_str();
    // Warm up the path (allocator, connection pool) with a document that reads fine.
    let (status, body) = upload(&platform, token, "prices.csv", b"item,price\nA5 flyers x100,24.90\n".to_vec()).await;
    assert_eq!(status, 202, "{body}");
    let before = resident_bytes();

    let one_line_csv = format!("sku,description\n1,{}\n", "x".repeat(9 * 1024 * 1024));
    let long_html = format!("<html><body>{}</body></html>", "<p>Glossy paper, 300 gsm.</p>".repeat(100_000));
    let long_markdown = format!("# Catalogue\n{}", "- Matte card, 350 gsm, white.\n".repeat(80_000));
    let bombs: [(&str, Vec<u8>, &str, &str); 6] = [
        // The report's: one content stream of half a million text operators, 22 MB inflated.
        ("brochure.pdf", pdf_bomb(22_000_000), "inflated_bytes", "more than 16 MiB"),
        ("catalogue.pdf", pdf_bomb(200_000_000), "inflated_bytes", "more than 16 MiB"),
        ("pages.pdf", pdf_of_pages(2_001, "Page"), "pages", "more than 2,000 pages"),
        ("stock.csv", one_line_csv.into_bytes(), "characters", "more than 2,000,000 characters"),
        ("paper.html", long_html.into_bytes(), "characters", "more than 2,000,000 characters"),
        ("card.md", long_markdown.into_bytes(), "characters", "more than 2,000,000 characters"),
    ];
    for (file, bytes, limit, says) in bombs {
        let size = bytes.len();
        let (status, body) = upload(&platform, token, file, bytes).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("document_over_limit")),
            "{file} ({size} bytes): {body}"
        );
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.starts_with(file) && message.contains(says), "{file} over {limit}: {message}");
        assert!(body["request_id"].as_str().is_some_and(|id| id.starts_with("req_")), "{body}");
    }
    let grown = resident_bytes().saturating_sub(before);
    eprintln!("resident memory grew by {:.1} MiB over six bombs", grown as f64 / (1024.0 * 1024.0));
    assert!(grown < RSS_BOUND, "the platform kept {} MiB after the bombs", grown / (1024 * 1024));

    // Nothing of the refused requests was kept: one agent (the warm-up's), one document.
    let agents = platform.get_json("/v1/agents", Some(token)).await;
    assert_eq!(agents["agents"].as_array().map(Vec::len), Some(1), "{agents}");
    let documents = walk(&platform.data_path().join("blobs")).into_iter().filter(|p| p.contains("/documents/")).count();
    assert_eq!(documents, 1);
}

#[tokio::test]
async fn the_reader_child_is_bounded_in_memory_and_time() {
    let prose = "Our opening hours are nine to five on weekdays and ten to two on Saturdays. ".repeat(20_000);
    // Within the default limits, the child reads it.
    let reader = ChildReader::new(document_reader());
    let sections = reader.read("text/plain", "hours.txt", prose.clone().into_bytes()).await.expect("read");
    assert!(sections.iter().any(|s| s.text.contains("ten to two on Saturdays")));
    // With 16 MiB of address space it cannot even hold a 9 MB document twice.
    let tight = ChildReader::new(document_reader()).with_limits(ReadingLimits {
        memory_bytes: 16 * 1024 * 1024,
        characters: 100_000_000,
        ..ReadingLimits::default()
    });
    match tight.read("text/plain", "hours.txt", prose.repeat(6).into_bytes()).await {
        Err(DocumentError::OverLimit { limit, message }) => {
            assert_eq!(limit, "memory_bytes");
            assert!(message.contains("more than 16 MiB of memory"), "{message}");
        }
        other => panic!("{:?}", other.map(|sections| sections.len())),
    }
    // A reading past its deadline is killed.
    let hurried =
        ChildReader::new(document_reader()).with_limits(ReadingLimits { seconds: 0, ..ReadingLimits::default() });
    match hurried.read("text/plain", "hours.txt", prose.into_bytes()).await {
        Err(DocumentError::OverLimit { limit, .. }) => assert_eq!(limit, "seconds"),
        other => panic!("{:?}", other.map(|sections| sections.len())),
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    out
}
