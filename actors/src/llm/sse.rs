//! An incremental Server-Sent Events parser: bytes in (split anywhere, even inside a UTF-8
//! sequence or a CRLF), whole events out. It knows nothing of LLM payloads; the protocol
//! modules interpret `event` and `data`. It must not allocate without bound: a line is
//! capped, and what exceeds the cap is dropped rather than buffered.

/// Longest line kept; SSE data lines from LLM APIs are far shorter.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Accumulates bytes and yields events at blank lines.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            // A CRLF split across chunks must count as one line end.
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ if self.line.len() < MAX_LINE => self.line.push(b),
                _ => {}
            }
        }
        out
    }

    /// Ends the stream: a last event without its blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        out.pop()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let text = "event: a\r\ndata: {\"x\":\"é\"}\r\n\r\n: comment\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        let bytes = text.as_bytes();
        for size in 1..=bytes.len() {
            let mut p = SseParser::default();
            let mut got = Vec::new();
            for c in bytes.chunks(size) {
                got.extend(p.push(c));
            }
            got.extend(p.finish());
            assert_eq!(got.len(), 3, "chunk size {size}");
            assert_eq!(got[0].event.as_deref(), Some("a"));
            assert_eq!(got[0].data, "{\"x\":\"é\"}");
            assert_eq!(got[1].data, "one\ntwo");
            assert_eq!(got[2].data, "[DONE]");
        }
    }

    #[test]
    fn last_event_without_blank_line_is_kept() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: tail").is_empty());
        assert_eq!(p.finish().map(|e| e.data), Some("tail".to_owned()));
    }
}
