//! The cascaded engine: a recogniser, the agent and a synthesiser, one after the other.
//!
//! The caller's audio goes through the [`Endpointer`] as it arrives; at each pause the
//! words so far are recognised, so that when the silence that ends the turn is heard the
//! transcript is usually ready. The transcript goes to the agent through [`Turns`]; the
//! reply is split into sentences as the agent writes it and each sentence is synthesised
//! and handed on as soon as it is complete.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::engine::{EngineCall, EngineEvent, EngineSession, GREETING, VoiceEngine};
use super::{StopCause, Timings, speakable};
use crate::endpointing::{Endpoint, Endpointer, StopReason};
use crate::speech::{Audio, Recognizer, SpeechError, Synthesizer, VoiceSettings};
use crate::turns::{CustomerMessage, Turns};

/// The engines a cascaded voice session runs on.
#[derive(Clone)]
pub struct Cascaded {
    pub recognizer: Arc<dyn Recognizer>,
    pub synthesizer: Arc<dyn Synthesizer>,
}

#[async_trait]
impl VoiceEngine for Cascaded {
    fn ready(&self) -> Result<(), SpeechError> {
        self.recognizer.ready()
    }

    async fn open(&self, call: EngineCall) -> Result<Box<dyn EngineSession>, SpeechError> {
        Ok(Box::new(CascadedSession::new(self.clone(), call)))
    }
}

/// What the session's own tasks report back to it.
enum Internal {
    /// Words recognised in the utterance `utterance`, covering its first `covered` samples.
    Recognised { utterance: u64, covered: usize, text: Result<String, SpeechError> },
    /// Everything else goes straight on to the session.
    Event(EngineEvent),
    /// A sentence of reply `response`, spoken: `agent_ms` (first sentence only) after the
    /// agent was asked, in `synthesis_ms`.
    Sentence { response: u64, text: String, audio: Audio, agent_ms: u64, synthesis_ms: u64 },
}

/// The caller's words of one turn, ready for the agent.
struct Said {
    text: String,
    /// When the turn's end was decided (for the timings), and its endpointing and
    /// recognition times.
    decided: Instant,
    endpointing_ms: u64,
    recognition_ms: u64,
    speech: Option<(u64, u64)>,
}

/// The caller's utterance being heard.
struct Utterance {
    id: u64,
    /// Session audio (the session's rate), from a little before speech was detected.
    samples: Vec<i16>,
    /// Where in the session's audio it starts (samples).
    start: usize,
    started_ms: u64,
    /// Words recognised so far, and how many samples they cover.
    heard: Option<(usize, String)>,
    /// A recognition running, over this many samples.
    recognising: Option<usize>,
    /// The turn is over: waiting for words that cover the speech up to this sample.
    closing: Option<Closing>,
}

struct Closing {
    needed: usize,
    decided: Instant,
    endpointing_ms: u64,
    stopped_ms: u64,
}

/// The reply being produced.
struct Reply {
    id: u64,
    said: Said,
    interrupted: Arc<AtomicBool>,
    timed: bool,
}

/// Audio kept from before speech is detected, so that a turn's first word is whole.
const PREROLL: Duration = Duration::from_millis(400);

/// While the caller speaks, the words so far are recognised at least this often.
const RECOGNISE_EVERY: Duration = Duration::from_millis(1_500);

struct CascadedSession {
    engines: Cascaded,
    call: EngineCall,
    internal: mpsc::UnboundedSender<Internal>,
    reports: mpsc::UnboundedReceiver<Internal>,
    out: VecDeque<EngineEvent>,
    /// Samples of caller audio so far.
    heard_samples: usize,
    last_audio: Instant,
    endpointer: Endpointer,
    preroll: VecDeque<i16>,
    /// The utterance being heard, and those heard that wait for their words.
    utterance: Option<Utterance>,
    closing: VecDeque<Utterance>,
    utterances: u64,
    queue: VecDeque<Said>,
    reply: Option<Reply>,
    replies: u64,
    /// What is being said outside a reply (the greeting, a person's message), and its stop.
    aside: Option<(u64, Arc<AtomicBool>)>,
    winding_down: bool,
}

