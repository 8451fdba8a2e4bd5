//! The services the bench starts itself, beside the stack: its own
//! facilitator (behind a timing proxy), the official x402 seller, and the
//! release build of the canned responder.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::{
    Paths, accounts,
    proc::{Probe, Service, ServiceSpec, free_port},
};

/// Our own facilitator for the bench, with its JSON-RPC behind `rpc` so the
/// chain's share of a payment is measured. (The stack's facilitator, with
/// the same key, stays idle meanwhile: one settler at a time.)
pub(super) async fn start_facilitator(paths: &Paths, rpc: &str) -> Result<(Service, String)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let spec = ServiceSpec {
        name: "bench-facilitator".into(),
        marker: "facilitator.mjs".into(),
        program: "node".into(),
        args: vec![paths.facilitator_script().display().to_string()],
        cwd: paths.node_project(),
        env: vec![
            ("RPC_URL".into(), rpc.into()),
            ("PORT".into(), port.to_string()),
            ("HOST".into(), "127.0.0.1".into()),
            ("CHAIN_ID".into(), accounts::CHAIN_ID.to_string()),
            (
                "FACILITATOR_PRIVATE_KEY".into(),
                accounts::FACILITATOR.private_key.into(),
            ),
        ],
        env_remove: vec![],
        port,
        port_env: "-".into(),
        probe: Probe::HttpOk {
            url: format!("{url}/supported"),
        },
        ready_timeout: Duration::from_secs(60),
    };
    Ok((start_service(paths, &spec).await?, url))
}

/// The official x402 seller (`@x402/express`, x402 v2) on `facilitator`.
pub(super) async fn start_official_seller(
    paths: &Paths,
    facilitator: &str,
) -> Result<(Service, String)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let spec = ServiceSpec {
        name: "bench-official-seller".into(),
        marker: "express-seller.mjs".into(),
        program: "node".into(),
        args: vec!["interop/express-seller.mjs".into()],
        cwd: paths.node_project(),
        env: vec![
            ("VERSION".into(), "v2".into()),
            ("FACILITATOR_URL".into(), facilitator.into()),
            ("PAY_TO".into(), accounts::SELLER.address.into()),
            ("PORT".into(), port.to_string()),
        ],
        env_remove: vec![],
        port,
        port_env: "-".into(),
        probe: Probe::HttpOk {
            url: format!("{url}/health"),
        },
        ready_timeout: Duration::from_secs(60),
    };
    Ok((start_service(paths, &spec).await?, url))
}

async fn start_service(paths: &Paths, spec: &ServiceSpec) -> Result<Service> {
    let mut service = Service::spawn(spec, &paths.logs())?;
    if let Some(status) = service.wait_ready(&spec.probe, spec.ready_timeout).await? {
        bail!("{} exited at once ({status})", spec.name);
    }
    Ok(service)
}

/// `cargo build --release -p xtask`: the canned responder that measures the
/// load client's ceiling must be far faster than the servers it stands in
/// for; a debug build of it was slower than our release gateway.
pub(super) async fn build_responder(paths: &Paths) -> Result<()> {
    let mut cmd = tokio::process::Command::new(crate::paths::cargo());
    for k in crate::paths::cargo_run_env() {
        cmd.env_remove(k);
    }
    let status = cmd
        .current_dir(&paths.root)
        .args(["build", "--release", "-p", "xtask"])
        .kill_on_drop(true)
        .status()
        .await
        .context("running cargo build for the responder")?;
    ensure!(
        status.success(),
        "building the release xtask failed ({status})"
    );
    Ok(())
}

/// The program that runs `bench-responder`: the release xtask when it was
/// built, else this one (a debug responder may be slower than the server).
pub fn responder_exe(paths: &Paths) -> Result<std::path::PathBuf> {
    let release = paths.target_dir().join("release/xtask");
    if release.exists() {
        Ok(release)
    } else {
        Ok(std::env::current_exe()?)
    }
}
