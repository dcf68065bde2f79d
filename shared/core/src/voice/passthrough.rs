//! The pass-through engine: each frame of the caller's audio goes straight back as the
//! agent's, with no inference. It measures what the platform itself costs a live session
//! (the voice benchmark's concurrency run), and is `ORATIO_SPEECH=passthrough`.

use std::collections::VecDeque;

use async_trait::async_trait;

use super::engine::{EngineCall, EngineEvent, EngineSession, VoiceEngine};
use crate::speech::{Audio, SpeechError};

pub struct PassThrough;

#[async_trait]
impl VoiceEngine for PassThrough {
    async fn open(&self, call: EngineCall) -> Result<Box<dyn EngineSession>, SpeechError> {
        Ok(Box::new(Echo { rate: call.format.sample_rate, out: VecDeque::new() }))
    }
}

struct Echo {
    rate: u32,
    out: VecDeque<EngineEvent>,
}

/// The reply its audio belongs to (there is one, endless).
const ECHO: u64 = 1;

#[async_trait]
impl EngineSession for Echo {
    fn audio(&mut self, samples: &[i16]) {
        let audio = Audio::new(self.rate, samples.to_vec());
        self.out.push_back(EngineEvent::Speech { response: ECHO, text: String::new(), audio, timings: None });
    }

    fn commit(&mut self) -> bool {
        false
    }

    fn text(&mut self, _text: String) {}

    fn barge_in(&mut self, _response: u64) {}

    fn wind_down(&mut self) {}

    fn busy(&self) -> bool {
        false
    }

    async fn next(&mut self) -> EngineEvent {
        match self.out.pop_front() {
            Some(event) => event,
            None => std::future::pending().await,
        }
    }
}
