//! How a socket refuses a client that breaks the WebSocket protocol.
//!
//! [`FrameGuard`] sits between the connection and actix's frame decoder and
//! reads only frame headers: a frame whose header announces more than
//! `websocket.max_frame_bytes` ends the input at once. actix's decoder
//! alone waits until a whole frame has arrived before comparing its length
//! with the limit, so a client announcing 1 GiB could make it buffer 1 GiB.
//! [`close_reason`] then chooses the close: 1009 for an oversized frame,
//! 1007 for a text frame that is not UTF-8, 1002 for anything else.
//! [`Fragments`] joins a message sent in several frames, with the same
//! limit on the whole message. Nothing here echoes frame data.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::ws::Item;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web_actors::ws::{CloseCode, CloseReason, ProtocolError};
use futures_util::Stream;

/// Marks the error [`FrameGuard`] ends the input with; actix hands it to
/// the session as a `ProtocolError::Io` carrying this text.
const OVERSIZED: &str = "websocket frame over the size limit";

/// Where the guard is in the client's byte stream.
#[derive(Debug)]
enum At {
    /// Reading a frame header; the bytes read so far (at most 14).
    Header(Vec<u8>),
    /// Inside a frame's payload; bytes left.
    Payload(u64),
}

/// A pass-through stream of the client's bytes that ends with an error as
/// soon as a frame header announces a payload over the limit.
pub struct FrameGuard<S> {
    inner: S,
    max: u64,
    at: At,
    failed: bool,
}

impl<S> FrameGuard<S> {
    /// Guards `inner` with a limit of `max_frame_bytes` per frame.
    pub fn new(inner: S, max_frame_bytes: usize) -> FrameGuard<S> {
        FrameGuard {
            inner,
            max: max_frame_bytes as u64,
            at: At::Header(Vec::with_capacity(14)),
            failed: false,
        }
    }

    /// Follows the frames in `chunk`; `false` when one is over the limit.
    fn track(&mut self, mut chunk: &[u8]) -> bool {
        while !chunk.is_empty() {
            match &mut self.at {
                At::Payload(left) => {
                    let n = (*left).min(chunk.len() as u64);
                    *left -= n;
                    chunk = &chunk[n as usize..];
                    if *left == 0 {
                        self.at = At::Header(Vec::with_capacity(14));
                    }
                }
                At::Header(head) => {
                    head.push(chunk[0]);
                    chunk = &chunk[1..];
                    let Some(len) = announced_length(head) else {
                        continue;
                    };
                    if len > self.max {
                        return false;
                    }
                    self.at = if len == 0 {
                        At::Header(Vec::with_capacity(14))
                    } else {
                        At::Payload(len)
                    };
                }
            }
        }
        true
    }
}

/// The payload length a complete frame header announces; `None` while the
/// header is incomplete.
fn announced_length(head: &[u8]) -> Option<u64> {
    if head.len() < 2 {
        return None;
    }
    let masked = head[1] & 0x80 != 0;
    let short = u64::from(head[1] & 0x7f);
    let ext = match short {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let need = 2 + ext + if masked { 4 } else { 0 };
    if head.len() < need {
        return None;
    }
    Some(match ext {
        2 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[2..10]);
            u64::from_be_bytes(b)
        }
        _ => short,
    })
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.track(&chunk) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    self.failed = true;
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::other(
                        OVERSIZED,
                    )))))
                }
            }
            other => other,
        }
    }
}

/// The close reason for a protocol error, given the frame limit in bytes.
pub fn close_reason(e: &ProtocolError, max_frame_bytes: usize) -> CloseReason {
    let (code, description) = match e {
        ProtocolError::Overflow => (CloseCode::Size, too_large(max_frame_bytes)),
        ProtocolError::Io(io) if io.to_string().contains(OVERSIZED) => {
            (CloseCode::Size, too_large(max_frame_bytes))
        }
        // actix reports a text frame that is not UTF-8 as an I/O error
        // carrying the UTF-8 decoder's message.
        ProtocolError::Io(io) if io.to_string().contains("utf-8") => {
            (CloseCode::Invalid, "Text frame is not valid UTF-8".into())
        }
        other => (CloseCode::Protocol, other.to_string()),
    };
    CloseReason {
        code,
        description: Some(description),
    }
}

/// A message a client sent in fragments, once complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// A text message.
    Text(String),
    /// A binary message (its bytes are not kept).
    Binary,
}

/// Joins fragmented messages (RFC 6455 §5.4): a first frame, continuations,
/// a last frame. The whole message obeys `websocket.max_frame_bytes`.
#[derive(Debug)]
pub struct Fragments {
    max: usize,
    /// The message in progress: text or binary, and its bytes so far.
    open: Option<(bool, Vec<u8>)>,
}

