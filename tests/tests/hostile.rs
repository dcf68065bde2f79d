//! Hostile input, sent as an attacker would (raw bytes where a client library would
//! refuse to): every answer carries the standard error body and the request id, bodies
//! announced over a route's limit are refused unread, slow clients are cut off, and a
//! malformed WebSocket frame closes with the code RFC 6455 gives it.

use std::time::Duration;

use futures::SinkExt;
use oratio_tests::platform::{PASSWORD, TestPlatform, close_code};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    /// Panics unless this is the standard error body with `code`, its request id in both
    /// the body and the `x-request-id` header.
    fn assert_standard(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.body["code"].as_str()), (status, Some(code)), "{self:?}");
        let id = self.body["request_id"].as_str().unwrap_or_default();
        assert!(id.starts_with("req_"), "{self:?}");
        assert!(self.head.to_ascii_lowercase().contains(&format!("x-request-id: {id}")), "{self:?}");
        assert!(self.head.to_ascii_lowercase().contains("content-type: application/json"), "{self:?}");
        assert!(self.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{self:?}");
    }
}

/// Writes `bytes` as they are and reads the answer until the server closes or the body
/// it announced is complete.
async fn raw(platform: &TestPlatform, bytes: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(platform.platform.as_ref().expect("running").addr()).await.expect("connect");
    // The server may answer and close before it has read everything: that is the point.
    let _ = stream.write_all(bytes).await;
    read_answer(&mut stream).await.expect("an answer")
}

