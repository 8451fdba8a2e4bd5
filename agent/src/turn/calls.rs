//! One model call and one tool call, each in its span, each reporting its
//! progress.

use tokio::sync::mpsc;
use tracing::{Instrument, field::Empty};

use super::Progress;
use crate::{
    events::ToolStatus,
    model::{
        Model, ModelError, ModelRequest, ModelResponse, ToolResult, ToolResultContent,
        ToolResultStatus, ToolUse,
    },
};
use tools::toolbox::{ToolBox, ToolError, TurnContext};

/// One model call inside a `chat` span, streaming text deltas as events.
pub(super) async fn call_model(
    model: &dyn Model,
    label: &str,
    request: &ModelRequest,
    tx: &mpsc::UnboundedSender<Progress>,
) -> Result<ModelResponse, ModelError> {
    let span = tracing::info_span!(
        "chat",
        "gen_ai.operation.name" = "chat",
        "gen_ai.system" = if label.starts_with("offline") {
            "offline"
        } else {
            "aws.bedrock"
        },
        "gen_ai.request.model" = label,
        "gen_ai.request.max_tokens" = request.max_tokens,
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
        "gen_ai.response.finish_reasons" = Empty,
    );
    let on_text = |t: &str| {
        if !t.is_empty() {
            let _ = tx.send(Progress::Text { delta: t.into() });
        }
    };
    let result = model
        .converse(request, &on_text)
        .instrument(span.clone())
        .await;
    match &result {
        Ok(r) => {
            span.record("gen_ai.usage.input_tokens", r.usage.input_tokens);
            span.record("gen_ai.usage.output_tokens", r.usage.output_tokens);
            span.record("gen_ai.response.finish_reasons", r.stop_reason.as_str());
        }
        Err(e) => {
            let _g = span.enter();
            tracing::warn!(error = %e, "model call failed");
        }
    }
    result
}

/// One tool call inside an `execute_tool` span; every failure becomes an
/// error `toolResult`.
pub(super) async fn run_tool(
    tools: &ToolBox,
    ctx: &TurnContext,
    call: &ToolUse,
    tx: &mpsc::UnboundedSender<Progress>,
) -> ToolResult {
    let span = tracing::info_span!(
        "execute_tool",
        "gen_ai.operation.name" = "execute_tool",
        "gen_ai.tool.name" = call.name.as_str(),
        "gen_ai.tool.call.id" = call.tool_use_id.as_str(),
    );
    let _ = tx.send(Progress::ToolStart {
        id: call.tool_use_id.clone(),
        name: call.name.clone(),
        input: call.input.clone(),
    });
    let result: Result<serde_json::Value, ToolError> = tools
        .call(ctx, &call.name, call.input.clone())
        .instrument(span.clone())
        .await;
    let (status, content, summary) = match result {
        Ok(v) => {
            let summary = summarise(&v);
            (
                ToolResultStatus::Success,
                ToolResultContent::Json(v),
                summary,
            )
        }
        Err(e) => {
            let message = e.to_string();
            span.in_scope(|| tracing::info!(error = %message, "tool call failed"));
            (
                ToolResultStatus::Error,
                ToolResultContent::Text(message.clone()),
                message,
            )
        }
    };
    let _ = tx.send(Progress::ToolEnd {
        id: call.tool_use_id.clone(),
        name: call.name.clone(),
        status: match status {
            ToolResultStatus::Success => ToolStatus::Success,
            ToolResultStatus::Error => ToolStatus::Error,
        },
        summary,
    });
    ToolResult {
        tool_use_id: call.tool_use_id.clone(),
        content: vec![content],
        status,
    }
}

/// A one-line summary of a tool result for progress displays.
pub(super) fn summarise(v: &serde_json::Value) -> String {
    let mut s = match v.get("status").and_then(|s| s.as_str()) {
        Some(status) => status.to_owned(),
        None => "ok".to_owned(),
    };
    for key in ["price_usdc", "url", "usdc_balance", "approved_usdc"] {
        if let Some(x) = v.get(key).and_then(|x| x.as_str()) {
            s.push_str(&format!(" {key}={x}"));
        }
    }
    s
}
