//! The local stack: Anvil (chain id 84532) with our USDC and Multicall3, the
//! official x402 facilitator, moto, and — when their binaries are real — the
//! gateway and the agent. [`RunningStack::up`] starts them in order, each
//! only once the one before answers, and writes `.local/stack.env` last, so
//! the file's presence means "everything answers".
//!
//! Idempotent: a stack left by an earlier run (still running, or orphaned by
//! a crash) is stopped first through the pidfile.
//!
//! Files: `options.rs` (ports and what to start), `apps.rs` (our own two
//! binaries: building them, starting them and more instances of them).

use std::{fs, future::Future, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};

use crate::{
    accounts,
    chain::{self, Rpc},
    paths::Paths,
    proc::{Pidfile, Probe, Service, ServiceSpec},
};

mod apps;
mod options;

pub use apps::{AGENT, App, GATEWAY, build_apps};
pub use options::{Ports, StackOptions};

/// Dummy credentials for moto.
const AWS_REGION: &str = "us-east-1";
const AWS_ACCESS_KEY_ID: &str = "testing";
const AWS_SECRET_ACCESS_KEY: &str = "testing";
/// The moto S3 bucket the stack's own agent keeps its images in.
pub const IMAGES_BUCKET: &str = "agent-images";

/// A stack that answers. Dropping it kills every service; [`RunningStack::down`]
/// stops them gracefully and removes `stack.env`.
#[derive(Debug)]
pub struct RunningStack {
    paths: Paths,
    services: Vec<Service>,
    env: Vec<(String, String)>,
    pidfile: Pidfile,
    /// The environment each app is started with (before its port), so more
    /// instances can be started with overrides (the benchmarks do).
    app_env: Vec<(&'static str, Vec<(String, String)>)>,
    release: bool,
}

impl RunningStack {
    /// Brings the whole stack up. Assumes `setup` has run.
    pub async fn up(paths: &Paths, opts: &StackOptions) -> Result<RunningStack> {
        let pidfile = Pidfile::new(paths.pidfile());
        let _ = fs::remove_file(paths.stack_env());
        pidfile.reap_leftovers().await?;
        let _ = fs::remove_file(paths.stack_env());
        fs::create_dir_all(paths.logs())?;
        pidfile.record_supervisor()?;

        let mut stack = RunningStack {
            paths: paths.clone(),
            services: Vec::new(),
            env: Vec::new(),
            pidfile,
            app_env: Vec::new(),
            release: opts.release,
        };
        match stack.bring_up(paths, opts).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                // Stop what did start, gracefully and before returning, so a
                // failed start leaves nothing running and no stack.env.
                stack.down().await;
                Err(e)
            }
        }
    }

    /// Starts every service in order, then writes `stack.env`.
    async fn bring_up(&mut self, paths: &Paths, opts: &StackOptions) -> Result<()> {
        let stack = self;
        let p = opts.ports;
        let rpc_url = format!("http://127.0.0.1:{}", p.anvil);
        let facilitator_url = format!("http://127.0.0.1:{}", p.facilitator);
        let moto_url = format!("http://127.0.0.1:{}", p.moto);

        // Chain first: everything else talks to it.
        let anvil = ServiceSpec {
            name: "anvil".into(),
            marker: "anvil".into(),
            program: paths.anvil(),
            args: vec![
                "--chain-id".into(),
                accounts::CHAIN_ID.to_string(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                p.anvil.to_string(),
            ],
            cwd: paths.root.clone(),
            env: vec![],
            env_remove: vec![],
            port: p.anvil,
            port_env: "STACK_ANVIL_PORT".into(),
            probe: Probe::ChainId {
                url: rpc_url.clone(),
                chain_id: accounts::CHAIN_ID,
            },
            ready_timeout: Duration::from_secs(30),
        };
        stack.start(&anvil).await?;
        chain::bootstrap(&Rpc::new(rpc_url.clone()), &paths.contract_artifacts())
            .await
            .context("preparing the chain")?;

        let facilitator = ServiceSpec {
            name: "facilitator".into(),
            marker: "facilitator.mjs".into(),
            program: "node".into(),
            args: vec![paths.facilitator_script().display().to_string()],
            cwd: paths.node_project(),
            env: vec![
                ("RPC_URL".into(), rpc_url.clone()),
                ("PORT".into(), p.facilitator.to_string()),
                ("HOST".into(), "127.0.0.1".into()),
                ("CHAIN_ID".into(), accounts::CHAIN_ID.to_string()),
                (
                    "FACILITATOR_PRIVATE_KEY".into(),
                    accounts::FACILITATOR.private_key.into(),
                ),
            ],
            env_remove: vec![],
            port: p.facilitator,
            port_env: "STACK_FACILITATOR_PORT".into(),
            probe: Probe::HttpOk {
                url: format!("{facilitator_url}/supported"),
            },
            ready_timeout: Duration::from_secs(60),
        };
        stack.start(&facilitator).await?;

        let moto = ServiceSpec {
            name: "moto".into(),
            marker: "moto_server".into(),
            program: paths.venv_python(),
            args: vec![
                paths.moto_script().display().to_string(),
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                p.moto.to_string(),
            ],
            cwd: paths.root.clone(),
            env: vec![],
            env_remove: vec![],
            port: p.moto,
            port_env: "STACK_MOTO_PORT".into(),
            probe: Probe::HttpAny {
                url: format!("{moto_url}/moto-api/"),
            },
            ready_timeout: Duration::from_secs(60),
        };
        stack.start(&moto).await?;
        create_bucket(&moto_url, IMAGES_BUCKET).await?;

        let local = paths.local();
        let results_dir = local.join("gateway-results");
        let images_dir = local.join("images");
        fs::create_dir_all(&results_dir)?;
        fs::create_dir_all(&images_dir)?;
        // The agent's daily-cap counters count payments on this stack's chain,
        // which starts fresh: so do they.
        let agent_state_dir = local.join("agent-state");
        let _ = fs::remove_dir_all(&agent_state_dir);

        let common: Vec<(String, String)> = [
            ("RPC_URL", rpc_url.as_str()),
            ("CHAIN_ID", "84532"),
            ("NETWORK", "base-sepolia"),
            ("USDC_CONTRACT", accounts::USDC_CONTRACT),
            ("SELLER_WALLET", accounts::SELLER.address),
            ("AWS_ENDPOINT_URL", moto_url.as_str()),
            ("AWS_REGION", AWS_REGION),
            ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
            ("RUST_LOG", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();

        let mut gateway_url = None;
        let mut agent_url = None;
        if opts.apps {
            if opts.build_apps {
                build_apps(paths, opts.release, opts.build_for_tests).await?;
            }
            let url = format!("http://127.0.0.1:{}", p.gateway);
            let mut env = common.clone();
            env.extend(kv(&[
                ("FACILITATOR_URL", &facilitator_url),
                ("GENERATION_BACKEND", "local"),
                ("RESULTS_DIR", &results_dir.display().to_string()),
            ]));
            stack.app_env.push((GATEWAY.name, env.clone()));
            env.extend(kv(&[("GATEWAY_PORT", &p.gateway.to_string())]));
            if stack.start_app(&GATEWAY, p.gateway, &url, env).await? {
                gateway_url = Some(url);
            }

            let url = format!("http://127.0.0.1:{}", p.agent);
            let mut env = common.clone();
            env.extend(kv(&[
                ("AGENT_HOST", "127.0.0.1"),
                ("SIGNER", "local"),
                ("BUYER_PRIVATE_KEY", accounts::BUYER.private_key),
                ("MODEL_PROVIDER", "offline"),
                ("IMAGES_DIR", &images_dir.display().to_string()),
                ("AGENT_STATE_DIR", &agent_state_dir.display().to_string()),
            ]));
            stack.app_env.push((AGENT.name, env.clone()));
            // The stack's own agent keeps its images in moto's S3, so its
            // answers carry presigned http://127.0.0.1 URLs a browser can
            // load (a file:// URL it cannot), and serves the web chat page.
            // Further instances (`start_instance`) keep IMAGES_DIR.
            env.retain(|(k, _)| k != "IMAGES_DIR");
            env.extend(kv(&[
                ("AGENT_PORT", &p.agent.to_string()),
                ("GATEWAY_URL", gateway_url.as_deref().unwrap_or_default()),
                ("IMAGES_BUCKET", IMAGES_BUCKET),
                ("AGENT_WEB_UI", "1"),
            ]));
            if stack.start_app(&AGENT, p.agent, &url, env).await? {
                agent_url = Some(url);
            }
        }

        let mut env = kv(&[
            ("STACK_SUPERVISOR_PID", &std::process::id().to_string()),
            ("RPC_URL", &rpc_url),
            ("CHAIN_ID", &accounts::CHAIN_ID.to_string()),
            ("NETWORK", "base-sepolia"),
            ("NETWORK_CAIP2", "eip155:84532"),
            ("USDC_CONTRACT", accounts::USDC_CONTRACT),
            ("MULTICALL3", accounts::MULTICALL3),
            ("FACILITATOR_URL", &facilitator_url),
            ("FACILITATOR_ADDRESS", accounts::FACILITATOR.address),
            ("MOTO_URL", &moto_url),
            ("AWS_ENDPOINT_URL", &moto_url),
            ("AWS_REGION", AWS_REGION),
            ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
            ("SELLER_WALLET", accounts::SELLER.address),
            ("SELLER_PRIVATE_KEY", accounts::SELLER.private_key),
            ("BUYER_ADDRESS", accounts::BUYER.address),
            ("BUYER_PRIVATE_KEY", accounts::BUYER.private_key),
            (
                "BUYER_START_USDC_ATOMIC",
                &accounts::BUYER_START_USDC.to_string(),
            ),
            ("MINTER_ADDRESS", accounts::MINTER.address),
            ("MINTER_PRIVATE_KEY", accounts::MINTER.private_key),
            ("FAUCET_ADDRESS", accounts::FAUCET.address),
            ("FAUCET_PRIVATE_KEY", accounts::FAUCET.private_key),
            ("RESULTS_DIR", &results_dir.display().to_string()),
            ("IMAGES_DIR", &images_dir.display().to_string()),
            ("IMAGES_BUCKET", IMAGES_BUCKET),
            ("LOGS_DIR", &paths.logs().display().to_string()),
        ]);
        if let Some(url) = gateway_url {
            env.push(("GATEWAY_URL".into(), url));
        }
        if let Some(url) = agent_url {
            env.push(("AGENT_URL".into(), url));
        }
        stack.env = env;
        stack.write_env_file()?;
        Ok(())
    }

    async fn start(&mut self, spec: &ServiceSpec) -> Result<Option<std::process::ExitStatus>> {
        crate::proc::ensure_port_free(spec).await?;
        let mut service = Service::spawn(spec, &self.paths.logs())?;
        self.pidfile.record(spec, &service)?;
        match service.wait_ready(&spec.probe, spec.ready_timeout).await {
            Ok(None) => {
                self.services.push(service);
                Ok(None)
            }
            // Exited cleanly without serving: nothing to supervise.
            Ok(Some(status)) => Ok(Some(status)),
            Err(e) => {
                service.stop().await;
                Err(e)
            }
        }
    }

    fn write_env_file(&self) -> Result<()> {
        let mut text = String::from(
            "# Written by `cargo xtask stack` once every service answered; removed when it stops.\n\
             # Local dev keys only (Anvil's public test mnemonic).\n",
        );
        for (k, v) in &self.env {
            text.push_str(&format!("{k}={v}\n"));
        }
        let path = self.paths.stack_env();
        let tmp = path.with_extension("env.tmp");
        fs::write(&tmp, text)?;
        fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The process id of a service this stack started (by name), e.g. to pin
    /// it to a core.
    pub fn service_pid(&self, name: &str) -> Option<i32> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map(Service::pid)
    }

    /// The `KEY=VALUE` pairs written to `stack.env`.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn env_file(&self) -> PathBuf {
        self.paths.stack_env()
    }

    pub fn print_summary(&self) {
        println!("local stack is up ({}):", self.paths.stack_env().display());
        for key in [
            "RPC_URL",
            "FACILITATOR_URL",
            "AWS_ENDPOINT_URL",
            "GATEWAY_URL",
            "AGENT_URL",
            "USDC_CONTRACT",
            "SELLER_WALLET",
            "BUYER_ADDRESS",
        ] {
            if let Some(v) = self.get(key) {
                println!("  {key:<17} {v}");
            }
        }
        println!("  logs              {}", self.paths.logs().display());
    }

    /// Waits until `shutdown` resolves or a service dies, then stops
    /// everything. A service dying is an error.
    pub async fn supervise(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let died = loop {
            tokio::select! {
                () = &mut shutdown => break None,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if let Some(d) = self.first_exited() {
                break Some(d);
            }
        };
        self.down().await;
        match died {
            None => Ok(()),
            Some((name, log, status)) => bail!(
                "{name} exited ({status}); the stack is stopped. Last lines of {}:\n{}",
                log.display(),
                crate::proc::tail(&log, 30)
            ),
        }
    }

    fn first_exited(&mut self) -> Option<(String, PathBuf, std::process::ExitStatus)> {
        self.services.iter_mut().find_map(|s| {
            s.exited()
                .ok()
                .flatten()
                .map(|status| (s.name.clone(), s.log.clone(), status))
        })
    }

    /// Stops every service (last started first) and removes `stack.env` and
    /// the pidfile if they are still ours.
    pub async fn down(mut self) {
        self.remove_env_if_mine();
        while let Some(mut s) = self.services.pop() {
            s.stop().await;
        }
        self.pidfile.remove_if_mine();
    }

    fn remove_env_if_mine(&self) {
        let path = self.paths.stack_env();
        let mine = format!("STACK_SUPERVISOR_PID={}\n", std::process::id());
        if fs::read_to_string(&path).is_ok_and(|t| t.contains(&mine)) {
            let _ = fs::remove_file(&path);
        }
    }
}

impl Drop for RunningStack {
    fn drop(&mut self) {
        // Services kill their process groups on drop; the files go too.
        if !self.services.is_empty() {
            self.remove_env_if_mine();
            self.pidfile.remove_if_mine();
        }
    }
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub use plumbing::shutdown_signal;

/// Creates an S3 bucket in moto (`CreateBucket`, path-style; moto accepts
/// the unsigned request and answers 200 for a bucket that already exists in
/// us-east-1).
async fn create_bucket(moto_url: &str, bucket: &str) -> Result<()> {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .put(format!("{moto_url}/{bucket}"))
        .send()
        .await
        .with_context(|| format!("creating the S3 bucket {bucket} in moto"))?;
    if !resp.status().is_success() {
        bail!(
            "moto refused to create the S3 bucket {bucket}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(())
}
