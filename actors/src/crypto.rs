//! Sealing of secrets at rest: AES-256-GCM with a key derived by HKDF-SHA256
//! from the configured `OH_SECRET_KEY`, a fresh random nonce per value, and the
//! record and field the value belongs to bound in as associated data, so a
//! sealed value cannot be moved to another slot.
//!
//! A sealed value is the text `sealed:v1:` followed by base64url (no padding)
//! of `nonce ‖ ciphertext ‖ tag`. This module never logs plaintext and never
//! decides *what* is secret; the models do.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of every sealed value.
pub const SEALED_PREFIX: &str = "sealed:v1:";

const HKDF_SALT: &[u8] = b"agent-server/secret-key-salt/v1";
const HKDF_INFO: &[u8] = b"agent-server/secrets/aes-256-gcm/v1";

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The text is not a sealed value of a version we know.
    NotSealed,
    /// The value is damaged, or was sealed with another key or for another slot.
    Unreadable,
    /// The system random generator failed.
    Rng,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CryptoError::NotSealed => "value is not sealed",
            CryptoError::Unreadable => {
                "sealed value cannot be opened (different OH_SECRET_KEY or damaged data)"
            }
            CryptoError::Rng => "system random generator failed",
        })
    }
}

impl std::error::Error for CryptoError {}

/// Seals and opens secret values with one key.
pub struct Cipher {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    /// Derives the key from a configured secret string.
    pub fn from_secret(secret: &str) -> Cipher {
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(secret.as_bytes());
        let info = [HKDF_INFO];
        let mut key_bytes = [0u8; 32];
        // expand/fill only fail for output lengths above 255 blocks; 32 bytes is fixed.
        if let Ok(okm) = prk.expand(&info, &AES_256_GCM) {
            let _ = okm.fill(&mut key_bytes);
        }
        let unbound = match UnboundKey::new(&AES_256_GCM, &key_bytes) {
            Ok(k) => k,
            // 32 bytes is always a valid AES-256 key length.
            Err(_) => unreachable_key(),
        };
        Cipher {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// Seals `plaintext` for the slot named by `aad`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String, CryptoError> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce_bytes)
            .map_err(|_| CryptoError::Rng)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| CryptoError::Rng)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(format!("{SEALED_PREFIX}{}", base64url_encode(&out)))
    }

    /// Opens a value sealed for the slot named by `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::NotSealed)?;
        let mut raw = base64url_decode(body).ok_or(CryptoError::Unreadable)?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Unreadable);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[..NONCE_LEN]);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut raw[NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Unreadable)?;
        Ok(plain.to_vec())
    }

    /// Seals a UTF-8 string.
    pub fn seal_str(&self, aad: &str, plaintext: &str) -> Result<String, CryptoError> {
        self.seal(aad, plaintext.as_bytes())
    }

    /// Opens a value sealed with [`Cipher::seal_str`].
    pub fn open_str(&self, aad: &str, sealed: &str) -> Result<String, CryptoError> {
        String::from_utf8(self.open(aad, sealed)?).map_err(|_| CryptoError::Unreadable)
    }
}

#[cold]
fn unreachable_key() -> ! {
    // Reaching this would mean ring rejects a 32-byte AES-256 key, which its
    // API guarantees it does not; stopping is the only safe answer.
    std::process::abort()
}

/// Whether a stored string is a sealed value.
pub fn is_sealed(s: &str) -> bool {
    s.starts_with(SEALED_PREFIX)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding.
pub fn base64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

/// Decodes base64url (padding optional); `None` for any invalid input.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if text.len() % 4 == 1 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url_decode(&base64url_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64url_encode(b"hello"), "aGVsbG8");
        assert!(base64url_decode("a").is_none());
        assert!(base64url_decode("a*b=").is_none());
    }

    #[test]
    fn seal_open_and_binding() {
        let c = Cipher::from_secret("k1");
        let s = c.seal_str("conv/1/llm.api_key", "sk-secret").unwrap();
        assert!(is_sealed(&s));
        assert!(!s.contains("sk-secret"));
        assert_eq!(c.open_str("conv/1/llm.api_key", &s).unwrap(), "sk-secret");
        assert_eq!(
            c.open_str("conv/2/llm.api_key", &s),
            Err(CryptoError::Unreadable)
        );
        let other = Cipher::from_secret("k2");
        assert_eq!(
            other.open_str("conv/1/llm.api_key", &s),
            Err(CryptoError::Unreadable)
        );
        assert_eq!(c.open_str("x", "plain"), Err(CryptoError::NotSealed));
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(s, c.seal_str("conv/1/llm.api_key", "sk-secret").unwrap());
    }
}
