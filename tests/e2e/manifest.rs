//! Invalid manifests stop `copycar up` with an error naming the file, the
//! field and the problem.

use crate::support::{HostOptions, probe_manifest, start_failure, wasm};

#[test]
fn unknown_field_names_file_and_field() {
    let manifest = probe_manifest("allowed_outbond_hosts = []", "");
    let logs = start_failure(&manifest, HostOptions::default());
    assert!(logs.contains("spin.toml"), "{logs}");
    assert!(logs.contains("allowed_outbond_hosts"), "{logs}");
    assert!(logs.contains("unknown field"), "{logs}");
}

#[test]
fn trigger_for_undeclared_component_fails() {
    let manifest = probe_manifest(
        "",
        "[[trigger.http]]\nroute = \"/x\"\ncomponent = \"ghost\"\n",
    );
    let logs = start_failure(&manifest, HostOptions::default());
    assert!(logs.contains("trigger.http[1].component"), "{logs}");
    assert!(logs.contains("`ghost` is not declared"), "{logs}");
}

#[test]
fn invalid_allowed_host_fails() {
    let manifest = probe_manifest("allowed_outbound_hosts = [\"example.com\"]", "");
    let logs = start_failure(&manifest, HostOptions::default());
    assert!(
        logs.contains("component.probe.allowed_outbound_hosts[0]"),
        "{logs}"
    );
    assert!(logs.contains("no scheme"), "{logs}");
}

#[test]
fn missing_wasm_file_fails_with_hint() {
    let manifest =
        probe_manifest("", "").replace(wasm("probe").to_str().unwrap(), "/nonexistent/probe.wasm");
    let logs = start_failure(&manifest, HostOptions::default());
    assert!(logs.contains("/nonexistent/probe.wasm"), "{logs}");
    assert!(logs.contains("copycar build"), "{logs}");
}

#[test]
fn non_component_wasm_fails_to_compile() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap();
    let manifest =
        probe_manifest("", "").replace(wasm("probe").to_str().unwrap(), bogus.to_str().unwrap());
    let logs = start_failure(&manifest, HostOptions::default());
    assert!(logs.contains("component `probe`"), "{logs}");
}

#[test]
fn reserved_host_routes_are_rejected() {
    for route in ["/metrics", "/metrics/", "/ready/..."] {
        let trigger = format!("[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"probe\"\n");
        let logs = start_failure(&probe_manifest("", &trigger), HostOptions::default());
        assert!(
            logs.contains(&format!("route `{route}` of component `probe` is reserved")),
            "{route}: {logs}"
        );
    }
}

#[test]
fn special_files_are_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(["up", "--from", "/dev/zero", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}
