//! `copycar build`: runs the `[component.<id>.build]` commands, as
//! `spin build` does.

use anyhow::Context;
use clap::Args;
use copycar_manifest::App;
use std::path::PathBuf;
use std::process::Command;

#[derive(Args)]
pub(crate) struct BuildArgs {
    /// Manifest file, or a directory containing spin.toml.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// Build only this component (repeatable); default: all of them.
    #[arg(short = 'c', long = "component-id")]
    components: Vec<String>,
}

pub(crate) fn run(args: BuildArgs) -> anyhow::Result<()> {
    let app = App::load(&crate::manifest_path(&args.from))?;
    build_components(&app, &args.components)
}

/// Runs the build commands of the components in `only`, or of all
/// components when `only` is empty.
pub(crate) fn build_components(app: &App, only: &[String]) -> anyhow::Result<()> {
    for id in only {
        anyhow::ensure!(
            app.component(id).is_some(),
            "component `{id}` is not declared in {}",
            app.manifest_path().display()
        );
    }
    let selected = app
        .components()
        .values()
        .filter(|c| only.is_empty() || only.contains(&c.id));

    let mut built = 0;
    for component in selected {
        let Some(build) = &component.build else {
            println!(
                "Component `{}` has no build command; skipping",
                component.id
            );
            continue;
        };
        for command in &build.commands {
            println!("Building component `{}` with `{command}`", component.id);
            let status = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&build.workdir)
                .envs(&build.environment)
                .status()
                .with_context(|| {
                    format!("failed to start `{command}` in {}", build.workdir.display())
                })?;
            anyhow::ensure!(
                status.success(),
                "build command for component `{}` failed ({status}): {command}",
                component.id
            );
        }
        built += 1;
    }
    println!("Finished building {built} component(s)");
    Ok(())
}