impl CascadedSession {
    fn new(engines: Cascaded, call: EngineCall) -> Self {
        let (internal, reports) = mpsc::unbounded_channel();
        let endpointer = Endpointer::new(call.limits.endpointing);
        Self {
            engines,
            call,
            internal,
            reports,
            out: VecDeque::new(),
            heard_samples: 0,
            last_audio: Instant::now(),
            endpointer,
            preroll: VecDeque::new(),
            utterance: None,
            closing: VecDeque::new(),
            utterances: 0,
            queue: VecDeque::new(),
            reply: None,
            replies: 0,
            aside: None,
            winding_down: false,
        }
    }

    fn rate(&self) -> u32 {
        self.call.format.sample_rate
    }

    fn samples_of(&self, ms: u64) -> usize {
        (ms * u64::from(self.rate()) / 1000) as usize
    }

    fn speech_started(&mut self, at_ms: u64) {
        self.out.push_back(EngineEvent::SpeechStarted { audio_ms: at_ms });
        self.utterances += 1;
        let samples: Vec<i16> = self.preroll.iter().copied().collect();
        let start = self.heard_samples.saturating_sub(samples.len());
        self.utterance = Some(Utterance {
            id: self.utterances,
            samples,
            start,
            started_ms: at_ms,
            heard: None,
            recognising: None,
            closing: None,
        });
    }

    /// Recognises the words of the open utterance so far, unless a recognition runs.
    fn recognise_so_far(&mut self) {
        let (recognizer, report, rate) = (self.engines.recognizer.clone(), self.internal.clone(), self.rate());
        if let Some(utterance) = &mut self.utterance {
            recognise(utterance, rate, recognizer, report);
        }
    }

    /// The caller's turn is over: its words are what was recognised if that covers the
    /// speech, else what the recognition of the whole utterance says.
    fn stop_speech(&mut self, cause: StopCause) {
        let voiced_ms = self.endpointer.last_voiced_ms();
        if cause != StopCause::Silence && cause != StopCause::MaxTurn {
            self.endpointer.finish();
        }
        let Some(mut utterance) = self.utterance.take() else { return };
        let stopped_ms = self.heard_samples as u64 * 1000 / u64::from(self.rate());
        let needed = self.samples_of(voiced_ms).saturating_sub(utterance.start).min(utterance.samples.len());
        utterance.closing = Some(Closing {
            needed,
            decided: Instant::now(),
            endpointing_ms: if cause == StopCause::Silence { stopped_ms.saturating_sub(voiced_ms) } else { 0 },
            stopped_ms,
        });
        self.out.push_back(EngineEvent::SpeechStopped { audio_ms: stopped_ms, reason: cause });
        self.closing.push_back(utterance);
        self.settle_utterances();
    }

    /// Closed utterances whose words are in become the caller's turns, in order; those
    /// still without them get a recognition of all of their audio.
    fn settle_utterances(&mut self) {
        let (recognizer, rate) = (self.engines.recognizer.clone(), self.rate());
        for u in &mut self.closing {
            let needed = u.closing.as_ref().map_or(0, |c| c.needed);
            if u.heard.as_ref().is_none_or(|(covered, _)| *covered < needed) {
                recognise(u, rate, recognizer.clone(), self.internal.clone());
            }
        }
        while self.closing.front().is_some_and(|u| {
            let needed = u.closing.as_ref().map_or(0, |c| c.needed);
            u.heard.as_ref().is_some_and(|(covered, _)| *covered >= needed)
        }) {
            let utterance = self.closing.pop_front().expect("checked above");
            self.close_as_heard(utterance);
        }
    }

    fn close_as_heard(&mut self, utterance: Utterance) {
        let Some(closing) = utterance.closing else { return };
        let text = utterance.heard.map(|(_, text)| text).unwrap_or_default().trim().to_owned();
        if text.is_empty() {
            return;
        }
        self.out.push_back(EngineEvent::Transcribed { text: text.clone() });
        self.queue.push_back(Said {
            text,
            decided: closing.decided,
            endpointing_ms: closing.endpointing_ms,
            recognition_ms: closing.decided.elapsed().as_millis() as u64,
            speech: Some((utterance.started_ms, closing.stopped_ms)),
        });
        self.next_reply();
    }

