//! The validated application: what `copycar up` and `copycar build` work from.

use crate::allowed_hosts::AllowedHost;
use crate::error::ManifestError;
use crate::raw::{RawCommand, RawComponent, RawManifest, RawRoute};
use crate::router::{Router, join_base};
use crate::template::{Template, is_valid_variable_name};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A checked Spin application manifest.
#[derive(Debug, Clone)]
pub struct App {
    manifest_path: PathBuf,
    name: String,
    version: Option<String>,
    description: Option<String>,
    base: String,
    variables: BTreeMap<String, Variable>,
    components: BTreeMap<String, Component>,
    http_triggers: Vec<HttpTrigger>,
    tool: BTreeMap<String, toml::Table>,
}

/// An application variable from `[variables]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
    pub description: Option<String>,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub description: Option<String>,
    /// Absolute path of the component's Wasm file (relative paths are
    /// resolved against the manifest's directory).
    pub source: PathBuf,
    /// Entries as written; they may contain `{{ variable }}` references and
    /// are parsed once variables are resolved.
    pub allowed_outbound_hosts: Vec<Template>,
    pub key_value_stores: Vec<String>,
    /// Language models (aliases of the runtime config's `[llm]` table) the
    /// component may call through `fermyon:spin/llm`.
    pub ai_models: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub variables: BTreeMap<String, ComponentVariable>,
    pub build: Option<BuildConfig>,
    pub tool: BTreeMap<String, toml::Table>,
}

/// A component variable: a template over application variables.
#[derive(Debug, Clone)]
pub struct ComponentVariable {
    pub template: Template,
}

/// A component's `build` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    /// Shell commands, run in order.
    pub commands: Vec<String>,
    /// Directory the commands run in (absolute).
    pub workdir: PathBuf,
    pub watch: Vec<String>,
    pub environment: BTreeMap<String, String>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    pub component: String,
    pub route: TriggerRoute,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerRoute {
    /// A public route with the base path already applied.
    Path(String),
    /// `route = { private = true }`: reachable only from other components.
    Private,
}

impl App {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<App, ManifestError> {
        let text =
            read_limited(path, MAX_MANIFEST_BYTES).map_err(|source| ManifestError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self::parse(&text, path, &dir)
    }

    /// Checks manifest text; `path` is used in errors and `dir` resolves
    /// relative paths.
    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<App, ManifestError> {
        let syntax = |e: toml::de::Error| ManifestError::Syntax {
            path: path.to_path_buf(),
            message: shorten(e.to_string().trim_end()),
        };
        let field = |field: &str, message: String| ManifestError::field(path, field, message);

        // Check the version first, so a version 1 manifest gets that message
        // rather than a list of fields version 2 does not know.
        let table: toml::Table = toml::from_str(text).map_err(syntax)?;
        match table
            .get("spin_manifest_version")
            .or_else(|| table.get("spin_version"))
        {
            Some(toml::Value::Integer(2)) => {}
            Some(toml::Value::String(s)) if s == "2" => {}
            Some(other) => {
                return Err(field(
                    "spin_manifest_version",
                    format!("expected 2, found {other}; copycar reads Spin manifest version 2"),
                ));
            }
            None => {
                return Err(field(
                    "spin_manifest_version",
                    "is missing; add `spin_manifest_version = 2`".into(),
                ));
            }
        }
        let raw: RawManifest = toml::Value::Table(table).try_into().map_err(syntax)?;
        if raw.application.name.trim().is_empty() {
            return Err(field("application.name", "must not be empty".into()));
        }

        let mut variables = BTreeMap::new();
        for (name, var) in raw.variables {
            let at = format!("variables.{name}");
            if !is_valid_variable_name(&name) {
                return Err(field(
                    &at,
                    "invalid variable name: use lowercase letters, digits and underscores, starting with a letter".into(),
                ));
            }
            if var.required && var.default.is_some() {
                return Err(field(
                    &at,
                    "a variable cannot be both `required` and have a `default`".into(),
                ));
            }
            variables.insert(
                name,
                Variable {
                    default: var.default,
                    required: var.required,
                    secret: var.secret,
                    description: var.description,
                },
            );
        }

        let base = match raw
            .application
            .trigger
            .get("http")
            .and_then(|t| t.get("base"))
        {
            None => "/".to_string(),
            Some(toml::Value::String(b)) if b.starts_with('/') => b.clone(),
            Some(other) => {
                return Err(field(
                    "application.trigger.http.base",
                    format!("expected a path starting with `/`, found {other}"),
                ));
            }
        };

        let mut components = BTreeMap::new();
        for (id, component) in raw.component {
            let component = check_component(&id, component, dir, &variables, path)?;
            components.insert(id, component);
        }

        let mut http_triggers = Vec::new();
        for (kind, triggers) in raw.trigger {
            if kind != "http" {
                return Err(field(
                    &format!("trigger.{kind}"),
                    "only HTTP triggers (`[[trigger.http]]`) are supported by the copycar host"
                        .into(),
                ));
            }
            for (index, table) in triggers.into_iter().enumerate() {
                let at = format!("trigger.http[{index}]");
                let trigger: crate::raw::RawHttpTrigger = toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| field(&at, e.message().to_string()))?;
                http_triggers.push(check_trigger(&at, trigger, &base, &components, path)?);
            }
        }

