//! `agent chat [--url URL]`: a terminal client for a running agent.
//!
//! Each line typed is one `POST {url}/invocations` with
//! `Accept: text/event-stream`; the answer is printed as it streams: text as
//! it arrives, and a line for each tool call, payment and image, so the user
//! sees what the agent does with their money while it does it. One session
//! id is kept for the whole chat (`--session` to resume one).
//!
//! When a quote above the auto-approve limit arrives (`quote` event with
//! `needs_approval`), the chat asks `Pay ... ? [y/N]` on the terminal and
//! sends the answer as data (`{"approve": {"request_id", "approved"}}`):
//! typing "yes" as a chat message approves nothing.
//!
//! The stream is read with [`plumbing::sse::SseParser`], the reader the chat
//! Lambda uses too.

use std::io::Write as _;

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::events::{AgentEvent, QuoteInfo, ToolStatus};

/// Options of the `chat` subcommand.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Base URL of the agent, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Session to continue; a new one when `None`.
    pub session_id: Option<String>,
    /// Caller-set session budget (decimal USDC), sent with every prompt.
    pub session_budget_usdc: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("cannot reach the agent at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("reading the terminal: {0}")]
    Stdin(#[from] std::io::Error),
}

/// Runs the interactive loop until end of input or `exit`.
pub async fn run(opts: ChatOptions) -> Result<(), ChatError> {
    let http = reqwest::Client::new();
    let session = opts
        .session_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let url = format!("{}/invocations", opts.url.trim_end_matches('/'));
    println!(
        "Chatting with {} (session {session}). Type `exit` to leave.",
        opts.url
    );
    loop {
        print!("\nyou> ");
        flush();
        let Some(line) = read_line().await? else {
            break;
        };
        let prompt = line.trim();
        if prompt.is_empty() {
            continue;
        }
        if matches!(prompt, "exit" | "quit") {
            break;
        }
        let mut body = json!({"input": {"prompt": prompt}, "session_id": session});
        // Each turn may end on quotes that need the user's approval: ask,
        // and send each answer as data, which continues the purchase.
        loop {
            if let Some(b) = &opts.session_budget_usdc {
                body["session_budget_usdc"] = json!(b);
            }
            let pending = stream_turn(&http, &url, &opts.url, &body).await?;
            let Some(quote) = pending.into_iter().last() else {
                break;
            };
            print!(
                "\nPay {} USDC to {} on {} for {}? [y/N] ",
                quote.amount, quote.pay_to, quote.network, quote.description
            );
            flush();
            let answer = read_line().await?.unwrap_or_default();
            let approved = matches!(answer.trim().to_lowercase().as_str(), "y" | "yes");
            body = json!({
                "approve": {"request_id": quote.request_id, "approved": approved},
                "session_id": session,
            });
        }
    }
    Ok(())
}

/// Sends one invocation and prints its stream; returns the quotes that
/// wait for the user's approval.
async fn stream_turn(
    http: &reqwest::Client,
    url: &str,
    base: &str,
    body: &Value,
) -> Result<Vec<QuoteInfo>, ChatError> {
    let res = http
        .post(url)
        .header("accept", "text/event-stream")
        .json(body)
        .send()
        .await
        .map_err(|source| ChatError::Connect {
            url: base.to_owned(),
            source,
        })?;
    if !res.status().is_success() {
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        println!("[error] {status}: {msg}");
        return Ok(Vec::new());
    }
    print!("agent> ");
    flush();
    let mut parser = plumbing::sse::SseParser::new();
    let mut stream = res.bytes_stream();
    let mut ended = false;
    let mut pending = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            println!("\n[error] the connection to the agent broke");
            break;
        };
        let events = match parser.push(&chunk) {
            Ok(events) => events,
            Err(e) => {
                println!("\n[error] {e}");
                break;
            }
        };
        for data in events {
            if let Ok(AgentEvent::Quote(q)) = serde_json::from_str::<AgentEvent>(&data)
                && q.needs_approval
            {
                pending.retain(|p: &QuoteInfo| p.request_id != q.request_id);
                pending.push(q);
            }
            if let Some((text, last)) = render(&data) {
                print!("{text}");
                flush();
                ended |= last;
            }
        }
    }
    if !ended {
        println!("\n[error] the agent ended the stream without an answer");
    }
    Ok(pending)
}

