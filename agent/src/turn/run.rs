//! The tool loop itself: load the session, call the model, run the tools it
//! asks for, repeat; then save the turn's messages.

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::mpsc;

use super::{
    Progress, ProgressSender, TurnDeps, TurnError, TurnRequest,
    approval::answer_quote,
    calls::{call_model, run_tool},
};
use crate::{
    events::{Output, OutputMessage, TurnUsage},
    model::{
        ContentBlock, Message, ModelError, ModelRequest, ModelResponse, Role, StopReason, ToolUse,
        prompt::system_prompt, trim_oldest_turn,
    },
    session::{Record, SessionLedger, SessionStoreError},
};
use tools::{
    ledger::LedgerEntry,
    toolbox::{self, TurnContext},
};

/// Splits stored records into conversation messages and ledger entries.
pub(super) fn split(
    records: Vec<Record>,
) -> Result<(Vec<Message>, Vec<LedgerEntry>), SessionStoreError> {
    let mut messages = Vec::new();
    let mut ledger = Vec::new();
    for r in records {
        match r {
            Record::Message { message } => messages.push(
                serde_json::from_value(message)
                    .map_err(|e| SessionStoreError::Corrupt(format!("message: {e}")))?,
            ),
            Record::Ledger { entry } => ledger.push(
                tools::ledger::decode(entry)
                    .map_err(|e| SessionStoreError::Corrupt(e.to_string()))?,
            ),
        }
    }
    Ok((messages, ledger))
}

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs one turn, streaming progress to `progress`, and returns the final
/// output.
pub async fn run_turn(
    deps: &TurnDeps,
    req: TurnRequest,
    progress: ProgressSender,
) -> Result<Output, TurnError> {
    // Text deltas arrive in a synchronous callback inside the model's
    // stream, and tool events from concurrent tool calls: they queue here in
    // order and one forwarder moves them into the bounded channel, so a slow
    // client never stalls the model stream or a payment. The queue holds at
    // most one turn's progress (its text is bounded by `max_tokens` per
    // model call and `max_turns` calls).
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let forwarder = tokio::spawn(async move {
        let mut client_gone = false;
        while let Some(p) = rx.recv().await {
            if !client_gone && progress.send(p).await.is_err() {
                client_gone = true;
            }
        }
    });
    let result = turn(deps, req, tx).await;
    let _ = forwarder.await;
    result
}

