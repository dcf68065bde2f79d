//! Twilio's side of a phone call.
//!
//! * **The voice webhook** (`POST`, form-encoded): its `X-Twilio-Signature` is checked with
//!   the number's account auth token (HMAC-SHA1 of the URL followed by every parameter's
//!   name and value in name order, base64: Twilio's `RequestValidator`), and the answer is
//!   TwiML, `<Connect><Stream>` to the media socket with a signed [`CallGrant`] as its
//!   `token` parameter (Twilio passes `<Parameter>`s to the socket in `start`; it takes no
//!   query string there).
//! * **Media Streams**: [`MediaStream`] turns Twilio's messages (`connected`, `start`,
//!   `media`, `mark`, `dtmf`, `stop`) into the voice session's client events and the
//!   session's events into Twilio's (`media`, `mark`, and `clear` on barge-in). The
//!   session runs in μ-law at 8 kHz, Twilio's format, so audio passes through untouched.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha1::Sha1;
use sha2::Sha256;

use super::{TelephonyError, mask, route};
use crate::agents::{self, AgentStatus};
use crate::conversations::Customer;
use crate::ids::{AgentId, TenantId};
use crate::secrets::SecretBox;
use crate::table::Table;
use crate::voice::{AudioFormat, ClientEvent, Start};

/// How long the socket may take to come after the webhook's answer.
pub const GRANT_SECS: i64 = 300;

/// What the caller hears when the number answers nobody.
pub const NOT_IN_SERVICE: &str = "Sorry, the number you have called is not in service. Goodbye.";
/// What the caller hears when the number's agent is paused (or not deployed yet).
pub const NOT_TAKING_CALLS: &str =
    "Sorry, we cannot take your call right now. Please try again later, or contact us another way. Goodbye.";

/// The signature Twilio sends in `X-Twilio-Signature` for a request to `url` with these
/// form parameters.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL as Twilio may have signed it: as given, and with its scheme's default port
/// written out or left out (Twilio's own validators try both).
fn url_forms(url: &str) -> Vec<String> {
    let mut forms = vec![url.to_owned()];
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        let Some(rest) = url.strip_prefix(scheme) else { continue };
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        match host.strip_suffix(port) {
            Some(bare) => forms.push(format!("{scheme}{bare}{path}")),
            None if !host.contains(':') => forms.push(format!("{scheme}{host}{port}{path}")),
            None => {}
        }
    }
    forms
}

/// Whether `given` is Twilio's signature of this request.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    url_forms(url).iter().any(|form| {
        let expected = signature(auth_token, form, params);
        // Compared in full whatever the first difference.
        expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// `<Connect><Stream url>` with the stream's parameters.
pub fn connect(stream_url: &str, parameters: &[(&str, &str)]) -> String {
    let params: String = parameters
        .iter()
        .map(|(name, value)| format!(r#"<Parameter name="{}" value="{}"/>"#, escape(name), escape(value)))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{}">{params}</Stream></Connect></Response>"#,
        escape(stream_url)
    )
}

/// Says `message` and hangs up.
pub fn refuse(message: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>{}</Say><Hangup/></Response>"#, escape(message))
}

/// What the media socket may do for one call: signed by the platform, for a short while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallGrant {
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub call_sid: String,
    /// The caller's number as Twilio gave it (`From`: E.164, `anonymous`, `client:…`).
    pub caller: String,
    /// The number called.
    pub called: String,
    /// Seconds since the epoch.
    pub expires: i64,
}

fn grant_mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"twilio-stream/");
    mac.update(payload.as_bytes());
    mac
}

