//! Child processes of the local stack.
//!
//! Each service runs in its own process group (so a terminal's Ctrl-C reaches
//! only us, and we stop services in order), logs to `.local/logs/<name>.log`,
//! and is recorded in a pidfile so that a later run can clean up after a
//! crash (`kill -9` of the supervisor leaves the groups running). Dropping a
//! [`Service`] kills its whole group: an error or a cancelled future never
//! leaks processes.
//!
//! Readiness is a [`Probe`] polled until a deadline; a service that exits
//! while we wait fails at once with the tail of its log.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use nix::{
    errno::Errno,
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};
use tokio::{process::Child, time::Instant};

use crate::chain::Rpc;

/// How often readiness and exit conditions are polled.
const POLL: Duration = Duration::from_millis(100);
/// How long a service gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to tell that a service is ready.
#[derive(Clone, Debug)]
pub enum Probe {
    /// `eth_chainId` answers with this id.
    ChainId { url: String, chain_id: u64 },
    /// `GET url` answers 2xx.
    HttpOk { url: String },
    /// `GET url` answers at all (any status).
    HttpAny { url: String },
}

impl Probe {
    async fn check(&self, http: &reqwest::Client) -> Result<()> {
        match self {
            Probe::ChainId { url, chain_id } => {
                let got = Rpc::new(url.clone()).chain_id().await?;
                if got != *chain_id {
                    bail!("{url} reports chain id {got}, expected {chain_id}");
                }
                Ok(())
            }
            Probe::HttpOk { url } => {
                let status = http.get(url).send().await?.status();
                if !status.is_success() {
                    bail!("GET {url} answered {status}");
                }
                Ok(())
            }
            Probe::HttpAny { url } => {
                http.get(url).send().await?;
                Ok(())
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Probe::ChainId { url, .. } => format!("eth_chainId at {url}"),
            Probe::HttpOk { url } | Probe::HttpAny { url } => format!("GET {url}"),
        }
    }
}

/// Everything needed to start one service.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Short name: log file, pidfile entry, messages.
    pub name: String,
    /// A string in the process's command line that identifies it, so a pid
    /// read back from the pidfile is only signalled while it is still ours.
    pub marker: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Inherited variables to drop (e.g. a developer's `AWS_PROFILE`).
    pub env_remove: Vec<String>,
    /// The loopback port the service listens on: checked free before start.
    pub port: u16,
    /// The variable that overrides `port`, for the "port in use" message.
    pub port_env: String,
    pub probe: Probe,
    pub ready_timeout: Duration,
}

/// A running service (the leader of its own process group).
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    pgid: Pid,
    stopped: bool,
}

