//! Amazon Bedrock through the Converse API (`aws-sdk-bedrockruntime`).
//!
//! - `ConverseStream` (default) streams text deltas to the client as they
//!   arrive; the reply is assembled from the event stream: `contentBlockStart`
//!   (a tool call's id and name), `contentBlockDelta` (text, or a piece of a
//!   tool call's JSON input), `messageStop` (stop reason), `metadata` (usage).
//! - `Converse` returns the whole reply at once (used for vision, and when
//!   streaming is off).
//!
//! Errors keep the service's own message. Throttling is recognised however
//! it arrives: as the HTTP error `ThrottlingException` before the stream
//! starts, or as an event-stream exception mid-stream, spelled
//! `throttlingException` (the Smithy member name the SDK models) or
//! `ThrottlingException` (which the SDK does not model and surfaces as a
//! generic error, recognised here by code or message). Retrying is the
//! [`Retry`](super::retry::Retry) layer's job; the client is built with the
//! SDK's own retries off ([`client`]).

use async_trait::async_trait;
use aws_config::{SdkConfig, retry::RetryConfig};
use aws_sdk_bedrockruntime::{
    Client,
    error::SdkError,
    types::{
        self as t, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseOutput,
        ConverseStreamOutput, InferenceConfiguration, SystemContentBlock, ToolConfiguration,
        ToolInputSchema, ToolSpecification,
    },
};
use aws_smithy_types::Blob;

mod errors;
use errors::{sdk_error, stream_error};

pub use crate::document::{doc_to_json, json_to_doc};
use serde_json::Value;

use super::{
    ContentBlock, ImageFormat, Message, Model, ModelError, ModelRequest, ModelResponse, Role,
    StopReason, TextSink, ToolResultContent, ToolResultStatus, ToolUse, Usage,
};

/// A Bedrock runtime client for the model adapter: the shared AWS settings
/// (region, credentials, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` for a local
/// stand-in) with the SDK's retries off, because [`Retry`](super::retry::Retry)
/// is the one retry policy and also covers errors mid-stream.
pub fn client(sdk: &SdkConfig) -> Client {
    let conf = aws_sdk_bedrockruntime::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// Claude (or any Converse model) on Bedrock.
pub struct BedrockModel {
    client: Client,
    model_id: String,
    streaming: bool,
}

impl BedrockModel {
    pub fn new(client: Client, model_id: impl Into<String>) -> Self {
        BedrockModel {
            client,
            model_id: model_id.into(),
            streaming: true,
        }
    }

    /// Uses `Converse` instead of `ConverseStream` for chat.
    pub fn without_streaming(mut self) -> Self {
        self.streaming = false;
        self
    }

    fn parts(
        &self,
        req: &ModelRequest,
    ) -> Result<(Vec<t::Message>, ToolConfiguration, InferenceConfiguration), ModelError> {
        let messages = req
            .messages
            .iter()
            .map(to_sdk_message)
            .collect::<Result<Vec<_>, _>>()?;
        let tools = req
            .tools
            .iter()
            .map(|s| {
                ToolSpecification::builder()
                    .name(&s.name)
                    .description(&s.description)
                    .input_schema(ToolInputSchema::Json(json_to_doc(&s.input_schema)))
                    .build()
                    .map(t::Tool::ToolSpec)
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tool_config = ToolConfiguration::builder()
            .set_tools(Some(tools))
            .build()
            .map_err(build_err)?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(req.max_tokens).unwrap_or(i32::MAX))
            .build();
        Ok((messages, tool_config, inference))
    }

    async fn converse_once(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        let (messages, tool_config, inference) = self.parts(req)?;
        let out = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(req.system.clone()))
            .set_messages(Some(messages))
            .set_tool_config((!req.tools.is_empty()).then_some(tool_config))
            .inference_config(inference)
            .send()
            .await
            .map_err(|e| sdk_error(&e))?;
        let message = match out.output() {
            Some(ConverseOutput::Message(m)) => from_sdk_message(m),
            _ => return Err(ModelError::Service("Converse returned no message".into())),
        };
        for b in &message.content {
            if let ContentBlock::Text(t) = b {
                on_text(t);
            }
        }
        Ok(ModelResponse {
            message,
            stop_reason: stop_reason(out.stop_reason()),
            usage: usage(out.usage()),
        })
    }

    async fn converse_stream(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        let (messages, tool_config, inference) = self.parts(req)?;
        let mut out = self
            .client
            .converse_stream()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(req.system.clone()))
            .set_messages(Some(messages))
            .set_tool_config((!req.tools.is_empty()).then_some(tool_config))
            .inference_config(inference)
            .send()
            .await
            .map_err(|e| sdk_error(&e))?;

        let mut blocks = Assembler::default();
        let mut stop = None;
        let mut used = Usage::default();
        loop {
            let event = match out.stream.recv().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(SdkError::ServiceError(ctx)) => return Err(stream_error(ctx.err())),
                Err(e) => return Err(sdk_error(&e)),
            };
            match event {
                ConverseStreamOutput::ContentBlockStart(e) => {
                    if let Some(ContentBlockStart::ToolUse(s)) = e.start() {
                        blocks.start_tool(e.content_block_index(), s.tool_use_id(), s.name());
                    }
                }
                ConverseStreamOutput::ContentBlockDelta(e) => match e.delta() {
                    Some(ContentBlockDelta::Text(text)) => {
                        on_text(text);
                        blocks.text(e.content_block_index(), text);
                    }
                    Some(ContentBlockDelta::ToolUse(d)) => {
                        blocks.tool_input(e.content_block_index(), d.input());
                    }
                    _ => {}
                },
                ConverseStreamOutput::MessageStop(e) => stop = Some(stop_reason(e.stop_reason())),
                ConverseStreamOutput::Metadata(e) => used = usage(e.usage()),
                _ => {}
            }
        }
        let stop = stop.ok_or_else(|| {
            ModelError::Unavailable("the stream ended without messageStop".into())
        })?;
        Ok(ModelResponse {
            message: blocks.finish(),
            stop_reason: stop,
            usage: used,
        })
    }
}

