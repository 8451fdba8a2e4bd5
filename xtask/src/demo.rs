//! `cargo xtask demo`: the main job on one machine.
//!
//! Sets up what is missing, brings the whole local stack up (Anvil + USDC,
//! the official x402 facilitator, moto, the gateway, the agent), then runs
//! the original sample's example conversation through the agent's
//! `/invocations` endpoint as a client would: streamed (SSE), printing text,
//! tool progress, the payment and the image as they happen. It ends with the
//! payment, the buyer's and seller's USDC balances before and after, and the
//! image written to a file. `--chat` then leaves the stack running and opens
//! the terminal chat on the same session; `--web` leaves it running, prints
//! the web chat page's URL (the stack's agent serves it) and waits for
//! Ctrl-C.
//!
//! The demo is a client of the running services over HTTP and JSON-RPC only:
//! what it shows is what any caller of the agent would see.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};

use crate::{
    Paths,
    chain::Rpc,
    setup,
    stack::{RunningStack, StackOptions},
};

/// The original sample's example conversation (its README), in order.
pub const CONVERSATION: [&str; 3] = [
    "What can you help me with?",
    "What are my wallet details?",
    "Generate an image of a futuristic city at sunset",
];

/// Where the demo writes the image, relative to the repository root.
const OUTPUT_DIR: &str = "demo-output";

/// An agent turn can take a while with a real model; the offline one is fast.
const TURN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Clone)]
pub struct DemoOptions {
    /// Leave the stack running and open the terminal chat afterwards.
    pub chat: bool,
    /// Leave the stack running and print the web chat page's URL; Ctrl-C stops it.
    pub web: bool,
}

/// What one streamed turn produced.
#[derive(Debug, Default)]
pub struct Turn {
    pub text: String,
    pub tools: Vec<String>,
    pub payments: Vec<Value>,
    pub images: Vec<(String, String)>,
    pub output: Value,
}

pub async fn run(paths: &Paths, opts: &DemoOptions) -> Result<()> {
    setup::run(paths).await?;
    let opts_stack = StackOptions {
        build_for_tests: false,
        ..StackOptions::from_env()?
    };
    let stack = RunningStack::up(paths, &opts_stack).await?;
    let result = conversation(paths, &stack).await;
    if opts.web && result.is_ok() {
        let agent = stack.get("AGENT_URL").unwrap_or_default();
        println!("\nWeb chat: {agent}/");
        println!("The stack stays up for the page; Ctrl-C stops it.");
        return stack.supervise(crate::stack::shutdown_signal()).await;
    }
    match (&result, opts.chat) {
        (Ok(session), true) => {
            let chat = open_chat(paths, &stack, session).await;
            stack.down().await;
            chat
        }
        _ => {
            stack.down().await;
            result.map(|_| ())
        }
    }
}