        let app = App {
            manifest_path: path.to_path_buf(),
            name: raw.application.name,
            version: raw.application.version,
            description: raw.application.description,
            base,
            variables,
            components,
            http_triggers,
            tool: raw.application.tool,
        };
        // Building the router now reports duplicate routes at load time.
        app.router()?;
        Ok(app)
    }

    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    pub fn base(&self) -> &str {
        &self.base
    }
    pub fn variables(&self) -> &BTreeMap<String, Variable> {
        &self.variables
    }
    pub fn components(&self) -> &BTreeMap<String, Component> {
        &self.components
    }
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.get(id)
    }
    pub fn http_triggers(&self) -> &[HttpTrigger] {
        &self.http_triggers
    }
    /// Returns the `[application.tool.<name>]` table, where tools keep settings
    /// that Spin itself ignores.
    pub fn tool(&self, name: &str) -> Option<&toml::Table> {
        self.tool.get(name)
    }

    /// Builds the route table of the public HTTP triggers.
    pub fn router(&self) -> Result<Router, ManifestError> {
        let routes = self.http_triggers.iter().filter_map(|t| match &t.route {
            TriggerRoute::Path(route) => Some((route.as_str(), t.component.as_str())),
            TriggerRoute::Private => None,
        });
        Router::build(routes).map_err(|dup| {
            ManifestError::field(
                &self.manifest_path,
                "trigger.http",
                format!(
                    "route `{}` is declared twice, for components `{}` and `{}`",
                    dup.route, dup.first, dup.second
                ),
            )
        })
    }

    /// Components that at least one HTTP trigger serves.
    pub fn triggered_components(&self) -> impl Iterator<Item = &Component> {
        let mut ids: Vec<&str> = self
            .http_triggers
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter().filter_map(|id| self.components.get(id))
    }
}

/// Component ids are kebab-case: lowercase letters and digits in words
/// joined by single `-`, starting with a letter.
fn is_valid_component_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