#[async_trait]
impl Model for BedrockModel {
    fn label(&self) -> String {
        self.model_id.clone()
    }

    async fn converse(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError> {
        if self.streaming {
            self.converse_stream(req, on_text).await
        } else {
            self.converse_once(req, on_text).await
        }
    }

    async fn describe_image(
        &self,
        image: &[u8],
        format: ImageFormat,
        question: &str,
    ) -> Result<String, ModelError> {
        let image = t::ImageBlock::builder()
            .format(match format {
                ImageFormat::Png => t::ImageFormat::Png,
                ImageFormat::Jpeg => t::ImageFormat::Jpeg,
            })
            .source(t::ImageSource::Bytes(Blob::new(image)))
            .build()
            .map_err(build_err)?;
        let message = t::Message::builder()
            .role(ConversationRole::User)
            .content(t::ContentBlock::Image(image))
            .content(t::ContentBlock::Text(question.into()))
            .build()
            .map_err(build_err)?;
        let out = self
            .client
            .converse()
            .model_id(&self.model_id)
            .messages(message)
            .inference_config(InferenceConfiguration::builder().max_tokens(1024).build())
            .send()
            .await
            .map_err(|e| sdk_error(&e))?;
        match out.output() {
            Some(ConverseOutput::Message(m)) => Ok(from_sdk_message(m).text()),
            _ => Err(ModelError::Service("Converse returned no message".into())),
        }
    }
}

/// Builds the reply from stream events, by content block index.
#[derive(Default)]
struct Assembler {
    blocks: Vec<(i32, Partial)>,
}

enum Partial {
    Text(String),
    Tool {
        id: String,
        name: String,
        input: String,
    },
}

impl Assembler {
    fn slot(&mut self, index: i32) -> Option<&mut Partial> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, p)| p)
    }

    fn start_tool(&mut self, index: i32, id: &str, name: &str) {
        self.blocks.push((
            index,
            Partial::Tool {
                id: id.into(),
                name: name.into(),
                input: String::new(),
            },
        ));
    }

    fn text(&mut self, index: i32, text: &str) {
        match self.slot(index) {
            Some(Partial::Text(s)) => s.push_str(text),
            Some(Partial::Tool { .. }) => {}
            None => self.blocks.push((index, Partial::Text(text.into()))),
        }
    }

    fn tool_input(&mut self, index: i32, piece: &str) {
        if let Some(Partial::Tool { input, .. }) = self.slot(index) {
            input.push_str(piece);
        }
    }

    fn finish(mut self) -> Message {
        self.blocks.sort_by_key(|(i, _)| *i);
        let content = self
            .blocks
            .into_iter()
            .map(|(_, p)| match p {
                Partial::Text(t) => ContentBlock::Text(t),
                Partial::Tool { id, name, input } => ContentBlock::ToolUse(ToolUse {
                    tool_use_id: id,
                    name,
                    // No input means no arguments. Input that does not parse
                    // (cut off) is passed on as a string: the tool refuses it
                    // as invalid arguments and the model sees why.
                    input: if input.trim().is_empty() {
                        Value::Object(Default::default())
                    } else {
                        serde_json::from_str(&input).unwrap_or(Value::String(input))
                    },
                }),
            })
            .collect();
        Message {
            role: Role::Assistant,
            content,
        }
    }
}

