//! Secrets at rest: application bearer tokens are sealed with
//! XChaCha20-Poly1305 under a host key before they reach storage.
//!
//! The key comes from `SCIMLINK_SECRET_KEY` (32 bytes, base64) or from the
//! file `secret.key` in the data folder, created with owner-only permissions
//! on first run. The application's id is the associated data of its seal, so
//! a sealed token copied onto another application does not open.
//!
//! [`Secret`] never prints its content: not in `Debug`, not in `Display`,
//! not in logs or events; its memory is wiped when it is dropped.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// The environment variable that may carry the host key.
pub const SECRET_KEY_ENV: &str = "SCIMLINK_SECRET_KEY";
/// The key file's name inside the data folder.
pub const SECRET_KEY_FILE: &str = "secret.key";

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// A credential held in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why the host key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{SECRET_KEY_ENV} must be {KEY_BYTES} bytes in base64")]
    BadEnvKey,
    #[error("key file {path} must hold {KEY_BYTES} bytes in base64")]
    BadKeyFile { path: String },
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no randomness available: {0}")]
    Random(String),
}

/// Seals and opens application tokens.
#[derive(Clone)]
pub struct TokenCipher {
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCipher(…)")
    }
}

impl TokenCipher {
    pub fn from_key(key: &[u8; KEY_BYTES]) -> Self {
        TokenCipher {
            aead: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// The host key from the environment, else from `DATA/secret.key`,
    /// which is created on first run.
    pub fn for_data_folder(data: &Path) -> Result<Self, KeyError> {
        if let Ok(encoded) = std::env::var(SECRET_KEY_ENV) {
            let key = decode_key(encoded.trim()).ok_or(KeyError::BadEnvKey)?;
            return Ok(Self::from_key(&key));
        }
        let path = data.join(SECRET_KEY_FILE);
        let shown = path.display().to_string();
        let io = |source| KeyError::Io {
            path: shown.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(encoded) => {
                let key = decode_key(encoded.trim()).ok_or_else(|| KeyError::BadKeyFile {
                    path: shown.clone(),
                })?;
                Ok(Self::from_key(&key))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; KEY_BYTES]);
                random_bytes(key.as_mut_slice())?;
                write_private(&path, BASE64.encode(key.as_slice()).as_bytes()).map_err(io)?;
                Ok(Self::from_key(&key))
            }
            Err(error) => Err(io(error)),
        }
    }

    /// Seals `token` for the application `app_id`: (nonce, ciphertext).
    pub fn seal(&self, app_id: &str, token: &Secret) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        let mut nonce = [0u8; NONCE_BYTES];
        random_bytes(&mut nonce)?;
        let sealed = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: token.expose().as_bytes(),
                    aad: app_id.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Random("encryption failed".into()))?;
        Ok((nonce.to_vec(), sealed))
    }

    /// Opens what [`TokenCipher::seal`] sealed for the same application.
    pub fn open(&self, app_id: &str, nonce: &[u8], sealed: &[u8]) -> Option<Secret> {
        if nonce.len() != NONCE_BYTES {
            return None;
        }
        let plain = Zeroizing::new(
            self.aead
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: app_id.as_bytes(),
                    },
                )
                .ok()?,
        );
        String::from_utf8(plain.to_vec()).ok().map(Secret::new)
    }
}

fn decode_key(encoded: &str) -> Option<[u8; KEY_BYTES]> {
    let bytes = Zeroizing::new(BASE64.decode(encoded).ok()?);
    <[u8; KEY_BYTES]>::try_from(bytes.as_slice()).ok()
}

/// Fills `buffer` from the operating system's random source.
pub fn random_bytes(buffer: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buffer).map_err(|error| KeyError::Random(error.to_string()))
}

/// Writes a file only its owner can read, failing if it already exists so
/// that two hosts starting at once cannot overwrite each other's key.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_for_its_application() {
        let cipher = TokenCipher::from_key(&[7; KEY_BYTES]);
        let token = Secret::new("s3cr3t-token");
        let (nonce, sealed) = cipher.seal("app-1", &token).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(cipher.open("app-1", &nonce, &sealed), Some(token));
        assert_eq!(cipher.open("app-2", &nonce, &sealed), None);
        let other = TokenCipher::from_key(&[8; KEY_BYTES]);
        assert_eq!(other.open("app-1", &nonce, &sealed), None);
    }

    #[test]
    fn a_secret_never_prints() {
        let token = Secret::new("visible?");
        assert!(!format!("{token:?}").contains("visible"));
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let data = tempfile::tempdir().unwrap();
        let first = TokenCipher::for_data_folder(data.path()).unwrap();
        let (nonce, sealed) = first.seal("a", &Secret::new("t")).unwrap();
        let second = TokenCipher::for_data_folder(data.path()).unwrap();
        assert_eq!(second.open("a", &nonce, &sealed), Some(Secret::new("t")));
        std::fs::write(data.path().join(SECRET_KEY_FILE), "short").unwrap();
        assert!(matches!(
            TokenCipher::for_data_folder(data.path()),
            Err(KeyError::BadKeyFile { .. })
        ));
    }
}