async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!("no answer in 30 s; got {:?}", String::from_utf8_lossy(&got)),
        };
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok());
            let body = &got[end + 4..];
            if n == 0 || length.is_some_and(|l| body.len() >= l) {
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                return Some(Answer { status, head, body: serde_json::from_slice(body).unwrap_or(Value::Null) });
            }
        }
        if n == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn malformed_path_ids_get_the_standard_body_on_every_route_family() {
    let platform = TestPlatform::start().await;
    let ada = platform.sign_up("ada@bakery.example", "Ada's Bakery").await;
    let token = format!("Bearer {}", ada.access_token);
    let bad = "%FF%FE";
    let requests = [
        ("GET", format!("/v1/agents/{bad}"), Some(token.as_str())),
        ("PATCH", format!("/v1/agents/{bad}"), Some(token.as_str())),
        ("POST", format!("/v1/agents/{bad}/pause"), Some(token.as_str())),
        ("GET", format!("/v1/agents/{bad}/code"), Some(token.as_str())),
        ("GET", format!("/v1/agents/{bad}/keys"), Some(token.as_str())),
        ("DELETE", format!("/v1/agents/agt_x/keys/{bad}"), Some(token.as_str())),
        ("GET", format!("/v1/agents/{bad}/sessions"), Some(token.as_str())),
        ("GET", format!("/v1/agents/agt_x/sessions/{bad}"), Some(token.as_str())),
        ("DELETE", format!("/v1/members/{bad}"), Some(token.as_str())),
        ("POST", format!("/v1/agents/{bad}/messages"), None),
        ("GET", format!("/local/blobs/{bad}"), None),
    ];
    for (method, path, auth) in requests {
        let auth = auth.map(|a| format!("authorization: {a}\r\n")).unwrap_or_else(|| "x-api-key: ok_x\r\n".into());
        let body = r#"{"message":"hi"}"#;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = raw(&platform, request.as_bytes()).await;
        assert!(answer.status >= 400 && answer.status < 500, "{method} {path}: {answer:?}");
        let code = answer.body["code"].as_str().unwrap_or_default().to_owned();
        answer.assert_standard(answer.status, &code);
        if answer.status == 400 {
            assert!(["invalid_path", "invalid_query"].contains(&code.as_str()), "{method} {path}: {answer:?}");
        }
    }
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_the_standard_body_too() {
    let platform = TestPlatform::start().await;
    let huge_header = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n", "a".repeat(70 * 1024));
    raw(&platform, huge_header.as_bytes()).await.assert_standard(431, "headers_too_large");
    let many_headers: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n");
    raw(&platform, many.as_bytes()).await.assert_standard(431, "headers_too_large");
    let long_path = format!("GET /v1/agents/{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(20 * 1024));
    raw(&platform, long_path.as_bytes()).await.assert_standard(414, "uri_too_long");
    raw(&platform, b"GET /health HTTP/1.1\r\nhost: x\r\nbad\x01name: v\r\n\r\n")
        .await
        .assert_standard(400, "bad_request");
    raw(&platform, b"GET /he\x7flth HTTP/1.1\r\nhost: x\r\n\r\n").await.assert_standard(400, "bad_request");
    let twice = b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncontent-length: 7\r\n\r\n{}";
    raw(&platform, twice).await.assert_standard(400, "bad_request");
    raw(&platform, b"NOT A REQUEST\r\n\r\n").await.assert_standard(400, "bad_request");
}

#[tokio::test]
async fn bodies_announced_over_a_routes_limit_are_refused_before_they_are_sent() {
    let platform = TestPlatform::start().await;
    for (path, length) in [
        ("/v1/agents", 4_398_046_511_104u64),
        ("/v1/agents/agt_x/messages", 11 * 1024 * 1024),
        ("/v1/auth/login", 2 * 1024 * 1024),
        ("/v1/auth/resend-code", 1024 * 1024 + 1),
    ] {
        // One byte of the announced body, and the connection held open: the answer comes anyway.
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{"
        );
        raw(&platform, request.as_bytes()).await.assert_standard(413, "payload_too_large");
    }
    // A chunked body that announces nothing is cut off at the limit.
    let chunk = "a".repeat(64 * 1024);
    let mut request = b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    raw(&platform, &request).await.assert_standard(413, "payload_too_large");
}

#[tokio::test]
async fn slow_headers_and_stalled_bodies_are_cut_off() {
    let platform = TestPlatform::start().await;
    let addr = platform.platform.as_ref().expect("running").addr();
    // Headers that never end: the connection is closed (HEADER_TIMEOUT).
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ").await.expect("write");
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(30), slow.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the slow client was not cut off: {read:?}");
    // A body that stops: the request ends (BODY_IDLE_TIMEOUT) with an answer or a close.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n{\"email\":")
        .await
        .expect("write");
    if let Some(answer) = read_answer(&mut stalled).await {
        answer.assert_standard(answer.status, answer.body["code"].as_str().unwrap_or_default());
        assert!((400..500).contains(&answer.status), "{answer:?}");
    }
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_the_socket_with_1007() {
    let platform = TestPlatform::start().await;
    let ada = platform.sign_up("ada@bakery.example", "Ada's Bakery").await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(platform.dashboard_socket(&ada.access_token)).await.expect("connect");
    let frame = Frame::message(vec![0xff, 0xfe, 0x41], OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(frame)).await.expect("send");
    assert_eq!(close_code(&mut socket).await, Some(1007));
}

#[tokio::test]
async fn resending_codes_is_throttled_and_keeps_the_guess_budget() {
    let platform = TestPlatform::start().await;
    let register = |email: &'static str| {
        let platform = &platform;
        async move {
            let body = json!({"email": email, "password": PASSWORD, "organization_name": "Corner Shop"});
            assert_eq!(platform.post_json("/v1/auth/register", None, body).await.status(), 201);
        }
    };
    // Wrong guesses count across a resend: three, a new code, two more spend the five.
    register("li@cornershop.example").await;
    let confirm = |code: &str| {
        platform.post_json("/v1/auth/confirm", None, json!({"email": "li@cornershop.example", "code": code}))
    };
    for _ in 0..3 {
        assert_eq!(confirm("000000").await.status(), 400);
    }
    assert_eq!(
        platform.post_json("/v1/auth/resend-code", None, json!({"email": "li@cornershop.example"})).await.status(),
        202
    );
    let fresh = platform.code_for("li@cornershop.example").await;
    let wrong = if fresh == "000001" { "000002" } else { "000001" };
    assert_eq!(confirm(wrong).await.status(), 400);
    let spent = confirm(wrong).await;
    assert_eq!(spent.json::<Value>().await.expect("json")["code"], "code_expired");
    // Spent: even the right code no longer works, and no new one is sent for a while.
    assert_eq!(confirm(&fresh).await.json::<Value>().await.expect("json")["code"], "code_expired");
    let resend = platform.post_json("/v1/auth/resend-code", None, json!({"email": "li@cornershop.example"})).await;
    assert_eq!(resend.status(), 429);

    register("mo@cornershop.example").await;
    // Fifteen back-to-back resends: three are sent, the rest refused with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let response =
            platform.post_json("/v1/auth/resend-code", None, json!({"email": "mo@cornershop.example"})).await;
        if response.status() == 429 {
            assert!(response.headers().get("retry-after").is_some());
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 3, "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let outbox = platform.get_json("/local/outbox?to=mo@cornershop.example", None).await;
    assert_eq!(outbox["mails"].as_array().map(Vec::len), Some(4), "the sign-up's code and three resends");

    // One client asking for many addresses is throttled too (on a platform of its own,
    // since the requests above count against this client).
    let other = TestPlatform::start().await;
    let mut statuses = Vec::new();
    // Twenty-one requests span at most two of the limiter's one-minute windows: twenty
    // at most get through.
    for i in 0..21 {
        let email = format!("nobody{i}@elsewhere.example");
        statuses.push(other.post_json("/v1/auth/resend-code", None, json!({"email": email})).await.status().as_u16());
    }
    assert!(statuses.iter().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 1, "{statuses:?}");
}

#[tokio::test]
async fn the_data_directory_is_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let platform = TestPlatform::start().await;
    let ada = platform.sign_up("ada@bakery.example", "Ada's Bakery").await;
    platform.create_active_agent(&ada.access_token, "Front desk").await;
    let mut seen = (0, 0);
    let mut stack = vec![platform.data_path().to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
            seen.0 += 1;
            stack.extend(std::fs::read_dir(&path).expect("read_dir").flatten().map(|e| e.path()));
        } else if meta.is_file() {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
            seen.1 += 1;
        }
    }
    assert!(seen.0 > 5 && seen.1 > 10, "looked at {seen:?}: the table, documents, code and indexes");
    for file in ["table.sqlite3", "table.sqlite3-wal"] {
        let mode = std::fs::metadata(platform.data_path().join(file)).expect(file).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}

#[tokio::test]
async fn document_titles_are_stored_as_people_read_them() {
    let platform = TestPlatform::start().await;
    let ada = platform.sign_up("ada@bakery.example", "Ada's Bakery").await;
    let long = format!("{}.md", "menu-".repeat(1_000));
    let sop = "1. Greet the customer.\n2. Answer questions about the menu from the documents.";
    let config = json!({"name": "Counter", "kind": "text", "sop": sop});
    let documents = vec![
        ("..\\..\\windows\\Prices.md", b"# Prices\nSourdough loaf: 4.20 EUR\n".to_vec()),
        // U+202E (right-to-left override) makes `invoice\u{202E}dm.exe` display as `invoiceexe.md`.
        ("allergens\u{202E}dm.exe.txt", b"All our bread contains gluten.\n".to_vec()),
        (long.as_str(), b"# Menu\nCinnamon buns on Saturdays.\n".to_vec()),
    ];
    let agent = platform.create_active_agent_from(&ada.access_token, config, documents).await;
    let view = platform.get_json(&format!("/v1/agents/{agent}"), Some(&ada.access_token)).await;
    let titles: Vec<&str> =
        view["documents"].as_array().expect("documents").iter().filter_map(|d| d["title"].as_str()).collect();
    assert_eq!(titles[..2], ["Prices.md", "allergensdm.exe.txt"], "{view}");
    assert!(titles[2].chars().count() <= 120 && titles[2].ends_with(".md"), "{}", titles[2]);
}
