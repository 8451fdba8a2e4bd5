//! The offline model: a deterministic planner for the local demo and for
//! tests without AWS.
//!
//! It understands the original sample's example conversation
//!
//! 1. "What can you help me with?"  -> describes itself, no tools
//! 2. "What are my wallet details?" -> `check_balance`, then a summary
//! 3. "Generate an image of a futuristic city at sunset" -> `generate_image`,
//!    then the URL and price (or the price and a question, above the
//!    auto-approve limit)
//! 4. the user's approval, which arrives as data and is paid by code before
//!    the model runs; the planner then answers from the `generate_image`
//!    result (a typed "yes, go ahead" only makes it call `make_payment`,
//!    which is refused without that approval)
//! 5. "analyze that image" -> `analyze_image`, then the analysis
//!
//! and drives the same tools through the same loop as Bedrock would, with
//! the same message shapes, so everything but the language understanding is
//! exercised for real. Its label, [`OFFLINE_LABEL`], is what responses carry
//! in `model`, so nobody mistakes it for Claude.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    ContentBlock, ImageFormat, Message, Model, ModelError, ModelRequest, ModelResponse, Role,
    StopReason, TextSink, ToolResult, ToolResultContent, ToolResultStatus, ToolUse, Usage,
    estimate_message_tokens, estimate_tokens,
};
use tools::names::{
    ANALYZE_IMAGE, CHECK_BALANCE, ESTIMATE_IMAGE_COST, GENERATE_IMAGE, MAKE_PAYMENT,
};

/// What responses carry in `model` when this model answered.
pub const OFFLINE_LABEL: &str = "offline (deterministic demo planner, no LLM)";

#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineModel;

