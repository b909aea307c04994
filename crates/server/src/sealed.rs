//! Sealed reasoning: the analysis text of a turn handed to a stateless client
//! as an opaque, authenticated blob (`reasoning.encrypted_content` in the
//! Responses API, the `signature` of an Anthropic `thinking` block), so the
//! next request can give the chain of thought back and gpt-oss sees it again
//! across tool calls, as it was trained to.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per blob: the client can
//! neither read nor forge it; a blob sealed by another key (another server,
//! a restart with a generated key) opens to `None` and is ignored. Replicas
//! behind a load balancer share one key with `--reasoning-key`.
//!
//! Wire form: `gptoss1.` + base64url(nonce ‖ ciphertext ‖ tag), no padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "gptoss1.";
const NONCE_LEN: usize = 24;

/// Seals and opens reasoning blobs with one server key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl Sealer {
    /// A sealer with a fresh random key (blobs die with the process).
    pub fn random() -> Result<Sealer, KeyError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| KeyError(format!("no system randomness for the reasoning key: {e}")))?;
        Ok(Sealer::from_key(&key))
    }

    /// A sealer from a 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A key given as 64 hex digits (`--reasoning-key`), or any other text
    /// of at least 32 characters, hashed (SHA-256) into 32 bytes, so replicas
    /// given the same text agree.
    pub fn from_text(text: &str) -> Result<Sealer, KeyError> {
        let text = text.trim();
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut key = [0u8; 32];
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                    .map_err(|e| KeyError(format!("bad hex in the reasoning key: {e}")))?;
            }
            return Ok(Sealer::from_key(&key));
        }
        if text.len() < 32 {
            return Err(KeyError(format!(
                "the reasoning key must be 64 hex digits or at least 32 characters, got {}",
                text.len()
            )));
        }
        Ok(Sealer::from_seed(text.as_bytes()))
    }

    /// A key hashed (SHA-256) from arbitrary bytes.
    pub fn from_seed(seed: &[u8]) -> Sealer {
        Sealer::from_key(&Sha256::digest(seed).into())
    }

    /// Seal `text` into an opaque blob.
    pub fn seal(&self, text: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        if getrandom::fill(&mut nonce).is_err() {
            // No randomness left: a counter-free fallback would risk nonce
            // reuse; refuse to seal rather than weaken the cipher.
            return String::new();
        }
        let Ok(ciphertext) = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), text.as_bytes())
        else {
            return String::new();
        };
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The text of a blob this key sealed, or `None` (another key, a
    /// foreign format such as a real Anthropic signature, tampering).
    pub fn open(&self, blob: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD
            .decode(blob.trim().strip_prefix(PREFIX)?)
            .ok()?;
        if raw.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = Sealer::random().expect("randomness");
        let blob = s.seal("The user wants 2+2. Answer 4.");
        assert!(blob.starts_with(PREFIX));
        assert_eq!(
            s.open(&blob).as_deref(),
            Some("The user wants 2+2. Answer 4.")
        );
        // Two seals of one text differ (fresh nonce).
        assert_ne!(blob, s.seal("The user wants 2+2. Answer 4."));
        // Another key cannot open it.
        let other = Sealer::random().expect("randomness");
        assert_eq!(other.open(&blob), None);
        // A flipped character breaks authentication.
        let mut bytes = blob.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.open(&String::from_utf8(bytes).unwrap_or_default()), None);
        assert_eq!(s.open("EqQKCkYIBxgCKkA-not-ours"), None);
        assert_eq!(s.open(""), None);
    }

    #[test]
    fn keys_from_text() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = Sealer::from_text(hex).expect("hex key");
        let b = Sealer::from_text(hex).expect("hex key");
        assert_eq!(b.open(&a.seal("x")).as_deref(), Some("x"));
        let p = Sealer::from_text("a shared passphrase of enough length!!").expect("text key");
        let q = Sealer::from_text("a shared passphrase of enough length!!").expect("text key");
        assert_eq!(q.open(&p.seal("y")).as_deref(), Some("y"));
        assert_eq!(a.open(&p.seal("y")), None);
        assert!(Sealer::from_text("short").is_err());
    }
}