/// Runs the conversation and prints the summary; returns the session id.
async fn conversation(paths: &Paths, stack: &RunningStack) -> Result<String> {
    let agent = stack.get("AGENT_URL").ok_or_else(|| {
        anyhow!("the agent did not start (see .local/logs/agent.log); the demo needs it")
    })?;
    if stack.get("GATEWAY_URL").is_none() {
        bail!("the gateway did not start (see .local/logs/gateway.log); the demo needs it");
    }
    let rpc = Rpc::new(stack.get("RPC_URL").context("RPC_URL")?);
    let usdc = stack.get("USDC_CONTRACT").context("USDC_CONTRACT")?;
    let buyer = stack.get("BUYER_ADDRESS").context("BUYER_ADDRESS")?;
    let seller = stack.get("SELLER_WALLET").context("SELLER_WALLET")?;
    let buyer_before = rpc.usdc_balance(usdc, buyer).await?;
    let seller_before = rpc.usdc_balance(usdc, seller).await?;

    println!("\n=== Local paid-image demo ===");
    println!("agent    {agent}");
    println!("buyer    {buyer}  {} USDC", usdc_str(buyer_before));
    println!("seller   {seller}  {} USDC\n", usdc_str(seller_before));

    let http = reqwest::Client::builder()
        .timeout(TURN_TIMEOUT)
        .build()
        .context("http client")?;
    let session = new_session_id();
    let mut payments = Vec::new();
    let mut images = Vec::new();
    let mut model = String::new();
    for prompt in CONVERSATION {
        println!("you> {prompt}");
        let started = Instant::now();
        let turn = invoke_streaming(&http, agent, &session, prompt, true).await?;
        println!(
            "     ({:.1} s)\n",
            started.elapsed().as_millis() as f64 / 1000.0
        );
        model = turn.output["model"].as_str().unwrap_or_default().to_owned();
        payments.extend(turn.payments);
        images.extend(turn.images);
    }

    let buyer_after = rpc.usdc_balance(usdc, buyer).await?;
    let seller_after = rpc.usdc_balance(usdc, seller).await?;
    println!("=== Summary ===");
    println!("model    {model}");
    println!("session  {session}");
    ensure!(
        !payments.is_empty(),
        "the agent made no payment; see .local/logs/agent.log and gateway.log"
    );
    for p in &payments {
        println!(
            "payment  {} USDC to {} on {}\n         tx {}\n         {}",
            p["amount"].as_str().unwrap_or("?"),
            p["pay_to"].as_str().unwrap_or("?"),
            p["network"].as_str().unwrap_or("?"),
            p["transaction"].as_str().unwrap_or("?"),
            p["transaction_url"].as_str().unwrap_or(""),
        );
    }
    println!(
        "buyer    {} -> {} USDC ({})",
        usdc_str(buyer_before),
        usdc_str(buyer_after),
        signed_usdc(buyer_after as i128 - buyer_before as i128)
    );
    println!(
        "seller   {} -> {} USDC ({})",
        usdc_str(seller_before),
        usdc_str(seller_after),
        signed_usdc(seller_after as i128 - seller_before as i128)
    );
    let (_, url) = images
        .last()
        .ok_or_else(|| anyhow!("the agent returned no image"))?;
    let file = save_image(paths, &http, url, CONVERSATION[2]).await?;
    println!("image    {}\n         ({url})", file.display());
    Ok(session)
}

