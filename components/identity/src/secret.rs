use crate::IdentityError;
use crate::encoding::{b64_encode, sha256_hex};
use subtle::ConstantTimeEq;

/// Returns `bytes` random bytes, base64url-encoded.
pub(crate) fn random_token(bytes: usize) -> Result<String, IdentityError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| IdentityError::Random(e.to_string()))?;
    Ok(b64_encode(&buf))
}

/// Returns a random identifier: 16 lowercase hex characters (64 bits).
pub fn random_id() -> Result<String, IdentityError> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|e| IdentityError::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A refresh token as handed to a client: `<id>.<secret>`. Only the id and
/// the SHA-256 of the secret are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: String,
    secret: String,
}

impl RefreshToken {
    /// Creates a token with a fresh id and a 256-bit secret.
    pub fn generate() -> Result<Self, IdentityError> {
        Ok(RefreshToken {
            id: random_id()?,
            secret: random_token(32)?,
        })
    }

    /// Splits a client-supplied token into its id and secret.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let (id, secret) = text.split_once('.').ok_or(IdentityError::Malformed(
            "refresh token must be <id>.<secret>",
        ))?;
        if id.len() != 16
            || !id.bytes().all(|b| b.is_ascii_hexdigit())
            || secret.is_empty()
            || secret.len() > 128
        {
            return Err(IdentityError::Malformed(
                "refresh token must be <id>.<secret>",
            ));
        }
        Ok(RefreshToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// Returns the string given to the client.
    pub fn to_token_string(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// Returns the hash of the secret, the only part that is stored.
    pub fn secret_hash(&self) -> String {
        sha256_hex(self.secret.as_bytes())
    }

    /// Compares the secret with a stored hash in constant time.
    pub fn matches(&self, stored_hash: &str) -> bool {
        self.secret_hash()
            .as_bytes()
            .ct_eq(stored_hash.as_bytes())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_token_round_trip() {
        let token = RefreshToken::generate().unwrap();
        let parsed = RefreshToken::parse(&token.to_token_string()).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret_hash()));
        let other = RefreshToken::generate().unwrap();
        assert!(!other.matches(&token.secret_hash()));
    }

    #[test]
    fn refresh_token_rejects_garbage() {
        for bad in ["", "nodot", "zz.secret", "0123456789abcdef.", ".x"] {
            assert!(RefreshToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_ids_differ() {
        let a = random_id().unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, random_id().unwrap());
    }
}
