//! One turn of the conversation: the Converse tool loop.
//!
//! ```text
//! load session ─▶ [model call ─▶ tool calls (concurrent, results in call order)]* ─▶ answer ─▶ save messages
//! ```
//!
//! - The session's records are read at the start of every turn (the newest
//!   state; the server serialises the turns of one session).
//! - Each model call may ask for several tools; they run concurrently and
//!   their results go back in the order the model asked. An unknown tool or
//!   invalid arguments become a `toolResult` with status `error` that the
//!   model can react to; a tool never crashes the turn.
//! - At most `max_turns` model calls per invocation; then the turn ends with
//!   a clear message (history stays valid: it always ends on an assistant
//!   message).
//! - Context overflow: the oldest turns are dropped from what is sent
//!   ([`trim_oldest_turn`]), never splitting a toolUse from its toolResult;
//!   the stored history keeps everything.
//! - `max_tokens`: the cut-short reply is kept with a notice; tool calls it
//!   contained (whose input may be truncated) are not run.
//! - Ledger entries are written by the tools as they happen (a payment is
//!   persisted before it is sent); the conversation messages of the turn are
//!   written once, at the end, under one idempotency key.
//!
//! - An approval from the caller (`approve` in the request, as data) is
//!   handled before the model runs ([`TurnRequest::approval`]): a valid one
//!   is recorded in the ledger and the approved request is paid and
//!   generated right away, by code, as a `generate_image` call on the
//!   model's behalf (user message, tool call, tool result in the history);
//!   the model then continues the turn from that result. A refused approval
//!   (unknown request, expired quote) emits a `refusal` event and pays
//!   nothing.
//!
//! Spans (names agreed with [`crate::observability`]): `chat` per model call,
//! `execute_tool` per tool call, with gen_ai attributes.

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::mpsc;
use tracing::{Instrument, field::Empty};
use x402::Usdc;

use crate::{
    events::{AgentEvent, Output, OutputMessage, ToolStatus, TurnUsage},
    model::{
        ContentBlock, Message, Model, ModelError, ModelRequest, ModelResponse, Role, StopReason,
        ToolResult, ToolResultContent, ToolResultStatus, ToolUse, prompt::system_prompt,
        trim_oldest_turn,
    },
    session::{Record, SessionLedger, SessionStore, SessionStoreError},
};
use tools::{
    ledger::LedgerEntry,
    progress::ToolEvent,
    toolbox::{self, GENERATE_IMAGE, ToolBox, ToolError, TurnContext},
};

/// What the server needs from the agent: run one turn.
///
/// Implemented in [`wiring`](crate::wiring) over the real tool loop; the
/// contract tests use the same. The server guarantees that, for one
/// (actor, session), calls never overlap. Contract for implementors:
/// - send [`Progress`] to `progress`; it has no terminal variant: the
///   server sends `complete` or `error` itself, from what the turn returns;
/// - a failed `send` means the client left: keep going, the turn's result
///   is still recorded in the session;
/// - return the turn's [`Output`], or a [`TurnError`] whose detail is logged
///   and not shown to the client.
#[async_trait::async_trait]
pub trait TurnRunner: Send + Sync + 'static {
    async fn run_turn(
        &self,
        req: TurnRequest,
        progress: ProgressSender,
    ) -> Result<Output, TurnError>;
}

/// What a turn tells its caller while it runs. There is no terminal variant:
/// a turn ends by returning, and the server sends the last event
/// (`complete` or `error`) from that.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A piece of assistant text.
    Text { delta: String },
    ToolStart {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolEnd {
        id: String,
        name: String,
        status: ToolStatus,
        summary: String,
    },
    /// A quote, refusal, payment or image, shown by a tool.
    Tool(ToolEvent),
}

