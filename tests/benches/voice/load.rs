//! How many live voice sessions one process carries: N callers each stream 20 ms frames
//! of audio in real time to a voice agent on the pass-through engine (no inference; each
//! frame comes back as the agent's audio), and the round trip of every frame is measured.
//! Beside it, in the same run, the same load against a bare WebSocket echo server: the
//! floor of sockets, JSON frames and this load generator on this machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use oratio::Config;
use oratio_tests::platform::{TestPlatform, test_config};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long each caller streams at a level.
const STREAMING: Duration = Duration::from_secs(10);
const FRAME: Duration = Duration::from_millis(20);
/// A level holds when 95 % of frames come back within this, and none is lost.
const TARGET_P95_MS: f64 = 200.0;
const LEVELS: [usize; 7] = [100, 250, 500, 1_000, 1_500, 2_000, 3_000];

/// One level's outcome.
struct Level {
    sent: usize,
    lost: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    /// CPU time of the whole process (callers, server, kernel on its behalf) per frame
    /// carried both ways: the cost that does not depend on how busy the machine was.
    cpu_us_per_frame: f64,
}

/// CPU time this process has used (user and system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: field 14 and 15 are utime and stime, in ticks.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

impl Level {
    fn holds(&self) -> bool {
        self.lost == 0 && self.p95_ms <= TARGET_P95_MS
    }
}

/// What the callers connect to: the voice socket of an agent, or the echo server.
#[derive(Clone)]
enum Target {
    Voice { url: String, key: String },
    Echo { url: String },
}

impl Target {
    /// A connected caller, its session started.
    async fn connect(&self) -> Socket {
        let (url, key) = match self {
            Target::Voice { url, key } => (url, Some(key)),
            Target::Echo { url } => (url, None),
        };
        let mut request = url.as_str().into_client_request().expect("a request");
        if let Some(key) = key {
            request.headers_mut().insert("x-api-key", key.parse().expect("a header"));
        }
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), false)
            .await
            .expect("connected");
        if key.is_some() {
            socket.send(Message::Text(json!({"type": "session.start"}).to_string().into())).await.expect("start");
            while let Some(Ok(message)) = socket.next().await {
                if matches!(&message, Message::Text(text) if text.contains("session.created")) {
                    break;
                }
            }
        }
        socket
    }

    /// Whether a message from the server is one frame coming back.
    fn is_frame(&self, text: &str) -> bool {
        match self {
            Target::Voice { .. } => text.contains("response.audio.delta"),
            Target::Echo { .. } => text.contains("input_audio_buffer.append"),
        }
    }
}

/// Every socket of the run, callers' and the echo server's, reads as the voice socket does.
fn socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(oratio_functions::voice_api::READ_BUFFER_BYTES)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// N callers, each starting at its own point of a 20 ms period (calls are not in step),
/// streaming for [`STREAMING`]; the k-th frame back is the k-th frame sent.
async fn level(target: &Target, sessions: usize) -> Level {
    let mut sockets = Vec::with_capacity(sessions);
    let connecting = futures::stream::iter(0..sessions).map(|_| target.connect()).buffer_unordered(64);
    sockets.extend(connecting.collect::<Vec<_>>().await);
    // 20 ms of a quiet line, the same bytes for everyone (what is measured is the platform).
    let samples: Vec<u8> = (0..320).flat_map(|i: i16| ((i % 40 - 20) * 50).to_le_bytes()).collect();
    let audio: Arc<str> = base64::engine::general_purpose::STANDARD.encode(samples).into();
    let start = tokio::time::Instant::now() + Duration::from_millis(500);
    let cpu_before = cpu_time();
    let frames = (STREAMING.as_millis() / FRAME.as_millis()) as usize;
    let callers = sockets.into_iter().enumerate().map(|(i, socket)| {
        let (audio, target) = (audio.clone(), target.clone());
        let offset = FRAME.mul_f64(i as f64 / sessions as f64);
        tokio::spawn(async move {
            let (mut sink, mut stream) = socket.split();
            let reader = tokio::spawn(async move {
                let mut back = Vec::with_capacity(frames);
                let deadline = tokio::time::Instant::now() + STREAMING + Duration::from_secs(5);
                while back.len() < frames {
                    match tokio::time::timeout_at(deadline, stream.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) if target.is_frame(&text) => back.push(Instant::now()),
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                (back, stream)
            });
            let mut sent = Vec::with_capacity(frames);
            let mut tick = tokio::time::interval_at(start + offset, FRAME);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for seq in 1..=frames {
                tick.tick().await;
                let message = format!(r#"{{"type":"input_audio_buffer.append","seq":{seq},"audio":"{audio}"}}"#);
                sent.push(Instant::now());
                if sink.send(Message::Text(message.into())).await.is_err() {
                    break;
                }
            }
            let (back, stream) = reader.await.expect("the reader");
            let _ = sink.send(Message::Text(json!({"type": "session.end"}).to_string().into())).await;
            let mut socket = sink.reunite(stream).expect("one socket");
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(Ok(message)) = socket.next().await {
                    if matches!(&message, Message::Text(text) if text.contains("session.ended")) {
                        break;
                    }
                }
            })
            .await;
            let _ = socket.close(None).await;
            (sent, back)
        })
    });
    let (mut trips, mut sent_total, mut lost) = (Vec::new(), 0, 0);
    let callers = futures::future::join_all(callers.collect::<Vec<_>>()).await;
    let cpu = cpu_time().saturating_sub(cpu_before);
    for caller in callers {
        let (sent, back) = caller.expect("a caller");
        sent_total += sent.len();
        lost += sent.len().saturating_sub(back.len());
        trips.extend(sent.iter().zip(&back).map(|(s, b)| b.duration_since(*s).as_secs_f64() * 1e3));
    }
    trips.sort_by(f64::total_cmp);
    Level {
        cpu_us_per_frame: cpu.as_secs_f64() * 1e6 / sent_total.max(1) as f64,
        sent: sent_total,
        lost,
        p50_ms: percentile(&trips, 0.5),
        p95_ms: percentile(&trips, 0.95),
        p99_ms: percentile(&trips, 0.99),
    }
}

