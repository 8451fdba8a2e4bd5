//! Our own binaries in the stack (the gateway and the agent): building
//! them, starting them with the stack, and starting more instances of them
//! (the benchmarks do).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};

use super::{RunningStack, kv};
use crate::{
    paths::{self, Paths},
    proc::{Probe, ServiceSpec},
};

/// Inherited variables that could point an app at a real AWS account.
const AWS_LEAKS: &[&str] = &["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"];

/// One of our own binaries run as part of the stack.
#[derive(Clone, Copy, Debug)]
pub struct App {
    pub package: &'static str,
    pub bin: &'static str,
    pub name: &'static str,
    pub port_env: &'static str,
    pub health_path: &'static str,
}

pub const GATEWAY: App = App {
    package: "gateway-lambda",
    bin: "gateway-lambda",
    name: "gateway",
    port_env: "STACK_GATEWAY_PORT",
    health_path: "/health",
};
pub const AGENT: App = App {
    package: "agent",
    bin: "agent",
    name: "agent",
    port_env: "STACK_AGENT_PORT",
    health_path: "/ping",
};

impl RunningStack {
    /// Starts one of our binaries if it exists; `Ok(false)` when it is absent
    /// or a placeholder (exits 0 at once instead of serving).
    pub(super) async fn start_app(
        &mut self,
        app: &App,
        port: u16,
        url: &str,
        env: Vec<(String, String)>,
    ) -> Result<bool> {
        let program = self.app_program(app);
        if !program.exists() {
            eprintln!(
                "xtask: {} not built ({}); skipping it",
                app.name,
                program.display()
            );
            return Ok(false);
        }
        let spec = self.app_spec(app, app.name, program, env, port, url);
        match self.start(&spec).await? {
            None => Ok(true),
            Some(_) => {
                eprintln!(
                    "xtask: {} exited at once with status 0 (placeholder main?); \
                     running the stack without it",
                    app.name
                );
                Ok(false)
            }
        }
    }

    /// How the stack runs `app` as the service `name`: from `program`, on
    /// `port`, ready once `{url}{health_path}` answers, with no AWS account
    /// of the caller's leaking in.
    fn app_spec(
        &self,
        app: &App,
        name: &str,
        program: PathBuf,
        env: Vec<(String, String)>,
        port: u16,
        url: &str,
    ) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            marker: app.bin.into(),
            program,
            args: vec![],
            cwd: self.paths.root.clone(),
            env,
            env_remove: AWS_LEAKS.iter().map(|s| (*s).to_owned()).collect(),
            port,
            port_env: app.port_env.into(),
            probe: Probe::HttpOk {
                url: format!("{url}{}", app.health_path),
            },
            ready_timeout: Duration::from_secs(60),
        }
    }

    /// The binary of `app` in the build this stack runs.
    pub fn app_program(&self, app: &App) -> PathBuf {
        self.app_program_in(app, self.release)
    }

    fn app_program_in(&self, app: &App, release: bool) -> PathBuf {
        let profile = if release { "release" } else { "debug" };
        self.paths.target_dir().join(profile).join(app.bin)
    }

    /// The environment the stack starts `app` with, before its port and
    /// peers' URLs (empty when started without apps).
    pub fn app_env(&self, app: &App) -> Vec<(String, String)> {
        self.app_env
            .iter()
            .find(|(n, _)| *n == app.name)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    }

    /// Starts one more instance of `app` (named `name`, on `port`) with the
    /// environment the stack gives it plus `extra` (later entries win), e.g.
    /// pointed at a proxy. Supervised and stopped with the stack.
    pub async fn start_instance(
        &mut self,
        app: &App,
        name: &str,
        port: u16,
        extra: &[(&str, &str)],
    ) -> Result<String> {
        self.start_instance_of(app, self.release, name, port, extra)
            .await
    }

    /// [`RunningStack::start_instance`] from the given build (`release` or
    /// debug), whatever build the stack itself runs.
    pub async fn start_instance_of(
        &mut self,
        app: &App,
        release: bool,
        name: &str,
        port: u16,
        extra: &[(&str, &str)],
    ) -> Result<String> {
        let mut env = self.app_env(app);
        if env.is_empty() {
            bail!("the stack was started without apps");
        }
        env.extend(kv(extra));
        let url = format!("http://127.0.0.1:{port}");
        let program = self.app_program_in(app, release);
        let spec = self.app_spec(app, name, program, env, port, &url);
        match self.start(&spec).await? {
            None => Ok(url),
            Some(status) => bail!("{name} exited at once ({status})"),
        }
    }
}

/// `cargo build -p gateway-lambda -p agent --bins` (`--release` too), or with
/// `for_tests` `cargo build --workspace --all-targets`: the feature set
/// `cargo test --workspace` resolves (dev-dependencies unify features), so
/// bringing the stack up and testing do not rebuild each other's dependencies.
pub async fn build_apps(paths: &Paths, release: bool, for_tests: bool) -> Result<()> {
    let mut cmd = tokio::process::Command::new(paths::cargo());
    for k in paths::cargo_run_env() {
        cmd.env_remove(k);
    }
    cmd.current_dir(&paths.root).arg("build");
    if release {
        cmd.arg("--release");
    }
    if for_tests && !release {
        cmd.args(["--workspace", "--all-targets"]);
    } else {
        cmd.arg("--bins");
        for app in [GATEWAY, AGENT] {
            cmd.args(["-p", app.package]);
        }
    }
    let status = cmd
        .kill_on_drop(true)
        .status()
        .await
        .context("running cargo build")?;
    if !status.success() {
        bail!(
            "building the gateway and the agent failed ({status}); `--no-app` starts the stack without them"
        );
    }
    Ok(())
}