/// One line of standard input (`None` at end of input), read on a blocking
/// thread so the stream of the previous answer is never held up.
async fn read_line() -> std::io::Result<Option<String>> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let n = std::io::stdin().read_line(&mut line)?;
        Ok((n > 0).then_some(line))
    })
    .await
    .map_err(std::io::Error::other)?
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// How one SSE event is shown, and whether it ends the turn.
pub fn render(data: &str) -> Option<(String, bool)> {
    let Ok(event) = serde_json::from_str::<AgentEvent>(data) else {
        return Some((format!("\n[?] {data}\n"), false));
    };
    Some(match event {
        AgentEvent::Text { delta } => (delta, false),
        AgentEvent::Quote(q) => (
            format!(
                "  [quote] {} USDC to {} for {}{}\n",
                q.amount,
                q.pay_to,
                q.description,
                if q.needs_approval {
                    " (needs your approval)"
                } else {
                    ""
                }
            ),
            false,
        ),
        AgentEvent::Refusal(r) => (format!("  [refused] {}: {}\n", r.rule, r.message), false),
        AgentEvent::ToolStart { name, .. } => (format!("\n  [tool] {name} ...\n"), false),
        AgentEvent::ToolEnd {
            name,
            status,
            summary,
            ..
        } => {
            let mark = match status {
                ToolStatus::Success => "ok",
                ToolStatus::Error => "failed",
            };
            (format!("  [tool] {name} {mark}: {summary}\n"), false)
        }
        AgentEvent::Payment { receipt } => (
            format!(
                "  [paid] {} USDC to {} on {} - {}\n",
                receipt.amount, receipt.pay_to, receipt.network, receipt.transaction_url
            ),
            false,
        ),
        AgentEvent::Image { id, url } => (format!("  [image] {id}: {url}\n"), false),
        AgentEvent::Complete { output } => {
            let mut s = String::from("\n");
            let spent = output
                .payments
                .iter()
                .try_fold(x402::Usdc::ZERO, |acc, p| acc.checked_add(p.amount));
            if let Some(spent) = spent.filter(|s| *s > x402::Usdc::ZERO) {
                s.push_str(&format!(
                    "  (paid {spent} USDC this turn; model {})\n",
                    output.model
                ));
            }
            (s, true)
        }
        AgentEvent::Error { message } => (format!("\n[error] {message}\n"), true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_for_a_terminal() {
        let (t, end) = render(r#"{"type":"text","delta":"Hello"}"#).unwrap();
        assert_eq!((t.as_str(), end), ("Hello", false));
        let (t, _) = render(
            r#"{"type":"payment","receipt":{"request_id":"r","amount":"0.04","asset":"USDC","network":"base-sepolia","pay_to":"0xSeller","payer":"0xMe","transaction":"0xabc","transaction_url":"https://sepolia.basescan.org/tx/0xabc","resource":"/generate_image"}}"#,
        )
        .unwrap();
        assert!(
            t.contains("[paid] 0.04 USDC to 0xSeller") && t.contains("/tx/0xabc"),
            "{t}"
        );
        let (t, _) = render(r#"{"type":"image","id":"i1","url":"https://x/i1.png"}"#).unwrap();
        assert!(t.contains("[image] i1: https://x/i1.png"));
        let (t, end) = render(r#"{"type":"error","message":"nope"}"#).unwrap();
        assert!(end && t.contains("[error] nope"));
    }
}
