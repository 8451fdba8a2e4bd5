//! The `agent` binary as a process: start-up validation, serving, graceful
//! shutdown on SIGTERM, and the terminal chat client.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use agent::server::AppState;

use crate::support::{ContractRunner, eventually, limits, serve};

const BIN: &str = env!("CARGO_BIN_EXE_agent");
const KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// A command with a clean environment, run from an empty directory (so no
/// `.env` of the developer's is picked up).
fn agent_cmd(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    c
}

fn tmpdir() -> testkit::TempDir {
    testkit::TempDir::new("agent-bin")
}

#[test]
fn refuses_to_start_half_configured_listing_every_problem() {
    let dir = tmpdir();
    let out = agent_cmd(&dir)
        .env("SESSION_BUDGET_USDC", "one dollar")
        .env("SIGNER", "kms")
        .env("BUYER_PRIVATE_KEY", KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "SESSION_BUDGET_USDC",
        "SELLER_WALLET is required",
        "KMS_KEY_ID is required",
        "IMAGES_BUCKET (S3) or IMAGES_DIR",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
    assert!(!err.contains(&KEY[2..]), "a key was printed");
}

#[tokio::test]
async fn serves_ping_with_json_logs_and_exits_cleanly_on_sigterm() {
    let dir = tmpdir();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = agent_cmd(&dir)
        .env("AGENT_HOST", "127.0.0.1")
        .env("AGENT_PORT", port.to_string())
        .env(
            "SELLER_WALLET",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        )
        .env("GATEWAY_URL", "http://127.0.0.1:9")
        .env("BUYER_PRIVATE_KEY", KEY)
        .env("IMAGES_DIR", dir.join("images"))
        .env("SESSIONS_DIR", dir.join("sessions"))
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually("the agent to answer /ping", || async {
        match http.get(format!("{url}/ping")).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|v| v["status"] == "Healthy"),
            Err(_) => false,
        }
    })
    .await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "agent ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "exit: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|l| l["message"] == "agent listening")
        .expect("start log");
    assert_eq!(listening["level"], "INFO");
    assert!(!stdout.contains(&KEY[2..]), "the key was logged");
}

#[tokio::test]
async fn chat_client_streams_tool_progress_and_the_answer() {
    let runner = Arc::new(ContractRunner::default());
    let url = serve(AppState::new(runner.clone(), limits())).await;
    let dir = tmpdir();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = agent_cmd(&dir)
            .args([
                "chat",
                "--url",
                &url,
                "--session",
                "chat-test-1",
                "--budget",
                "2.00",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hello there\n\nexit\n")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("session chat-test-1"), "{stdout}");
    assert!(stdout.contains("[tool] check_balance ..."), "{stdout}");
    assert!(stdout.contains("[tool] check_balance ok: ok"), "{stdout}");
    assert!(stdout.contains("echo: hello there"), "{stdout}");
    let seen = runner.seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "the empty line and `exit` are not prompts");
    assert_eq!(seen[0].session_id, "chat-test-1");
    assert_eq!(
        seen[0].session_budget,
        Some(x402::Usdc::from_atomic(2_000_000))
    );
}