impl Service {
    /// Starts `spec` with stdout/stderr appended to `<logs>/<name>.log`.
    pub fn spawn(spec: &ServiceSpec, logs: &Path) -> Result<Service> {
        fs::create_dir_all(logs)?;
        let log = logs.join(format!("{}.log", spec.name));
        let mut out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        writeln!(out, "# {} {}", spec.program.display(), spec.args.join(" "))?;
        let err = out.try_clone()?;
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .current_dir(&spec.cwd)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(true);
        for k in &spec.env_remove {
            cmd.env_remove(k);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{} exited at once", spec.name))?;
        let pgid = Pid::from_raw(i32::try_from(pid)?);
        Ok(Service {
            name: spec.name.clone(),
            log,
            child,
            pgid,
            stopped: false,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Polls `probe` until it succeeds, the deadline passes, or the process
    /// exits. `Ok(Some(status))` means the process exited cleanly (status 0)
    /// before becoming ready; a non-zero exit is an error.
    pub async fn wait_ready(
        &mut self,
        probe: &Probe,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("reqwest client builds");
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = probe.check(&http).await;
            if attempt.is_ok() {
                return Ok(None);
            }
            if let Some(status) = self.exited()? {
                if status.success() {
                    return Ok(Some(status));
                }
                bail!(
                    "{} exited ({status}) before it was ready; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} not ready after {:?} ({}: {}); last lines of {}:\n{}",
                    self.name,
                    timeout,
                    probe.describe(),
                    attempt.err().map(|e| format!("{e:#}")).unwrap_or_default(),
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM to the group, SIGKILL after a grace period.
    pub async fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.exited().ok().flatten().is_none() {
            let _ = killpg(self.pgid, Signal::SIGTERM);
            let graceful = tokio::time::timeout(STOP_GRACE, self.child.wait()).await;
            if graceful.is_err() {
                eprintln!("xtask: {} ignored SIGTERM; killing it", self.name);
            }
        }
        // Whatever is left in the group (the leader's children) goes too.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = self.child.wait().await;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Fails (after a short wait, for a port still being released) when
/// something already listens on the port.
pub async fn ensure_port_free(spec: &ServiceSpec) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpListener::bind(("127.0.0.1", spec.port)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "port {} for {} is in use by another process (not one this stack started); \
                 stop it or choose another port with {}=...",
                spec.port,
                spec.name,
                spec.port_env
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The pidfile: one `role pid marker` line per process, where `role` is
/// `supervisor` or a service name and `marker` is a string expected in the
/// process's command line (a recorded pid that no longer shows it was reused
/// and is left alone).
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    pub fn new(path: PathBuf) -> Self {
        Pidfile { path }
    }

    /// Stops whatever a previous stack left behind: asks a live previous
    /// supervisor to shut down (it stops its own services), then kills any
    /// recorded service group still around (the supervisor was `kill -9`ed).
    pub async fn reap_leftovers(&self) -> Result<()> {
        let Ok(text) = fs::read_to_string(&self.path) else {
            return Ok(());
        };
        let me = std::process::id();
        let entries: Vec<(String, i32, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let role = it.next()?.to_owned();
                let pid = it.next()?.parse().ok()?;
                let marker = it.next().unwrap_or_default().to_owned();
                Some((role, pid, marker))
            })
            .collect();
        for (role, pid, marker) in entries.iter().filter(|e| e.0 == "supervisor") {
            if u32::try_from(*pid).ok() == Some(me) || !process_matches(*pid, marker) {
                continue;
            }
            eprintln!("xtask: stopping the previous stack supervisor ({role} pid {pid})");
            let pid = Pid::from_raw(*pid);
            let _ = kill(pid, Signal::SIGTERM);
            if !wait_gone(pid, Duration::from_secs(20)).await {
                let _ = kill(pid, Signal::SIGKILL);
                wait_gone(pid, Duration::from_secs(5)).await;
            }
        }
        for (role, pid, marker) in entries.iter().filter(|e| e.0 != "supervisor") {
            // A group whose leader is gone may still have members; a pid is not
            // reused while its process group exists, so killpg on a dead
            // leader's id only reaches our leftovers.
            if proc_exists(*pid) && !process_matches(*pid, marker) {
                continue;
            }
            let pgid = Pid::from_raw(*pid);
            match killpg(pgid, Signal::SIGTERM) {
                Err(Errno::ESRCH) => continue,
                _ => eprintln!("xtask: stopping leftover {role} (process group {pid})"),
            }
            if !wait_gone(pgid, STOP_GRACE).await {
                let _ = killpg(pgid, Signal::SIGKILL);
                wait_gone(pgid, Duration::from_secs(5)).await;
            }
        }
        let _ = fs::remove_file(&self.path);
        Ok(())
    }

    /// Records this process as the supervisor.
    pub fn record_supervisor(&self) -> Result<()> {
        self.append("supervisor", i32::try_from(std::process::id())?, "xtask")
    }

    pub fn record(&self, spec: &ServiceSpec, service: &Service) -> Result<()> {
        self.append(&spec.name, service.pid(), &spec.marker)
    }

    fn append(&self, role: &str, pid: i32, marker: &str) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{role} {pid} {marker}")?;
        Ok(())
    }

    /// Removes the pidfile if it is this process's.
    pub fn remove_if_mine(&self) {
        let mine = format!("supervisor {} ", std::process::id());
        if fs::read_to_string(&self.path).is_ok_and(|t| t.starts_with(&mine)) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn proc_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// True when the process exists and its command line contains `marker`.
fn process_matches(pid: i32, marker: &str) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    String::from_utf8_lossy(&raw).contains(marker)
}

/// Waits until no process (or process group, for a pgid) answers signal 0.
async fn wait_gone(pid: Pid, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let alive = kill(pid, None).is_ok() || killpg(pid, None).is_ok();
        // A zombie (exited, not yet reaped by its parent) still answers; it no
        // longer holds ports, so it counts as gone.
        if !alive || is_zombie(pid.as_raw()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
