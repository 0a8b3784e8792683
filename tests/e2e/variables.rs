//! `fermyon:spin/variables`: command line over environment over defaults,
//! required and secret variables.

use crate::support::{Host, HostOptions, get_json, probe_manifest, start_failure};

const VARIABLES: &str = r#"
[variables]
greeting = { default = "hello" }
region = { default = "eu" }
api_token = { required = true, secret = true }
"#;

const COMPONENT: &str = r#"[component.probe.variables]
greeting = "{{ greeting }}"
region = "{{ region }}"
authorization = "Bearer {{ api_token }}""#;

fn manifest() -> String {
    probe_manifest(COMPONENT, "").replace(
        "[[trigger.http]]",
        &format!("{VARIABLES}\n[[trigger.http]]"),
    )
}

#[tokio::test]
async fn variables_resolve_in_order() {
    let host = Host::start_with(
        &manifest(),
        HostOptions {
            args: vec![
                "--variable".into(),
                "greeting=from-cli".into(),
                "--variable".into(),
                "api_token=tok-123".into(),
            ],
            env: vec![
                ("SPIN_VARIABLE_GREETING".into(), "from-env".into()),
                ("SPIN_VARIABLE_REGION".into(), "us".into()),
            ],
            ..Default::default()
        },
    );
    let (_, body) = get_json(&host.url("/probe/var/greeting")).await;
    assert_eq!(body["value"], "from-cli");
    let (_, body) = get_json(&host.url("/probe/var/region")).await;
    assert_eq!(body["value"], "us");
    let (_, body) = get_json(&host.url("/probe/var/authorization")).await;
    assert_eq!(body["value"], "Bearer tok-123");
}

#[tokio::test]
async fn defaults_apply_and_undeclared_names_fail() {
    let host = Host::start_with(
        &manifest(),
        HostOptions {
            env: vec![("SPIN_VARIABLE_API_TOKEN".into(), "t".into())],
            ..Default::default()
        },
    );
    let (status, body) = get_json(&host.url("/probe/var/greeting")).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], "hello");
    let (status, body) = get_json(&host.url("/probe/var/nope")).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    let (status, body) = get_json(&host.url("/probe/var/Bad-Name")).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a valid variable name"),
        "{body}"
    );
}

#[test]
fn missing_required_variable_fails_at_start() {
    let logs = start_failure(&manifest(), HostOptions::default());
    assert!(logs.contains("required variables have no value"), "{logs}");
    assert!(logs.contains("SPIN_VARIABLE_API_TOKEN"), "{logs}");
}

#[test]
fn undeclared_cli_variable_fails_at_start() {
    let logs = start_failure(
        &manifest(),
        HostOptions {
            args: vec!["--variable".into(), "colour=red".into()],
            ..Default::default()
        },
    );
    assert!(logs.contains("no variable `colour`"), "{logs}");
}

#[tokio::test]
async fn secrets_never_reach_logs() {
    let secret = "sk-very-secret-value-42";
    let host = Host::start_with(
        &manifest(),
        HostOptions {
            args: vec!["--variable".into(), format!("api_token={secret}")],
            ..Default::default()
        },
    );
    let (_, body) = get_json(&host.url("/probe/var/authorization")).await;
    assert_eq!(body["value"], format!("Bearer {secret}"));
    let logs = host.stop();
    assert!(
        logs.contains("resolved variable"),
        "debug logs should list variables: {logs}"
    );
    assert!(!logs.contains(secret), "secret leaked into logs:\n{logs}");
}