enum Plan {
    Say(String),
    Call(&'static str, Value),
}

const CAPABILITIES: &str = "I can create images for you and pay for them in USDC with x402 \
(images within the auto-approve limit are paid right away; above it I ask you first), show your \
wallet address, balance and session budget, and describe an image I created. Try: \"What are my \
wallet details?\", \"Generate an image of a futuristic city at sunset\", then \"analyze that image\". \
(You are talking to the offline demo model.)";

fn tool_name_of(messages: &[Message], id: &str) -> Option<String> {
    messages.iter().rev().find_map(|m| {
        m.tool_uses()
            .find(|u| u.tool_use_id == id)
            .map(|u| u.name.clone())
    })
}

fn result_json(r: &ToolResult) -> Option<&Value> {
    r.content.iter().find_map(|c| match c {
        ToolResultContent::Json(v) => Some(v),
        ToolResultContent::Text(_) => None,
    })
}

fn result_text(r: &ToolResult) -> String {
    r.content
        .iter()
        .map(|c| match c {
            ToolResultContent::Json(v) => v.to_string(),
            ToolResultContent::Text(t) => t.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

/// What to say about tool results (or the next tool to call).
fn after_tools(messages: &[Message], results: &[&ToolResult]) -> Plan {
    let mut lines = Vec::new();
    for r in results {
        let name = tool_name_of(messages, &r.tool_use_id).unwrap_or_default();
        if r.status == ToolResultStatus::Error {
            lines.push(format!("That did not work: {}", result_text(r)));
            continue;
        }
        let Some(v) = result_json(r) else {
            lines.push(result_text(r));
            continue;
        };
        match name.as_str() {
            MAKE_PAYMENT => {
                return Plan::Call(GENERATE_IMAGE, json!({"request_id": s(v, "request_id")}));
            }
            GENERATE_IMAGE if s(v, "status") == "authorization_required" => lines.push(format!(
                "This image costs {} USDC, which is above the auto-approve limit of {} USDC. \
                 Approve or decline it in your app (the terminal chat asks y/n); nothing is paid until you do.",
                s(v, "price_usdc"),
                s(v, "auto_approve_max_usdc")
            )),
            GENERATE_IMAGE => {
                let paid = if v.get("already_paid").and_then(Value::as_bool) == Some(true) {
                    "It was already paid for earlier; nothing new was charged.".to_owned()
                } else {
                    format!(
                        "Paid {} USDC (transaction: {}).",
                        s(v, "price_usdc"),
                        s(v, "transaction_url")
                    )
                };
                lines.push(format!("Here is your image: {}\n{paid}", s(v, "url")));
            }
            CHECK_BALANCE => lines.push(format!(
                "Your wallet {} on {} holds {} USDC. Session budget: {} USDC, spent {} USDC, \
                 remaining {} USDC. Images up to {} USDC are paid without asking.",
                s(v, "address"),
                s(v, "network"),
                s(v, "usdc_balance"),
                s(v, "session_budget_usdc"),
                s(v, "session_spent_usdc"),
                s(v, "session_remaining_usdc"),
                s(v, "auto_approve_max_usdc"),
            )),
            ESTIMATE_IMAGE_COST => lines.push(format!(
                "That image would cost {} USDC ({} USDC of the session budget left).",
                s(v, "price_usdc"),
                s(v, "budget_remaining_usdc")
            )),
            ANALYZE_IMAGE => lines.push(s(v, "analysis").to_owned()),
            _ => lines.push(v.to_string()),
        }
    }
    Plan::Say(lines.join("\n"))
}

/// The prompt of "generate an image of X": X.
fn image_prompt(text: &str) -> String {
    let lower = text.to_lowercase();
    let start = [" of ", "draw ", "paint ", "generate ", "create "]
        .iter()
        .find_map(|k| lower.find(k).map(|i| i + k.len()))
        .unwrap_or(0);
    let p = text[start..]
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim();
    if p.is_empty() {
        text.trim().to_owned()
    } else {
        p.to_owned()
    }
}

/// The request waiting for the user's approval, if any.
fn pending_authorization(messages: &[Message]) -> Option<String> {
    messages.iter().rev().find_map(|m| {
        m.content.iter().find_map(|b| match b {
            ContentBlock::ToolResult(r) => result_json(r)
                .filter(|v| s(v, "status") == "authorization_required")
                .map(|v| s(v, "request_id").to_owned()),
            _ => None,
        })
    })
}

fn plan(messages: &[Message]) -> Plan {
    let Some(last) = messages.last() else {
        return Plan::Say(CAPABILITIES.into());
    };
    let results: Vec<&ToolResult> = last
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolResult(r) => Some(r),
            _ => None,
        })
        .collect();
    if !results.is_empty() {
        return after_tools(messages, &results);
    }
    let text = last.text();
    let t = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["i decline paying"]) {
        // The user's Decline, sent by their app as data (see `turn`).
        Plan::Say("Declined: nothing was paid for that image. Ask again whenever you like.".into())
    } else if has(&["what can you", "help me with", "what do you do"]) {
        Plan::Say(CAPABILITIES.into())
    } else if has(&["analy", "describe", "what is in", "what's in"]) {
        Plan::Call(ANALYZE_IMAGE, json!({}))
    } else if has(&["yes", "go ahead", "approve", "sure", "ok", "do it"]) {
        match pending_authorization(&messages[..messages.len() - 1]) {
            Some(id) => Plan::Call(MAKE_PAYMENT, json!({"request_id": id})),
            None => Plan::Say("There is nothing waiting for your approval.".into()),
        }
    } else if has(&["how much", "cost", "price"]) && has(&["image", "picture"]) {
        Plan::Call(ESTIMATE_IMAGE_COST, json!({"prompt": image_prompt(&text)}))
    } else if has(&[
        "generate",
        "image of",
        "picture of",
        "draw",
        "paint",
        "create",
    ]) {
        let mut args = json!({"prompt": image_prompt(&text)});
        if has(&["premium", "high quality", "high-quality"]) {
            args["quality"] = json!("premium");
        }
        Plan::Call(GENERATE_IMAGE, args)
    } else if has(&["wallet", "balance", "budget", "address"]) {
        Plan::Call(CHECK_BALANCE, json!({}))
    } else {
        Plan::Say(format!(
            "I am the offline demo model and only understand a few requests. {CAPABILITIES}"
        ))
    }
}

#[async_trait]
impl Model for OfflineModel {
    fn label(&self) -> String {
        OFFLINE_LABEL.into()
    }

    async fn converse(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        let input_tokens = estimate_tokens(req);
        let (content, stop_reason) = match plan(&req.messages) {
            Plan::Say(text) => {
                // Streamed word by word, like a real model.
                for piece in text.split_inclusive(' ') {
                    on_text(piece);
                }
                (vec![ContentBlock::Text(text)], StopReason::EndTurn)
            }
            Plan::Call(name, input) => (
                vec![ContentBlock::ToolUse(ToolUse {
                    tool_use_id: format!("offline-{}-{name}", req.messages.len()),
                    name: name.into(),
                    input,
                })],
                StopReason::ToolUse,
            ),
        };
        let message = Message {
            role: Role::Assistant,
            content,
        };
        let output_tokens = estimate_message_tokens(&message);
        Ok(ModelResponse {
            message,
            stop_reason,
            usage: Usage {
                input_tokens,
                output_tokens,
            },
        })
    }

