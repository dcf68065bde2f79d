//! A simulated Twilio: it signs voice webhooks with the official `twilio` helper library's
//! `RequestValidator` (the Python package, run by the test venv's Python), and speaks the
//! Media Streams protocol over a WebSocket as Twilio does: `connected`, `start`, 20 ms
//! `media` frames of base64 μ-law at 8 kHz with their chunk numbers and timestamps,
//! `mark` echoes once the audio before a mark has played, `dtmf`, `stop`.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use oratio_core::speech::{Audio, resample};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::speech::{Socket, python};

/// `X-Twilio-Signature` for a POST of `params` to `url`, computed by the `twilio` package.
pub fn sign(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let script = "import json, sys\nfrom twilio.request_validator import RequestValidator\n\
        token, url, params = json.loads(sys.stdin.read())\n\
        print(RequestValidator(token).compute_signature(url, dict(params)))";
    let input = json!([auth_token, url, params]).to_string();
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the test venv's Python (scripts/test installs twilio)");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes()).expect("written");
    let out = child.wait_with_output().expect("signed");
    assert!(out.status.success(), "the twilio package signs");
    String::from_utf8(out.stdout).expect("UTF-8").trim().to_owned()
}

/// A call's webhook parameters, as Twilio sends them for an inbound call.
pub fn call_params<'a>(account_sid: &'a str, call_sid: &'a str, from: &'a str, to: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", account_sid),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", from),
        ("Direction", "inbound"),
        ("From", from),
        ("FromCountry", "US"),
        ("To", to),
        ("ToCountry", "US"),
    ]
}

/// The `<Stream url>` and its `token` parameter of a `<Connect><Stream>` answer.
pub fn stream_of(twiml: &str) -> Option<(String, String)> {
    let attribute = |after: &str, name: &str| -> Option<String> {
        let start = twiml.find(after)? + after.len();
        let rest = &twiml[start..];
        let at = rest.find(&format!("{name}=\""))? + name.len() + 2;
        let value = &rest[at..at + rest[at..].find('"')?];
        Some(quick_xml::escape::unescape(value).ok()?.into_owned())
    };
    Some((attribute("<Stream", "url")?, attribute("<Parameter name=\"token\"", "value")?))
}

/// Twilio's end of one call's media stream.
pub struct TwilioStream {
    socket: Socket,
    pub stream_sid: String,
    sequence: u64,
    chunk: u64,
    /// Every message the server sent, in order.
    pub received: Vec<Value>,
    /// The agent's audio as played (μ-law bytes), in order.
    pub played: Vec<u8>,
}

