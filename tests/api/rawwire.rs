//! Raw wire clients for hostile tests: requests whose bytes no well-behaved
//! client library would send (non-UTF-8 request lines, WebSocket frames
//! that lie about their length or carry invalid UTF-8). Blocking std I/O
//! with read timeouts, meant to run on the blocking pool; loopback only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Opens a loopback connection with read and write timeouts.
fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Reads a response head (up to the blank line), byte by byte so that
/// nothing after it is consumed.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends `request` verbatim and returns the status code and the whole
/// answer (the server is asked to close the connection).
pub fn raw_request(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = connect(port);
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A WebSocket connection driven frame by frame.
pub struct RawWs {
    s: TcpStream,
}

/// What the server sent, as far as a test cares.
#[derive(Debug, PartialEq)]
pub enum RawFrame {
    /// A text frame.
    Text(String),
    /// A close frame with its code.
    Close(Option<u16>),
    /// Any other frame (opcode).
    Other(u8),
    /// The connection ended without a close frame.
    Eof,
}

impl RawWs {
    /// Opens `path` with the handshake and `headers`; `Err(status)` when
    /// the upgrade is refused.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<RawWs, u16> {
        let mut s = connect(port);
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("handshake");
        let head = read_head(&mut s);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if status != 101 {
            return Err(status);
        }
        Ok(RawWs { s })
    }

    /// Sends one masked frame whose header announces `announced` payload
    /// bytes (normally `payload.len()`), then `payload`.
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8], announced: u64) {
        self.write_frame(true, opcode, payload, announced);
    }

    /// Sends one frame of a fragmented message: `opcode` 1 or 2 for the
    /// first, 0 for the others; `fin` on the last.
    pub fn send_fragment(&mut self, opcode: u8, payload: &[u8], fin: bool) {
        self.write_frame(fin, opcode, payload, payload.len() as u64);
    }

    fn write_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], announced: u64) {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        if announced < 126 {
            f.push(0x80 | announced as u8);
        } else if announced <= u64::from(u16::MAX) {
            f.push(0x80 | 126);
            f.extend_from_slice(&(announced as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&announced.to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        // The server may close as soon as it has read the header.
        let _ = self.s.write_all(&f);
    }

    /// A text frame carrying `bytes` (which need not be UTF-8).
    pub fn send_text(&mut self, bytes: &[u8]) {
        self.send_frame(1, bytes, bytes.len() as u64);
    }

    /// The next frame from the server (within the read timeout).
    pub fn next(&mut self) -> RawFrame {
        let mut h = [0u8; 2];
        if self.s.read_exact(&mut h).is_err() {
            return RawFrame::Eof;
        }
        let opcode = h[0] & 0x0f;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            if self.s.read_exact(&mut b).is_err() {
                return RawFrame::Eof;
            }
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            if self.s.read_exact(&mut b).is_err() {
                return RawFrame::Eof;
            }
            len = u64::from_be_bytes(b);
        }
        assert!(len < 64 << 20, "server frame of {len} bytes");
        let mut payload = vec![0u8; len as usize];
        if self.s.read_exact(&mut payload).is_err() {
            return RawFrame::Eof;
        }
        match opcode {
            1 => RawFrame::Text(String::from_utf8_lossy(&payload).into_owned()),
            8 => RawFrame::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            ),
            o => RawFrame::Other(o),
        }
    }

    /// Skips text and control frames until a close (or the end); at most
    /// `max` frames.
    pub fn close_code(&mut self, max: usize) -> RawFrame {
        for _ in 0..max {
            match self.next() {
                RawFrame::Text(_) | RawFrame::Other(_) => continue,
                end => return end,
            }
        }
        panic!("no close within {max} frames")
    }
}