    /// Speaks `text` in the agent's voice as response `id`, outside any reply.
    fn aside(&mut self, id: u64, text: String) {
        let (synthesizer, voice, report) =
            (self.engines.synthesizer.clone(), self.call.agent.voice.clone(), self.internal.clone());
        let stop = Arc::new(AtomicBool::new(false));
        self.aside = Some((id, stop.clone()));
        tokio::spawn(async move {
            let started = Instant::now();
            match synthesizer.synthesize(&text, &voice).await {
                Ok(audio) if !stop.load(Ordering::Relaxed) => {
                    let synthesis_ms = started.elapsed().as_millis() as u64;
                    let _ = report.send(Internal::Sentence { response: id, text, audio, agent_ms: 0, synthesis_ms });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(cause = %e, "synthesising speech outside a reply failed"),
            }
        });
    }

    /// Starts the agent on the next turn waiting, if it is free.
    fn next_reply(&mut self) {
        if self.reply.is_some() || self.winding_down {
            return;
        }
        let Some(said) = self.queue.pop_front() else { return };
        self.replies += 1;
        let (id, interrupted) = (self.replies, Arc::new(AtomicBool::new(false)));
        let message = CustomerMessage {
            message: said.text.clone(),
            session_id: Some(self.call.session.session_id.clone()),
            customer: None,
            channel: "voice",
        };
        let session = &self.call.session;
        let reply = Replying {
            turns: self.call.turns.clone(),
            synthesizer: self.engines.synthesizer.clone(),
            voice: self.call.agent.voice.clone(),
            report: self.internal.clone(),
            id,
            stop: interrupted.clone(),
            speech: said.speech,
        };
        tokio::spawn(reply.run(session.tenant_id.clone(), session.agent_id.clone(), message));
        self.reply = Some(Reply { id, said, interrupted, timed: false });
    }

    fn report(&mut self, report: Internal) {
        match report {
            Internal::Recognised { utterance, covered, text } => self.recognised(utterance, covered, text),
            Internal::Sentence { response, text, audio, agent_ms, synthesis_ms } => {
                let mut timings = None;
                if let Some(r) = self.reply.as_mut().filter(|r| r.id == response && !r.timed) {
                    r.timed = true;
                    let total_ms = r.said.decided.elapsed().as_millis() as u64 + r.said.endpointing_ms;
                    let parts = r.said.endpointing_ms + r.said.recognition_ms + agent_ms + synthesis_ms;
                    timings = Some(Timings {
                        endpointing_ms: r.said.endpointing_ms,
                        recognition_ms: r.said.recognition_ms,
                        agent_ms,
                        synthesis_ms,
                        platform_ms: total_ms.saturating_sub(parts),
                        total_ms,
                    });
                }
                self.out.push_back(EngineEvent::Speech { response, text, audio, timings });
            }
            Internal::Event(event) => {
                if let EngineEvent::Answered { response, .. } = &event
                    && self.reply.as_ref().is_some_and(|r| r.id == *response)
                {
                    self.reply = None;
                    self.out.push_back(event);
                    self.next_reply();
                } else {
                    self.out.push_back(event);
                }
            }
        }
    }

    fn recognised(&mut self, utterance: u64, covered: usize, text: Result<String, SpeechError>) {
        let open = self.utterance.as_mut().filter(|u| u.id == utterance);
        let Some(u) = open.or_else(|| self.closing.iter_mut().find(|u| u.id == utterance)) else { return };
        u.recognising = None;
        match text {
            Ok(text) => {
                let text = text.trim().to_owned();
                if u.heard.as_ref().is_none_or(|(before, _)| covered > *before) {
                    u.heard = Some((covered, text.clone()));
                    if !text.is_empty() && u.closing.is_none() {
                        self.out.push_back(EngineEvent::Heard { text });
                    }
                }
            }
            Err(e) => {
                tracing::warn!(cause = %e, "recognising the caller failed");
                if u.closing.is_some() {
                    // Its words cannot be had: the caller is asked to say it again.
                    self.closing.retain(|u| u.id != utterance);
                    self.out.push_back(EngineEvent::Error {
                        code: "recognition_failed",
                        message: "the speech could not be recognised; say it again".into(),
                    });
                }
            }
        }
        self.settle_utterances();
    }
}

#[async_trait]
impl EngineSession for CascadedSession {
    fn audio(&mut self, samples: &[i16]) {
        self.last_audio = Instant::now();
        self.heard_samples += samples.len();
        self.preroll.extend(samples.iter().copied());
        let keep = self.samples_of(PREROLL.as_millis() as u64);
        while self.preroll.len() > keep {
            self.preroll.pop_front();
        }
        let wideband = to_16k(samples, self.rate());
        if let Some(utterance) = &mut self.utterance {
            utterance.samples.extend_from_slice(samples);
        }
        for endpoint in self.endpointer.push(&wideband) {
            match endpoint {
                Endpoint::SpeechStarted { at_ms } => self.speech_started(at_ms),
                Endpoint::Paused { .. } => self.recognise_so_far(),
                Endpoint::SpeechStopped { reason, .. } => self.stop_speech(match reason {
                    StopReason::Silence => StopCause::Silence,
                    StopReason::MaxTurn => StopCause::MaxTurn,
                }),
            }
        }
        let due = self.samples_of(RECOGNISE_EVERY.as_millis() as u64);
        if let Some(u) = &self.utterance
            && u.samples.len() >= u.heard.as_ref().map_or(0, |(covered, _)| *covered) + due
        {
            self.recognise_so_far();
        }
    }

