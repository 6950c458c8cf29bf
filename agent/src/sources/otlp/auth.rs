//! Bearer-token authentication: `Authorization: Bearer <token>` (on gRPC, the `authorization`
//! metadata entry) must carry the token read from `auth.bearer_token_file` at start.
//!
//! Only a SHA-256 digest of the token is kept, and the comparison is between digests in constant
//! time, so neither the token's bytes nor its length leak through timing. The token is never
//! logged: this module's types print as `<redacted>`.

use std::path::Path;
use subtle::ConstantTimeEq;

/// The expected token, as its digest.
pub struct BearerAuth {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read auth.bearer_token_file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("auth.bearer_token_file {path} holds no token (the file is empty)")]
    Empty { path: String },
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl BearerAuth {
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read(path).map_err(|source| AuthError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let token = text.trim_ascii();
        if token.is_empty() {
            return Err(AuthError::Empty {
                path: path.display().to_string(),
            });
        }
        Ok(Self::new(token))
    }

    pub fn new(token: &[u8]) -> Self {
        Self {
            digest: sha256(token),
        }
    }

    /// Whether an `Authorization` header value carries the token.
    pub fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some(v) = authorization else {
            return false;
        };
        let v = v.trim_ascii();
        let Some((scheme, token)) = v.split_at_checked(6) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") || token.first() != Some(&b' ') {
            return false;
        }
        sha256(token.trim_ascii()).ct_eq(&self.digest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_passes() {
        let a = BearerAuth::new(b"s3cret");
        assert!(a.check(Some(b"Bearer s3cret")));
        assert!(a.check(Some(b"bearer   s3cret ")));
        assert!(!a.check(Some(b"Bearer s3cre")));
        assert!(!a.check(Some(b"Bearer s3cret2")));
        assert!(!a.check(Some(b"Basic s3cret")));
        assert!(!a.check(Some(b"Bearers3cret")));
        assert!(!a.check(Some(b"Bearer")));
        assert!(!a.check(Some(b"")));
        assert!(!a.check(None));
    }

    #[test]
    fn the_token_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "  abc\n").unwrap();
        assert!(BearerAuth::from_file(&p)
            .unwrap()
            .check(Some(b"Bearer abc")));
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            BearerAuth::from_file(&p),
            Err(AuthError::Empty { .. })
        ));
        assert!(matches!(
            BearerAuth::from_file(&dir.path().join("missing")),
            Err(AuthError::Read { .. })
        ));
        assert_eq!(
            format!("{:?}", BearerAuth::new(b"abc")),
            "BearerAuth(<redacted>)"
        );
    }
}
