//! `allowed_outbound_hosts` entries in Spin's syntax:
//! `scheme://host[:port]`, where the scheme, the host, a leading `*.` label
//! of the host and the port may be `*`, and a port may be a range `a..b`.
//! `insecure:allow-all` allows everything. An empty list means no network.

use std::fmt;

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    raw: String,
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// The host part of an allowed-host entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// One host name or IP literal, lowercase, IPv6 without brackets.
    Exact(String),
    /// `*.example.com`: any subdomain of the suffix, not the suffix itself.
    Subdomains(String),
}

/// The port part of an allowed-host entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortPattern {
    Any,
    /// Inclusive range; a single port is a range of one.
    Range(u16, u16),
}

impl AllowedHost {
    /// Parses one entry. The error message states what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let entry = raw.trim();
        if entry == "insecure:allow-all" {
            return Ok(AllowedHost {
                raw: raw.to_string(),
                scheme: None,
                host: HostPattern::Any,
                port: PortPattern::Any,
            });
        }
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
            format!("`{raw}` has no scheme: write it as `scheme://host[:port]`, for example `https://example.com`")
        })?;
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                Some(s.to_ascii_lowercase())
            }
            _ => return Err(format!("`{raw}` has an invalid scheme `{scheme}`")),
        };
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(format!(
                "`{raw}` contains a path; allowed hosts are `scheme://host[:port]` without a path"
            ));
        }
        if rest.contains('@') {
            return Err(format!(
                "`{raw}` contains user information, which is not allowed"
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|e| format!("`{raw}`: {e}"))?;
        let host = parse_host(host).map_err(|e| format!("`{raw}`: {e}"))?;
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(port) => parse_port_range(port).map_err(|e| format!("`{raw}`: {e}"))?,
            None => match scheme.as_deref() {
                Some("http") => PortPattern::Range(80, 80),
                Some("https") => PortPattern::Range(443, 443),
                _ => {
                    return Err(format!(
                        "`{raw}` needs a port, because only http and https have a default port \
                         (use `:*` for any port)"
                    ));
                }
            },
        };
        Ok(AllowedHost {
            raw: raw.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// The entry as written in the manifest.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn host(&self) -> &HostPattern {
        &self.host
    }

    /// Reports whether this entry allows a request with this scheme, host and port.
    /// `host` must be lowercase without IPv6 brackets.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|prefix| !prefix.is_empty()),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(low, high) => (low..=high).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }

    /// Reports whether this entry names `host` itself rather than matching it
    /// through a wildcard. Only such entries may reach loopback, private and
    /// link-local addresses.
    pub fn names_exactly(&self, host: &str) -> bool {
        matches!(&self.host, HostPattern::Exact(h) if h == host)
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = rest.strip_prefix('[') {
        let end = inner.find(']').ok_or("unclosed `[` in IPv6 address")?;
        let host = &inner[..end];
        let after = &inner[end + 1..];
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected `{after}` after IPv6 address")),
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host, Some(port))),
        Some(_) => {
            Err("IPv6 addresses must be written in brackets, as in `http://[::1]:8080`".into())
        }
        None => Ok((rest, None)),
    }
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    let host = host.to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(HostPattern::Exact(host));
    }
    let (pattern, name) = match host.strip_prefix("*.") {
        Some(suffix) => (
            HostPattern::Subdomains(format!(".{suffix}")),
            suffix.to_string(),
        ),
        None => (HostPattern::Exact(host.clone()), host.clone()),
    };
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !labels_ok {
        return Err(format!(
            "`{host}` is not a valid host name (a wildcard may only be the whole host or its first label)"
        ));
    }
    Ok(pattern)
}

fn parse_port_range(port: &str) -> Result<PortPattern, String> {
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number (0-65535)"))
    };
    match port.split_once("..") {
        Some((low, high)) => {
            let (low, high) = (parse(low)?, parse(high)?);
            if low > high {
                return Err(format!("port range `{port}` is empty"));
            }
            Ok(PortPattern::Range(low, high))
        }
        None => {
            let p = parse(port)?;
            Ok(PortPattern::Range(p, p))
        }
    }
}

/// A component's whole allow-list. Empty means no outbound network at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    pub fn new(entries: Vec<AllowedHost>) -> Self {
        AllowedHosts { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[AllowedHost] {
        &self.entries
    }

    /// Finds the first entry that allows this scheme, host and port.
    pub fn find(&self, scheme: &str, host: &str, port: u16) -> Option<&AllowedHost> {
        self.entries.iter().find(|e| e.allows(scheme, host, port))
    }

    /// Reports whether some entry that allows the request names `host` exactly.
    pub fn names_exactly(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.entries
            .iter()
            .any(|e| e.allows(scheme, host, port) && e.names_exactly(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> AllowedHost {
        AllowedHost::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn https_entry_defaults_to_port_443() {
        let entry = parse("https://example.com");
        assert!(entry.allows("https", "example.com", 443));
        assert!(!entry.allows("https", "example.com", 8443));
        assert!(!entry.allows("http", "example.com", 443));
        assert!(!entry.allows("https", "other.com", 443));
    }

    #[test]
    fn wildcards_cover_scheme_host_and_port() {
        let entry = parse("*://*:*");
        assert!(entry.allows("http", "anything.test", 1));
        assert!(!entry.names_exactly("anything.test"));
        let all = parse("insecure:allow-all");
        assert!(all.allows("redis", "db", 6379));
    }

    #[test]
    fn subdomain_wildcard_excludes_apex() {
        let entry = parse("https://*.example.com");
        assert!(entry.allows("https", "api.example.com", 443));
        assert!(entry.allows("https", "a.b.example.com", 443));
        assert!(!entry.allows("https", "example.com", 443));
        assert!(!entry.allows("https", "badexample.com", 443));
    }

    #[test]
    fn port_ranges_and_ipv6() {
        let entry = parse("http://[::1]:8000..8010");
        assert!(entry.allows("http", "::1", 8005));
        assert!(!entry.allows("http", "::1", 8011));
        assert!(entry.names_exactly("::1"));
    }

    #[test]
    fn host_names_are_case_insensitive() {
        let entry = parse("HTTP://Example.COM:8080");
        assert!(entry.allows("http", "example.com", 8080));
    }

    #[test]
    fn invalid_entries_are_rejected_with_reason() {
        for (raw, needle) in [
            ("example.com", "no scheme"),
            ("https://example.com/path", "path"),
            ("*://example.com", "needs a port"),
            ("redis://cache", "needs a port"),
            ("https://example.com:99999", "not a port"),
            ("https://user@example.com", "user information"),
            ("https://exa*mple.com", "not a valid host"),
            ("http://::1:80", "brackets"),
            ("https://example.com:9..1", "empty"),
        ] {
            let err = AllowedHost::parse(raw).unwrap_err();
            assert!(err.contains(needle), "{raw}: {err}");
        }
    }

    #[test]
    fn allow_list_reports_exact_naming() {
        let hosts = AllowedHosts::new(vec![parse("http://*:*"), parse("http://127.0.0.1:9000")]);
        assert!(hosts.find("http", "10.0.0.1", 80).is_some());
        assert!(!hosts.names_exactly("http", "10.0.0.1", 80));
        assert!(hosts.names_exactly("http", "127.0.0.1", 9000));
        assert!(AllowedHosts::default().find("http", "a", 80).is_none());
    }
}
