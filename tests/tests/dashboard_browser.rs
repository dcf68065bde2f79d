//! The dashboard in headless Chromium: `tests/browser/dashboard.test.mjs` (Playwright's
//! library driving the system Chromium) against the embedded platform started here.
//! Screenshots land in `tests/output/browser/<test>/`. `scripts/test` installs Chromium
//! and the browser tests' npm packages; without them this test fails, saying what is missing.

use std::path::PathBuf;

use oratio_tests::platform::TestPlatform;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_takes_a_tenant_from_sign_up_to_a_working_agent_and_keeps_viewers_read_only() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let browser_tests = root.join("browser");
    let chromium = std::env::var("ORATIO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        browser_tests.join("node_modules/playwright-core").is_dir() && std::path::Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium} and `npm ci --prefix tests/browser`; scripts/test sets both up"
    );
    let p = TestPlatform::start().await;
    let screenshots = root.join("output/browser");
    let status = tokio::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "dashboard.test.mjs"])
        .current_dir(&browser_tests)
        .env("ORATIO_URL", &p.url)
        .env("ORATIO_SCREENSHOTS", &screenshots)
        .env("ORATIO_CHROMIUM", &chromium)
        .status()
        .await
        .expect("running node");
    assert!(status.success(), "the browser tests failed (screenshots in {})", screenshots.display());
}
