//! Buffering of a running command's stdout and stderr into `BashOutput`
//! pieces: bytes are held until they form whole UTF-8 characters (so a
//! multi-byte character is never split into two replacement characters
//! across chunks), and each piece carries at most [`CHUNK_MAX`] bytes of
//! output, stdout and stderr together.
//!
//! Pure bookkeeping: no I/O, no clocks. The command actor decides when to
//! cut a piece.

/// Most output bytes (stdout + stderr) in one stored `BashOutput`; also
/// at most this many characters, as the reference's 1 MiB limit counts.
pub const CHUNK_MAX: usize = 1 << 20;

/// Buffered output of one stream waiting to be emitted.
#[derive(Debug, Default, Clone)]
pub struct StreamBuffer {
    bytes: Vec<u8>,
}

impl StreamBuffer {
    /// Appends bytes read from the pipe.
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Takes up to `max` bytes as text. Unless `all`, an incomplete
    /// character at the end stays buffered for the next read. Invalid bytes
    /// become U+FFFD, as Python's `errors="replace"` does.
    pub fn take(&mut self, max: usize, all: bool) -> String {
        let n = self.bytes.len().min(max);
        if n == 0 {
            return String::new();
        }
        let cut = if all && n == self.bytes.len() {
            n
        } else {
            utf8_cut(&self.bytes, n)
        };
        if cut == 0 {
            return String::new();
        }
        let rest = self.bytes.split_off(cut);
        let taken = std::mem::replace(&mut self.bytes, rest);
        match String::from_utf8(taken) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

/// The largest `m ≤ n` such that `bytes[..m]` does not end inside a
/// (so far valid) multi-byte character.
fn utf8_cut(bytes: &[u8], n: usize) -> usize {
    for i in (n.saturating_sub(3)..n).rev() {
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0x00..=0x7F => 1,
            _ if b & 0xE0 == 0xC0 => 2,
            _ if b & 0xF0 == 0xE0 => 3,
            _ if b & 0xF8 == 0xF0 => 4,
            _ => 1,
        };
        return if i + need > n { i } else { n };
    }
    n
}

/// One piece of output ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Standard output text (`None` when empty).
    pub stdout: Option<String>,
    /// Standard error text (`None` when empty).
    pub stderr: Option<String>,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Both streams of a command.
#[derive(Debug, Default, Clone)]
pub struct OutputBuffers {
    /// Standard output.
    pub stdout: StreamBuffer,
    /// Standard error.
    pub stderr: StreamBuffer,
}

impl OutputBuffers {
    /// Bytes waiting in both streams.
    pub fn len(&self) -> usize {
        self.stdout.len() + self.stderr.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cuts the next piece of at most [`CHUNK_MAX`] bytes (stdout first),
    /// or `None` when nothing can be emitted yet. With `all`, everything
    /// is emitted, incomplete characters included.
    pub fn next_piece(&mut self, all: bool) -> Option<Piece> {
        let before = self.stdout.len();
        let out = self.stdout.take(CHUNK_MAX, all);
        // The budget counts raw bytes: replacement characters may make the
        // text longer in UTF-8, never longer in characters.
        let used = before - self.stdout.len();
        let err = self.stderr.take(CHUNK_MAX - used, all);
        if out.is_empty() && err.is_empty() {
            return None;
        }
        Some(Piece {
            stdout: non_empty(out),
            stderr: non_empty(err),
        })
    }
}

/// The end of one stream's output as the reference's final `BashOutput`
/// holds it: everything after the last full [`CHUNK_MAX`] characters (all
/// of it up to that size). `execute_bash_command` answers with it, so its
/// callers see the whole output of ordinary commands even though it was
/// recorded in chunks.
#[derive(Debug, Default, Clone)]
pub struct Tail {
    text: String,
    chars: usize,
}

impl Tail {
    /// Adds recorded text.
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.chars += s.chars().count();
        if self.chars > CHUNK_MAX {
            // The reference cuts a chunk whenever more than CHUNK_MAX
            // characters are buffered, so what it keeps is never empty.
            let dropped = (self.chars - 1) / CHUNK_MAX * CHUNK_MAX;
            let at = self
                .text
                .char_indices()
                .nth(dropped)
                .map_or(self.text.len(), |(i, _)| i);
            self.text.drain(..at);
            self.chars -= dropped;
        }
    }

    /// The text, `None` when empty.
    pub fn text(&self) -> Option<String> {
        (!self.text.is_empty()).then(|| self.text.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_characters_wait_for_more_bytes() {
        let mut b = StreamBuffer::default();
        let e = "é".as_bytes();
        b.push(b"ab");
        b.push(&e[..1]);
        assert_eq!(b.take(100, false), "ab");
        assert_eq!(b.len(), 1);
        assert_eq!(b.take(100, false), "");
        b.push(&e[1..]);
        assert_eq!(b.take(100, false), "é");
        let euro = "€".as_bytes();
        b.push(&euro[..2]);
        assert_eq!(b.take(100, true), "\u{FFFD}");
        assert!(b.is_empty());
    }

    #[test]
    fn four_byte_characters_and_invalid_bytes() {
        let mut b = StreamBuffer::default();
        b.push("x🦀".as_bytes());
        assert_eq!(b.take(100, false), "x🦀");
        b.push(&[b'a', 0xFF, b'b']);
        assert_eq!(b.take(100, false), "a\u{FFFD}b");
        b.push("🦀".as_bytes());
        assert_eq!(b.take(3, false), "");
        assert_eq!(b.take(4, false), "🦀");
    }

    #[test]
    fn tail_keeps_what_the_reference_final_output_holds() {
        let mut t = Tail::default();
        assert_eq!(t.text(), None);
        t.push("ab");
        t.push("c");
        assert_eq!(t.text().as_deref(), Some("abc"));
        let mut t = Tail::default();
        t.push(&"é".repeat(CHUNK_MAX));
        assert_eq!(t.text().unwrap().chars().count(), CHUNK_MAX);
        t.push("xy");
        assert_eq!(t.text().as_deref(), Some("xy"));
        t.push(&"z".repeat(2 * CHUNK_MAX - 2));
        assert_eq!(t.text().unwrap().len(), CHUNK_MAX);
    }

    #[test]
    fn pieces_are_bounded_and_lose_nothing() {
        let mut o = OutputBuffers::default();
        let big = "x".repeat(CHUNK_MAX + 10);
        o.stdout.push(big.as_bytes());
        o.stderr.push(b"err");
        let p1 = o.next_piece(false).unwrap();
        assert_eq!(p1.stdout.as_ref().unwrap().len(), CHUNK_MAX);
        assert_eq!(p1.stderr, None);
        let p2 = o.next_piece(false).unwrap();
        assert_eq!(p2.stdout.as_deref(), Some("xxxxxxxxxx"));
        assert_eq!(p2.stderr.as_deref(), Some("err"));
        assert_eq!(o.next_piece(false), None);
        assert!(o.is_empty());
    }
}
