//! The embedded platform's HTTP server: hyper (HTTP/1.1 with upgrades, and HTTP/2),
//! as `axum::serve` runs it, plus what a server facing hostile clients needs: headers must
//! arrive within `HEADER_TIMEOUT` and fit in `MAX_HEADER_BYTES`, a request body that stops
//! moving for `BODY_IDLE_TIMEOUT` is cut off, and the answers hyper gives by itself to
//! requests it cannot parse (400 for bad bytes or a contradictory `Content-Length`, 414,
//! 431: empty bodies, no request id) are rewritten into the standard error body with a
//! request id, so that every answer the platform gives keeps the error contract.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use oratio_functions::error::ErrorBody;
use oratio_functions::request::{ClientAddr, error_code, new_request_id};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Time for a client to send a request's line and headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause inside a request body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request line plus headers (hyper answers 431 beyond it; 100 header fields at most).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long in-flight requests get to finish once the platform stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` turns true, then lets in-flight requests finish.
pub async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) -> io::Result<()> {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, a connection reset before accept: keep serving.
                Err(e) => {
                    tracing::warn!(cause = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => break,
        };
        let _ = stream.set_nodelay(true);
        let client = ClientAddr(peer.ip().to_string());
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<_>| {
                request.extensions_mut().insert(client.clone());
                request
            },
        ));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(Dressed::new(stream)), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            // A client that goes away mid-request is no error of ours.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    Ok(())
}

/// A connection whose writes are watched for hyper's own answers (see the module).
struct Dressed<S> {
    inner: S,
    /// A rewritten answer, and how much of it has been written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> Dressed<S> {
    fn new(inner: S) -> Self {
        Self { inner, pending: None }
    }
}

impl<S: AsyncWrite + Unpin> Dressed<S> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == bytes.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Dressed<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Dressed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if let Some(answer) = dressed(buf) {
            this.pending = Some((answer, 0));
            // hyper's bytes count as written; ours go out now or on the flush that follows.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The standard answer for `bytes`, when they are one of hyper's own: a 400, 414 or 431
/// head without the `x-request-id` every answer from the router carries.
fn dressed(bytes: &[u8]) -> Option<Vec<u8>> {
    // Every write of every connection passes here (WebSocket frames too): most are not a
    // head at all, and cost no more than this look.
    if !bytes.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?.to_ascii_lowercase();
    let status: u16 = head.strip_prefix("http/1.1 ")?.get(..3)?.parse().ok()?;
    let message = match status {
        400 => {
            "the request is not valid HTTP/1.1 (bytes not allowed in its line or headers, or a missing, repeated or contradictory Content-Length)"
        }
        414 => "the request's path is too long",
        431 => "the request's headers are too large (64 KiB and 100 fields at most)",
        _ => return None,
    };
    if head.contains("\r\nx-request-id:") {
        return None;
    }
    let status = StatusCode::from_u16(status).ok()?;
    let request_id = new_request_id();
    tracing::info!(request_id = %request_id, status = status.as_u16(), "refused a request that could not be parsed");
    let body = ErrorBody { error: message.into(), code: error_code(status).into(), request_id: request_id.clone() };
    let body = serde_json::to_vec(&body).ok()?;
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_answers_are_dressed_and_the_routers_are_not() {
        let own = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 01:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(dressed(own).expect("dressed")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 ") && head.contains("x-request-id: req_"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "headers_too_large");
        let routed = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-request-id: req_1\r\n\r\n{}";
        assert!(dressed(routed).is_none());
        assert!(dressed(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(dressed(b"partial body bytes").is_none());
    }
}