fn check_component(
    id: &str,
    raw: RawComponent,
    dir: &Path,
    app_variables: &BTreeMap<String, Variable>,
    path: &Path,
) -> Result<Component, ManifestError> {
    let at = |key: &str| format!("component.{id}.{key}");
    let field = |key: &str, message: String| ManifestError::field(path, at(key), message);

    if !is_valid_component_id(id) {
        return Err(ManifestError::field(
            path,
            format!("component.{id}"),
            "invalid component id: use lowercase letters and digits in words joined by `-`, starting with a letter".to_string(),
        ));
    }
    let source = match raw.source {
        toml::Value::String(s) if !s.trim().is_empty() => dir.join(s),
        toml::Value::Table(_) => {
            return Err(field(
                "source",
                "remote sources (`url` and `digest`) are not supported; download the file and give its local path".into(),
            ));
        }
        other => {
            return Err(field(
                "source",
                format!("expected the path of a .wasm file, found {other}"),
            ));
        }
    };
    if raw.allowed_http_hosts.is_some() {
        return Err(field(
            "allowed_http_hosts",
            "manifest version 2 replaced this field with `allowed_outbound_hosts` (entries are `scheme://host[:port]`)".into(),
        ));
    }
    for (key, present) in [
        ("sqlite_databases", !raw.sqlite_databases.is_empty()),
        (
            "files",
            !raw.files.is_empty() || !raw.exclude_files.is_empty(),
        ),
        ("dependencies", raw.dependencies.is_some()),
    ] {
        if present {
            return Err(field(
                key,
                "is not supported by the copycar host; remove it".into(),
            ));
        }
    }

    let mut allowed_outbound_hosts = Vec::new();
    for (index, entry) in raw.allowed_outbound_hosts.iter().enumerate() {
        let key = format!("allowed_outbound_hosts[{index}]");
        let template = Template::parse(entry).map_err(|e| field(&key, e))?;
        check_references(&template, app_variables).map_err(|e| field(&key, e))?;
        // Entries without variables can be checked now; the runtime checks
        // the others after substituting the variables.
        if template.is_literal() {
            AllowedHost::parse(entry).map_err(|e| field(&key, e))?;
        }
        allowed_outbound_hosts.push(template);
    }

    for (name, value) in &raw.environment {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(field(
                "environment",
                format!("invalid variable name `{name}`: it must be non-empty without `=` or NUL"),
            ));
        }
        if value.contains('\0') {
            return Err(field(
                "environment",
                format!("the value of `{name}` contains a NUL character"),
            ));
        }
    }

    for label in &raw.key_value_stores {
        if label.is_empty()
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(field(
                "key_value_stores",
                format!("invalid store label `{label}`: use letters, digits, `_` and `-`"),
            ));
        }
    }

    for (index, model) in raw.ai_models.iter().enumerate() {
        if model.is_empty() || model.len() > 128 || model.chars().any(char::is_control) {
            return Err(field(
                &format!("ai_models[{index}]"),
                "invalid model name: use 1 to 128 printable characters".into(),
            ));
        }
    }

    let mut variables = BTreeMap::new();
    for (name, value) in raw.variables {
        let key = format!("variables.{name}");
        if !is_valid_variable_name(&name) {
            return Err(field(
                &key,
                "invalid variable name: use lowercase letters, digits and underscores, starting with a letter".into(),
            ));
        }
        let template = Template::parse(&value).map_err(|e| field(&key, e))?;
        check_references(&template, app_variables).map_err(|e| field(&key, e))?;
        variables.insert(name, ComponentVariable { template });
    }

    let build = match raw.build {
        None => None,
        Some(build) => {
            let commands = match build.command {
                RawCommand::One(c) => vec![c],
                RawCommand::Many(cs) => cs,
            };
            if commands.is_empty() || commands.iter().any(|c| c.trim().is_empty()) {
                return Err(field("build.command", "must be a non-empty command".into()));
            }
            let workdir = match build.workdir {
                Some(w) => dir.join(w),
                None => dir.to_path_buf(),
            };
            Some(BuildConfig {
                commands,
                workdir,
                watch: build.watch,
                environment: build.environment,
            })
        }
    };

    Ok(Component {
        id: id.to_string(),
        description: raw.description,
        source,
        allowed_outbound_hosts,
        key_value_stores: raw.key_value_stores,
        ai_models: raw.ai_models,
        environment: raw.environment,
        variables,
        build,
        tool: raw.tool,
    })
}

