/// The reason a credential was rejected. Messages are safe to show to
/// clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token algorithm `{0}`: only HS256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("wrong token type: expected {expected}, got {actual}")]
    WrongType {
        expected: &'static str,
        actual: String,
    },
    #[error("malformed API key: expected `cck_<id>_<secret>`")]
    MalformedApiKey,
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("signing key is too short: {0} bytes, at least 32 are required")]
    WeakKey(usize),
    #[error("no random numbers available: {0}")]
    Random(String),
}