pub(super) async fn turn(
    deps: &TurnDeps,
    req: TurnRequest,
    tx: mpsc::UnboundedSender<Progress>,
) -> Result<Output, TurnError> {
    let records = deps.store.load(&req.actor_id, &req.session_id).await?;
    let (mut history, ledger) = split(records)?;
    let turn_id = uuid::Uuid::new_v4().simple().to_string();
    let budget = req.session_budget.unwrap_or(deps.settings.default_budget);
    let ctx = TurnContext::new(
        req.actor_id.clone(),
        req.session_id.clone(),
        turn_id.clone(),
        budget,
        Arc::new(SessionLedger {
            store: deps.store.clone(),
            actor_id: req.actor_id.clone(),
            session_id: req.session_id.clone(),
        }),
        {
            let tx = tx.clone();
            // A closed channel means the client left; the turn goes on.
            Arc::new(move |e| {
                let _ = tx.send(Progress::Tool(e));
            })
        },
        ledger,
    );
    let system = system_prompt(deps.tools.rules.auto_approve_max, budget);
    let specs = toolbox::specs();
    let label = deps.model.label();

    let first_new = history.len();
    let mut final_text = None;
    match &req.approval {
        None => history.push(Message::user_text(req.prompt.clone())),
        Some(answer) => {
            final_text =
                answer_quote(deps, &ctx, &req.prompt, answer, &turn_id, &mut history, &tx).await;
        }
    }
    // Messages before this index are not sent (context overflow trimming).
    let mut dropped = 0usize;
    let mut usage = TurnUsage::default();

    // A turn that ended on a refused approval makes no model call.
    let rounds = if final_text.is_some() {
        0
    } else {
        deps.settings.max_turns
    };
    for _ in 0..rounds {
        let response = loop {
            let request = ModelRequest {
                system: system.clone(),
                messages: history[dropped..].to_vec(),
                tools: specs.clone(),
                max_tokens: deps.settings.max_tokens,
            };
            let result = call_model(deps.model.as_ref(), &label, &request, &tx).await;
            usage.model_calls += 1;
            match result {
                Ok(r) => {
                    usage.input_tokens += u64::from(r.usage.input_tokens);
                    usage.output_tokens += u64::from(r.usage.output_tokens);
                    break Ok(r);
                }
                Err(ModelError::ContextOverflow(m)) => {
                    let mut view = history[dropped..].to_vec();
                    if !trim_oldest_turn(&mut view) {
                        break Err(ModelError::ContextOverflow(m));
                    }
                    dropped = history.len() - view.len();
                    tracing::warn!(dropped, "context overflow: dropped the oldest turns");
                }
                Err(e) => break Err(e),
            }
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                // Paid content is never lost: if tools already produced
                // images or payments, answer with them instead of failing.
                let produced = ctx.produced();
                if produced.images.is_empty() && produced.payments.is_empty() {
                    return Err(e.into());
                }
                tracing::error!(error = %e, "model failed after tools produced results");
                final_text = Some(format!(
                    "The model failed before finishing ({e}), but this is what was done: {} image(s), {} payment(s).",
                    produced.images.len(),
                    produced.payments.len()
                ));
                break;
            }
        };

        let ModelResponse {
            mut message,
            stop_reason,
            ..
        } = response;
        let tool_uses: Vec<ToolUse> = message.tool_uses().cloned().collect();

        if stop_reason == StopReason::MaxTokens {
            // Tool input may be cut off: do not run it, and drop it so the
            // stored history has no toolUse without a toolResult.
            message
                .content
                .retain(|b| matches!(b, ContentBlock::Text(_)));
            let text = format!(
                "{}\n\n[The reply was cut short: it reached the output limit of {} tokens.]",
                message.text(),
                deps.settings.max_tokens
            );
            message.content = vec![ContentBlock::Text(text.trim_start().to_owned())];
            final_text = Some(message.text());
            history.push(message);
            break;
        }

        if tool_uses.is_empty() {
            if message.content.is_empty() || message.text().trim().is_empty() {
                message.content = vec![ContentBlock::Text("(no reply)".into())];
            }
            final_text = Some(message.text());
            history.push(message);
            break;
        }

        history.push(message);
        let results = join_all(
            tool_uses
                .iter()
                .map(|u| run_tool(&deps.tools, &ctx, u, &tx)),
        )
        .await;
        history.push(Message {
            role: Role::User,
            content: results.into_iter().map(ContentBlock::ToolResult).collect(),
        });
    }

    let final_text = final_text.unwrap_or_else(|| {
        let text = format!(
            "I stopped after {} model calls without finishing this request. \
             Nothing more will be paid for it unless you ask again.",
            deps.settings.max_turns
        );
        let _ = tx.send(Progress::Text {
            delta: text.clone(),
        });
        history.push(Message::assistant_text(text.clone()));
        text
    });
    if history.last().is_some_and(|m| m.role == Role::User) {
        // A model failure after tool results: close the turn on an
        // assistant message so the next turn's history alternates.
        history.push(Message::assistant_text(final_text.clone()));
    }

    let new_records: Vec<Record> = history[first_new..]
        .iter()
        .map(|m| Record::Message {
            message: serde_json::to_value(m).expect("messages serialise"),
        })
        .collect();
    deps.store
        .append(
            &req.actor_id,
            &req.session_id,
            &new_records,
            &format!("turn:{turn_id}:messages"),
        )
        .await?;

    let produced = ctx.produced();
    Ok(Output {
        message: OutputMessage::assistant(final_text),
        images: produced.images,
        payments: produced.payments,
        session_id: req.session_id,
        timestamp: now_rfc3339(),
        model: label,
        usage,
        quotes: produced.quotes,
        refusals: produced.refusals,
    })
}
