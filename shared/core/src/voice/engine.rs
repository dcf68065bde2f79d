//! The `VoiceEngine` port: what turns a caller's audio into the agent's. A session's
//! [`Call`](super) keeps what every engine shares (the socket's events and their replay,
//! the recording, what was played and barge-in, the stored session); the engine does the
//! hearing and the speaking, and asks the agent through the same [`Turns`] service as a
//! typed message.
//!
//! Engines: [`Cascaded`](super::cascaded::Cascaded) (a recogniser, the agent, a
//! synthesiser; the embedded default), [`PassThrough`](super::passthrough::PassThrough)
//! (sends the caller's audio straight back, for load tests) and Nova 2 Sonic
//! (speech to speech on Bedrock, in `oratio-aws`).

use async_trait::async_trait;

use crate::agents::Agent;
use crate::conversations::Session;
use crate::speech::{Audio, SpeechError};
use crate::turns::{Answered, TurnError, Turns};

use super::{AudioFormat, StopCause, Timings, VoiceLimits};

/// What an engine is given to run one session.
#[derive(Clone)]
pub struct EngineCall {
    pub agent: Agent,
    pub session: Session,
    /// The socket's audio format: what [`EngineSession::audio`] is given.
    pub format: AudioFormat,
    pub limits: VoiceLimits,
    pub turns: Turns,
}

/// What an engine tells its session.
#[derive(Debug)]
pub enum EngineEvent {
    /// The caller started speaking, at this point of their audio.
    SpeechStarted {
        audio_ms: u64,
    },
    SpeechStopped {
        audio_ms: u64,
        reason: StopCause,
    },
    /// Words heard so far in the caller's turn.
    Heard {
        text: String,
    },
    /// The caller's turn, as recognised.
    Transcribed {
        text: String,
    },
    /// The agent took the caller's turn as the stored turn `customer_turn`; `speech` is
    /// when in the caller's audio it was said (ms), if it was spoken.
    Accepted {
        response: u64,
        customer_turn: u32,
        speech: Option<(u64, u64)>,
    },
    /// Audio of reply `response` (any rate; the session converts it), with the words it
    /// says (empty: more audio of the words before). `timings` come with a reply's first
    /// audio.
    Speech {
        response: u64,
        text: String,
        audio: Audio,
        timings: Option<Timings>,
    },
    /// The engine heard the caller speak over the reply.
    Interrupted,
    /// Reply `response` is over: stored, or failed.
    Answered {
        response: u64,
        result: Box<Result<Answered, TurnError>>,
    },
    /// Something the client should know (a protocol error code and message).
    Error {
        code: &'static str,
        message: String,
    },
    /// The engine cannot go on: the caller is told (`engine_error`) and the session ends
    /// `failed`, its turns, transcript and recording kept.
    Failed {
        message: String,
    },
}

/// Replies count from 1; the greeting is reply 0.
pub const GREETING: u64 = 0;

/// An engine: opens one [`EngineSession`] per voice session.
#[async_trait]
pub trait VoiceEngine: Send + Sync {
    /// Whether it can take a session now (an engine still starting says why not).
    fn ready(&self) -> Result<(), SpeechError> {
        Ok(())
    }

    async fn open(&self, call: EngineCall) -> Result<Box<dyn EngineSession>, SpeechError>;
}

/// One session's engine. Its methods are called from the session's task, one at a time;
/// what it has to say comes out of [`next`](Self::next).
#[async_trait]
pub trait EngineSession: Send {
    /// The caller's audio, in the session's format's rate, as it arrives.
    fn audio(&mut self, samples: &[i16]);
    /// The caller says their turn is over. False when there is no speech to commit.
    fn commit(&mut self) -> bool;
    /// The caller typed a message.
    fn text(&mut self, text: String);
    /// Speaks the agent's greeting as the call opens.
    fn greet(&mut self, _text: String) {}
    /// Speaks a person's message (the conversation is taken over) in the agent's voice.
    /// Engines that cannot speak given text leave it unsaid; the client still gets it as
    /// `conversation.item.operator`.
    fn say(&mut self, _text: String) {}
    /// The caller spoke over reply `response`: stop producing its audio.
    fn barge_in(&mut self, response: u64);
    /// The caller's connection dropped: nothing more will come of the speech so far.
    fn hold(&mut self) {}
    /// Called every 50 ms.
    fn tick(&mut self) {}
    /// The session is ending: start no new reply.
    fn wind_down(&mut self);
    /// A reply is being produced.
    fn busy(&self) -> bool;
    /// The next event (pending until there is one). Cancel-safe.
    async fn next(&mut self) -> EngineEvent;
    /// The session is over.
    async fn close(&mut self) {}
}