impl TwilioStream {
    /// Opens the stream at `url` as `<Connect><Stream>` does and sends `connected` and
    /// `start` with the TwiML's `token`.
    pub async fn open(url: &str, token: &str, account_sid: &str, call_sid: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("the media socket");
        let stream_sid = format!("MZ{}", "0123456789abcdef".repeat(2));
        let mut stream = Self {
            socket,
            stream_sid: stream_sid.clone(),
            sequence: 0,
            chunk: 0,
            received: Vec::new(),
            played: Vec::new(),
        };
        stream.send(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})).await;
        let sequence = stream.next_sequence();
        stream
            .send(json!({
                "event": "start",
                "sequenceNumber": sequence,
                "start": {
                    "accountSid": account_sid,
                    "streamSid": stream_sid,
                    "callSid": call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": {"token": token},
                },
                "streamSid": stream_sid,
            }))
            .await;
        stream
    }

    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    pub async fn send(&mut self, message: Value) {
        self.socket.send(Message::Text(message.to_string().into())).await.expect("sent");
    }

    /// The caller's audio as 20 ms `media` frames (160 bytes of μ-law), then `silence_ms`
    /// of silence; `paced` sends them in real time, as a phone line does.
    pub async fn say(&mut self, audio: &Audio, silence_ms: usize, paced: bool) {
        let mut line = resample(audio, 8_000).expect("resampled").samples;
        line.extend(std::iter::repeat_n(0, silence_ms * 8));
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for samples in line.chunks(160) {
            let mut samples = samples.to_vec();
            samples.resize(160, 0);
            if paced {
                tick.tick().await;
            }
            self.chunk += 1;
            let (sequence, chunk) = (self.next_sequence(), self.chunk);
            let payload = base64::engine::general_purpose::STANDARD.encode(Audio::new(8_000, samples).to_mulaw());
            let media = json!({
                "event": "media",
                "sequenceNumber": sequence,
                "media": {"track": "inbound", "chunk": chunk.to_string(), "timestamp": ((chunk - 1) * 20).to_string(), "payload": payload},
                "streamSid": self.stream_sid,
            });
            self.send(media).await;
        }
    }

    /// Speaks `audio` in real time, then keeps the line open with silence, as a phone line
    /// does; the time from the end of the speech to the agent's first audio, if it came
    /// within `wait`.
    pub async fn time_to_answer(&mut self, audio: &Audio, wait: Duration) -> Option<Duration> {
        let mut line = resample(audio, 8_000).expect("resampled").samples;
        let speech_frames = line.len().div_ceil(160);
        line.resize(speech_frames * 160, 0);
        let silence = wait.as_millis() as usize / 20;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let (mut sent, mut ended) = (0, None);
        while sent < speech_frames + silence {
            tokio::select! {
                _ = tick.tick() => {
                    let samples = line.get(sent * 160..(sent + 1) * 160).map_or_else(|| vec![0; 160], <[i16]>::to_vec);
                    self.chunk += 1;
                    let (sequence, chunk) = (self.next_sequence(), self.chunk);
                    let payload = base64::engine::general_purpose::STANDARD.encode(Audio::new(8_000, samples).to_mulaw());
                    self.send(json!({"event": "media", "sequenceNumber": sequence, "streamSid": self.stream_sid,
                        "media": {"track": "inbound", "chunk": chunk.to_string(), "timestamp": ((chunk - 1) * 20).to_string(), "payload": payload}}))
                        .await;
                    sent += 1;
                    if sent == speech_frames {
                        ended = Some(tokio::time::Instant::now());
                    }
                }
                message = self.socket.next() => {
                    let Some(Ok(Message::Text(text))) = message else { return None };
                    let message: Value = serde_json::from_str(&text).expect("JSON");
                    if message["event"] == "media"
                        && let Some(ended) = ended
                    {
                        return Some(ended.elapsed());
                    }
                }
            }
        }
        None
    }

    /// Keys pressed on the phone.
    pub async fn press(&mut self, digits: &str) {
        for digit in digits.chars() {
            let sequence = self.next_sequence();
            let dtmf = json!({"event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": sequence,
                "dtmf": {"track": "inbound_track", "digit": digit.to_string()}});
            self.send(dtmf).await;
        }
    }

    /// The caller hangs up.
    pub async fn stop(&mut self, account_sid: &str, call_sid: &str) {
        let sequence = self.next_sequence();
        let stop = json!({"event": "stop", "sequenceNumber": sequence, "streamSid": self.stream_sid,
            "stop": {"accountSid": account_sid, "callSid": call_sid}});
        self.send(stop).await;
    }

    /// The next message from the server (within 60 s), with Twilio's side effects: audio is
    /// played, and a mark is echoed once what came before it has played. `None` once closed.
    pub async fn next(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.expect("a message in 60 s");
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            };
            let message: Value = serde_json::from_str(&text).expect("JSON from the server");
            assert_eq!(message["streamSid"], self.stream_sid, "every message names the stream: {message}");
            match message["event"].as_str() {
                Some("media") => {
                    let payload = message["media"]["payload"].as_str().expect("a payload");
                    self.played.extend(base64::engine::general_purpose::STANDARD.decode(payload).expect("base64"));
                }
                Some("mark") => {
                    let sequence = self.next_sequence();
                    let echo = json!({"event": "mark", "sequenceNumber": sequence, "streamSid": self.stream_sid,
                        "mark": {"name": message["mark"]["name"]}});
                    self.send(echo).await;
                }
                Some("clear") => {}
                other => panic!("Twilio takes media, mark and clear; the server sent {other:?}"),
            }
            self.received.push(message.clone());
            return Some(message);
        }
    }

    /// Reads messages until one of `event`; panics if the stream closes first.
    pub async fn until(&mut self, event: &str) -> Value {
        loop {
            match self.next().await {
                Some(message) if message["event"] == event => return message,
                Some(_) => {}
                None => panic!("the stream closed before {event}"),
            }
        }
    }

    /// Reads until no audio came for `quiet`.
    pub async fn until_quiet(&mut self, quiet: Duration) {
        while let Ok(Some(_)) = tokio::time::timeout(quiet, self.next()).await {}
    }

    /// The code the socket closes with.
    pub async fn close_code(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await.expect("closed in 30 s") {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(text))) => self.received.push(serde_json::from_str(&text).expect("JSON")),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// What the caller heard, as audio.
    pub fn heard(&self) -> Audio {
        Audio::from_mulaw(&self.played)
    }
}