    fn commit(&mut self) -> bool {
        let open = self.utterance.is_some();
        if open {
            self.stop_speech(StopCause::Commit);
        }
        open
    }

    fn text(&mut self, text: String) {
        let said = Said { text, decided: Instant::now(), endpointing_ms: 0, recognition_ms: 0, speech: None };
        self.queue.push_back(said);
        self.next_reply();
    }

    fn greet(&mut self, text: String) {
        self.aside(GREETING, text);
    }

    fn say(&mut self, text: String) {
        self.replies += 1;
        self.aside(self.replies, text);
    }

    fn barge_in(&mut self, response: u64) {
        if let Some(reply) = self.reply.as_ref().filter(|r| r.id == response) {
            reply.interrupted.store(true, Ordering::Relaxed);
        }
        if let Some((_, stop)) = self.aside.as_ref().filter(|(id, _)| *id == response) {
            stop.store(true, Ordering::Relaxed);
        }
    }

    fn hold(&mut self) {
        self.stop_speech(StopCause::AudioStopped);
    }

    fn tick(&mut self) {
        if self.utterance.is_some() && self.last_audio.elapsed() >= self.call.limits.endpointing.silence {
            self.stop_speech(StopCause::AudioStopped);
        }
    }

    fn wind_down(&mut self) {
        self.winding_down = true;
    }

    fn busy(&self) -> bool {
        self.reply.is_some()
    }

    async fn next(&mut self) -> EngineEvent {
        loop {
            if let Some(event) = self.out.pop_front() {
                return event;
            }
            // The session holds a sender, so this never ends.
            let Some(report) = self.reports.recv().await else { std::future::pending().await };
            self.report(report);
        }
    }
}

/// One reply in the making: the agent asked, its words spoken as they come.
struct Replying {
    turns: Turns,
    synthesizer: Arc<dyn Synthesizer>,
    voice: VoiceSettings,
    report: mpsc::UnboundedSender<Internal>,
    id: u64,
    stop: Arc<AtomicBool>,
    speech: Option<(u64, u64)>,
}

impl Replying {
    async fn run(self, tenant: crate::ids::TenantId, agent: crate::ids::AgentId, message: CustomerMessage) {
        let send = |event| {
            let _ = self.report.send(Internal::Event(event));
        };
        let accepted = match self.turns.accept(&tenant, &agent, message).await {
            Ok(accepted) => accepted,
            Err(e) => return send(EngineEvent::Answered { response: self.id, result: Box::new(Err(e)) }),
        };
        send(EngineEvent::Accepted { response: self.id, customer_turn: accepted.turn.turn, speech: self.speech });
        let began = Instant::now();
        let (pieces, written) = mpsc::unbounded_channel::<String>();
        let answering = async {
            let sink = move |piece: &str| {
                let _ = pieces.send(piece.to_owned());
            };
            self.turns.answer(&accepted, Some(&sink)).await
        };
        let (result, spoken) = tokio::join!(answering, self.speak(written, began));
        // An agent that did not stream is spoken whole.
        if let Ok(answered) = &result
            && !spoken
        {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(answered.turn.text.clone());
            drop(tx);
            self.speak(rx, began).await;
        }
        send(EngineEvent::Answered { response: self.id, result: Box::new(result) });
    }