    /// Reads the PNG itself: size and average colour. Honest about not seeing.
    async fn describe_image(
        &self,
        image: &[u8],
        format: ImageFormat,
        _question: &str,
    ) -> Result<String, ModelError> {
        if format != ImageFormat::Png {
            return Ok(format!(
                "An image of {} bytes (offline analysis reads PNG only).",
                image.len()
            ));
        }
        let summary = png_summary(image).map_err(ModelError::Service)?;
        Ok(format!(
            "{summary} (Offline analysis: this demo model reads the pixels but cannot recognise \
             objects; with Bedrock, Claude describes the content.)"
        ))
    }
}

fn png_summary(bytes: &[u8]) -> Result<String, String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("bad PNG: {e}"))?;
    let channels = match (info.color_type, info.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
        (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
        _ => {
            return Ok(format!("A {}x{} PNG image.", info.width, info.height));
        }
    };
    let pixels = &buf[..info.buffer_size()];
    let n = (pixels.len() / channels).max(1) as u64;
    let mut sum = [0u64; 3];
    for px in pixels.chunks_exact(channels) {
        for c in 0..3 {
            sum[c] += u64::from(px[c]);
        }
    }
    let [r, g, b] = sum.map(|s| s / n);
    Ok(format!(
        "A {}x{} PNG image whose average colour is rgb({r}, {g}, {b}).",
        info.width, info.height
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(messages: Vec<Message>) -> ModelRequest {
        ModelRequest {
            system: String::new(),
            messages,
            tools: vec![],
            max_tokens: 100,
        }
    }

    async fn reply(messages: Vec<Message>) -> ModelResponse {
        OfflineModel
            .converse(&req(messages), &|_| {})
            .await
            .unwrap()
    }

    fn first_call(r: &ModelResponse) -> (String, Value) {
        let u = r.message.tool_uses().next().expect("a tool call");
        (u.name.clone(), u.input.clone())
    }

    #[tokio::test]
    async fn understands_the_sample_conversation() {
        let r = reply(vec![Message::user_text("What can you help me with?")]).await;
        assert_eq!(r.stop_reason, StopReason::EndTurn);
        assert!(r.message.text().contains("images"));

        let r = reply(vec![Message::user_text("What are my wallet details?")]).await;
        assert_eq!(first_call(&r), (CHECK_BALANCE.into(), json!({})));

        let r = reply(vec![Message::user_text(
            "Generate an image of a futuristic city at sunset",
        )])
        .await;
        assert_eq!(
            first_call(&r),
            (
                GENERATE_IMAGE.into(),
                json!({"prompt": "a futuristic city at sunset"})
            )
        );

        let r = reply(vec![Message::user_text("analyze that image")]).await;
        assert_eq!(first_call(&r).0, ANALYZE_IMAGE);
    }

    #[tokio::test]
    async fn yes_go_ahead_pays_the_pending_request_then_generates_it() {
        let call = ToolUse {
            tool_use_id: "t1".into(),
            name: GENERATE_IMAGE.into(),
            input: json!({"prompt": "x"}),
        };
        let mut history = vec![
            Message::user_text("Generate an image of x"),
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::ToolUse(call)],
            },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult(ToolResult {
                    tool_use_id: "t1".into(),
                    content: vec![ToolResultContent::Json(json!({
                        "status": "authorization_required", "request_id": "img-1",
                        "price_usdc": "0.50", "auto_approve_max_usdc": "0.10"
                    }))],
                    status: ToolResultStatus::Success,
                })],
            },
        ];
        let r = reply(history.clone()).await;
        assert!(
            r.message.text().contains("0.50 USDC"),
            "{}",
            r.message.text()
        );
        history.push(r.message);
        history.push(Message::user_text("yes, go ahead"));
        let r = reply(history.clone()).await;
        assert_eq!(
            first_call(&r),
            (MAKE_PAYMENT.into(), json!({"request_id": "img-1"}))
        );
        let id = r.message.tool_uses().next().unwrap().tool_use_id.clone();
        history.push(r.message);
        history.push(Message {
            role: Role::User,
            content: vec![ContentBlock::ToolResult(ToolResult {
                tool_use_id: id,
                content: vec![ToolResultContent::Json(json!({"request_id": "img-1"}))],
                status: ToolResultStatus::Success,
            })],
        });
        let r = reply(history).await;
        assert_eq!(
            first_call(&r),
            (GENERATE_IMAGE.into(), json!({"request_id": "img-1"}))
        );
    }

    #[tokio::test]
    async fn a_declined_quote_is_acknowledged_and_nothing_is_called() {
        let r = reply(vec![Message::user_text(
            "[From my app, not typed: I decline paying for request img-1. Do not buy it.]",
        )])
        .await;
        assert!(r.message.tool_uses().next().is_none());
        assert!(
            r.message.text().contains("nothing was paid"),
            "{}",
            r.message.text()
        );
    }

    #[tokio::test]
    async fn yes_without_a_pending_request_pays_nothing() {
        let r = reply(vec![Message::user_text("yes, go ahead")]).await;
        assert!(r.message.tool_uses().next().is_none());
    }

    #[test]
    fn reads_a_png() {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, 2, 1);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&[255, 0, 0, 255, 0, 0]).unwrap();
        }
        assert_eq!(
            png_summary(&bytes).unwrap(),
            "A 2x1 PNG image whose average colour is rgb(255, 0, 0)."
        );
    }
}
