//! The embedded platform, started on port 0 with a fresh data directory, for end-to-end
//! tests that speak to it only over HTTP and WebSocket.

use std::path::Path;

use oratio::{Config, Platform};
use tempfile::TempDir;

pub struct TestPlatform {
    pub url: String,
    pub http: reqwest::Client,
    pub platform: Option<Platform>,
    pub data_dir: TempDir,
}

impl TestPlatform {
    pub async fn start() -> Self {
        crate::init_logs();
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        Self::start_in(data_dir, Config::default()).await
    }

    pub async fn start_in(data_dir: TempDir, config: Config) -> Self {
        let platform = oratio::start(Config { port: 0, data_dir: data_dir.path().to_path_buf(), ..config })
            .await
            .expect("starting the platform");
        Self { url: platform.url(), http: reqwest::Client::new(), platform: Some(platform), data_dir }
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.url.replacen("http://", "ws://", 1))
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    /// Stops the platform, keeping its data directory.
    pub async fn stop(mut self) -> TempDir {
        self.platform.take().expect("running").stop().await.expect("clean stop");
        self.data_dir
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.url)).send().await.expect("request")
    }
}
