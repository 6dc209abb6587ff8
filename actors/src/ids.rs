//! Identifiers: random 128-bit ids (UUID version 4) and the textual forms the
//! reference uses for them — hyphenated for conversations and conversation
//! events, 32-digit hex for bash events and directory names.
//!
//! Parsing accepts every form FastAPI accepts for a UUID path parameter
//! (hyphenated, plain hex, `urn:uuid:` prefix, braces). Nothing here touches
//! storage or the network.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 128-bit identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid([u8; 16]);

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Uuid {
    /// A fresh random version-4 id.
    pub fn new_v4() -> Uuid {
        let mut bytes = [0u8; 16];
        // The system RNG only fails when the OS cannot supply entropy at all;
        // a time-and-counter fallback keeps ids unique even then.
        if SystemRandom::new().fill(&mut bytes).is_err() {
            fallback_fill(&mut bytes);
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid(bytes)
    }

    /// The id made of these 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Uuid {
        Uuid(bytes)
    }

    /// The id from a 16-byte slice, if it has that length.
    pub fn from_slice(bytes: &[u8]) -> Option<Uuid> {
        <[u8; 16]>::try_from(bytes).ok().map(Uuid)
    }

    /// The 16 raw bytes (used as sled key prefixes).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses hyphenated, plain-hex, `urn:uuid:` and braced forms.
    pub fn parse(input: &str) -> Option<Uuid> {
        let s = input.trim();
        let s = s
            .strip_prefix("urn:uuid:")
            .or_else(|| s.strip_prefix("URN:UUID:"))
            .unwrap_or(s);
        let s = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or(s);
        let digits: Vec<u8> = match s.len() {
            32 => s.bytes().collect(),
            36 => {
                let b = s.as_bytes();
                if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
                    return None;
                }
                s.bytes().filter(|c| *c != b'-').collect()
            }
            _ => return None,
        };
        if digits.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in digits.chunks(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Uuid(out))
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn hyphenated(&self) -> String {
        let mut s = String::with_capacity(36);
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 0x0f) as usize] as char);
        }
        s
    }

    /// 32 lowercase hex digits, no hyphens.
    pub fn simple(&self) -> String {
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 0x0f) as usize] as char);
        }
        s
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn fallback_fill(bytes: &mut [u8; 16]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    bytes[..8].copy_from_slice(&nanos.to_be_bytes());
    bytes[8..].copy_from_slice(&(count ^ u64::from(std::process::id())).to_be_bytes());
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hyphenated())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hyphenated())
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hyphenated())
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Uuid::parse(&s).ok_or_else(|| serde::de::Error::custom("Input should be a valid UUID"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_round_trip() {
        let id = Uuid::new_v4();
        assert_eq!(Uuid::parse(&id.hyphenated()), Some(id));
        assert_eq!(Uuid::parse(&id.simple()), Some(id));
        assert_eq!(Uuid::parse(&format!("urn:uuid:{id}")), Some(id));
        assert_eq!(Uuid::parse(&format!("{{{id}}}")), Some(id));
        assert_eq!(Uuid::parse(&id.hyphenated().to_uppercase()), Some(id));
        assert_eq!(id.hyphenated().len(), 36);
        assert_eq!(&id.hyphenated()[14..15], "4");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "x",
            "1234",
            "11111111-2222-3333-4444-55555555555g",
            "111111112222-3333-4444-5555555555555",
        ] {
            assert_eq!(Uuid::parse(bad), None, "{bad}");
        }
    }
}
