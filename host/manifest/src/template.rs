//! `{{ name }}` templates, the syntax Spin uses to splice application
//! variables into component variables and outbound host entries.

use std::fmt;

/// A string with `{{ variable }}` references to application variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    raw: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    /// Parses `raw`, rejecting unbalanced braces and invalid variable names.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in template `{raw}`"))?;
            let name = after[..end].trim();
            if !is_valid_variable_name(name) {
                return Err(format!(
                    "invalid variable reference `{name}` in template `{raw}`: names use lowercase \
                     letters, digits and underscores, starting with a letter"
                ));
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("unopened `}}}}` in template `{raw}`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template {
            raw: raw.to_string(),
            parts,
        })
    }

    /// The template as written in the manifest.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Names of the application variables the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Reports whether the template contains no variable references.
    pub fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// Expands the template, looking each variable up with `lookup`.
    ///
    /// Returns the name of the first variable that `lookup` cannot resolve.
    pub fn render<'a>(
        &self,
        mut lookup: impl FnMut(&str) -> Option<&'a str>,
    ) -> Result<String, String> {
        let mut out = String::with_capacity(self.raw.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(lookup(name).ok_or_else(|| name.clone())?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Variable names: lowercase ASCII letters, digits and underscores, starting
/// with a letter, as Spin requires.
pub fn is_valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_renders_variables_and_literals() {
        let template = Template::parse("https://{{ host }}:{{port}}/x").unwrap();
        let rendered = template
            .render(|name| match name {
                "host" => Some("example.com"),
                "port" => Some("8443"),
                _ => None,
            })
            .unwrap();
        assert_eq!(rendered, "https://example.com:8443/x");
        assert_eq!(template.variables().collect::<Vec<_>>(), ["host", "port"]);
    }

    #[test]
    fn template_reports_unresolved_variable() {
        let template = Template::parse("{{ missing }}").unwrap();
        assert_eq!(template.render(|_| None), Err("missing".to_string()));
    }

    #[test]
    fn template_rejects_bad_syntax() {
        assert!(Template::parse("{{ open").is_err());
        assert!(Template::parse("close }}").is_err());
        assert!(Template::parse("{{ Upper }}").is_err());
        assert!(Template::parse("{{ 1st }}").is_err());
    }

    #[test]
    fn literal_template_has_no_variables() {
        let template = Template::parse("plain").unwrap();
        assert!(template.is_literal());
        assert_eq!(template.render(|_| None).unwrap(), "plain");
    }
}
