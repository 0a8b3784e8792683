//! Access tokens: compact JWTs (RFC 7519) signed with HMAC-SHA256.

use crate::encoding::{b64_decode, b64_encode};
use crate::{IdentityError, Role};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Issuer claim of every token.
const ISSUER: &str = "copycar";
/// Clock skew tolerated between issuer and verifier, in seconds.
const LEEWAY_SECS: u64 = 30;
/// Largest token accepted; longer input is rejected before decoding.
const MAX_TOKEN_LEN: usize = 4096;

/// The HMAC key tokens are signed with. The raw bytes of the configured
/// secret are the key, so it must be at least 32 bytes long.
#[derive(Clone)]
pub struct SigningKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<secret>)")
    }
}

impl SigningKey {
    pub fn new(secret: &str) -> Result<Self, IdentityError> {
        if secret.len() < 32 {
            return Err(IdentityError::WeakKey(secret.len()));
        }
        Ok(SigningKey {
            key: secret.as_bytes().to_vec(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    pub role: Role,
    /// Always `access`; other values are rejected.
    pub typ: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// Token id.
    pub jti: String,
    /// Session (refresh-token family) id; verifiers that can read the
    /// family record use it to reject tokens of a revoked session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

/// Issues and verifies access tokens.
pub struct AccessToken;

impl AccessToken {
    /// Signs an access token for `user` in `tenant`, valid for `ttl_secs`
    /// from `now`.
    pub fn issue(
        key: &SigningKey,
        user: &str,
        tenant: &str,
        role: Role,
        session: Option<&str>,
        now: u64,
        ttl_secs: u64,
    ) -> Result<(String, Claims), IdentityError> {
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user.into(),
            tid: tenant.into(),
            role,
            typ: "access".into(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: crate::random_id()?,
            sid: session.map(str::to_string),
        };
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        let signing_input = format!(
            "{}.{}",
            b64_encode(&serde_json::to_vec(&header).expect("header serialises")),
            b64_encode(&serde_json::to_vec(&claims).expect("claims serialise"))
        );
        let mut mac = key.mac();
        mac.update(signing_input.as_bytes());
        let signature = b64_encode(&mac.finalize().into_bytes());
        Ok((format!("{signing_input}.{signature}"), claims))
    }

    /// Checks the signature, algorithm, type and validity window of `token`
    /// at time `now` and returns its claims.
    pub fn verify(key: &SigningKey, token: &str, now: u64) -> Result<Claims, IdentityError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(IdentityError::Malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdentityError::Malformed(
                "expected three dot-separated parts",
            ));
        };

        // The header is checked first, so `alg: none` never reaches the MAC.
        let header: Header = b64_decode(header_b64)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(IdentityError::Malformed("invalid header"))?;
        if header.alg != "HS256" {
            return Err(IdentityError::UnsupportedAlgorithm(header.alg));
        }
        let signature = b64_decode(signature_b64)
            .ok_or(IdentityError::Malformed("invalid signature encoding"))?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        let mut mac = key.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| IdentityError::BadSignature)?;

        let claims: Claims = b64_decode(payload_b64)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(IdentityError::Malformed("invalid claims"))?;
        if claims.typ != "access" {
            return Err(IdentityError::WrongType {
                expected: "access",
                actual: claims.typ,
            });
        }
        if claims.iss != ISSUER {
            return Err(IdentityError::Malformed("unknown issuer"));
        }
        if now > claims.exp + LEEWAY_SECS {
            return Err(IdentityError::Expired);
        }
        if claims.nbf > now + LEEWAY_SECS {
            return Err(IdentityError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key() -> SigningKey {
        SigningKey::new("a-test-signing-key-that-is-32-bytes-long!").unwrap()
    }

    fn issue() -> String {
        AccessToken::issue(
            &key(),
            "user1",
            "tenant1",
            Role::Admin,
            Some("s1"),
            NOW,
            3600,
        )
        .unwrap()
        .0
    }

    fn tamper_claims(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64_decode(parts[1]).unwrap()).unwrap();
        edit(&mut claims);
        format!(
            "{}.{}.{}",
            parts[0],
            b64_encode(claims.to_string().as_bytes()),
            parts[2]
        )
    }

    #[test]
    fn valid_token_verifies() {
        let claims = AccessToken::verify(&key(), &issue(), NOW + 10).unwrap();
        assert_eq!(claims.sub, "user1");
        assert_eq!(claims.tid, "tenant1");
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.exp, NOW + 3600);
        assert_eq!(claims.sid.as_deref(), Some("s1"));
    }

    #[test]
    fn expired_token_is_rejected() {
        let err = AccessToken::verify(&key(), &issue(), NOW + 3600 + LEEWAY_SECS + 1).unwrap_err();
        assert_eq!(err, IdentityError::Expired);
    }

    #[test]
    fn other_key_is_rejected() {
        let other = SigningKey::new("another-signing-key-of-at-least-32-bytes").unwrap();
        assert_eq!(
            AccessToken::verify(&other, &issue(), NOW).unwrap_err(),
            IdentityError::BadSignature
        );
    }

    #[test]
    fn tampered_claims_are_rejected() {
        let forged = tamper_claims(&issue(), |c| c["tid"] = "tenant2".into());
        assert_eq!(
            AccessToken::verify(&key(), &forged, NOW).unwrap_err(),
            IdentityError::BadSignature
        );
        let extended = tamper_claims(&issue(), |c| c["exp"] = (NOW + 999_999).into());
        assert_eq!(
            AccessToken::verify(&key(), &extended, NOW).unwrap_err(),
            IdentityError::BadSignature
        );
        let member = AccessToken::issue(&key(), "u", "t", Role::Member, None, NOW, 60)
            .unwrap()
            .0;
        let promoted = tamper_claims(&member, |c| c["role"] = "admin".into());
        assert_eq!(
            AccessToken::verify(&key(), &promoted, NOW).unwrap_err(),
            IdentityError::BadSignature
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let token = issue();
        let payload = token.split('.').nth(1).unwrap();
        let header = b64_encode(br#"{"alg":"none","typ":"JWT"}"#);
        for forged in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            let err = AccessToken::verify(&key(), &forged, NOW).unwrap_err();
            assert!(
                matches!(
                    err,
                    IdentityError::UnsupportedAlgorithm(_) | IdentityError::Malformed(_)
                ),
                "{err:?}"
            );
        }
        let header = b64_encode(br#"{"alg":"HS512"}"#);
        let err =
            AccessToken::verify(&key(), &format!("{header}.{payload}.AAAA"), NOW).unwrap_err();
        assert_eq!(err, IdentityError::UnsupportedAlgorithm("HS512".into()));
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in ["", "a.b", "a.b.c.d", "!!!.@@@.###", &"x".repeat(5000)] {
            assert!(
                matches!(
                    AccessToken::verify(&key(), bad, NOW),
                    Err(IdentityError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn future_token_is_not_valid_yet() {
        let token = AccessToken::issue(&key(), "u", "t", Role::Member, None, NOW + 3600, 60)
            .unwrap()
            .0;
        assert_eq!(
            AccessToken::verify(&key(), &token, NOW).unwrap_err(),
            IdentityError::NotYetValid
        );
    }

    #[test]
    fn short_key_is_rejected() {
        assert_eq!(
            SigningKey::new("short").unwrap_err(),
            IdentityError::WeakKey(5)
        );
    }
}
