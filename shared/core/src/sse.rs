//! Server-Sent Events as the WHATWG spec frames them (`event:`, `data:`, blank line),
//! decoded incrementally from bytes as they arrive: agents stream their replies to the
//! platform this way, and OpenAI-compatible models stream theirs.

/// One event: its name (`message` when none was given) and its data lines, joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// Lines longer than this are dropped: a peer cannot make us buffer without end.
const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Default)]
pub struct Decoder {
    line: Vec<u8>,
    name: Option<String>,
    data: Vec<String>,
    overflowed: bool,
}

impl Decoder {
    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.line);
                let overflowed = std::mem::take(&mut self.overflowed);
                if !overflowed {
                    let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line)).into_owned();
                    if let Some(event) = self.line_done(&line) {
                        events.push(event);
                    }
                }
            } else if self.line.len() < MAX_LINE_BYTES {
                self.line.push(byte);
            } else {
                self.overflowed = true;
            }
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let name = self.name.take();
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent { name: name.unwrap_or_else(|| "message".into()), data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_decoded_across_arbitrary_chunks() {
        let body = b": keep-alive\n\nevent: token\ndata: {\"text\":\"Hel\"}\n\nevent: token\r\ndata: {\"text\":\"lo\"}\r\n\r\ndata: a\ndata: b\n\n";
        for size in [1, 3, 7, body.len()] {
            let mut decoder = Decoder::default();
            let events: Vec<SseEvent> = body.chunks(size).flat_map(|c| decoder.feed(c)).collect();
            assert_eq!(
                events,
                vec![
                    SseEvent { name: "token".into(), data: "{\"text\":\"Hel\"}".into() },
                    SseEvent { name: "token".into(), data: "{\"text\":\"lo\"}".into() },
                    SseEvent { name: "message".into(), data: "a\nb".into() },
                ],
                "chunks of {size}"
            );
        }
    }
}
