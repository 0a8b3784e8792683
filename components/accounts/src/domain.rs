//! Normalising what a user types as a company's domain.

/// Turns `https://www.Acme.com/about` or `acme.com.` into `acme.com`, or
/// returns why the input is not a public domain name.
pub fn normalise(input: &str) -> Result<String, String> {
    let mut text = input.trim().to_ascii_lowercase();
    if text.is_empty() {
        return Err("give the company's domain, for example `acme.com`".into());
    }
    if text.len() > 2048 {
        return Err("the domain is longer than 2048 characters".into());
    }
    for scheme in ["https://", "http://"] {
        if let Some(rest) = text.strip_prefix(scheme) {
            text = rest.to_string();
            break;
        }
    }
    if text.contains("://") {
        return Err("only http and https addresses can name a company's site".into());
    }
    // Drop the path, query and fragment, then any user info and port.
    let host = text
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default();
    if host.starts_with('[') {
        return Err("give a domain name, not an IP address".into());
    }
    let host = host.split(':').next().unwrap_or_default();
    let host = host.trim_end_matches('.');
    let host = host.strip_prefix("www.").unwrap_or(host);

    if host.len() > 253 {
        return Err("a domain name has at most 253 characters".into());
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "`{host}` is not a domain name; give one such as `acme.com`"
        ));
    }
    if labels.iter().all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err("give a domain name, not an IP address".into());
    }
    for label in &labels {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(format!(
                "`{label}` is not a valid label in `{host}`: use letters, digits and inner hyphens, at most 63 characters"
            ));
        }
    }
    let tld = labels[labels.len() - 1];
    if !(tld.starts_with("xn--") || tld.chars().all(|c| c.is_ascii_lowercase())) {
        return Err(format!("`{tld}` is not a top-level domain"));
    }
    Ok(host.to_string())
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn strips_scheme_www_path_port_and_case() {
        for input in [
            "acme.com",
            "ACME.com.",
            "https://www.acme.com/about?x=1",
            "http://acme.com:8080",
            " www.Acme.COM/ ",
            "user@acme.com",
        ] {
            assert_eq!(normalise(input).unwrap(), "acme.com", "{input}");
        }
        assert_eq!(normalise("app.xn--p1ai").unwrap(), "app.xn--p1ai");
    }

    #[test]
    fn refuses_what_is_not_a_public_domain() {
        for input in [
            "",
            "localhost",
            "127.0.0.1",
            "http://[::1]/",
            "ftp://acme.com",
            "acme..com",
            "-acme.com",
            "acme.c0m",
            "ac me.com",
            "acme_corp.com",
        ] {
            assert!(normalise(input).is_err(), "{input} was accepted");
        }
    }
}
