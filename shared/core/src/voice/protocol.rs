//! The voice socket's protocol, `oratio.voice.v1`: JSON text frames both ways, each with a
//! `type`. The names follow the OpenAI Realtime API where the meaning is the same
//! (`input_audio_buffer.append`, `response.audio.delta`, …); audio is base64 in the
//! session's format. Every server event carries `event_seq`, counting from 1, so that a
//! client that reconnects can say what it has already seen.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conversations::{Customer, Source};
use crate::speech::VoiceSettings;

/// The protocol this server speaks (also its WebSocket subprotocol).
pub const PROTOCOL: &str = "oratio.voice.v1";

/// How audio is encoded on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Little-endian signed 16-bit PCM, mono.
    Pcm16,
    /// G.711 μ-law, mono (telephony).
    Mulaw,
}

/// An audio format the socket carries: PCM16 at 16 kHz, or μ-law at 8 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFormat {
    pub encoding: Encoding,
    pub sample_rate: u32,
}

/// The shortest and longest audio frame a client may send.
pub const FRAME_MS: std::ops::RangeInclusive<u64> = 20..=100;

impl AudioFormat {
    pub const PCM16: Self = Self { encoding: Encoding::Pcm16, sample_rate: 16_000 };
    pub const MULAW: Self = Self { encoding: Encoding::Mulaw, sample_rate: 8_000 };

    /// Whether this server takes the format.
    pub fn supported(self) -> bool {
        self == Self::PCM16 || self == Self::MULAW
    }

    fn bytes_per_sample(self) -> usize {
        match self.encoding {
            Encoding::Pcm16 => 2,
            Encoding::Mulaw => 1,
        }
    }

    /// Milliseconds of audio in `bytes`, if they are whole samples.
    pub fn duration_ms(self, bytes: usize) -> Option<u64> {
        let per = self.bytes_per_sample();
        bytes.is_multiple_of(per).then(|| (bytes / per) as u64 * 1000 / u64::from(self.sample_rate))
    }

    pub fn decode(self, bytes: &[u8]) -> Vec<i16> {
        match self.encoding {
            Encoding::Pcm16 => bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect(),
            Encoding::Mulaw => bytes.iter().map(|b| crate::speech::mulaw_to_linear(*b)).collect(),
        }
    }

    pub fn encode(self, samples: &[i16]) -> Vec<u8> {
        match self.encoding {
            Encoding::Pcm16 => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            Encoding::Mulaw => samples.iter().map(|s| crate::speech::linear_to_mulaw(*s)).collect(),
        }
    }
}

/// `session.start`: the first message of a connection.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Start {
    /// `oratio.voice.v1` (the default).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The caller's audio, and the agent's (the same format both ways). Default PCM16 16 kHz.
    #[serde(default)]
    pub audio: Option<AudioFormat>,
    /// Who the caller is (kept with a new session).
    #[serde(default)]
    pub customer: Option<Customer>,
    /// The agent's API key, for clients that cannot set a header (browsers).
    #[serde(default)]
    pub api_key: Option<String>,
    /// To resume a session after a dropped connection: its id, its resume token, and the
    /// last `event_seq` this client received.
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub resume_token: Option<String>,
    #[serde(default)]
    pub last_event_seq: Option<u64>,
}

/// What a client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    #[serde(rename = "session.start")]
    Start(Box<Start>),
    /// `seq` counts frames from 1 over the whole session (a resumed session goes on).
    #[serde(rename = "input_audio_buffer.append")]
    Append { seq: u64, audio: String },
    /// The caller's turn is over (without it, the server's endpointing decides).
    #[serde(rename = "input_audio_buffer.commit")]
    Commit,
    /// The caller typed instead of speaking.
    #[serde(rename = "conversation.item.create")]
    Text { text: String },
    /// The client has played the agent's audio up to and including chunk `seq`.
    #[serde(rename = "output_audio.mark")]
    Mark { seq: u64 },
    #[serde(rename = "session.end")]
    End,
}

/// The client event types, for the error a wrong one gets.
pub const CLIENT_EVENTS: &[&str] = &[
    "session.start",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "conversation.item.create",
    "output_audio.mark",
    "session.end",
];

/// A client message this server cannot take: its `error` code and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl ClientEvent {
    /// Parses a text frame: `invalid_json`, `unknown_event` or `invalid_event` when it is
    /// not a client event.
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        // Straight to the event when it is one (an audio frame, fifty times a second);
        // through a `Value` only to say what is wrong with one that is not.
        if let Ok(event) = serde_json::from_str(text) {
            return Ok(event);
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| Refusal::new("invalid_json", format!("not JSON: {e}")))?;
        let kind = value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !CLIENT_EVENTS.contains(&kind.as_str()) {
            return Err(Refusal::new(
                "unknown_event",
                format!("{kind:?} is not a client event; send one of {}", CLIENT_EVENTS.join(", ")),
            ));
        }
        serde_json::from_value(value).map_err(|e| Refusal::new("invalid_event", format!("{kind}: {e}")))
    }
}

/// Why the caller's speech stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCause {
    /// The endpointer heard a silence.
    Silence,
    /// The turn reached its longest (a line that never falls silent).
    MaxTurn,
    /// The client committed the turn.
    Commit,
    /// The client stopped sending audio mid-turn.
    AudioStopped,
}

