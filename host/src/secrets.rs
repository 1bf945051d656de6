//! Secrets at rest: application bearer tokens, and users' passwords on
//! their way to applications, are sealed with XChaCha20-Poly1305 under a
//! host key before they reach storage.
//!
//! The key comes from `SCIMLINK_SECRET_KEY` (32 bytes, base64) or from the
//! file `secret.key` in the data folder, created with owner-only permissions
//! on first run. The application's id is the associated data of its seal, so
//! a sealed token copied onto another application does not open; a
//! password's associated data names its use and its user (and, for a
//! temporary password, its application), so it opens nowhere else.
//!
//! [`Secret`] never prints its content: not in `Debug`, not in `Display`,
//! not in logs or events; its memory is wiped when it is dropped.
//!
//! Other keys are derived from the host key, never the host key itself:
//! [`TokenCipher::derive_key`] is HMAC-SHA256(host key, label), so keys of
//! different labels are independent and none reveals the host key.
//!
//! The data folder and what holds secrets in it are the owner's only:
//! [`private_folder`] creates a folder 0700 and [`tighten`] takes group and
//! other permissions off an existing file or folder.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
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
    /// The host key, kept only to derive other keys from.
    key: std::sync::Arc<Zeroizing<[u8; KEY_BYTES]>>,
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
            key: std::sync::Arc::new(Zeroizing::new(*key)),
        }
    }

    /// A key for another use than sealing tokens, named by `label` (one
    /// label per use, e.g. `scimlink precompile-cache v1`).
    pub fn derive_key(&self, label: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hmac_sha256(self.key.as_slice(), &[label.as_bytes()]))
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
                if tighten(&path).map_err(io)? {
                    tracing::warn!(
                        "the key file {shown} was readable by other users: now only its owner can read it"
                    );
                }
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
        self.seal_with(app_id.as_bytes(), token)
    }

    /// Opens what [`TokenCipher::seal`] sealed for the same application.
    pub fn open(&self, app_id: &str, nonce: &[u8], sealed: &[u8]) -> Option<Secret> {
        self.open_with(app_id.as_bytes(), nonce, sealed)
    }

    /// Seals a user's password: (nonce, ciphertext). Its associated data
    /// names the user and the use, so it opens for no other user, and not
    /// in a token's place.
    pub fn seal_password(
        &self,
        user_id: &str,
        password: &Secret,
    ) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        self.seal_with(&password_aad(user_id), password)
    }

    /// Opens what [`TokenCipher::seal_password`] sealed for the same user.
    pub fn open_password(&self, user_id: &str, nonce: &[u8], sealed: &[u8]) -> Option<Secret> {
        self.open_with(&password_aad(user_id), nonce, sealed)
    }

    /// Seals a temporary password kept for an operator to read once.
    pub fn seal_temporary_password(
        &self,
        app_id: &str,
        user_id: &str,
        password: &Secret,
    ) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        self.seal_with(&temporary_password_aad(app_id, user_id), password)
    }

    /// Opens what [`TokenCipher::seal_temporary_password`] sealed.
    pub fn open_temporary_password(
        &self,
        app_id: &str,
        user_id: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Option<Secret> {
        self.open_with(&temporary_password_aad(app_id, user_id), nonce, sealed)
    }

    fn seal_with(&self, aad: &[u8], secret: &Secret) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        let mut nonce = [0u8; NONCE_BYTES];
        random_bytes(&mut nonce)?;
        let sealed = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad,
                },
            )
            .map_err(|_| KeyError::Random("encryption failed".into()))?;
        Ok((nonce.to_vec(), sealed))
    }

    fn open_with(&self, aad: &[u8], nonce: &[u8], sealed: &[u8]) -> Option<Secret> {
        if nonce.len() != NONCE_BYTES {
            return None;
        }
        let plain = Zeroizing::new(
            self.aead
                .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
                .ok()?,
        );
        String::from_utf8(plain.to_vec()).ok().map(Secret::new)
    }
}

/// The associated data of a user's sealed password. Application ids are
/// UUIDs, so no token's associated data starts this way.
fn password_aad(user_id: &str) -> Vec<u8> {
    [b"scimlink user password\0".as_slice(), user_id.as_bytes()].concat()
}

fn temporary_password_aad(app_id: &str, user_id: &str) -> Vec<u8> {
    [
        b"scimlink temporary password\0".as_slice(),
        app_id.as_bytes(),
        b"\0",
        user_id.as_bytes(),
    ]
    .concat()
}

fn decode_key(encoded: &str) -> Option<[u8; KEY_BYTES]> {
    let bytes = Zeroizing::new(BASE64.decode(encoded).ok()?);
    <[u8; KEY_BYTES]>::try_from(bytes.as_slice()).ok()
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| -> Zeroizing<[u8; BLOCK]> {
        let mut padded = Zeroizing::new([0u8; BLOCK]);
        for (out, k) in padded.iter_mut().zip(block.iter()) {
            *out = k ^ byte;
        }
        padded
    };
    let mut inner = Sha256::new();
    inner.update(pad(0x36).as_slice());
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c).as_slice());
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Creates `folder` (and its parents) if missing, the folder itself with
/// mode 0700; an existing one is tightened like [`tighten`]. True when an
/// existing folder's permissions were narrowed.
pub fn private_folder(folder: &Path) -> std::io::Result<bool> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    let existed = folder.is_dir();
    builder.create(folder)?;
    if existed { tighten(folder) } else { Ok(false) }
}

/// Takes group and other permissions off `path` (a file or a folder), if
/// it has any. True when it did; false when there was nothing to narrow or
/// `path` does not exist. Not on Unix, always false.
pub fn tighten(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        // A symlink's own mode means nothing, and chmod would follow it to
        // whatever it points at.
        if metadata.file_type().is_symlink() {
            return Ok(false);
        }
        let mode = metadata.permissions().mode();
        if mode & 0o077 == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
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
    fn hmac_sha256_matches_rfc_4231() {
        // Test cases 1 and 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], &[b"Hi ", b"There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn derived_keys_differ_by_label_and_by_host_key() {
        let cipher = TokenCipher::from_key(&[7; KEY_BYTES]);
        let cache = cipher.derive_key("scimlink precompile-cache v1");
        assert_eq!(*cache, *cipher.derive_key("scimlink precompile-cache v1"));
        assert_ne!(*cache, *cipher.derive_key("another use"));
        assert_ne!(*cache, [7; KEY_BYTES]);
        let other = TokenCipher::from_key(&[8; KEY_BYTES]);
        assert_ne!(*cache, *other.derive_key("scimlink precompile-cache v1"));
    }

    #[cfg(unix)]
    #[test]
    fn private_folders_are_created_and_tightened_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("data");
        assert!(!private_folder(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o700);
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            private_folder(&fresh).unwrap(),
            "an open folder is tightened"
        );
        assert_eq!(mode(&fresh), 0o700);
        assert!(!private_folder(&fresh).unwrap(), "once");
        let file = fresh.join("f");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(tighten(&file).unwrap());
        assert_eq!(mode(&file), 0o600);
        assert!(!tighten(&fresh.join("missing")).unwrap());
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
