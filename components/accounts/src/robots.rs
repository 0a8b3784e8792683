//! The parts of robots.txt that decide whether research may read a path:
//! the group for our agent token (or `*`), and its `Allow` and `Disallow`
//! rules, longest match first.

/// The token that robots.txt groups use to address our user agent.
pub const AGENT_TOKEN: &str = "copycar";

/// Rules that apply to us, from one robots.txt.
#[derive(Debug, Default)]
pub struct Robots {
    /// `(allow, path prefix)`.
    rules: Vec<(bool, String)>,
}

impl Robots {
    pub fn parse(text: &str) -> Robots {
        // Groups are runs of user-agent lines followed by rules. A group
        // naming our token wins over `*`.
        let mut ours: Vec<(bool, String)> = Vec::new();
        let mut any: Vec<(bool, String)> = Vec::new();
        let mut named_ours = false;
        let mut agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        agents.clear();
                        in_rules = false;
                    }
                    agents.push(value.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    let allow = key == "allow";
                    // An empty Disallow allows everything.
                    if value.is_empty() {
                        continue;
                    }
                    if agents.iter().any(|a| a.contains(AGENT_TOKEN)) {
                        named_ours = true;
                        ours.push((allow, value.to_string()));
                    } else if agents.iter().any(|a| a == "*") {
                        any.push((allow, value.to_string()));
                    }
                }
                _ => {}
            }
        }
        Robots {
            rules: if named_ours { ours } else { any },
        }
    }

    /// Returns whether `path` may be fetched. The longest matching rule
    /// decides, and on a tie `Allow` wins. `*` matches any run of characters and a
    /// trailing `$` anchors the end.
    pub fn allows(&self, path: &str) -> bool {
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern, path) {
                let length = pattern.len();
                let better = match best {
                    None => true,
                    Some((best_len, best_allow)) => {
                        length > best_len || (length == best_len && *allow && !best_allow)
                    }
                };
                if better {
                    best = Some((length, *allow));
                }
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut position = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !path.starts_with(part) {
                return false;
            }
            position = part.len();
        } else {
            match path[position..].find(part) {
                Some(found) => position += found + part.len(),
                None => return false,
            }
        }
    }
    if anchored {
        // The last literal part must end the path.
        let last = parts.last().copied().unwrap_or("");
        return parts.len() == 1 && position == path.len()
            || (parts.len() > 1 && path.ends_with(last));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::Robots;

    #[test]
    fn star_group_applies_when_ours_is_absent() {
        let robots = Robots::parse("User-agent: *\nDisallow: /private\nAllow: /private/ok\n");
        assert!(robots.allows("/"));
        assert!(!robots.allows("/private/x"));
        assert!(robots.allows("/private/ok/page"));
    }

    #[test]
    fn our_group_replaces_the_star_group() {
        let text = "User-agent: *\nDisallow: /\n\nUser-agent: CopyCar\nDisallow: /admin\n";
        let robots = Robots::parse(text);
        assert!(robots.allows("/about"));
        assert!(!robots.allows("/admin/users"));
    }

    #[test]
    fn wildcards_anchors_and_empty_rules() {
        let robots = Robots::parse("User-agent: *\nDisallow: /*.pdf$\nDisallow:\n");
        assert!(!robots.allows("/files/report.pdf"));
        assert!(robots.allows("/files/report.pdf?x=1"));
        assert!(robots.allows("/"));
        let closed = Robots::parse("user-agent: other\nuser-agent: *\ndisallow: /\n");
        assert!(!closed.allows("/"));
        assert!(Robots::parse("garbage\n\0\nDisallow /x").allows("/x"));
    }
}
