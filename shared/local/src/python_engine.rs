//! A long-lived Python engine on a loopback port: installed on first use into a virtual
//! environment of its own (pip, from the package registry), started with a lifeline on
//! its standard input (it exits with the platform's process however that ends), waited
//! for until its health route answers, and restarted with backoff if it dies. The
//! embedding engine and the speech worker are two.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow};

/// What an engine is: the import that proves a Python can run it, the packages that
/// provide it, and the program that serves it (`{port}` is replaced by its port).
#[derive(Debug, Clone)]
pub struct EngineSpec {
    /// For logs and errors: `the embedding engine`.
    pub name: &'static str,
    pub import: &'static str,
    pub packages: &'static [&'static str],
    /// Python source; the lifeline is prepended.
    pub program: String,
    /// The path answering 200 once it is ready (`/health`).
    pub health: &'static str,
    /// How long loading may take.
    pub start_timeout: Duration,
}

impl EngineSpec {
    /// Whether `python` can run the engine.
    pub async fn available(&self, python: &Path) -> bool {
        tokio::process::Command::new(python)
            .args(["-c", &format!("import {}", self.import)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    /// `python` when it can run the engine; else a virtual environment at `venv` with the
    /// packages installed (once), and its Python.
    pub async fn python(&self, python: &Path, venv: &Path) -> anyhow::Result<PathBuf> {
        if self.available(python).await {
            return Ok(python.to_owned());
        }
        let venv_python = venv.join("bin").join("python");
        if self.available(&venv_python).await {
            return Ok(venv_python);
        }
        let created = tokio::process::Command::new(python)
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .await
            .with_context(|| format!("running {}", python.display()))?;
        if !created.status.success() {
            return Err(anyhow!("creating {}: {}", venv.display(), String::from_utf8_lossy(&created.stderr).trim()));
        }
        let installed = tokio::process::Command::new(&venv_python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(self.packages)
            .output()
            .await
            .context("running pip")?;
        if !installed.status.success() {
            let tail: String = String::from_utf8_lossy(&installed.stderr).lines().last().unwrap_or_default().to_owned();
            return Err(anyhow!("installing {}: {tail}", self.packages.join(" ")));
        }
        Ok(venv_python)
    }

    /// Starts the engine with `python` (its messages going to `log`) and waits until it
    /// answers.
    pub async fn start(&self, python: PathBuf, log: PathBuf) -> anyhow::Result<PythonEngine> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let name = self.name;
        // The engine exits when its standard input closes: when the platform's process
        // ends, however it ends (an exit skips `kill_on_drop`).
        let program = format!(
            "import os, sys, threading\n\
             threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n{}",
            self.program.replace("{port}", &port.to_string())
        );
        let spawn = {
            let (python, log) = (python.clone(), log.clone());
            move || {
                let log = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
                tokio::process::Command::new(&python)
                    .args(["-c", &program])
                    .env("PYTHONUNBUFFERED", "1")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(log))
                    .kill_on_drop(true)
                    .spawn()
            }
        };
        let mut child = spawn().with_context(|| format!("starting {name} with {}", python.display()))?;
        let health = format!("http://127.0.0.1:{port}{}", self.health);
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + self.start_timeout;
        loop {
            if let Ok(Some(exit)) = child.try_wait() {
                let logged = std::fs::read_to_string(&log).unwrap_or_default();
                let last = logged.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_owned();
                return Err(anyhow!("{name} stopped ({exit}): {last}"));
            }
            if http.get(&health).timeout(Duration::from_millis(500)).send().await.is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow!("{name} did not answer within {:?}", self.start_timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let supervisor = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                // `wait` closes the child's standard input: the pipe is kept open here.
                let _lifeline = child.stdin.take();
                let exit = child.wait().await;
                tracing::warn!(?exit, "{name} stopped; starting it again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                match spawn() {
                    Ok(next) => child = next,
                    Err(e) => {
                        tracing::error!(cause = %e, "{name} could not be started again");
                        return;
                    }
                }
            }
        });
        Ok(PythonEngine { origin: format!("http://127.0.0.1:{port}"), supervisor })
    }
}

/// A running engine; dropping it stops it.
pub struct PythonEngine {
    origin: String,
    supervisor: tokio::task::JoinHandle<()>,
}

impl PythonEngine {
    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl Drop for PythonEngine {
    fn drop(&mut self) {
        // The supervisor owns the child (killed on drop): stopping it stops the engine.
        self.supervisor.abort();
    }
}
