//! Application and component variables.
//!
//! An application variable takes its value from `--variable NAME=VALUE`,
//! else from the `SPIN_VARIABLE_<NAME>` environment variable, else from its
//! `default` in `[variables]`. Component variables are templates over
//! application variables and are rendered once at start-up. Values of
//! `secret` variables, and of component variables built from them, are
//! never logged.

use copycar_manifest::App;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The source of an application variable's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableSource {
    CommandLine,
    Environment,
    Default,
}

/// A resolved value that hides itself in `Debug` output when secret.
#[derive(Clone, PartialEq, Eq)]
pub struct VariableValue {
    value: String,
    secret: bool,
}

impl VariableValue {
    pub fn expose(&self) -> &str {
        &self.value
    }
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for VariableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("\"<secret>\"")
        } else {
            write!(f, "{:?}", self.value)
        }
    }
}

/// Resolved values of every application variable that has one.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, (VariableValue, VariableSource)>,
}

impl AppVariables {
    /// Resolves the application's variables from command-line values and
    /// the environment (given as a lookup so tests need not mutate it).
    pub fn resolve(
        app: &App,
        cli: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let declared = app.variables();
        let mut cli_values: HashMap<&str, &str> = HashMap::new();
        for (name, value) in cli {
            if !declared.contains_key(name) {
                anyhow::bail!(
                    "--variable {name}: no variable `{name}` is declared in [variables] of {}",
                    app.manifest_path().display()
                );
            }
            cli_values.insert(name, value);
        }

        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, var) in declared {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let found = if let Some(v) = cli_values.get(name.as_str()) {
                Some((v.to_string(), VariableSource::CommandLine))
            } else if let Some(v) = env(&env_name) {
                Some((v, VariableSource::Environment))
            } else {
                var.default.clone().map(|v| (v, VariableSource::Default))
            };
            match found {
                Some((value, source)) => {
                    let value = VariableValue {
                        value,
                        secret: var.secret,
                    };
                    values.insert(name.clone(), (value, source));
                }
                None if var.required => missing.push(format!(
                    "`{name}` (pass --variable {name}=VALUE or set {env_name})"
                )),
                None => {}
            }
        }
        if !missing.is_empty() {
            anyhow::bail!("required variables have no value: {}", missing.join(", "));
        }
        Ok(AppVariables { values })
    }

    pub fn get(&self, name: &str) -> Option<&VariableValue> {
        self.values.get(name).map(|(v, _)| v)
    }

    /// Names with their sources, for start-up logs; values are left out.
    pub fn sources(&self) -> impl Iterator<Item = (&str, VariableSource)> {
        self.values.iter().map(|(k, (_, s))| (k.as_str(), *s))
    }

    /// Renders one component's variables. A component variable is secret
    /// when any application variable it uses is secret.
    pub fn render_component(
        &self,
        component: &copycar_manifest::Component,
    ) -> anyhow::Result<HashMap<String, VariableValue>> {
        let mut out = HashMap::new();
        for (name, var) in &component.variables {
            let template = &var.template;
            let value = template
                .render(|v| self.get(v).map(VariableValue::expose))
                .map_err(|unresolved| {
                    anyhow::anyhow!(
                        "component `{}` variable `{name}` uses `{unresolved}`, which has no value \
                         (declare a default or pass --variable {unresolved}=VALUE)",
                        component.id
                    )
                })?;
            let secret = template
                .variables()
                .any(|v| self.get(v).is_some_and(VariableValue::is_secret));
            out.insert(name.clone(), VariableValue { value, secret });
        }
        Ok(out)
    }

    /// Renders a template such as an `allowed_outbound_hosts` entry.
    pub fn render(&self, template: &copycar_manifest::Template) -> Result<String, String> {
        template.render(|v| self.get(v).map(VariableValue::expose))
    }
}

/// Parses a `--variable` argument: `NAME=VALUE`.
pub fn parse_variable_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}` is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{arg}` has an empty variable name"));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
region = { default = "eu" }
[component.c]
source = "c.wasm"
[component.c.variables]
message = "{{ greeting }} from {{ region }}"
auth = "Bearer {{ token }}"
"#;

    fn app() -> App {
        App::parse(MANIFEST, Path::new("spin.toml"), Path::new(".")).unwrap()
    }

    #[test]
    fn cli_beats_environment_beats_default() {
        let cli = vec![
            ("greeting".to_string(), "hi".to_string()),
            ("token".to_string(), "t1".to_string()),
        ];
        let env = |name: &str| match name {
            "SPIN_VARIABLE_GREETING" => Some("env-hi".to_string()),
            "SPIN_VARIABLE_REGION" => Some("us".to_string()),
            _ => None,
        };
        let vars = AppVariables::resolve(&app(), &cli, env).unwrap();
        assert_eq!(vars.get("greeting").unwrap().expose(), "hi");
        assert_eq!(vars.get("region").unwrap().expose(), "us");
        let sources: BTreeMap<_, _> = vars.sources().collect();
        assert_eq!(sources["greeting"], VariableSource::CommandLine);
        assert_eq!(sources["region"], VariableSource::Environment);
    }

    #[test]
    fn default_applies_without_overrides() {
        let vars = AppVariables::resolve(&app(), &[], |n| {
            (n == "SPIN_VARIABLE_TOKEN").then(|| "x".into())
        })
        .unwrap();
        assert_eq!(vars.get("greeting").unwrap().expose(), "hello");
    }

    #[test]
    fn missing_required_variable_is_an_error() {
        let err = AppVariables::resolve(&app(), &[], |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`token`"), "{err}");
        assert!(err.contains("SPIN_VARIABLE_TOKEN"), "{err}");
    }

    #[test]
    fn undeclared_cli_variable_is_an_error() {
        let cli = vec![("nope".to_string(), "1".to_string())];
        let err = AppVariables::resolve(&app(), &cli, |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no variable `nope`"), "{err}");
    }

    #[test]
    fn component_variables_render_and_inherit_secrecy() {
        let cli = vec![("token".to_string(), "s3cr3t".to_string())];
        let vars = AppVariables::resolve(&app(), &cli, |_| None).unwrap();
        let rendered = vars
            .render_component(app().component("c").unwrap())
            .unwrap();
        assert_eq!(rendered["message"].expose(), "hello from eu");
        assert!(!rendered["message"].is_secret());
        assert_eq!(rendered["auth"].expose(), "Bearer s3cr3t");
        assert!(rendered["auth"].is_secret());
        assert!(!format!("{:?}", rendered["auth"]).contains("s3cr3t"));
    }

    #[test]
    fn variable_argument_parsing() {
        assert_eq!(
            parse_variable_arg("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert!(parse_variable_arg("novalue").is_err());
        assert!(parse_variable_arg("=x").is_err());
    }
}
