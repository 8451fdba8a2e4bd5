//! Named, timed steps: what `cargo xtask test` (and later `demo`, `bench`)
//! are made of. Each step prints its name before and its duration after, and
//! a summary lists them all at the end.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// An external command run as one step.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Variables the command must not inherit.
    pub env_remove: Vec<String>,
}

impl Check {
    pub fn new(name: &str, program: &str, args: &[&str], cwd: &Path) -> Check {
        Check {
            name: name.to_owned(),
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            cwd: cwd.to_path_buf(),
            env: Vec::new(),
            env_remove: Vec::new(),
        }
    }

    /// `cargo <args>` in `cwd` with the cargo that runs us.
    pub fn cargo(name: &str, args: &[&str], cwd: &Path) -> Check {
        Check {
            env_remove: crate::paths::cargo_run_env(),
            ..Check::new(name, &crate::paths::cargo(), args, cwd)
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Check {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub async fn run(&self) -> Result<()> {
        println!("$ {} {}", self.program, self.args.join(" "));
        let mut cmd = tokio::process::Command::new(&self.program);
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        let status = cmd
            .args(&self.args)
            .current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .status()
            .await
            .with_context(|| format!("starting {}", self.program))?;
        if !status.success() {
            bail!(
                "`{} {}` failed ({status})",
                self.program,
                self.args.join(" ")
            );
        }
        Ok(())
    }
}

/// Runs steps in order and remembers how each went.
#[derive(Debug, Default)]
pub struct Runner {
    done: Vec<(String, Duration, bool)>,
}

impl Runner {
    pub fn new() -> Runner {
        Runner::default()
    }

    pub async fn step<T>(&mut self, name: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        println!("\n==> {name}");
        let started = Instant::now();
        let result = fut.await;
        let took = started.elapsed();
        let ok = result.is_ok();
        println!(
            "<== {name}: {} in {:.1}s",
            if ok { "ok" } else { "FAILED" },
            took.as_secs_f64()
        );
        self.done.push((name.to_owned(), took, ok));
        result.with_context(|| format!("step `{name}` failed"))
    }

    pub async fn check(&mut self, check: &Check) -> Result<()> {
        self.step(&check.name, check.run()).await
    }

    pub fn print_summary(&self) {
        println!("\nsteps:");
        let mut total = Duration::ZERO;
        for (name, took, ok) in &self.done {
            total += *took;
            println!(
                "  {:<6} {:>7.1}s  {name}",
                if *ok { "ok" } else { "FAILED" },
                took.as_secs_f64()
            );
        }
        println!("  total  {:>7.1}s", total.as_secs_f64());
    }
}
