//! Input rules for e-mail addresses, passwords and names.

use copycar_guest::http::ApiError;

/// Trims and lowercases (Unicode) an e-mail address and checks its shape.
pub fn email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let invalid = || ApiError::bad_field("email", "invalid e-mail address");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') || !domain.contains('.') {
        return Err(invalid());
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(invalid());
    }
    Ok(email)
}

/// Passwords are 12 to 128 characters. The upper bound keeps hashing cost
/// bounded per request.
pub fn password(raw: &str) -> Result<(), ApiError> {
    let length = raw.chars().count();
    if length < 12 {
        return Err(ApiError::bad_field(
            "password",
            "password must be at least 12 characters",
        ));
    }
    if length > 128 {
        return Err(ApiError::bad_field(
            "password",
            "password must be at most 128 characters",
        ));
    }
    Ok(())
}

/// Checks a display name (organisation, API key): 1 to 100 printable
/// characters.
pub fn name(field: &'static str, raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must be 1 to 100 characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(name.to_string())
}