/// Where a reply's first audio came from, in milliseconds (see the README).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// Audio between the caller's last word and the endpointer's decision.
    pub endpointing_ms: u64,
    /// The end of the turn to its final transcript.
    pub recognition_ms: u64,
    /// The transcript to the agent's first sentence.
    pub agent_ms: u64,
    /// Synthesising the first sentence.
    pub synthesis_ms: u64,
    /// The rest: the platform's own work and waiting.
    pub platform_ms: u64,
    /// The caller's last word to the first audio chunk sent.
    pub total_ms: u64,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    #[serde(rename = "session.created")]
    SessionCreated {
        session_id: String,
        /// Keep it to resume this session after a dropped connection.
        resume_token: String,
        protocol: &'static str,
        resumed: bool,
        input_audio: AudioFormat,
        output_audio: AudioFormat,
        /// How long a dropped session waits for its caller.
        resume_window_secs: u64,
        voice: VoiceSettings,
    },
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted { audio_ms: u64 },
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped { audio_ms: u64, reason: StopCause },
    /// The caller's words so far in this turn (each delta holds the whole text so far).
    #[serde(rename = "conversation.item.input_audio_transcription.delta")]
    TranscriptionDelta { text: String },
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    TranscriptionCompleted { transcript: String },
    /// The sentence the agent is about to speak.
    #[serde(rename = "response.audio_transcript.delta")]
    ResponseTranscriptDelta { text: String },
    /// The agent's audio: chunk `seq` (counting over the session), `duration_ms` long.
    #[serde(rename = "response.audio.delta")]
    ResponseAudio { seq: u64, audio: String, duration_ms: u64 },
    /// The agent's turn, as stored (its audio has all been sent).
    #[serde(rename = "response.done")]
    ResponseDone {
        customer_turn: u32,
        turn: u32,
        transcript: String,
        sources: Vec<Source>,
        /// `active`, `handoff_requested`, `ended`.
        status: String,
        timings: Timings,
    },
    /// The caller spoke over the agent: its audio stopped after `played_ms`, and the stored
    /// turn is cut to `heard`.
    #[serde(rename = "response.interrupted")]
    ResponseInterrupted { turn: Option<u32>, played_ms: u64, heard: String },
    #[serde(rename = "handoff.requested")]
    HandoffRequested { reason: String, summary: Option<String> },
    /// A person took the conversation over (`taken_over`: the agent is silent, their
    /// messages are spoken) or handed it back (`active`).
    #[serde(rename = "session.updated")]
    SessionUpdated { status: String, taken_over_by: Option<String> },
    /// A person's message to the caller (the conversation is taken over), spoken in the
    /// agent's voice as `response.audio.delta` chunks after it.
    #[serde(rename = "conversation.item.operator")]
    OperatorMessage { turn: u32, text: String, author: Option<String> },
    #[serde(rename = "error")]
    Error { code: String, message: String },
    /// `customer`, `agent`, `disconnected`, `idle`, `shutdown`.
    #[serde(rename = "session.ended")]
    SessionEnded { reason: String },
}

impl ServerEvent {
    pub fn error(refusal: Refusal) -> Self {
        Self::Error { code: refusal.code.into(), message: refusal.message }
    }

    /// The event as sent, numbered.
    pub fn sequenced(&self, event_seq: u64) -> String {
        // Written straight out (no `Value` in between: an audio chunk is a kilobyte of
        // base64, fifty times a second per call), the number added before the last brace.
        let mut text = serde_json::to_string(self).expect("server events serialize");
        text.pop();
        text.push_str(&format!(r#","event_seq":{event_seq}}}"#));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_events_parse_and_wrong_ones_say_why() {
        let start = ClientEvent::parse(r#"{"type":"session.start","audio":{"encoding":"mulaw","sample_rate":8000}}"#);
        assert!(matches!(start, Ok(ClientEvent::Start(s)) if s.audio == Some(AudioFormat::MULAW)));
        assert!(matches!(
            ClientEvent::parse(r#"{"type":"input_audio_buffer.append","seq":3,"audio":"AAA="}"#),
            Ok(ClientEvent::Append { seq: 3, .. })
        ));
        assert_eq!(ClientEvent::parse("{").unwrap_err().code, "invalid_json");
        assert_eq!(ClientEvent::parse(r#"{"type":"response.create"}"#).unwrap_err().code, "unknown_event");
        assert_eq!(ClientEvent::parse(r#"{"seq":1}"#).unwrap_err().code, "unknown_event");
        assert_eq!(ClientEvent::parse(r#"{"type":"output_audio.mark","seq":"x"}"#).unwrap_err().code, "invalid_event");
    }

    #[test]
    fn formats_know_their_frames() {
        assert_eq!(AudioFormat::PCM16.duration_ms(640), Some(20));
        assert_eq!(AudioFormat::PCM16.duration_ms(641), None);
        assert_eq!(AudioFormat::MULAW.duration_ms(800), Some(100));
        let samples = vec![0i16, 1000, -1000];
        assert_eq!(AudioFormat::PCM16.decode(&AudioFormat::PCM16.encode(&samples)), samples);
        assert!(!AudioFormat { encoding: Encoding::Pcm16, sample_rate: 44_100 }.supported());
    }

    #[test]
    fn server_events_are_numbered() {
        let sent = ServerEvent::SessionEnded { reason: "customer".into() }.sequenced(7);
        let value: Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(value["type"], "session.ended");
        assert_eq!(value["event_seq"], 7);
    }
}
