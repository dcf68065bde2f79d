//! A local Bedrock runtime that plays Nova 2 Sonic: HTTP/2 over TLS (a certificate made
//! for the run), `POST /model/{model}/invoke-with-bidirectional-stream` with the Bedrock
//! event-stream framing both ways (signed input envelopes, `chunk` events whose payload is
//! `{"bytes": base64 JSON}`). Each stream plays one part of a recorded exchange
//! (`tests/data/sonic_exchange.json`): it waits for the caller's audio or the client's
//! tool result where the recording says so, and sends Sonic's events, with the agent's
//! speech synthesised from the recorded words at 24 kHz. Every input event of every
//! stream is kept for the test to check.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use oratio_core::speech::resample;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What one stream received, and over which HTTP version.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub http2: bool,
    pub model: String,
    pub events: Vec<Value>,
}

pub struct SonicServer {
    pub url: String,
    /// The certificate authority to trust (PEM).
    pub ca_pem: String,
    pub streams: Arc<Mutex<Vec<Received>>>,
}

impl SonicServer {
    /// Serves the recorded exchange; stream `n` plays its part `n`.
    pub async fn start() -> Self {
        Self::serve(false).await
    }

    /// Refuses every stream as Bedrock does a model the account may not use (403
    /// `AccessDeniedException`).
    pub async fn refusing() -> Self {
        Self::serve(true).await
    }

    async fn serve(refuse: bool) -> Self {
        let exchange: Value =
            serde_json::from_str(include_str!("../data/sonic_exchange.json")).expect("the recorded exchange");
        let parts: Arc<Vec<Value>> = Arc::new(exchange["streams"].as_array().expect("streams").clone());
        let cert =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("a certificate");
        let ca_pem = cert.cert.pem();
        let key =
            tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("a key");
        let mut tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("a TLS configuration");
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        let streams: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = streams.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, parts, kept) = (acceptor.clone(), parts.clone(), kept.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |request| {
                        let (parts, kept) = (parts.clone(), kept.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(if refuse {
                                refused(request, &kept)
                            } else {
                                stream(request, &parts, &kept)
                            })
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { url: format!("https://localhost:{}", addr.port()), ca_pem, streams }
    }

    pub fn received(&self) -> Vec<Received> {
        self.streams.lock().expect("lock").clone()
    }
}

type Body = StreamBody<frames::Receiver>;

/// One bidirectional stream: its input read and kept, its part of the exchange played.
fn stream(
    request: hyper::Request<Incoming>,
    parts: &[Value],
    kept: &Arc<Mutex<Vec<Received>>>,
) -> hyper::Response<Body> {
    // The model id is a path segment, its `:` percent-encoded.
    let model = request.uri().path().trim_start_matches("/model/").split('/').next().unwrap_or_default();
    let model = model.replace("%3A", ":").replace("%3a", ":");
    let index = {
        let mut streams = kept.lock().expect("lock");
        streams.push(Received { http2: request.version() == hyper::Version::HTTP_2, model, events: Vec::new() });
        streams.len() - 1
    };
    let part = parts.get(index).and_then(Value::as_array).cloned().unwrap_or_default();
    let (events_tx, events_rx) = mpsc::unbounded_channel::<Value>();
    let kept = kept.clone();
    let mut body = request.into_body();
    tokio::spawn(async move {
        let (mut decoder, mut buffer) = (MessageFrameDecoder::new(), BytesMut::new());
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            buffer.extend_from_slice(&data);
            while let Ok(DecodedFrame::Complete(envelope)) = decoder.decode_frame(&mut buffer) {
                // The signed envelope carries the event message as its payload.
                let Ok(message) = read_message_from(envelope.payload().as_ref()) else { continue };
                let Some(event) = serde_json::from_slice::<Value>(message.payload())
                    .ok()
                    .and_then(|chunk| chunk["bytes"].as_str().and_then(|b| BASE64.decode(b).ok()))
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                else {
                    continue;
                };
                kept.lock().expect("lock")[index].events.push(event.clone());
                let _ = events_tx.send(event);
            }
        }
    });
    let (frames_tx, frames_rx) = mpsc::channel(1024);
    tokio::spawn(play(part, events_rx, frames_tx));
    hyper::Response::builder()
        .header("content-type", "application/vnd.amazon.eventstream")
        .body(StreamBody::new(frames::Receiver(frames_rx)))
        .expect("a response")
}

/// Bedrock's answer to a model the account has no access to.
fn refused(request: hyper::Request<Incoming>, kept: &Arc<Mutex<Vec<Received>>>) -> hyper::Response<Body> {
    kept.lock()
        .expect("lock")
        .push(Received { http2: request.version() == hyper::Version::HTTP_2, ..Default::default() });
    let (tx, rx) = mpsc::channel(1);
    let body = json!({"message": "You don't have access to the model with the specified model ID."});
    let _ = tx.try_send(Bytes::from(body.to_string()));
    hyper::Response::builder()
        .status(403)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/")
        .body(StreamBody::new(frames::Receiver(rx)))
        .expect("a response")
}

/// Plays a part of the exchange: waits where it says, sends Sonic's events.
async fn play(part: Vec<Value>, mut input: mpsc::UnboundedReceiver<Value>, output: mpsc::Sender<Bytes>) {
    let mut prompt = String::new();
    for step in part {
        if let Some(wait) = step["await"].as_str() {
            let mut audio_ms = 0u64;
            let wanted_ms = step["ms"].as_u64().unwrap_or(0);
            loop {
                let Some(event) = input.recv().await else { return };
                if let Some(name) = event["event"]["promptStart"]["promptName"].as_str() {
                    prompt = name.to_owned();
                }
                if let Some(content) = event["event"]["audioInput"]["content"].as_str() {
                    audio_ms += BASE64.decode(content).map_or(0, |b| b.len() as u64 / 32);
                }
                let done = match wait {
                    "audio" => audio_ms >= wanted_ms,
                    _ => event["event"].get("toolResult").is_some(),
                };
                if done {
                    break;
                }
            }
        } else if let Some(text) = step["speak"].as_str() {
            let voice = crate::speech::caller_says_with("rms", text);
            let audio = resample(&voice, 24_000).expect("24 kHz");
            for chunk in audio.samples.chunks(1_920) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
                let event = json!({"audioOutput": {"promptName": prompt, "content": BASE64.encode(bytes)}});
                if output.send(frame(event)).await.is_err() {
                    return;
                }
            }
        } else if let Some(Value::Object(event)) = step.get("send") {
            let mut event = event.clone();
            for body in event.values_mut() {
                if let Value::Object(fields) = body {
                    fields.insert("promptName".into(), json!(prompt));
                }
            }
            if output.send(frame(Value::Object(event))).await.is_err() {
                return;
            }
        }
    }
    // The rest is kept, until the client closes its side.
    while input.recv().await.is_some() {}
}

/// One output event as Bedrock frames it.
fn frame(event: Value) -> Bytes {
    let chunk = json!({"bytes": BASE64.encode(json!({"event": event}).to_string())});
    let message = Message::new(chunk.to_string().into_bytes())
        .add_header(Header::new(":event-type", HeaderValue::String("chunk".into())))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
        .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).expect("a frame");
    Bytes::from(out)
}

/// A channel of frames as an HTTP body.
mod frames {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use hyper::body::Frame;

    pub struct Receiver(pub tokio::sync::mpsc::Receiver<Bytes>);

    impl futures::Stream for Receiver {
        type Item = Result<Frame<Bytes>, std::convert::Infallible>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx).map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
        }
    }
}
