//! Bearer tokens of the admin API and the inbound SCIM server.
//!
//! Both servers check tokens the same way, so the type lives beside them
//! rather than in either: neither server depends on the other for it.
//!
//! A token is kept only as its SHA-256: tokens are 256 random bits when the
//! host generates them, so a fast unsalted hash loses nothing, and a leaked
//! database does not leak a usable token. Presented tokens are hashed and
//! compared in constant time.
//!
//! A token chosen through the environment replaces the generated one for
//! good: its stored hash is overwritten with [`FROM_ENVIRONMENT`], so that
//! unsetting the variable later never revives a token that was printed to
//! stdout (and may live on in a journal). The next start without the
//! variable generates and shows a new token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secrets::{KeyError, random_bytes};
use crate::store::{Store, StoreError};

/// A token the server accepts, as its hash.
#[derive(Clone)]
pub struct BearerToken {
    hash: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(…)")
    }
}

/// Where a token came from at startup, so the operator can be told once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Set by the environment variable of that name.
    Environment(&'static str),
    /// Generated now; shown this once.
    Generated(String),
    /// Generated on an earlier start; only its hash is kept.
    Stored,
    /// Generated now, because the variable that chose the token on an
    /// earlier start is no longer set; shown this once.
    Regenerated(String),
}

/// What the token's meta key holds while the token comes from the
/// environment: not a hash, so no token matches it.
pub const FROM_ENVIRONMENT: &str = "from-environment";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] KeyError),
    #[error("{0} is set but empty")]
    Empty(&'static str),
}

impl BearerToken {
    pub fn from_plain(token: &str) -> Self {
        BearerToken {
            hash: Sha256::digest(token.as_bytes()).into(),
        }
    }

    fn from_hex(hex_hash: &str) -> Option<Self> {
        let bytes = hex::decode(hex_hash).ok()?;
        Some(BearerToken {
            hash: <[u8; 32]>::try_from(bytes.as_slice()).ok()?,
        })
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(bearer_credential)
            .is_some_and(|presented| self.is(presented))
    }

    /// Whether `presented` is this token (as typed into the console's
    /// sign-in form, without the `Bearer` scheme).
    pub fn is(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.hash).into()
    }

    /// The token named by `env`, else the one generated on an earlier start
    /// (kept hashed under `meta_key`), else a new one.
    pub fn establish(
        store: &dyn Store,
        env: &'static str,
        meta_key: &str,
    ) -> Result<(Self, TokenOrigin), TokenError> {
        if let Ok(token) = std::env::var(env) {
            let token = token.trim();
            if token.is_empty() {
                return Err(TokenError::Empty(env));
            }
            let stored = store.meta(meta_key)?;
            if stored.as_deref() != Some(FROM_ENVIRONMENT) {
                store.set_meta(meta_key, FROM_ENVIRONMENT)?;
                if stored.is_some() {
                    tracing::info!(
                        "{env} is set: the token generated on an earlier start is deleted \
                         and will not work again, even once {env} is unset"
                    );
                }
            }
            return Ok((Self::from_plain(token), TokenOrigin::Environment(env)));
        }
        let stored = store.meta(meta_key)?;
        if let Some(token) = stored.as_deref().and_then(Self::from_hex) {
            return Ok((token, TokenOrigin::Stored));
        }
        let plain = generate_token()?;
        let token = Self::from_plain(&plain);
        store.set_meta(meta_key, &hex::encode(token.hash))?;
        let origin = if stored.as_deref() == Some(FROM_ENVIRONMENT) {
            TokenOrigin::Regenerated(plain)
        } else {
            TokenOrigin::Generated(plain)
        };
        Ok((token, origin))
    }
}

/// The credential of `Bearer <credential>`, the scheme in any case.
fn bearer_credential(header: &str) -> Option<&str> {
    let (scheme, credential) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|credential| !credential.is_empty())
}

/// 256 random bits, URL-safe.
pub fn generate_token() -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_bearer_token_is_accepted() {
        let token = BearerToken::from_plain("abc");
        assert!(token.accepts(Some("Bearer abc")));
        assert!(token.accepts(Some("bearer  abc ")));
        assert!(!token.accepts(Some("Bearer abd")));
        assert!(!token.accepts(Some("Basic abc")));
        assert!(!token.accepts(Some("Bearer ")));
        assert!(!token.accepts(None));
    }
}