impl Fragments {
    /// An assembler for messages of at most `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Fragments {
        Fragments {
            max: max_frame_bytes,
            open: None,
        }
    }

    /// Takes one continuation frame; the message once its last frame came,
    /// or the close to answer a frame out of sequence or over the limit.
    pub fn push(&mut self, item: Item) -> Result<Option<Joined>, CloseReason> {
        let (first, bytes, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        let protocol = |what: &str| CloseReason {
            code: CloseCode::Protocol,
            description: Some(what.to_string()),
        };
        match (first, &mut self.open) {
            (Some(_), Some(_)) => {
                return Err(protocol(
                    "A new fragmented message started before the last one ended",
                ));
            }
            (Some(text), None) => self.open = Some((text, Vec::new())),
            (None, None) => return Err(protocol("Continuation frame without a first frame")),
            (None, Some(_)) => {}
        }
        let Some((text, buf)) = &mut self.open else {
            return Ok(None);
        };
        if buf.len() + bytes.len() > self.max {
            self.open = None;
            return Err(CloseReason {
                code: CloseCode::Size,
                description: Some(too_large(self.max)),
            });
        }
        // Binary messages are refused whole; their bytes are not needed.
        if *text {
            buf.extend_from_slice(&bytes);
        }
        if !last {
            return Ok(None);
        }
        let (text, buf) = self.open.take().unwrap_or_default();
        if !text {
            return Ok(Some(Joined::Binary));
        }
        String::from_utf8(buf)
            .map(|t| Some(Joined::Text(t)))
            .map_err(|_| CloseReason {
                code: CloseCode::Invalid,
                description: Some("Text frame is not valid UTF-8".into()),
            })
    }
}

fn too_large(max_frame_bytes: usize) -> String {
    format!("Frame larger than {max_frame_bytes} bytes (websocket.max_frame_bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len_bytes: &[u8], payload: usize) -> Vec<u8> {
        let mut f = vec![0x81];
        f.extend_from_slice(len_bytes);
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'a', payload));
        f
    }

    #[test]
    fn headers_are_followed_across_chunks() {
        let mut g = FrameGuard::new((), 1000);
        let mut bytes = frame(&[0x80 | 5], 5);
        bytes.extend(frame(&[0x80 | 126, 0x03, 0xe8], 1000));
        // Byte by byte: every header is found, none is over the limit.
        for b in &bytes {
            assert!(g.track(std::slice::from_ref(b)));
        }
        assert!(matches!(g.at, At::Header(ref h) if h.is_empty()));
        // 1001 bytes announced: refused from the header alone.
        assert!(!g.track(&[0x81, 0x80 | 126, 0x03, 0xe9, 1, 2, 3, 4]));
        let mut g = FrameGuard::new((), 1000);
        assert!(!g.track(&[0x82, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9]));
    }

    #[test]
    fn fragments_join_and_misuse_closes() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let mut f = Fragments::new(10);
        assert_eq!(f.push(Item::FirstText(b("{\"a\""))), Ok(None));
        assert_eq!(f.push(Item::Continue(b(":"))), Ok(None));
        assert_eq!(
            f.push(Item::Last(b("1}"))),
            Ok(Some(Joined::Text("{\"a\":1}".into())))
        );
        assert_eq!(f.push(Item::FirstBinary(b("xx"))), Ok(None));
        assert_eq!(f.push(Item::Last(b("yy"))), Ok(Some(Joined::Binary)));
        let code = |r: Result<Option<Joined>, CloseReason>| u16::from(r.unwrap_err().code);
        assert_eq!(code(f.push(Item::Continue(b("x")))), 1002);
        assert_eq!(f.push(Item::FirstText(b("12345"))), Ok(None));
        assert_eq!(code(f.push(Item::FirstText(b("x")))), 1002);
        let mut f = Fragments::new(10);
        assert_eq!(f.push(Item::FirstText(b("123456"))), Ok(None));
        assert_eq!(code(f.push(Item::Last(b("78901")))), 1009);
        let mut f = Fragments::new(10);
        f.push(Item::FirstText(Bytes::from_static(&[0xe2, 0x82])))
            .unwrap();
        assert_eq!(code(f.push(Item::Last(Bytes::from_static(&[0x28])))), 1007);
        // A split multi-byte character is joined before it is decoded.
        f.push(Item::FirstText(Bytes::from_static(&[0xe2, 0x82])))
            .unwrap();
        assert_eq!(
            f.push(Item::Last(Bytes::from_static(&[0xac]))),
            Ok(Some(Joined::Text("€".into())))
        );
    }

    #[test]
    fn codes() {
        let r = close_reason(&ProtocolError::Overflow, 10);
        assert_eq!(u16::from(r.code), 1009);
        assert!(r.description.unwrap().contains("10 bytes"));
        let guard = PayloadError::Io(std::io::Error::other(OVERSIZED));
        let io = std::io::Error::other(format!("{guard}"));
        assert_eq!(
            u16::from(close_reason(&ProtocolError::Io(io), 10).code),
            1009
        );
        let bytes = vec![b'a', 0xff];
        let utf8 = std::str::from_utf8(&bytes).unwrap_err();
        let io = std::io::Error::other(format!("{utf8}"));
        assert_eq!(
            u16::from(close_reason(&ProtocolError::Io(io), 10).code),
            1007
        );
        assert_eq!(
            u16::from(close_reason(&ProtocolError::UnmaskedFrame, 10).code),
            1002
        );
    }
}
