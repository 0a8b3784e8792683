//! `copycar build` runs each component's build command, as `spin build` does.

use std::process::Command;

fn copycar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_copycar"))
}

const MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "build-test"
[[trigger.http]]
route = "/a"
component = "a"
[component.a]
source = "out/a.wasm"
[component.a.build]
command = ["mkdir -p out", "echo $GREETING > out/a.wasm"]
workdir = "."
environment = { GREETING = "built-a" }
[component.b]
source = "b.wasm"
[component.b.build]
command = "exit 3"
"#;

#[test]
fn build_runs_commands_in_workdir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.toml"), MANIFEST).unwrap();
    let output = copycar()
        .args(["build", "--from"])
        .arg(dir.path())
        .args(["-c", "a"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = std::fs::read_to_string(dir.path().join("out/a.wasm")).unwrap();
    assert_eq!(built.trim(), "built-a");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Building component `a`"), "{stdout}");
}

#[test]
fn failing_build_command_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.toml"), MANIFEST).unwrap();
    let output = copycar()
        .args(["build", "--from"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("build command for component `b` failed"),
        "{stderr}"
    );
    assert!(stderr.contains("exit status: 3"), "{stderr}");
}

#[test]
fn unknown_component_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.toml"), MANIFEST).unwrap();
    let output = copycar()
        .args(["build", "--from"])
        .arg(dir.path())
        .args(["-c", "zzz"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("component `zzz` is not declared"));
}