    /// Speaks the reply as it is written: sentence by sentence, each handed on as soon as
    /// it is spoken. Stops when interrupted. Whether anything was written.
    async fn speak(&self, mut written: mpsc::UnboundedReceiver<String>, began: Instant) -> bool {
        let mut pending = String::new();
        let (mut wrote, mut first) = (false, true);
        loop {
            let piece = written.recv().await;
            let done = piece.is_none();
            if let Some(piece) = piece {
                wrote |= !piece.trim().is_empty();
                pending.push_str(&piece);
            }
            let mut sentences = take_sentences(&mut pending);
            if done && !pending.trim().is_empty() {
                sentences.push(std::mem::take(&mut pending));
            }
            for sentence in sentences {
                let spoken = speakable(&sentence);
                if spoken.is_empty() || self.stop.load(Ordering::Relaxed) {
                    continue;
                }
                let agent_ms = if first { began.elapsed().as_millis() as u64 } else { 0 };
                let started = Instant::now();
                match self.synthesizer.synthesize(&spoken, &self.voice).await {
                    Ok(audio) => {
                        let synthesis_ms = started.elapsed().as_millis() as u64;
                        first = false;
                        let response = self.id;
                        let _ = self.report.send(Internal::Sentence {
                            response,
                            text: spoken,
                            audio,
                            agent_ms,
                            synthesis_ms,
                        });
                    }
                    Err(e) => tracing::warn!(cause = %e, "synthesising a sentence failed"),
                }
            }
            if done {
                return wrote;
            }
        }
    }
}

/// Starts recognising all of `utterance` heard so far, unless a recognition of it runs.
fn recognise(
    utterance: &mut Utterance,
    rate: u32,
    recognizer: Arc<dyn Recognizer>,
    report: mpsc::UnboundedSender<Internal>,
) {
    if utterance.recognising.is_some() || utterance.samples.is_empty() {
        return;
    }
    let covered = utterance.samples.len();
    utterance.recognising = Some(covered);
    let (audio, id) = (Audio::new(rate, utterance.samples.clone()), utterance.id);
    tokio::spawn(async move {
        let text = recognizer.transcribe(&audio).await;
        let _ = report.send(Internal::Recognised { utterance: id, covered, text });
    });
}

/// Session audio at 16 kHz for the endpointer (telephony's 8 kHz doubled; the detector
/// needs no better).
fn to_16k(samples: &[i16], rate: u32) -> Vec<i16> {
    if rate == 16_000 {
        return samples.to_vec();
    }
    let mut out = Vec::with_capacity(samples.len() * 2);
    for (i, s) in samples.iter().enumerate() {
        let next = samples.get(i + 1).copied().unwrap_or(*s);
        out.push(*s);
        out.push(((i32::from(*s) + i32::from(next)) / 2) as i16);
    }
    out
}

/// The whole sentences at the front of `text`, taken out of it. A sentence ends at `.`,
/// `!`, `?`, `;` or a line break followed by a space, once it is long enough to be worth
/// speaking on its own (so that "Dr. Lee" or "No." alone does not make a sentence).
fn take_sentences(text: &mut String) -> Vec<String> {
    const SHORTEST: usize = 16;
    let mut sentences = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, (at, c)) in chars.iter().enumerate() {
        let ends =
            matches!(c, '.' | '!' | '?' | ';' | '\n') && chars.get(i + 1).is_some_and(|(_, next)| next.is_whitespace());
        if ends && text[start..=*at].trim().chars().count() >= SHORTEST {
            sentences.push(text[start..=*at].to_owned());
            start = at + c.len_utf8();
        }
    }
    text.drain(..start);
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cut_into_sentences_worth_speaking() {
        let mut text = "Sure. Dr. Lee sees patients on Tuesdays. We open at 9.30 on Saturdays! And the rest".to_owned();
        let sentences = take_sentences(&mut text);
        assert_eq!(sentences, ["Sure. Dr. Lee sees patients on Tuesdays.", " We open at 9.30 on Saturdays!"]);
        assert_eq!(text, " And the rest");
    }
}
