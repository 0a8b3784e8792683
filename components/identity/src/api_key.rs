//! API keys: `cck_<id>_<secret>`, where the id (16 hex characters) names
//! the stored record and the 256-bit secret is stored only as SHA-256.
//! A plain hash suits API keys because their secrets are random, unlike
//! passwords, and it keeps verification cheap enough for every request.

use crate::IdentityError;
use crate::encoding::sha256_hex;
use crate::secret::{random_id, random_token};
use subtle::ConstantTimeEq;

const PREFIX: &str = "cck_";

/// An API key as presented by a client.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}, <secret>)", self.id)
    }
}

impl ApiKey {
    pub fn generate() -> Result<Self, IdentityError> {
        Ok(ApiKey {
            id: random_id()?,
            secret: random_token(32)?,
        })
    }

    /// Reports whether `text` looks like an API key rather than a JWT.
    pub fn looks_like(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or(IdentityError::MalformedApiKey)?;
        let (id, secret) = rest.split_once('_').ok_or(IdentityError::MalformedApiKey)?;
        let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_ok || secret.len() < 20 || secret.len() > 128 {
            return Err(IdentityError::MalformedApiKey);
        }
        Ok(ApiKey {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// Returns the full key, which its creator sees once.
    pub fn to_key_string(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }

    pub fn secret_hash(&self) -> String {
        sha256_hex(self.secret.as_bytes())
    }

    /// Compares the secret with the stored hash in constant time.
    pub fn verify(&self, stored_hash: &str) -> Result<(), IdentityError> {
        if bool::from(self.secret_hash().as_bytes().ct_eq(stored_hash.as_bytes())) {
            Ok(())
        } else {
            Err(IdentityError::InvalidApiKey)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_round_trip() {
        let key = ApiKey::generate().unwrap();
        let text = key.to_key_string();
        assert!(ApiKey::looks_like(&text));
        let parsed = ApiKey::parse(&text).unwrap();
        assert_eq!(parsed, key);
        assert!(parsed.verify(&key.secret_hash()).is_ok());
        assert_eq!(
            ApiKey::generate().unwrap().verify(&key.secret_hash()),
            Err(IdentityError::InvalidApiKey)
        );
    }

    #[test]
    fn api_key_debug_hides_secret() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.id));
        assert!(!shown.contains(&key.secret));
    }

    #[test]
    fn malformed_api_keys_are_rejected() {
        for bad in [
            "",
            "cck_",
            "cck_short_secretsecretsecretsecret",
            "xyz_0123456789abcdef_secretsecretsecretsecret",
            "cck_0123456789abcdef_short",
        ] {
            assert_eq!(
                ApiKey::parse(bad),
                Err(IdentityError::MalformedApiKey),
                "{bad}"
            );
        }
    }
}