impl From<Progress> for AgentEvent {
    fn from(p: Progress) -> Self {
        match p {
            Progress::Text { delta } => AgentEvent::Text { delta },
            Progress::ToolStart { id, name, input } => AgentEvent::ToolStart { id, name, input },
            Progress::ToolEnd {
                id,
                name,
                status,
                summary,
            } => AgentEvent::ToolEnd {
                id,
                name,
                status,
                summary,
            },
            Progress::Tool(e) => e.into(),
        }
    }
}

/// The client left: its end of the invocation's event channel is closed.
#[derive(Debug, thiserror::Error)]
#[error("the client left")]
pub struct ClientGone;

/// A turn's way into the invocation's one bounded event channel. It only
/// sends [`Progress`], so a turn cannot end the stream; the server, which
/// holds the channel too, sends the terminal event after the turn returns.
#[derive(Clone, Debug)]
pub struct ProgressSender(mpsc::Sender<AgentEvent>);

impl ProgressSender {
    pub fn new(events: mpsc::Sender<AgentEvent>) -> Self {
        ProgressSender(events)
    }

    /// Waits while the channel is full (a slow client slows the stream, not
    /// the turn's bookkeeping: see [`run_turn`]).
    pub async fn send(&self, p: Progress) -> Result<(), ClientGone> {
        self.0.send(p.into()).await.map_err(|_| ClientGone)
    }
}

/// What a turn needs from its caller.
pub struct TurnRequest {
    pub session_id: String,
    pub actor_id: String,
    pub prompt: String,
    /// Budget for the session, set by the caller (never by the model);
    /// `None` = the configured default.
    pub session_budget: Option<x402::Usdc>,
    /// The user's answer to a quote, as data from the caller. With an
    /// approval the prompt may be empty.
    pub approval: Option<ApprovalAnswer>,
}

/// `{"request_id": "...", "approved": true|false}` from the caller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub request_id: String,
    pub approved: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] SessionStoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Loop settings (from `Config`).
#[derive(Clone, Copy, Debug)]
pub struct TurnSettings {
    /// Model calls per invocation before giving up (`MAX_TURNS`).
    pub max_turns: u32,
    /// Output limit per model call (`MAX_TOKENS`).
    pub max_tokens: u32,
    /// `SESSION_BUDGET_USDC`: the budget when the caller sets none.
    pub default_budget: Usdc,
}

/// Everything the tool loop depends on; built once by `wiring` and shared by
/// all sessions (it holds no per-session state). Implements
/// [`TurnRunner`], so the server can run it
/// directly.
pub struct TurnDeps {
    pub model: Arc<dyn Model>,
    pub store: Arc<dyn SessionStore>,
    pub tools: Arc<ToolBox>,
    pub settings: TurnSettings,
}

#[async_trait::async_trait]
impl TurnRunner for TurnDeps {
    async fn run_turn(
        &self,
        req: TurnRequest,
        progress: ProgressSender,
    ) -> Result<Output, TurnError> {
        run_turn(self, req, progress).await
    }
}

/// Splits stored records into conversation messages and ledger entries.
fn split(records: Vec<Record>) -> Result<(Vec<Message>, Vec<LedgerEntry>), SessionStoreError> {
    let mut messages = Vec::new();
    let mut ledger = Vec::new();
    for r in records {
        match r {
            Record::Message { message } => messages.push(
                serde_json::from_value(message)
                    .map_err(|e| SessionStoreError::Corrupt(format!("message: {e}")))?,
            ),
            Record::Ledger { entry } => ledger.push(
                serde_json::from_value(entry)
                    .map_err(|e| SessionStoreError::Corrupt(format!("ledger entry: {e}")))?,
            ),
        }
    }
    Ok((messages, ledger))
}

fn now_rfc3339() -> String {
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

async fn turn(
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

/// The caller's answer to a quote, before the model runs. Appends the turn's
/// opening messages to `history`. Returns the final answer when the turn
/// ends here (a refused approval without a prompt: no model call).
async fn answer_quote(
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

/// One model call inside a `chat` span, streaming text deltas as events.
async fn call_model(
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
async fn run_tool(
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
fn summarise(v: &serde_json::Value) -> String {
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
