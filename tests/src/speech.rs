//! Speech for voice tests: the embedded speech worker, started once per test process with
//! the Python `scripts/test` provisions and stopped when the process exits; callers'
//! voices from Debian's `flite` (not the agent's voice); and a client of the voice socket.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use oratio_core::speech::{Audio, resample};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The Python that has the speech packages.
pub fn python() -> PathBuf {
    std::env::var_os("ORATIO_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

struct Worker {
    url: String,
    // Held so that the worker's stdin stays open until the process exits.
    _child: Mutex<Child>,
}

static WORKER: OnceLock<Worker> = OnceLock::new();

fn start_worker() -> Worker {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
    let program = format!(
        "import os, sys, threading\n\
         threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()\n{}",
        oratio_local::speech::worker(2).program.replace("{port}", &port.to_string())
    );
    let mut child = Command::new(python())
        .args(["-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the speech worker starts (scripts/test installs its packages)");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("the speech worker stopped ({exit}): run scripts/test, which installs its packages");
        }
        if crate::embeddings::healthy(port) {
            return Worker { url: format!("http://127.0.0.1:{port}"), _child: Mutex::new(child) };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the speech worker did not answer in 120 s")
}

/// The shared worker's origin.
pub fn worker_url() -> String {
    WORKER.get_or_init(start_worker).url.clone()
}

/// `text` spoken by flite's `voice` (`slt`, `awb`, `rms`, `kal16`), as a caller would.
pub fn caller_says_with(voice: &str, text: &str) -> Audio {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("said.wav");
    let status = Command::new("flite")
        .args(["-voice", voice, "-t", text, "-o"])
        .arg(&wav)
        .status()
        .expect("flite (scripts/test installs it)");
    assert!(status.success());
    read_wav(&std::fs::read(wav).expect("the WAV"))
}

/// `text` spoken by flite's `slt` voice.
pub fn caller_says(text: &str) -> Audio {
    caller_says_with("slt", text)
}

/// A PCM16 WAV's audio (its first channel).
pub fn read_wav(bytes: &[u8]) -> Audio {
    let (rate, channels, data) = wav_parts(bytes);
    let samples: Vec<i16> =
        data.chunks_exact(2 * channels).map(|frame| i16::from_le_bytes([frame[0], frame[1]])).collect();
    Audio::new(rate, samples)
}

/// Mono PCM16 as a WAV file.
pub fn mono_wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data as usize);
    for part in [&b"RIFF"[..], &(36 + data).to_le_bytes(), b"WAVEfmt ", &16u32.to_le_bytes(), &1u16.to_le_bytes()] {
        out.extend_from_slice(part);
    }
    for part in [&1u16.to_le_bytes()[..], &rate.to_le_bytes(), &(rate * 2).to_le_bytes(), &2u16.to_le_bytes()] {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    out.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    out
}

/// A PCM16 WAV's (sample rate, channels, data).
pub fn wav_parts(bytes: &[u8]) -> (u32, usize, &[u8]) {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let mut at = 12;
    let (mut rate, mut channels) = (0, 1);
    while at + 8 <= bytes.len() {
        let (id, size) = (&bytes[at..at + 4], u32_at(at + 4) as usize);
        if id == b"fmt " {
            channels = usize::from(u16::from_le_bytes([bytes[at + 10], bytes[at + 11]]));
            rate = u32_at(at + 12);
        } else if id == b"data" {
            return (rate, channels, &bytes[at + 8..(at + 8 + size).min(bytes.len())]);
        }
        at += 8 + size + size % 2;
    }
    panic!("no data chunk")
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A caller's application on the voice socket.
pub struct VoiceClient {
    pub socket: Socket,
    /// Every server event received, in order.
    pub events: Vec<Value>,
    /// The next frame's number.
    pub frame: u64,
    /// `pcm16` at 16 kHz or `mulaw` at 8 kHz.
    pub rate: u32,
}

impl VoiceClient {
    /// Connects to `agent`'s voice socket at `url` (the platform's), with `key` in the
    /// `X-Api-Key` header if given; the HTTP status and body if the upgrade is refused.
    pub async fn connect(url: &str, agent: &str, key: Option<&str>) -> Result<Self, (u16, String)> {
        let ws = format!("{}/v1/agents/{agent}/voice", url.replacen("http://", "ws://", 1));
        let mut request = ws.into_client_request().expect("a request");
        if let Some(key) = key {
            request.headers_mut().insert("x-api-key", key.parse().expect("a header"));
        }
        Self::open(request).await
    }

    /// Connects to `agent` through the voice relay (API Gateway's shape: `/ws/voice`).
    pub async fn connect_relay(url: &str, agent: &str, key: Option<&str>) -> Result<Self, (u16, String)> {
        let ws = format!("{}/ws/voice?agent_id={agent}", url.replacen("http://", "ws://", 1));
        let mut request = ws.into_client_request().expect("a request");
        if let Some(key) = key {
            request.headers_mut().insert("x-api-key", key.parse().expect("a header"));
        }
        Self::open(request).await
    }

    /// Connects with a request built by the caller (headers, subprotocols).
    pub async fn open(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, (u16, String)> {
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket, events: Vec::new(), frame: 1, rate: 16_000 }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
                Err((response.status().as_u16(), body.unwrap_or_default()))
            }
            Err(e) => panic!("connecting to the voice socket: {e}"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket.send(Message::Text(message.to_string().into())).await.expect("sent");
    }

    /// Starts a session (PCM16 16 kHz unless `start` says otherwise); `session.created`.
    pub async fn start(&mut self, start: Value) -> Value {
        let mut message = json!({"type": "session.start"});
        if let (Value::Object(m), Value::Object(more)) = (&mut message, start) {
            m.extend(more);
        }
        if message["audio"]["encoding"] == "mulaw" {
            self.rate = 8_000;
        }
        self.send(message).await;
        self.until("session.created").await
    }

    /// The next server event (within 60 s); `None` once the socket is closed.
    pub async fn next(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.expect("an event in 60 s");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let event: Value = serde_json::from_str(&text).expect("a JSON event");
                    self.events.push(event.clone());
                    return Some(event);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads events until one of type `kind`; panics on the socket's end.
    pub async fn until(&mut self, kind: &str) -> Value {
        loop {
            let event = self.next().await.unwrap_or_else(|| {
                let seen: Vec<String> = self.events.iter().map(|e| format!("{} {}", e["type"], e["code"])).collect();
                panic!("closed before {kind}; received {seen:?}")
            });
            if event["type"] == kind {
                return event;
            }
        }
    }

    /// The code the socket closes with (skipping events).
    pub async fn close_code(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.expect("closed in 30 s");
            match frame {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(text))) => self.events.push(serde_json::from_str(&text).expect("JSON")),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The caller's audio in the session's format, as numbered 20 ms frames, followed by
    /// `silence_ms` of silence; `paced` sends it in real time.
    pub async fn say(&mut self, audio: &Audio, silence_ms: usize, paced: bool) {
        let mut line = resample(audio, self.rate).expect("resampled").samples;
        line.extend(std::iter::repeat_n(0, silence_ms * self.rate as usize / 1000));
        let frame = self.rate as usize / 50;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for samples in line.chunks(frame) {
            let mut samples = samples.to_vec();
            samples.resize(frame, 0);
            if paced {
                tick.tick().await;
            }
            let bytes: Vec<u8> = if self.rate == 8_000 {
                Audio::new(8_000, samples).to_mulaw()
            } else {
                samples.iter().flat_map(|s| s.to_le_bytes()).collect()
            };
            let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
            let seq = self.frame;
            self.frame += 1;
            self.send(json!({"type": "input_audio_buffer.append", "seq": seq, "audio": audio})).await;
        }
    }

    /// The agent's audio received for the events from `from` on, at the session's rate.
    pub fn agent_audio(&self, from: usize) -> Audio {
        let mut samples = Vec::new();
        for event in self.events[from..].iter().filter(|e| e["type"] == "response.audio.delta") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(event["audio"].as_str().expect("audio"))
                .expect("base64");
            if self.rate == 8_000 {
                samples.extend(Audio::from_mulaw(&bytes).samples);
            } else {
                samples.extend(Audio::from_le_bytes(16_000, &bytes).samples);
            }
        }
        Audio::new(self.rate, samples)
    }
}
