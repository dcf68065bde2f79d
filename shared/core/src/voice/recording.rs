//! A voice session's recording: the caller on the left channel, the agent on the right,
//! on one timeline (the caller's audio as it arrived; the agent's placed where it was
//! sent, cut where the caller interrupted it), written as a 16-bit stereo WAV.

/// The longest a recording keeps (the session goes on unrecorded after it).
pub const MAX_RECORDING_SECS: u32 = 60 * 60;

pub struct Recording {
    rate: u32,
    caller: Vec<i16>,
    agent: Vec<i16>,
}

impl Recording {
    pub fn new(rate: u32) -> Self {
        Self { rate, caller: Vec::new(), agent: Vec::new() }
    }

    fn room(&self, track: &[i16]) -> usize {
        (MAX_RECORDING_SECS as usize * self.rate as usize).saturating_sub(track.len())
    }

    /// Samples of caller audio so far: the session's clock.
    pub fn now(&self) -> usize {
        self.caller.len()
    }

    pub fn caller(&mut self, samples: &[i16]) {
        let room = self.room(&self.caller);
        self.caller.extend_from_slice(&samples[..samples.len().min(room)]);
    }

    /// Adds agent audio as it is sent: after what the agent said before, and no earlier
    /// than now. Returns where it starts.
    pub fn agent(&mut self, samples: &[i16]) -> usize {
        let at = self.agent.len().max(self.caller.len());
        self.agent.resize(at, 0);
        let room = self.room(&self.agent);
        self.agent.extend_from_slice(&samples[..samples.len().min(room)]);
        at
    }

    /// The agent was interrupted: nothing of its audio after `at` was heard.
    pub fn cut_agent(&mut self, at: usize) {
        self.agent.truncate(at);
    }

    /// As a WAV file (RIFF, PCM, 2 channels, 16 bits).
    pub fn wav(&self) -> Vec<u8> {
        let frames = self.caller.len().max(self.agent.len());
        let data = (frames * 4) as u32;
        let mut out = Vec::with_capacity(44 + data as usize);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&self.rate.to_le_bytes());
        out.extend_from_slice(&(self.rate * 4).to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data.to_le_bytes());
        for i in 0..frames {
            out.extend_from_slice(&self.caller.get(i).copied().unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&self.agent.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_is_placed_on_the_callers_timeline_and_cut_where_interrupted() {
        let mut recording = Recording::new(8_000);
        recording.caller(&[1; 100]);
        assert_eq!(recording.agent(&[2; 50]), 100);
        assert_eq!(recording.agent(&[3; 50]), 150);
        recording.cut_agent(120);
        recording.caller(&[1; 100]);
        let wav = recording.wav();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 200 * 4);
        let right = |frame: usize| i16::from_le_bytes([wav[44 + frame * 4 + 2], wav[44 + frame * 4 + 3]]);
        assert_eq!((right(99), right(100), right(119), right(120)), (0, 2, 2, 0));
    }
}