/// A bare WebSocket server that sends every text frame back.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("ws://{}/", listener.local_addr().expect("an address"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(socket) = tokio_tungstenite::accept_async_with_config(tcp, Some(socket_config())).await else {
                    return;
                };
                let (mut sink, mut stream) = socket.split();
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_text() && sink.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}

/// Raises the load, each level on the echo server and then on the voice socket (so that
/// both see the machine as it is at the time), until neither holds; prints each. The
/// largest N that held, for each.
async fn climb(targets: [(&str, &Target); 2]) -> [Option<usize>; 2] {
    let (mut largest, mut climbing) = ([None; 2], [true; 2]);
    for sessions in LEVELS {
        for (i, (name, target)) in targets.iter().enumerate() {
            if !climbing[i] {
                continue;
            }
            let level = level(target, sessions).await;
            println!(
                "  {name:<12} N {sessions:>5}  frames {:>8}  lost {:>6}  round trip p50 {:>6.1} ms  p95 {:>6.1} ms  p99 {:>6.1} ms  cpu {:>5.1} us/frame",
                level.sent, level.lost, level.p50_ms, level.p95_ms, level.p99_ms, level.cpu_us_per_frame
            );
            match level.holds() {
                true => largest[i] = Some(sessions),
                false => climbing[i] = false,
            }
            // The sessions just ended write their recordings; let that settle.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if climbing == [false; 2] {
            break;
        }
    }
    largest
}

pub async fn run() {
    let config = Config { speech: oratio::SpeechConfig::PassThrough, ..test_config() };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await;
    let account = p.sign_up("load@voice.example.com", "Voice load").await;
    let agent = p
        .create_active_agent_from(
            &account.access_token,
            json!({"name": "Echo line", "kind": "voice",
                "sop": "Greet the caller, listen, and repeat back what they said so they can check it."}),
            vec![("line.txt", b"The line repeats what it hears.".to_vec())],
        )
        .await;
    let key = p
        .post_json(
            &format!("/v1/agents/{agent}/keys"),
            Some(&account.access_token),
            json!({"name": "load", "rate_limit_per_minute": 100000}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .expect("a key")["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    println!(
        "\nconcurrent real-time sessions, one process, pass-through engine, 20 ms frames each way for {} s; \
         a level holds when p95 round trip <= {TARGET_P95_MS} ms and no frame is lost",
        STREAMING.as_secs()
    );
    let echo = Target::Echo { url: echo_server().await };
    let voice = Target::Voice { url: p.ws_url(&format!("/v1/agents/{agent}/voice")), key };
    let [echo, voice] = climb([("echo server", &echo), ("voice socket", &voice)]).await;
    let shown = |n: Option<usize>| n.map_or("none".to_owned(), |n| n.to_string());
    println!(
        "largest N that holds: voice socket {} (target >= 1000), bare echo server {} (levels {LEVELS:?})",
        shown(voice),
        shown(echo)
    );
    drop(p);
}
