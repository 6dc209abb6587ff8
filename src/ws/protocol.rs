//! How a socket ends when a client breaks the WebSocket protocol: the close
//! reason for a decoder error. An oversized frame is refused by the frame
//! decoder as soon as its header announces the length (nothing is buffered
//! past `websocket.max_frame_bytes`) and ends the socket with 1009; a text
//! frame that is not UTF-8 ends it with 1007; anything else with 1002.
//! This module only chooses codes and words; it never echoes frame data.

use actix_web_actors::ws::{CloseCode, CloseReason, ProtocolError};

/// The close reason for a protocol error, given the frame limit in bytes.
pub fn close_reason(e: &ProtocolError, max_frame_bytes: usize) -> CloseReason {
    let (code, description) = match e {
        ProtocolError::Overflow => (
            CloseCode::Size,
            format!("Frame larger than {max_frame_bytes} bytes (websocket.max_frame_bytes)"),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let r = close_reason(&ProtocolError::Overflow, 10);
        assert_eq!(u16::from(r.code), 1009);
        assert!(r.description.unwrap().contains("10 bytes"));
        let utf8 = std::str::from_utf8(&[0xff]).unwrap_err();
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