impl CallGrant {
    pub fn issue(&self, key: &[u8]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("grants serialize"));
        let signature = hex::encode(grant_mac(key, &payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The grant a token carries, if the platform signed it and it has not expired.
    pub fn accept(key: &[u8], token: &str, now: i64) -> Option<Self> {
        let (payload, signature) = token.split_once('.')?;
        grant_mac(key, payload).verify_slice(&hex::decode(signature).ok()?).ok()?;
        let grant: Self = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (grant.expires >= now).then_some(grant)
    }

    /// Who calls, as the session keeps them: the number masked, and a customer id that
    /// is the same on every call from that number to this tenant and says nothing of it.
    pub fn customer(&self, key: &[u8]) -> Customer {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(format!("caller/{}/{}", self.tenant_id, self.caller).as_bytes());
        let id = format!("tel:{}", &hex::encode(mac.finalize().into_bytes())[..20]);
        let mut customer = Customer { id: Some(id), channel: Some("phone".into()), ..Customer::default() };
        customer.attributes.insert("caller".into(), mask(&self.caller));
        customer.attributes.insert("called".into(), self.called.clone());
        customer.attributes.insert("call_sid".into(), self.call_sid.clone());
        customer
    }
}

/// Takes the grant for its one stream: a second stream with the same grant (a replayed
/// token) is refused. `Ok(false)`: already taken.
pub async fn claim(table: &dyn Table, grant: &CallGrant) -> Result<bool, TelephonyError> {
    let key = crate::table::Key::new(format!("TENANT#{}", grant.tenant_id), format!("CALLGRANT#{}", grant.call_sid));
    let item = crate::table::Item::new(key).with("agent_id", grant.agent_id.as_str()).expiring_at(grant.expires);
    match table.put(item, Some(crate::table::Condition::NotExists)).await {
        Ok(()) => Ok(true),
        Err(e) if e.is_condition_failed() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A request to the voice webhook, as it came.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// The URL Twilio requested (scheme, host, path, query).
    pub url: String,
    pub params: Vec<(String, String)>,
    pub signature: Option<String>,
}

impl IncomingCall {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The webhook's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CallAnswer {
    /// TwiML that connects the call to the media socket.
    Connect { twiml: String, grant: CallGrant },
    /// TwiML that tells the caller why not and hangs up.
    Refuse { twiml: String, why: &'static str },
    /// Not signed by the number's Twilio account.
    Forbidden,
}

/// Answers Twilio's voice webhook for a call to one of the platform's numbers.
pub async fn answer(
    table: &dyn Table,
    secrets: &dyn SecretBox,
    grant_key: &[u8],
    stream_url: &str,
    call: &IncomingCall,
    now: i64,
) -> Result<CallAnswer, TelephonyError> {
    let Some(route) = route(table, call.param("To").unwrap_or_default()).await? else {
        return Ok(CallAnswer::Refuse { twiml: refuse(NOT_IN_SERVICE), why: "unknown_number" });
    };
    let assignment = &route.assignment;
    let token = secrets.open(&assignment.tenant_id, &route.auth_token).await?;
    let signed = call.signature.as_deref().is_some_and(|s| verify(token.expose(), &call.url, &call.params, s));
    if !signed || call.param("AccountSid") != Some(assignment.account_sid.as_str()) {
        return Ok(CallAnswer::Forbidden);
    }
    let Some(call_sid) = call.param("CallSid").filter(|s| !s.is_empty() && s.len() <= 64) else {
        return Ok(CallAnswer::Forbidden);
    };
    let agent = match agents::get(table, &assignment.tenant_id, &assignment.agent_id).await {
        Ok(agent) if agent.status == AgentStatus::Archived => None,
        Ok(agent) => Some(agent),
        Err(agents::AgentError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(agent) = agent else {
        return Ok(CallAnswer::Refuse { twiml: refuse(NOT_IN_SERVICE), why: "agent_gone" });
    };
    if agent.status != AgentStatus::Active {
        return Ok(CallAnswer::Refuse { twiml: refuse(NOT_TAKING_CALLS), why: "agent_not_taking_calls" });
    }
    let grant = CallGrant {
        tenant_id: assignment.tenant_id.clone(),
        agent_id: assignment.agent_id.clone(),
        call_sid: call_sid.to_owned(),
        caller: call.param("From").unwrap_or("anonymous").chars().take(64).collect(),
        called: assignment.number.to_string(),
        expires: now + GRANT_SECS,
    };
    let twiml = connect(stream_url, &[("token", &grant.issue(grant_key))]);
    Ok(CallAnswer::Connect { twiml, grant })
}

/// A message from Twilio on the media socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum TwilioEvent {
    Connected {},
    Start {
        start: StreamStart,
    },
    Media {
        media: Media,
    },
    Mark {
        mark: MarkName,
    },
    Dtmf {
        dtmf: Dtmf,
    },
    Stop {},
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStart {
    pub stream_sid: String,
    #[serde(default)]
    pub call_sid: String,
    #[serde(default)]
    pub custom_parameters: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub media_format: Option<MediaFormat>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    #[serde(default = "one")]
    pub channels: u32,
}

fn one() -> u32 {
    1
}

impl MediaFormat {
    pub fn is_mulaw_8k(&self) -> bool {
        self.encoding == "audio/x-mulaw" && self.sample_rate == 8000 && self.channels == 1
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub track: Option<String>,
    /// Counts from 1, as a string.
    pub chunk: String,
    pub payload: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MarkName {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dtmf {
    pub digit: String,
}

impl TwilioEvent {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// The session's events a Twilio stream carries.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum SessionEvent {
    #[serde(rename = "response.audio.delta")]
    Audio { seq: u64, audio: String },
    #[serde(rename = "response.interrupted")]
    Interrupted {},
    #[serde(other)]
    Other,
}

/// One call's stream: Twilio's messages in, the session's out.
#[derive(Debug, Clone)]
pub struct MediaStream {
    stream_sid: String,
    /// Keys pressed since the last `#`.
    digits: String,
}

/// The most keys a caller's entry holds.
const MAX_DIGITS: usize = 64;

impl MediaStream {
    pub fn new(stream_sid: impl Into<String>) -> Self {
        Self { stream_sid: stream_sid.into(), digits: String::new() }
    }

    /// The session's start for a call Twilio streams.
    pub fn session_start(grant: &CallGrant, grant_key: &[u8]) -> Start {
        Start { audio: Some(AudioFormat::MULAW), customer: Some(grant.customer(grant_key)), ..Start::default() }
    }

    /// What a message from Twilio asks of the session. Keys pressed are the caller's
    /// typed message once they press `#`.
    pub fn incoming(&mut self, event: TwilioEvent) -> Option<ClientEvent> {
        match event {
            TwilioEvent::Media { media } if media.track.as_deref().is_none_or(|t| t == "inbound") => {
                let seq = media.chunk.parse().ok()?;
                Some(ClientEvent::Append { seq, audio: media.payload })
            }
            TwilioEvent::Mark { mark } => Some(ClientEvent::Mark { seq: mark.name.parse().ok()? }),
            TwilioEvent::Dtmf { dtmf } => match dtmf.digit.as_str() {
                "#" if !self.digits.is_empty() => Some(ClientEvent::Text { text: std::mem::take(&mut self.digits) }),
                digit if digit.len() == 1 && (digit == "*" || digit.as_bytes()[0].is_ascii_digit()) => {
                    if self.digits.len() < MAX_DIGITS {
                        self.digits.push_str(digit);
                    }
                    None
                }
                _ => None,
            },
            TwilioEvent::Stop {} => Some(ClientEvent::End),
            _ => None,
        }
    }

    /// What Twilio is sent for one of the session's events: the agent's audio as `media`
    /// followed by a `mark` named after its chunk (Twilio sends it back once played), and
    /// `clear` when the caller spoke over the agent.
    pub fn outgoing(&self, session_event: &[u8]) -> Vec<String> {
        match serde_json::from_slice(session_event) {
            Ok(SessionEvent::Audio { seq, audio }) => vec![
                json!({"event": "media", "streamSid": self.stream_sid, "media": {"payload": audio}}).to_string(),
                json!({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": seq.to_string()}}).to_string(),
            ],
            Ok(SessionEvent::Interrupted {}) => {
                vec![json!({"event": "clear", "streamSid": self.stream_sid}).to_string()]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn signatures_match_twilios_documented_example() {
        // The example of Twilio's "Webhooks security" page.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(signature("12345", url, &p), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify("12345", url, &p, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(verify("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &p, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!verify("12346", url, &p, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!verify("12345", url, &params(&[("To", "+18005551213")]), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    }

    #[test]
    fn twiml_escapes_what_it_carries() {
        let twiml = connect("wss://x.example/telephony/twilio/media", &[("token", "a&b\"c")]);
        assert!(twiml.contains(r#"<Parameter name="token" value="a&amp;b&quot;c"/>"#), "{twiml}");
        assert!(refuse("<hi>").contains("<Say>&lt;hi&gt;</Say><Hangup/>"));
    }

    #[test]
    fn grants_are_signed_and_expire() {
        let grant = CallGrant {
            tenant_id: TenantId::generate(),
            agent_id: AgentId::generate(),
            call_sid: "CA1".into(),
            caller: "+14155550100".into(),
            called: "+18005550100".into(),
            expires: 1_000,
        };
        let token = grant.issue(b"key");
        assert_eq!(CallGrant::accept(b"key", &token, 999), Some(grant.clone()));
        assert_eq!(CallGrant::accept(b"key", &token, 1_001), None);
        assert_eq!(CallGrant::accept(b"other", &token, 999), None);
        let (payload, sig) = token.split_once('.').unwrap();
        assert_eq!(CallGrant::accept(b"key", &format!("{payload}x.{sig}"), 999), None);
        let customer = grant.customer(b"key");
        assert_eq!(customer.attributes["caller"], "+•••••••0100");
        assert!(!serde_json::to_string(&customer).unwrap().contains("4155550100"));
    }

    #[test]
    fn a_stream_maps_twilios_messages_both_ways() {
        let mut stream = MediaStream::new("MZ1");
        let media = TwilioEvent::parse(
            r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"//8="},"streamSid":"MZ1"}"#,
        )
        .unwrap();
        assert!(matches!(stream.incoming(media), Some(ClientEvent::Append { seq: 2, .. })));
        for digit in ["4", "4", "1", "7"] {
            let event = TwilioEvent::parse(&format!(r#"{{"event":"dtmf","dtmf":{{"digit":"{digit}"}}}}"#)).unwrap();
            assert!(stream.incoming(event).is_none());
        }
        let hash = TwilioEvent::parse(r##"{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"#"}}"##).unwrap();
        assert!(matches!(stream.incoming(hash), Some(ClientEvent::Text { text }) if text == "4417"));
        let mark = TwilioEvent::parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"7"}}"#).unwrap();
        assert!(matches!(stream.incoming(mark), Some(ClientEvent::Mark { seq: 7 })));
        assert!(matches!(stream.incoming(TwilioEvent::parse(r#"{"event":"stop"}"#).unwrap()), Some(ClientEvent::End)));
        assert!(matches!(TwilioEvent::parse(r#"{"event":"something_new"}"#), Some(TwilioEvent::Other)));

        let sent = stream
            .outgoing(br#"{"type":"response.audio.delta","seq":7,"audio":"AAA=","duration_ms":100,"event_seq":9}"#);
        assert_eq!(sent.len(), 2);
        assert!(sent[0].contains(r#""event":"media""#) && sent[1].contains(r#""name":"7""#));
        let cleared =
            stream.outgoing(br#"{"type":"response.interrupted","turn":3,"played_ms":200,"heard":"x","event_seq":10}"#);
        assert_eq!(cleared, vec![r#"{"event":"clear","streamSid":"MZ1"}"#.to_owned()]);
        assert!(stream.outgoing(br#"{"type":"session.created"}"#).is_empty());
    }
}
