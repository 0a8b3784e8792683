use super::*;

const GOOD: &str = r#"
spin_manifest_version = 2

[application]
name = "copycar"
version = "0.1.0"

[application.tool.copycar]
request_timeout_ms = 5000

[variables]
app_name = { default = "CopyCar" }
token_key = { required = true, secret = true }
api_host = { default = "api.example.com" }

[[trigger.http]]
route = "/health"
component = "health"

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.http]]
route = { private = true }
component = "internal"

[component.health]
source = "target/health.wasm"
key_value_stores = ["default"]
[component.health.variables]
name = "{{ app_name }}"
[component.health.build]
command = "cargo build --release"
workdir = "components/health"

[component.api]
source = "api.wasm"
allowed_outbound_hosts = ["https://{{ api_host }}", "http://127.0.0.1:9000"]

[component.internal]
source = "/abs/internal.wasm"
"#;

fn parse(text: &str) -> Result<App, ManifestError> {
    App::parse(text, Path::new("/app/spin.toml"), Path::new("/app"))
}

fn error_text(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn valid_manifest_loads_everything() {
    let app = parse(GOOD).unwrap();
    assert_eq!(app.name(), "copycar");
    assert_eq!(app.version(), Some("0.1.0"));
    assert_eq!(app.components().len(), 3);
    let health = app.component("health").unwrap();
    assert_eq!(health.source, Path::new("/app/target/health.wasm"));
    assert_eq!(health.key_value_stores, ["default"]);
    assert_eq!(health.variables["name"].template.raw(), "{{ app_name }}");
    let build = health.build.as_ref().unwrap();
    assert_eq!(build.commands, ["cargo build --release"]);
    assert_eq!(build.workdir, Path::new("/app/components/health"));
    assert_eq!(
        app.component("internal").unwrap().source,
        Path::new("/abs/internal.wasm")
    );
    assert!(app.variables()["token_key"].secret);
    assert!(app.variables()["token_key"].required);
    assert_eq!(
        app.tool("copycar").unwrap()["request_timeout_ms"].as_integer(),
        Some(5000)
    );
}

#[test]
fn private_trigger_has_no_route() {
    let app = parse(GOOD).unwrap();
    let router = app.router().unwrap();
    assert_eq!(router.routes().len(), 2);
    assert!(
        app.http_triggers()
            .iter()
            .any(|t| t.component == "internal" && t.route == TriggerRoute::Private)
    );
    assert_eq!(router.route("/api/x").unwrap().component, "api");
}

#[test]
fn base_path_prefixes_routes() {
    let text = GOOD.replace(
        "[application.tool.copycar]",
        "[application.trigger.http]\nbase = \"/v1\"\n[application.tool.copycar]",
    );
    let app = parse(&text).unwrap();
    let router = app.router().unwrap();
    assert_eq!(router.route("/v1/health").unwrap().component, "health");
    assert!(router.route("/health").is_none());
}

#[test]
fn syntax_error_names_file_and_line() {
    let err = error_text("spin_manifest_version = 2\n[application\nname = 1");
    assert!(err.contains("/app/spin.toml"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn unknown_field_is_rejected() {
    let text = GOOD.replace("allowed_outbound_hosts", "allowed_outbond_hosts");
    let err = error_text(&text);
    assert!(err.contains("allowed_outbond_hosts"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn wrong_manifest_version_is_rejected() {
    let err = error_text(&GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 1"));
    assert!(err.contains("field `spin_manifest_version`"), "{err}");
    assert!(err.contains("expected 2"), "{err}");
}

#[test]
fn trigger_for_missing_component_is_rejected() {
    let err = error_text(&GOOD.replace("component = \"api\"", "component = \"apix\""));
    assert!(err.contains("trigger.http[1].component"), "{err}");
    assert!(err.contains("`apix` is not declared"), "{err}");
}

#[test]
fn duplicate_route_is_rejected() {
    let err = error_text(&GOOD.replace("route = \"/health\"", "route = \"/api/...\""));
    assert!(err.contains("declared twice"), "{err}");
}

#[test]
fn bad_routes_are_rejected() {
    for (route, needle) in [
        ("health", "must start with `/`"),
        ("/users/:id", "route parameters"),
        ("/a/.../b", "last segment"),
        ("/a?b", "plain path"),
    ] {
        let err = error_text(&GOOD.replace("\"/health\"", &format!("\"{route}\"")));
        assert!(err.contains(needle), "{route}: {err}");
        assert!(err.contains("trigger.http[0].route"), "{route}: {err}");
    }
}

#[test]
fn invalid_allowed_host_names_field() {
    let err = error_text(&GOOD.replace("http://127.0.0.1:9000", "127.0.0.1:9000"));
    assert!(
        err.contains("component.api.allowed_outbound_hosts[1]"),
        "{err}"
    );
    assert!(err.contains("no scheme"), "{err}");
}

#[test]
fn undeclared_variable_reference_is_rejected() {
    let err = error_text(&GOOD.replace("{{ app_name }}", "{{ nope }}"));
    assert!(err.contains("component.health.variables.name"), "{err}");
    assert!(err.contains("not declared"), "{err}");
}

#[test]
fn required_with_default_is_rejected() {
    let err = error_text(&GOOD.replace(
        "token_key = { required = true, secret = true }",
        "token_key = { required = true, default = \"x\" }",
    ));
    assert!(err.contains("variables.token_key"), "{err}");
}

#[test]
fn invalid_component_id_is_rejected() {
    let err = error_text(&GOOD.replace("[component.internal]", "[component.Internal_X]"));
    assert!(err.contains("component.Internal_X"), "{err}");
    assert!(err.contains("invalid component id"), "{err}");
}

#[test]
fn legacy_and_unsupported_fields_are_explained() {
    let legacy = GOOD.replace(
        "source = \"api.wasm\"",
        "source = \"api.wasm\"\nallowed_http_hosts = [\"x\"]",
    );
    assert!(error_text(&legacy).contains("allowed_outbound_hosts"));
    let remote = GOOD.replace(
        "source = \"api.wasm\"",
        "source = { url = \"https://x/a.wasm\", digest = \"sha256:00\" }",
    );
    assert!(error_text(&remote).contains("remote sources"));
    let trigger = format!("{GOOD}\n[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"api\"\n");
    assert!(error_text(&trigger).contains("only HTTP triggers"));
}

#[test]
fn ai_models_are_granted_per_component() {
    let granted = GOOD.replace(
        "source = \"api.wasm\"",
        "source = \"api.wasm\"\nai_models = [\"default\", \"embeddings\"]",
    );
    let app = parse(&granted).unwrap();
    assert_eq!(app.components()["api"].ai_models, ["default", "embeddings"]);
    assert!(app.components()["health"].ai_models.is_empty());

    let empty_name = GOOD.replace(
        "source = \"api.wasm\"",
        "source = \"api.wasm\"\nai_models = [\"default\", \"\"]",
    );
    let err = error_text(&empty_name);
    assert!(err.contains("component.api.ai_models[1]"), "{err}");
}

#[test]
fn load_reports_missing_file() {
    let err = App::load(Path::new("/nonexistent/spin.toml")).unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to read manifest /nonexistent/spin.toml")
    );
}

#[test]
fn load_resolves_relative_to_manifest_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, GOOD).unwrap();
    let app = App::load(&path).unwrap();
    assert_eq!(
        app.component("api").unwrap().source,
        dir.path().join("api.wasm")
    );
}

#[test]
fn version_one_manifest_is_explained() {
    let err = error_text(
        "spin_manifest_version = \"1\"\nname = \"old\"\ntrigger = { type = \"http\" }\n",
    );
    assert!(err.contains("expected 2"), "{err}");
    let err = error_text("[application]\nname = \"x\"\n");
    assert!(err.contains("spin_manifest_version"), "{err}");
    assert!(err.contains("is missing"), "{err}");
}

#[test]
fn route_of_wrong_type_is_explained() {
    let err = error_text(&GOOD.replace("route = \"/health\"", "route = 5"));
    assert!(err.contains("trigger.http[0].route"), "{err}");
    assert!(err.contains("found 5"), "{err}");
    let err = error_text(&GOOD.replace(
        "route = { private = true }",
        "route = { private = true, extra = 1 }",
    ));
    assert!(err.contains("trigger.http[2].route"), "{err}");
}

#[test]
fn odd_route_paths_are_rejected() {
    for route in ["/a//b", "/a/../b", "/./a", "/a\\tb", "/a\\u0000b"] {
        let err = error_text(&GOOD.replace("\"/health\"", &format!("\"{route}\"")));
        assert!(err.contains("trigger.http[0].route"), "{route}: {err}");
    }
}

#[test]
fn environment_names_are_checked() {
    let text = GOOD.replace(
        "source = \"api.wasm\"",
        "source = \"api.wasm\"\nenvironment = { \"A=B\" = \"c\" }",
    );
    let err = error_text(&text);
    assert!(err.contains("component.api.environment"), "{err}");
    let text = GOOD.replace(
        "source = \"api.wasm\"",
        "source = \"api.wasm\"\nenvironment = { \"\" = \"c\" }",
    );
    assert!(error_text(&text).contains("invalid variable name"));
}

#[test]
fn huge_or_special_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, format!("{GOOD}\n#{}\n", "x".repeat(2 << 20))).unwrap();
    let err = App::load(&path).unwrap_err().to_string();
    assert!(err.contains("larger than the limit"), "{err}");
    let err = App::load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn long_lines_in_syntax_errors_are_cut() {
    let text = format!("spin_manifest_version = 2\nx = \"{}", "y".repeat(10_000));
    let err = error_text(&text);
    assert!(err.len() < 2_000, "{} bytes", err.len());
}
