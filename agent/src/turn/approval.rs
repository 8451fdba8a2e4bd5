//! The user's answer to a quote, handled before the model runs.

use tokio::sync::mpsc;

use super::{ApprovalAnswer, Progress, TurnDeps, calls::run_tool};
use crate::model::{ContentBlock, Message, Role, ToolUse};
use tools::toolbox::{GENERATE_IMAGE, TurnContext};

/// The caller's answer to a quote, before the model runs. Appends the turn's
/// opening messages to `history`. Returns the final answer when the turn
/// ends here (a refused approval without a prompt: no model call).
pub(super) async fn answer_quote(
    deps: &TurnDeps,
    ctx: &TurnContext,
    prompt: &str,
    answer: &ApprovalAnswer,
    turn_id: &str,
    history: &mut Vec<Message>,
    tx: &mpsc::UnboundedSender<Progress>,
) -> Option<String> {
    let id = &answer.request_id;
    let with_prompt = |text: String| {
        if prompt.trim().is_empty() {
            text
        } else {
            format!("{text}\n\n{prompt}")
        }
    };
    match deps.tools.answer_quote(ctx, id, answer.approved).await {
        Ok(Some(approval)) => {
            // Paid by code, on the user's word: the model sees the call as
            // its own and continues from the result.
            history.push(Message::user_text(with_prompt(format!(
                "[From my app, not typed: I approve paying up to {} USDC for request {id}.]",
                approval.amount
            ))));
            let call = ToolUse {
                tool_use_id: format!("approved-{turn_id}"),
                name: GENERATE_IMAGE.into(),
                input: serde_json::json!({"request_id": id}),
            };
            history.push(Message {
                role: Role::Assistant,
                content: vec![ContentBlock::ToolUse(call.clone())],
            });
            let result = run_tool(&deps.tools, ctx, &call, tx).await;
            history.push(Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult(result)],
            });
            None
        }
        Ok(None) => {
            history.push(Message::user_text(with_prompt(format!(
                "[From my app, not typed: I decline paying for request {id}. Do not buy it.]"
            ))));
            None
        }
        Err(e) => {
            let text = format!("That approval was not accepted: {e}. Nothing was paid.");
            history.push(Message::user_text(format!(
                "[From my app, not typed: an answer to request {id}.]"
            )));
            if prompt.trim().is_empty() {
                let _ = tx.send(Progress::Text {
                    delta: text.clone(),
                });
                history.push(Message::assistant_text(text.clone()));
                Some(text)
            } else {
                history.push(Message::assistant_text(text));
                history.push(Message::user_text(prompt.to_owned()));
                None
            }
        }
    }
}
