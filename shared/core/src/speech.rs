//! Speech: the audio a voice session carries (mono PCM16 at a sample rate; G.711 μ-law
//! for telephony) and the ports a cascaded voice engine is made of: a `Recognizer`
//! (speech to text) and a `Synthesizer` (text to speech, with the agent's
//! `VoiceSettings`). Word error rate, the figure
//! recognisers are judged by, is here too.

use async_trait::async_trait;
use rubato::{FftFixedInOut, Resampler as _};

pub use crate::agents::VoiceSettings;

/// Mono 16-bit PCM at `rate` samples a second.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audio {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Audio {
    pub fn new(rate: u32, samples: Vec<i16>) -> Self {
        Self { rate, samples }
    }

    /// From little-endian PCM16 bytes (an odd last byte is dropped).
    pub fn from_le_bytes(rate: u32, bytes: &[u8]) -> Self {
        Self::new(rate, bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect())
    }

    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// From G.711 μ-law bytes at 8 kHz (telephony).
    pub fn from_mulaw(bytes: &[u8]) -> Self {
        Self::new(8_000, bytes.iter().map(|b| mulaw_to_linear(*b)).collect())
    }

    /// As G.711 μ-law bytes (the audio should be at 8 kHz).
    pub fn to_mulaw(&self) -> Vec<u8> {
        self.samples.iter().map(|s| linear_to_mulaw(*s)).collect()
    }

    pub fn seconds(&self) -> f64 {
        if self.rate == 0 { 0.0 } else { self.samples.len() as f64 / f64::from(self.rate) }
    }
}

const MULAW_BIAS: i32 = 0x84;
const MULAW_CLIP: i32 = 32_635;

/// G.711 μ-law encoding of one sample.
pub fn linear_to_mulaw(sample: i16) -> u8 {
    let mut value = i32::from(sample);
    let sign = if value < 0 { 0x80 } else { 0 };
    if value < 0 {
        value = -value;
    }
    value = value.min(MULAW_CLIP) + MULAW_BIAS;
    let exponent = (7 - (value.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// G.711 μ-law decoding of one byte.
pub fn mulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
    (if byte & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("{0}")]
    Invalid(String),
    #[error("the speech engine is not available: {0}")]
    Unavailable(#[source] anyhow::Error),
    #[error("the speech engine failed")]
    Backend(#[source] anyhow::Error),
}

/// Speech to text.
#[async_trait]
pub trait Recognizer: Send + Sync {
    /// The words spoken in `audio` (any rate: the adapter converts to its model's).
    async fn transcribe(&self, audio: &Audio) -> Result<String, SpeechError>;

    /// Whether it can take audio now (an engine still starting says why not).
    fn ready(&self) -> Result<(), SpeechError> {
        Ok(())
    }
}

/// Text to speech.
#[async_trait]
pub trait Synthesizer: Send + Sync {
    async fn synthesize(&self, text: &str, voice: &VoiceSettings) -> Result<Audio, SpeechError>;
}

/// Word error rate of `heard` against `said`: (substitutions + deletions + insertions) /
/// words said, over words lowercased without punctuation, with digits one word each and
/// the number words zero to nine as digits (so "five five five, one two" and "555-12"
/// agree, as recognisers write numbers either way).
pub fn word_error_rate(said: &str, heard: &str) -> f64 {
    const DIGITS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    let words = |text: &str| -> Vec<String> {
        let mut out = Vec::new();
        for word in text.to_lowercase().split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
            let word = word.trim_matches('\'');
            if let Some(digit) = DIGITS.iter().position(|d| *d == word) {
                out.push(digit.to_string());
            } else if word.chars().all(|c| c.is_ascii_digit()) {
                out.extend(word.chars().map(String::from));
            } else {
                out.push(word.to_owned());
            }
        }
        out.retain(|w| !w.is_empty());
        out
    };
    let (said, heard) = (words(said), words(heard));
    if said.is_empty() {
        return if heard.is_empty() { 0.0 } else { 1.0 };
    }
    // Levenshtein distance over words, one row at a time.
    let mut previous: Vec<usize> = (0..=heard.len()).collect();
    for (i, s) in said.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, h) in heard.iter().enumerate() {
            let substitution = previous[j] + usize::from(s != h);
            row.push(substitution.min(previous[j + 1] + 1).min(row[j] + 1));
        }
        previous = row;
    }
    previous[heard.len()] as f64 / said.len() as f64
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
    fn mulaw_round_trips_within_its_quantisation() {
        for sample in [0i16, 1, -1, 100, -100, 1_000, -1_000, 8_000, -8_000, 32_000, -32_000, i16::MAX, i16::MIN] {
            let back = mulaw_to_linear(linear_to_mulaw(sample));
            let tolerance = (i32::from(sample).abs() / 16).max(8);
            assert!(
                (i32::from(back) - i32::from(sample).clamp(-MULAW_CLIP, MULAW_CLIP)).abs() <= tolerance,
                "{sample} -> {back}"
            );
        }
        // G.711's table: silence is 0xFF, and the loudest positive sample 0x80.
        assert_eq!(linear_to_mulaw(0), 0xff);
        assert_eq!(linear_to_mulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_mulaw(i16::MIN), 0x00);
    }

    #[test]
    fn word_error_rate_counts_edits_over_words_said() {
        assert_eq!(word_error_rate("When are you open on Saturday?", "when are you open on saturday"), 0.0);
        assert_eq!(word_error_rate("book a cleaning for Tuesday", "book the cleaning for Tuesday"), 0.2);
        assert_eq!(word_error_rate("my name is Ana", "my name is"), 0.25);
        assert_eq!(word_error_rate("yes", "yes yes"), 1.0);
        assert_eq!(word_error_rate("call five five five, one two", "Call 555-12."), 0.0);
    }

    #[test]
    fn audio_converts_between_bytes_and_samples() {
        let audio = Audio::new(16_000, vec![0, 1, -1, i16::MAX, i16::MIN]);
        assert_eq!(Audio::from_le_bytes(16_000, &audio.to_le_bytes()), audio);
        assert_eq!(Audio::new(8_000, vec![0; 4_000]).seconds(), 0.5);
    }

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