fn build_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Service(format!("cannot build the Bedrock request: {e}"))
}

fn stop_reason(r: &t::StopReason) -> StopReason {
    match r {
        t::StopReason::EndTurn | t::StopReason::StopSequence => StopReason::EndTurn,
        t::StopReason::ToolUse => StopReason::ToolUse,
        t::StopReason::MaxTokens => StopReason::MaxTokens,
        other => StopReason::Other(other.as_str().to_owned()),
    }
}

fn usage(u: Option<&t::TokenUsage>) -> Usage {
    u.map(|u| Usage {
        input_tokens: u32::try_from(u.input_tokens()).unwrap_or(0),
        output_tokens: u32::try_from(u.output_tokens()).unwrap_or(0),
    })
    .unwrap_or_default()
}

fn to_sdk_message(m: &Message) -> Result<t::Message, ModelError> {
    let content = m
        .content
        .iter()
        .map(|b| {
            Ok(match b {
                ContentBlock::Text(text) => t::ContentBlock::Text(text.clone()),
                ContentBlock::ToolUse(u) => t::ContentBlock::ToolUse(
                    t::ToolUseBlock::builder()
                        .tool_use_id(&u.tool_use_id)
                        .name(&u.name)
                        .input(json_to_doc(&u.input))
                        .build()
                        .map_err(build_err)?,
                ),
                ContentBlock::ToolResult(r) => t::ContentBlock::ToolResult(
                    t::ToolResultBlock::builder()
                        .tool_use_id(&r.tool_use_id)
                        .set_content(Some(
                            r.content
                                .iter()
                                .map(|c| match c {
                                    ToolResultContent::Json(v) => {
                                        t::ToolResultContentBlock::Json(json_to_doc(v))
                                    }
                                    ToolResultContent::Text(s) => {
                                        t::ToolResultContentBlock::Text(s.clone())
                                    }
                                })
                                .collect(),
                        ))
                        .status(match r.status {
                            ToolResultStatus::Success => t::ToolResultStatus::Success,
                            ToolResultStatus::Error => t::ToolResultStatus::Error,
                        })
                        .build()
                        .map_err(build_err)?,
                ),
            })
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    t::Message::builder()
        .role(match m.role {
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
        })
        .set_content(Some(content))
        .build()
        .map_err(build_err)
}

fn from_sdk_message(m: &t::Message) -> Message {
    let content = m
        .content()
        .iter()
        .filter_map(|b| match b {
            t::ContentBlock::Text(text) => Some(ContentBlock::Text(text.clone())),
            t::ContentBlock::ToolUse(u) => Some(ContentBlock::ToolUse(ToolUse {
                tool_use_id: u.tool_use_id().into(),
                name: u.name().into(),
                input: doc_to_json(u.input()),
            })),
            // Reasoning, citations, images in replies: not used by this agent.
            _ => None,
        })
        .collect();
    Message {
        role: match m.role() {
            ConversationRole::User => Role::User,
            _ => Role::Assistant,
        },
        content,
    }
}
