//! Endpointing: when a caller has started and finished speaking. A voice-activity detector
//! (earshot's neural VAD, 16 ms frames at 16 kHz) scores each frame; speech starts after
//! `speech_start` of voiced frames in a row and stops after `silence` of unvoiced ones.
//! A line that never falls silent (hold music, an IVR, a noisy street) can never stall a
//! turn: a turn ends at `max_turn` whatever the detector says. Time here is audio time,
//! which is wall-clock time for a live stream; a stream that stops arriving is the voice
//! relay's to time out.

use std::time::Duration;

/// Samples a detector frame holds (16 ms at 16 kHz).
pub const FRAME_SAMPLES: usize = 256;
const FRAME_MS: u64 = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointingSettings {
    /// Detector score from which a frame is speech.
    pub threshold: f32,
    /// Voiced audio in a row before speech counts as started.
    pub speech_start: Duration,
    /// Unvoiced audio in a row that ends a turn.
    pub silence: Duration,
    /// Unvoiced audio in a row that is a pause within a turn (recognition can catch up).
    pub pause: Duration,
    /// The longest a turn may last.
    pub max_turn: Duration,
}

impl Default for EndpointingSettings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            speech_start: Duration::from_millis(64),
            silence: Duration::from_millis(640),
            pause: Duration::from_millis(240),
            max_turn: Duration::from_secs(20),
        }
    }
}

/// What the endpointer noticed, at a time in the stream (milliseconds of audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Speech began (at its first voiced frame).
    SpeechStarted { at_ms: u64 },
    /// The caller paused within the turn (once per pause).
    Paused { at_ms: u64 },
    /// The turn is over: a silence after speech, or `max_turn`.
    SpeechStopped { at_ms: u64, reason: StopReason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Silence,
    MaxTurn,
}

/// Scores a frame of `FRAME_SAMPLES` at 16 kHz: 0 no voice, 1 voice.
pub trait VoiceActivity: Send {
    fn score(&mut self, frame: &[i16]) -> f32;
}

impl VoiceActivity for earshot::Detector {
    fn score(&mut self, frame: &[i16]) -> f32 {
        self.predict_i16(frame)
    }
}

/// One stream's endpointer; feed it 16 kHz audio as it arrives.
pub struct Endpointer {
    settings: EndpointingSettings,
    detector: Box<dyn VoiceActivity>,
    partial: Vec<i16>,
    frames: u64,
    voiced_run: u64,
    unvoiced_run: u64,
    /// The frame the current turn's speech started at.
    started: Option<u64>,
    /// The frames heard so far when the last voiced one ended.
    last_voiced: u64,
}

impl Endpointer {
    /// With earshot's detector.
    pub fn new(settings: EndpointingSettings) -> Self {
        Self::with_detector(settings, earshot::Detector::default_boxed())
    }

    pub fn with_detector(settings: EndpointingSettings, detector: Box<dyn VoiceActivity>) -> Self {
        Self {
            settings,
            detector,
            partial: Vec::with_capacity(FRAME_SAMPLES),
            frames: 0,
            voiced_run: 0,
            unvoiced_run: 0,
            started: None,
            last_voiced: 0,
        }
    }

    /// Where the last voiced frame ended, in milliseconds of audio.
    pub fn last_voiced_ms(&self) -> u64 {
        self.last_voiced * FRAME_MS
    }

    /// Whether the caller is speaking (a turn is open).
    pub fn speaking(&self) -> bool {
        self.started.is_some()
    }

    /// Takes the next stretch of 16 kHz audio; what it noticed in it, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Endpoint> {
        let mut noticed = Vec::new();
        for sample in samples {
            self.partial.push(*sample);
            if self.partial.len() == FRAME_SAMPLES {
                let score = self.detector.score(&self.partial);
                self.partial.clear();
                noticed.extend(self.frame(score >= self.settings.threshold));
            }
        }
        noticed
    }

    /// Ends the turn now (the client said its turn is over), if one is open.
    pub fn finish(&mut self) -> Option<Endpoint> {
        self.started.take().map(|_| {
            self.reset_runs();
            Endpoint::SpeechStopped { at_ms: self.frames * FRAME_MS, reason: StopReason::Silence }
        })
    }

    fn frame(&mut self, voiced: bool) -> Option<Endpoint> {
        self.frames += 1;
        let frames = |d: Duration| (d.as_millis() as u64).div_ceil(FRAME_MS).max(1);
        if voiced {
            self.voiced_run += 1;
            self.unvoiced_run = 0;
            self.last_voiced = self.frames;
        } else {
            self.unvoiced_run += 1;
            self.voiced_run = 0;
        }
        let now_ms = self.frames * FRAME_MS;
        match self.started {
            None if self.voiced_run >= frames(self.settings.speech_start) => {
                let first = self.frames - self.voiced_run;
                self.started = Some(first);
                Some(Endpoint::SpeechStarted { at_ms: first * FRAME_MS })
            }
            Some(_) if self.unvoiced_run >= frames(self.settings.silence) => {
                self.started = None;
                self.reset_runs();
                Some(Endpoint::SpeechStopped { at_ms: now_ms, reason: StopReason::Silence })
            }
            Some(first) if self.frames - first >= frames(self.settings.max_turn) => {
                self.started = None;
                self.reset_runs();
                Some(Endpoint::SpeechStopped { at_ms: now_ms, reason: StopReason::MaxTurn })
            }
            Some(_) if self.unvoiced_run == frames(self.settings.pause) => Some(Endpoint::Paused { at_ms: now_ms }),
            _ => None,
        }
    }

    fn reset_runs(&mut self) {
        self.voiced_run = 0;
        self.unvoiced_run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_starts_no_turn() {
        let mut endpointer = Endpointer::new(EndpointingSettings::default());
        assert!(endpointer.push(&vec![0; 16_000 * 3]).is_empty());
        assert!(!endpointer.speaking());
        assert_eq!(endpointer.finish(), None);
    }

    /// A detector that hears voice in every frame (as on a line with hold music).
    struct Always;

    impl VoiceActivity for Always {
        fn score(&mut self, _: &[i16]) -> f32 {
            1.0
        }
    }

    #[test]
    fn a_line_that_never_falls_silent_cannot_stall_a_turn() {
        let settings = EndpointingSettings { max_turn: Duration::from_secs(5), ..EndpointingSettings::default() };
        let mut endpointer = Endpointer::with_detector(settings, Box::new(Always));
        let noticed = endpointer.push(&vec![1_000; 16_000 * 12]);
        assert_eq!(
            noticed,
            [
                Endpoint::SpeechStarted { at_ms: 0 },
                Endpoint::SpeechStopped { at_ms: 5_008, reason: StopReason::MaxTurn },
                Endpoint::SpeechStarted { at_ms: 5_008 },
                Endpoint::SpeechStopped { at_ms: 10_016, reason: StopReason::MaxTurn },
                Endpoint::SpeechStarted { at_ms: 10_016 },
            ]
        );
        assert!(endpointer.speaking());
        assert!(matches!(endpointer.finish(), Some(Endpoint::SpeechStopped { reason: StopReason::Silence, .. })));
    }
}
