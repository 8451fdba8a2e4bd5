//! Starting a server process for a test and waiting until it answers: the
//! child is killed when dropped, its output goes to a log file named in
//! every failure, and readiness is polled with a deadline (no fixed sleeps;
//! a child that exits early fails at once instead of at the deadline).

use std::{future::Future, path::Path, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};

/// How often readiness is polled.
pub const POLL: Duration = Duration::from_millis(20);

/// Spawns `cmd` with stdout and stderr appended to `log` and `kill_on_drop`,
/// then polls `GET ready_url` until it answers 2xx, for at most `within`.
///
/// ```ignore
/// let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent"));
/// cmd.env_clear().env("AGENT_PORT", port.to_string()) /* ... */;
/// let child = testkit::process::spawn_until_ready(
///     cmd, &dir.join("agent.log"), &format!("http://127.0.0.1:{port}/ping"),
///     Duration::from_secs(30),
/// ).await.unwrap();
/// ```
pub async fn spawn_until_ready(
    mut cmd: tokio::process::Command,
    log: &Path,
    ready_url: &str,
    within: Duration,
) -> Result<tokio::process::Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut child = cmd
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .context("spawning the process")?;
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            bail!(
                "the process exited ({status}) before {ready_url} answered; see {}",
                log.display()
            );
        }
        if http
            .get(ready_url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(child);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{ready_url} did not answer within {within:?}; see {}",
                log.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` every [`POLL`] until it returns `Some`, for at most
/// `within`; `None` when the deadline passed first.
pub async fn wait_until<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_that_exits_fails_at_once() {
        let dir = crate::TempDir::new("testkit-process");
        let cmd = tokio::process::Command::new("true");
        let started = tokio::time::Instant::now();
        let port = crate::free_port();
        let err = spawn_until_ready(
            cmd,
            &dir.join("log"),
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("exited"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn waits_for_the_condition() {
        let mut n = 0;
        let got = wait_until(Duration::from_secs(5), || {
            n += 1;
            let n = n;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(got, Some(3));
        assert_eq!(
            wait_until(Duration::from_millis(50), || async { None::<()> }).await,
            None
        );
    }
}
