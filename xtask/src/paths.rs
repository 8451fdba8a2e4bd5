//! Where things live in the repository and under `.local/` (git-ignored).

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Paths {
    /// The repository root (the workspace root).
    pub root: PathBuf,
}

impl Paths {
    /// The workspace root, from this crate's location (`<root>/xtask`).
    pub fn discover() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives one level below the workspace root")
            .to_path_buf();
        Paths { root }
    }

    /// `.local/`: generated state, logs, pidfile, `stack.env`. `STACK_STATE_DIR`
    /// moves it (a second, independent stack; the stack's own tests).
    pub fn local(&self) -> PathBuf {
        match std::env::var_os("STACK_STATE_DIR") {
            Some(dir) if !dir.is_empty() => self.root.join(dir),
            _ => self.root.join(".local"),
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.local().join("logs")
    }

    /// What the running stack tells tests and tools (`KEY=VALUE`).
    pub fn stack_env(&self) -> PathBuf {
        self.local().join("stack.env")
    }

    /// Process ids of a running (or crashed) stack, so the next run can clean up.
    pub fn pidfile(&self) -> PathBuf {
        self.local().join("stack.pids")
    }

    /// The Node project with Anvil, solcjs and the facilitator.
    pub fn node_project(&self) -> PathBuf {
        self.root.join("local")
    }

    pub fn anvil(&self) -> PathBuf {
        self.node_project()
            .join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
    }

    pub fn facilitator_script(&self) -> PathBuf {
        self.node_project().join("facilitator.mjs")
    }

    pub fn venv(&self) -> PathBuf {
        self.root.join(".venv")
    }

    pub fn moto_server(&self) -> PathBuf {
        self.venv().join("bin/moto_server")
    }

    /// The venv's Python, which runs `local/moto_server.py` (moto's server
    /// with DynamoDB requests applied one at a time, as DynamoDB does).
    pub fn venv_python(&self) -> PathBuf {
        self.venv().join("bin/python")
    }

    pub fn moto_script(&self) -> PathBuf {
        self.node_project().join("moto_server.py")
    }

    pub fn requirements(&self) -> PathBuf {
        self.node_project().join("requirements.txt")
    }

    pub fn contract_artifacts(&self) -> PathBuf {
        self.root.join("contracts/artifacts.json")
    }

    /// The browser tests of the web chat page (a Node project with
    /// playwright-core only).
    pub fn web_tests(&self) -> PathBuf {
        self.root.join("agent/web/tests")
    }

    pub fn cdk(&self) -> PathBuf {
        self.root.join("cdk")
    }

    /// Cargo's target directory (honours `CARGO_TARGET_DIR`).
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }
}

/// The `cargo` that runs us (so nested builds use the same toolchain).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// What `cargo run` put in our environment about xtask itself
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...). A nested cargo must not see
/// it: build scripts that watch such a variable (ring's watches
/// `CARGO_MANIFEST_DIR`) would rerun, and every crate above them rebuild,
/// each time a build alternates between `cargo xtask` and a plain `cargo`.
pub fn cargo_run_env() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_BIN_")
                || k.starts_with("CARGO_CRATE_")
                || k == "CARGO_PRIMARY_PACKAGE"
                || k == "OUT_DIR"
        })
        .collect()
}
