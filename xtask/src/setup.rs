//! `cargo xtask setup`: install what a fresh machine lacks, from the package
//! registries only, and do nothing (fast) when it is already there.
//!
//! - `npm ci` in `local/` (Anvil, solcjs, the x402 facilitator and clients)
//!   and in `cdk/` when it has a `package.json`;
//! - a Python venv at `.venv` with `local/requirements.txt` (moto);
//! - for the web page's browser tests: `npm ci` in `agent/web/tests`
//!   (playwright-core, pinned) and Debian's `chromium` package through
//!   `apt-get` (playwright never downloads a browser here).
//!
//! Each install leaves a stamp (a hash of its lock file) beside what it
//! installed; a matching stamp means "already done".

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::paths::Paths;

const STAMP: &str = ".xtask-stamp";

pub async fn run(paths: &Paths) -> Result<()> {
    let paths = paths.clone();
    tokio::task::spawn_blocking(move || run_blocking(&paths)).await?
}

fn run_blocking(paths: &Paths) -> Result<()> {
    require_tool(
        "node",
        "--version",
        "Node.js 20+ (https://nodejs.org or your package manager)",
    )?;
    require_tool("npm", "--version", "npm (ships with Node.js)")?;
    require_tool(
        "python3",
        "--version",
        "Python 3.10+ with the venv module (Debian: python3-venv)",
    )?;

    npm_project(&paths.node_project())?;
    let cdk = paths.cdk();
    if cdk.join("package.json").exists() {
        npm_project(&cdk)?;
    }
    python_venv(paths)?;
    npm_project(&paths.web_tests())?;
    chromium()?;
    Ok(())
}

/// Debian's chromium package, which the browser tests drive.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `apt-get install -y chromium` unless it is already there. Needs root (CI
/// runs as root); otherwise it says what to run.
fn chromium() -> Result<()> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    println!("xtask: apt-get install -y chromium");
    let installed = run_cmd(Command::new("apt-get").args(["update", "-qq"])).and_then(|()| {
        run_cmd(
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-qq",
                    "--no-install-recommends",
                    "chromium",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    });
    installed.with_context(|| {
        format!("{CHROMIUM} is missing and could not be installed: run `sudo apt-get install -y chromium` (the browser tests drive it)")
    })
}

fn require_tool(program: &str, arg: &str, what: &str) -> Result<()> {
    match Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!("`{program}` is missing: install {what}"),
    }
}

/// `npm ci` (or `npm install` when there is no lock file) unless the stamp
/// in `node_modules` matches the lock file.
fn npm_project(dir: &Path) -> Result<()> {
    let lock = dir.join("package-lock.json");
    let has_lock = lock.exists();
    let key = if has_lock {
        &lock
    } else {
        &dir.join("package.json")
    };
    let stamp = dir.join("node_modules").join(STAMP);
    let want = hash_files(&[key.clone(), dir.join("package.json")])?;
    if stamp_matches(&stamp, &want) {
        return Ok(());
    }
    let args: &[&str] = if has_lock {
        &["ci", "--no-audit", "--no-fund"]
    } else {
        eprintln!(
            "xtask: {} has no package-lock.json; running npm install",
            dir.display()
        );
        &["install", "--no-audit", "--no-fund"]
    };
    println!("xtask: npm {} in {}", args[0], dir.display());
    run_cmd(Command::new("npm").args(args).current_dir(dir))?;
    fs::write(&stamp, want)?;
    Ok(())
}

/// `.venv` with `local/requirements.txt` installed.
fn python_venv(paths: &Paths) -> Result<()> {
    let venv = paths.venv();
    let stamp = venv.join(STAMP);
    let want = hash_files(&[paths.requirements()])?;
    if stamp_matches(&stamp, &want) && paths.moto_server().exists() {
        return Ok(());
    }
    if !venv.join("bin/python").exists() {
        println!("xtask: creating {}", venv.display());
        run_cmd(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    println!("xtask: pip install -r {}", paths.requirements().display());
    run_cmd(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(paths.requirements()),
    )?;
    fs::write(&stamp, want)?;
    Ok(())
}

fn run_cmd(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn hash_files(files: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    for f in files {
        h.update(fs::read(f).with_context(|| format!("reading {}", f.display()))?);
    }
    Ok(hex::encode(h.finalize()))
}

fn stamp_matches(stamp: &Path, want: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|s| s.trim() == want)
}
