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
    // The voice test's caller: flite's `slt` voice with a second of silence either side,
    // fed to Chromium as its fake microphone.
    let speech = oratio::SpeechConfig::Running { url: oratio_tests::speech::worker_url() };
    let config = oratio::Config { speech, ..oratio_tests::platform::test_config() };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await;
    let said = oratio_tests::speech::caller_says("Hello, what time do you open on Saturdays?");
    let said = oratio_core::speech::resample(&said, 16_000).expect("16 kHz");
    let line = [vec![0i16; 16_000], said.samples, vec![0i16; 32_000]].concat();
    let caller = tempfile::NamedTempFile::with_suffix(".wav").expect("a file");
    std::fs::write(caller.path(), oratio_tests::speech::mono_wav(16_000, &line)).expect("written");
    let screenshots = root.join("output/browser");
    let status = tokio::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "dashboard.test.mjs"])
        .current_dir(&browser_tests)
        .env("ORATIO_URL", &p.url)
        .env("ORATIO_SCREENSHOTS", &screenshots)
        .env("ORATIO_CHROMIUM", &chromium)
        .env("ORATIO_CALLER_WAV", caller.path())
        .status()
        .await
        .expect("running node");
    assert!(status.success(), "the browser tests failed (screenshots in {})", screenshots.display());
}