/// `POST /invocations` with `Accept: text/event-stream`, printing events as
/// they arrive when `print` is set.
pub async fn invoke_streaming(
    http: &reqwest::Client,
    agent: &str,
    session: &str,
    prompt: &str,
    print: bool,
) -> Result<Turn> {
    use futures::StreamExt;

    let resp = http
        .post(format!("{}/invocations", agent.trim_end_matches('/')))
        .header("accept", "text/event-stream")
        .header("x-amzn-bedrock-agentcore-runtime-session-id", session)
        .json(&json!({"input": {"prompt": prompt}}))
        .send()
        .await
        .with_context(|| format!("cannot reach the agent at {agent}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("the agent answered {status}: {body}");
    }
    let mut turn = Turn::default();
    let mut parser = plumbing::sse::SseParser::new();
    let mut stream = resp.bytes_stream();
    let mut in_text = false;
    while let Some(chunk) = stream.next().await {
        for data in parser.push(&chunk.context("reading the stream")?)? {
            let ev: Value =
                serde_json::from_str(&data).with_context(|| format!("unreadable event: {data}"))?;
            if handle_event(&mut turn, &ev, print, &mut in_text)? {
                if print && in_text {
                    println!();
                }
                return Ok(turn);
            }
        }
    }
    bail!("the agent's stream ended without a `complete` event")
}

/// Applies one event; `Ok(true)` on `complete`.
fn handle_event(turn: &mut Turn, ev: &Value, print: bool, in_text: &mut bool) -> Result<bool> {
    use std::io::Write;
    let s = |k: &str| ev[k].as_str().unwrap_or_default().to_owned();
    let mut line = |text: String| {
        if print {
            if *in_text {
                println!();
                *in_text = false;
            }
            println!("{text}");
        }
    };
    match ev["type"].as_str().unwrap_or_default() {
        "text" => {
            let delta = s("delta");
            if print {
                if !*in_text {
                    print!("agent> ");
                    *in_text = true;
                }
                print!("{delta}");
                let _ = std::io::stdout().flush();
            }
            turn.text.push_str(&delta);
        }
        "tool_start" => {
            turn.tools.push(s("name"));
            line(format!("  [tool] {} {}", s("name"), ev["input"]));
        }
        "tool_end" => line(format!(
            "  [tool] {} {}: {}",
            s("name"),
            s("status"),
            s("summary")
        )),
        "payment" => {
            let r = &ev["receipt"];
            line(format!(
                "  [payment] {} USDC -> {}  tx {}",
                r["amount"].as_str().unwrap_or("?"),
                r["pay_to"].as_str().unwrap_or("?"),
                r["transaction"].as_str().unwrap_or("?")
            ));
            turn.payments.push(r.clone());
        }
        "image" => {
            line(format!("  [image] {}", s("url")));
            turn.images.push((s("id"), s("url")));
        }
        "complete" => {
            turn.output = ev["output"].clone();
            if turn.text.is_empty() {
                // A non-streaming model: the whole answer arrives here.
                let text = turn.output["message"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                line(format!("agent> {text}"));
                turn.text = text;
            }
            return Ok(true);
        }
        "error" => bail!("the agent reported an error: {}", s("message")),
        _ => {}
    }
    Ok(false)
}

/// Copies the image behind `url` (a `file://` path locally, a presigned
/// HTTP URL with S3) to `demo-output/<slug>.png` and checks it is a PNG.
async fn save_image(
    paths: &Paths,
    http: &reqwest::Client,
    url: &str,
    prompt: &str,
) -> Result<PathBuf> {
    let bytes = if let Some(path) = url.strip_prefix("file://") {
        tokio::fs::read(path)
            .await
            .with_context(|| format!("reading {path}"))?
    } else {
        let resp = http.get(url).send().await.context("fetching the image")?;
        ensure!(
            resp.status().is_success(),
            "image URL answered {}",
            resp.status()
        );
        resp.bytes().await?.to_vec()
    };
    ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the image at {url} is not a PNG"
    );
    let dir = paths.root.join(OUTPUT_DIR);
    tokio::fs::create_dir_all(&dir).await?;
    let file = dir.join(format!("{}.png", slug(prompt)));
    tokio::fs::write(&file, &bytes).await?;
    Ok(relative(&paths.root, &file))
}

async fn open_chat(paths: &Paths, stack: &RunningStack, session: &str) -> Result<()> {
    let agent = stack.get("AGENT_URL").context("AGENT_URL")?;
    println!("\nThe stack stays up while you chat. Ctrl-D or `exit` ends the chat and stops it.\n");
    let program = paths.target_dir().join("debug").join("agent");
    let status = tokio::process::Command::new(program)
        .args(["chat", "--url", agent, "--session", session])
        .status()
        .await
        .context("starting the terminal chat")?;
    ensure!(status.success(), "the chat exited with {status}");
    Ok(())
}

fn new_session_id() -> String {
    // AgentCore session ids are at least 33 characters.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("demo-session-{nanos:024}-{}", std::process::id())
}

/// Lowercase words joined by `-`, at most 6 words: "generate-an-image-of-a-futuristic".
fn slug(prompt: &str) -> String {
    prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .skip_while(|w| {
            ["generate", "an", "a", "image", "of"].contains(&w.to_ascii_lowercase().as_str())
        })
        .take(6)
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

fn relative(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Atomic USDC (6 decimals) as a decimal string, exactly.
fn usdc_str(atomic: u128) -> String {
    let frac = format!("{:06}", atomic % 1_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", atomic / 1_000_000)
    } else {
        format!("{}.{frac}", atomic / 1_000_000)
    }
}

fn signed_usdc(delta: i128) -> String {
    let sign = if delta < 0 { "-" } else { "+" };
    format!("{sign}{}", usdc_str(delta.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usdc_amounts_print_exactly() {
        assert_eq!(usdc_str(0), "0");
        assert_eq!(usdc_str(40_000), "0.04");
        assert_eq!(usdc_str(1_000_000_000), "1000");
        assert_eq!(usdc_str(999_960_000), "999.96");
        assert_eq!(usdc_str(1), "0.000001");
        assert_eq!(signed_usdc(-40_000), "-0.04");
        assert_eq!(signed_usdc(40_000), "+0.04");
    }

    #[test]
    fn image_file_names_come_from_the_subject() {
        assert_eq!(
            slug("Generate an image of a futuristic city at sunset"),
            "futuristic-city-at-sunset"
        );
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
    }
}
