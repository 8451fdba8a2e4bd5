//! A scripted model for the agent's tests (kept out of the shipped crate): replays a queue of steps, one per call, and
//! records every request it saw (calls, estimated input tokens), so tests can
//! assert "exactly two model calls" or "the trimmed history was sent".

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use async_trait::async_trait;
use serde_json::Value;

use agent::model::{
    ContentBlock, ImageFormat, Message, Model, ModelError, ModelRequest, ModelResponse, Role,
    StopReason, TextSink, ToolUse, Usage, estimate_message_tokens, estimate_tokens,
};

type Dynamic = Box<dyn Fn(&ModelRequest) -> Step + Send + Sync>;

/// One scripted call.
pub enum Step {
    /// Reply with this message and stop reason (text blocks are streamed).
    Reply(Message, StopReason),
    /// Stream `partial` text, then fail (a mid-stream error).
    FailAfter { partial: String, error: ModelError },
    /// Fail before any output.
    Fail(ModelError),
    /// Decide from the request (e.g. answer with an id from a tool result).
    Dynamic(Dynamic),
}

impl Step {
    pub fn text(text: &str) -> Step {
        Step::Reply(Message::assistant_text(text), StopReason::EndTurn)
    }

    /// One tool call (id `call-<name>`), stop reason `tool_use`.
    pub fn tool(name: &str, input: Value) -> Step {
        Step::tools(&[(name, input)])
    }

    /// Several tool calls in one reply (ids `call-<index>-<name>`).
    pub fn tools(calls: &[(&str, Value)]) -> Step {
        let content = calls
            .iter()
            .enumerate()
            .map(|(i, (name, input))| {
                ContentBlock::ToolUse(ToolUse {
                    tool_use_id: if calls.len() == 1 {
                        format!("call-{name}")
                    } else {
                        format!("call-{i}-{name}")
                    },
                    name: (*name).into(),
                    input: input.clone(),
                })
            })
            .collect();
        Step::Reply(
            Message {
                role: Role::Assistant,
                content,
            },
            StopReason::ToolUse,
        )
    }

    pub fn dynamic(f: impl Fn(&ModelRequest) -> Step + Send + Sync + 'static) -> Step {
        Step::Dynamic(Box::new(f))
    }
}

/// Replays [`Step`]s. Calls beyond the script fail with a clear error.
pub struct ScriptedModel {
    steps: Mutex<VecDeque<Step>>,
    calls: AtomicU32,
    seen: Mutex<Vec<ModelRequest>>,
    /// Simulated context window in estimated tokens: a larger request fails
    /// with [`ModelError::ContextOverflow`] (and still counts as a call).
    context_limit: Option<u32>,
    /// What `describe_image` answers.
    vision_answer: String,
}

impl ScriptedModel {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        ScriptedModel {
            steps: Mutex::new(steps.into_iter().collect()),
            calls: AtomicU32::new(0),
            seen: Mutex::new(Vec::new()),
            context_limit: None,
            vision_answer: "a scripted description".into(),
        }
    }

    pub fn with_context_limit(mut self, tokens: u32) -> Self {
        self.context_limit = Some(tokens);
        self
    }

    /// Model calls so far (`converse` only).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.seen.lock().expect("lock").clone()
    }

    /// Steps not yet used.
    pub fn remaining(&self) -> usize {
        self.steps.lock().expect("lock").len()
    }
}

#[async_trait]
impl Model for ScriptedModel {
    fn label(&self) -> String {
        "scripted".into()
    }

    async fn converse(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().expect("lock").push(req.clone());
        let input_tokens = estimate_tokens(req);
        if let Some(limit) = self.context_limit
            && input_tokens > limit
        {
            return Err(ModelError::ContextOverflow(format!(
                "input is too long: {input_tokens} tokens > {limit}"
            )));
        }
        let mut step = self.steps.lock().expect("lock").pop_front();
        while let Some(Step::Dynamic(f)) = step {
            step = Some(f(req));
        }
        match step {
            None => Err(ModelError::Service(
                "scripted model: no more steps in the script".into(),
            )),
            Some(Step::Fail(e)) => Err(e),
            Some(Step::FailAfter { partial, error }) => {
                on_text(&partial);
                Err(error)
            }
            Some(Step::Reply(message, stop_reason)) => {
                for b in &message.content {
                    if let ContentBlock::Text(t) = b {
                        on_text(t);
                    }
                }
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
            Some(Step::Dynamic(_)) => unreachable!("resolved above"),
        }
    }

    async fn describe_image(
        &self,
        _image: &[u8],
        _format: ImageFormat,
        _question: &str,
    ) -> Result<String, ModelError> {
        Ok(self.vision_answer.clone())
    }
}
