//! The stack command's promises, on a second stack of its own (other ports,
//! another state directory, so it never touches the stack the other tests use):
//! - run twice in a row, the second run takes over cleanly;
//! - after a crash that left the services running (supervisor `kill -9`ed),
//!   the next run reaps them and comes up cleanly;
//! - `stack.env` appears only when every service answers: with a port taken,
//!   the run fails, writes no `stack.env` and leaves nothing running;
//! - Ctrl-C stops everything it started and removes `stack.env`.
//!
//! The gateway and agent are left out (`--no-app`): their start-up is the same
//! code path, and the other tests cover them on the main stack.

use std::{
    collections::BTreeMap,
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use xtask::proc::free_port;

const DEADLINE: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(100);

struct Ports {
    anvil: u16,
    facilitator: u16,
    moto: u16,
}

/// One run of `xtask stack --no-app` against `state`; its output goes to
/// `<state>/xtask-<name>.log`.
fn start(state: &Path, ports: &Ports, name: &str) -> Child {
    let log = fs::File::create(state.join(format!("xtask-{name}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["stack", "--no-app"])
        .env("STACK_STATE_DIR", state)
        .env("STACK_ANVIL_PORT", ports.anvil.to_string())
        .env("STACK_FACILITATOR_PORT", ports.facilitator.to_string())
        .env("STACK_MOTO_PORT", ports.moto.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting xtask stack")
}

fn read_env(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// Waits for `stack.env` written by `child` (its pid in the file), failing
/// early if the child exits first.
async fn wait_ready(state: &Path, child: &mut Child) -> BTreeMap<String, String> {
    let path = state.join("stack.env");
    let deadline = Instant::now() + DEADLINE;
    let mine = child.id().to_string();
    loop {
        if let Some(env) = read_env(&path)
            && env.get("STACK_SUPERVISOR_PID") == Some(&mine)
        {
            return env;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the stack exited before it was ready: {status}");
        }
        assert!(Instant::now() < deadline, "the stack was not ready in time");
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the stack did not stop in time");
        tokio::time::sleep(POLL).await;
    }
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Every service in `env` answers its real protocol.
async fn assert_all_answer(env: &BTreeMap<String, String>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let rpc = |method: &'static str, params: serde_json::Value| {
        let request = http.post(&env["RPC_URL"]).json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
        );
        async move {
            let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            answer["result"].clone()
        }
    };
    let chain_id = rpc("eth_chainId", serde_json::json!([])).await;
    assert_eq!(chain_id, "0x14a34", "anvil's chain id is 84532");
    let code = rpc(
        "eth_getCode",
        serde_json::json!([env["USDC_CONTRACT"], "latest"]),
    )
    .await;
    assert!(
        code.as_str().is_some_and(|c| c.len() > 1000),
        "USDC is deployed: {code}"
    );
    let supported: serde_json::Value = http
        .get(format!("{}/supported", env["FACILITATOR_URL"]))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        supported.to_string().contains("eip155:84532"),
        "{supported}"
    );
    let moto = http
        .get(format!("{}/moto-api/", env["AWS_ENDPOINT_URL"]))
        .send()
        .await
        .unwrap();
    assert!(
        moto.status().is_success(),
        "moto answers: {}",
        moto.status()
    );
}

/// Pids of the services the pidfile lists (not the supervisor).
fn service_pids(state: &Path) -> Vec<i32> {
    fs::read_to_string(state.join("stack.pids"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("supervisor"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; only a live process has a non-Z state.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn the_stack_command_is_idempotent_survives_crashes_and_only_announces_a_ready_stack() {
    let state: PathBuf =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stack-{}", std::process::id()));
    let _ = fs::remove_dir_all(&state);
    fs::create_dir_all(&state).unwrap();
    let ports = Ports {
        anvil: free_port().unwrap(),
        facilitator: free_port().unwrap(),
        moto: free_port().unwrap(),
    };

    // First run.
    let mut first = start(&state, &ports, "first");
    let env = wait_ready(&state, &mut first).await;
    assert_all_answer(&env).await;

    // Run twice in a row: the second stops the first and comes up itself.
    let mut second = start(&state, &ports, "second");
    let env = wait_ready(&state, &mut second).await;
    assert!(
        wait_exit(&mut first).await.success(),
        "the first stack stopped cleanly"
    );
    assert_all_answer(&env).await;

    // A crash: the supervisor dies without stopping its services.
    let orphans = service_pids(&state);
    assert_eq!(orphans.len(), 3, "anvil, facilitator and moto recorded");
    kill(Pid::from_raw(second.id() as i32), Signal::SIGKILL).unwrap();
    second.wait().unwrap();
    assert!(
        orphans.iter().all(|&p| alive(p)),
        "the services outlive a killed supervisor"
    );
    let mut third = start(&state, &ports, "third");
    let env = wait_ready(&state, &mut third).await;
    assert!(
        orphans.iter().all(|&p| !alive(p)),
        "the crashed stack's services were reaped"
    );
    assert_all_answer(&env).await;

    // Ctrl-C stops everything and removes stack.env.
    let running = service_pids(&state);
    kill(Pid::from_raw(third.id() as i32), Signal::SIGINT).unwrap();
    assert!(wait_exit(&mut third).await.success());
    assert!(!state.join("stack.env").exists(), "stack.env removed");
    assert!(running.iter().all(|&p| !alive(p)), "every service stopped");
    assert!(!answers(ports.anvil) && !answers(ports.facilitator) && !answers(ports.moto));

    // One service cannot start (its port is taken): no stack.env, nothing left.
    let squatter = TcpListener::bind(("127.0.0.1", ports.moto)).unwrap();
    let mut fourth = start(&state, &ports, "fourth");
    let status = wait_exit(&mut fourth).await;
    let log = fs::read_to_string(state.join("xtask-fourth.log")).unwrap();
    assert!(!status.success(), "the stack refuses to come up half-ready");
    assert!(
        log.contains(&format!("port {} for moto is in use", ports.moto)),
        "it says why: {log}"
    );
    assert!(
        !state.join("stack.env").exists(),
        "no stack.env for a stack that is not ready"
    );
    assert!(
        !answers(ports.anvil) && !answers(ports.facilitator),
        "what it had started is stopped again"
    );
    drop(squatter);
    let _ = fs::remove_dir_all(&state);
}