fn check_references(
    template: &Template,
    app_variables: &BTreeMap<String, Variable>,
) -> Result<(), String> {
    match template
        .variables()
        .find(|name| !app_variables.contains_key(*name))
    {
        Some(name) => Err(format!(
            "refers to `{{{{ {name} }}}}`, which is not declared in `[variables]`"
        )),
        None => Ok(()),
    }
}

fn check_trigger(
    at: &str,
    raw: crate::raw::RawHttpTrigger,
    base: &str,
    components: &BTreeMap<String, Component>,
    path: &Path,
) -> Result<HttpTrigger, ManifestError> {
    let component = match raw.component {
        toml::Value::String(id) => id,
        toml::Value::Table(_) => {
            return Err(ManifestError::field(
                path,
                format!("{at}.component"),
                "inline components are not supported; declare `[component.<id>]` and name it here"
                    .to_string(),
            ));
        }
        other => {
            return Err(ManifestError::field(
                path,
                format!("{at}.component"),
                format!("expected a component id, found {other}"),
            ));
        }
    };
    if !components.contains_key(&component) {
        return Err(ManifestError::field(
            path,
            format!("{at}.component"),
            format!(
                "component `{component}` is not declared; add a `[component.{component}]` table"
            ),
        ));
    }
    let route_error = |message: String| ManifestError::field(path, format!("{at}.route"), message);
    let raw_route = match raw.route {
        toml::Value::String(route) => RawRoute::Path(route),
        toml::Value::Table(table) => match (table.get("private"), table.len()) {
            (Some(toml::Value::Boolean(private)), 1) => RawRoute::Private(*private),
            _ => {
                return Err(route_error(
                    "expected a path such as \"/api/...\" or `{ private = true }`".into(),
                ));
            }
        },
        other => {
            return Err(route_error(format!(
                "expected a path such as \"/api/...\" or `{{ private = true }}`, found {other}"
            )));
        }
    };
    let route = match raw_route {
        RawRoute::Private(true) => TriggerRoute::Private,
        RawRoute::Private(false) => {
            return Err(route_error(
                "`{ private = false }` is not a route; give a path such as \"/api/...\""
                    .to_string(),
            ));
        }
        RawRoute::Path(route) => {
            // A trailing slash is allowed; Spin treats `/a/` as `/a`.
            let segments: Vec<&str> = route.trim_end_matches('/').split('/').skip(1).collect();
            let problem = if !route.starts_with('/') {
                Some("must start with `/`")
            } else if route.chars().any(|c| c.is_control() || c.is_whitespace()) {
                Some("must not contain spaces or control characters")
            } else if route.len() > 1
                && segments
                    .iter()
                    .any(|s| s.is_empty() || *s == "." || *s == "..")
            {
                Some("must not contain empty, `.` or `..` segments")
            } else if route.split('/').any(|segment| segment.starts_with(':')) {
                Some(
                    "route parameters (`:name`) are not supported; use a `/...` wildcard and read `spin-path-info`",
                )
            } else if route.contains("...") && !(route.ends_with("/...")) {
                Some("`...` is only allowed as the last segment, as in `/api/...`")
            } else if route.contains(['?', '#']) {
                Some("must be a plain path without query or fragment")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ManifestError::field(
                    path,
                    format!("{at}.route"),
                    format!("`{route}` {problem}"),
                ));
            }
            TriggerRoute::Path(join_base(base, &route))
        }
    };
    Ok(HttpTrigger { component, route })
}

/// Manifests larger than this are rejected before parsing.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Reads a regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<String> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if metadata.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "file is {} bytes, larger than the limit of {limit}",
                metadata.len()
            ),
        ));
    }
    std::fs::read_to_string(path)
}

/// Shortens a parser message: very long source lines are cut, so an error
/// about a huge line stays readable.
fn shorten(message: &str) -> String {
    message
        .lines()
        .map(|line| match line.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
