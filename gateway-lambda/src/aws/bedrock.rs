//! Generation on Amazon Bedrock.
//!
//! - Images: Nova Canvas through `InvokeModel` with the `TEXT_IMAGE` task:
//!   `{"taskType":"TEXT_IMAGE","textToImageParams":{"text"},
//!   "imageGenerationConfig":{"numberOfImages":1,"width","height","quality","seed","cfgScale"}}`
//!   answered by `{"images":["<base64 PNG>"],"error":null}`. A prompt blocked
//!   by the content filters comes back as a `ValidationException`: the buyer's
//!   request is refused (422), not the service broken.
//! - Text: Nova 2 Lite through `Converse`, with `maxTokens` equal to the
//!   output cap the price assumed, so the price is an upper bound.
//! - Input tokens: `CountTokens` (free, no generation). Bedrock supports it
//!   for a subset of models; when the model refuses it we fall back to a
//!   conservative estimate (one token per three characters: more than real
//!   tokenizers give for prose, so the buyer is never under-quoted into a
//!   failure, and the margin is the seller's).

use async_trait::async_trait;
use aws_sdk_bedrockruntime::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    primitives::Blob,
    types::{
        ContentBlock, ConversationRole, ConverseOutput, ConverseTokensRequest, CountTokensInput,
        InferenceConfiguration, Message,
    },
};
use base64::Engine as _;
use serde_json::json;

use crate::{
    generate::{GeneratedImage, GenerationError, Generator, ImageJob},
    pricing::TEXT_MAX_OUTPUT_TOKENS,
};

pub struct BedrockGenerator {
    client: Client,
    canvas_model: String,
    lite_model: String,
}

/// Nova Canvas' prompt adherence; its documented default.
const CFG_SCALE: f64 = 6.5;

impl BedrockGenerator {
    pub fn new(client: Client, canvas_model: String, lite_model: String) -> Self {
        BedrockGenerator {
            client,
            canvas_model,
            lite_model,
        }
    }
}

/// Maps an SDK error to what the buyer is told.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> GenerationError {
    match e {
        SdkError::TimeoutError(_) => GenerationError::Timeout,
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            let message = s.err().message().unwrap_or_default().to_owned();
            match code {
                "ValidationException" => GenerationError::Refused(message),
                "ModelTimeoutException" => GenerationError::Timeout,
                _ => GenerationError::Unavailable(format!("{code}: {message}")),
            }
        }
        _ => GenerationError::Unavailable("Bedrock could not be reached".into()),
    }
}

#[async_trait]
impl Generator for BedrockGenerator {
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError> {
        let body = json!({
            "taskType": "TEXT_IMAGE",
            "textToImageParams": {"text": job.prompt},
            "imageGenerationConfig": {
                "numberOfImages": 1,
                "width": job.width,
                "height": job.height,
                "quality": if job.premium { "premium" } else { "standard" },
                "seed": job.seed,
                "cfgScale": CFG_SCALE,
            },
        });
        let out = self
            .client
            .invoke_model()
            .model_id(&self.canvas_model)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body.to_string()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let v: serde_json::Value = serde_json::from_slice(out.body().as_ref()).map_err(|e| {
            GenerationError::Unavailable(format!("unreadable Nova Canvas answer: {e}"))
        })?;
        if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
            return Err(GenerationError::Refused(err.to_owned()));
        }
        let b64 = v["images"][0]
            .as_str()
            .ok_or_else(|| GenerationError::Unavailable("Nova Canvas returned no image".into()))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| GenerationError::Unavailable("Nova Canvas image is not base64".into()))?;
        Ok(GeneratedImage {
            png,
            width: job.width,
            height: job.height,
            seed: job.seed,
        })
    }

    async fn text(&self, prompt: &str) -> Result<String, GenerationError> {
        self.text_within(prompt, TEXT_MAX_OUTPUT_TOKENS).await
    }

    async fn text_within(
        &self,
        prompt: &str,
        max_output_tokens: u64,
    ) -> Result<String, GenerationError> {
        let max_tokens = i32::try_from(max_output_tokens.min(TEXT_MAX_OUTPUT_TOKENS))
            .expect("bounded by the cap");
        let out = self
            .client
            .converse()
            .model_id(&self.lite_model)
            .messages(user(prompt)?)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(max_tokens)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        match out.output() {
            Some(ConverseOutput::Message(m)) => Ok(m
                .content()
                .iter()
                .filter_map(|b| b.as_text().ok().cloned())
                .collect::<Vec<_>>()
                .join("")),
            _ => Err(GenerationError::Unavailable(
                "Nova returned no message".into(),
            )),
        }
    }

    async fn count_input_tokens(&self, prompt: &str) -> Result<u64, GenerationError> {
        // CountTokens takes a foundation model id, not an inference profile.
        let model = self
            .lite_model
            .split_once('.')
            .filter(|(p, _)| ["us", "eu", "apac", "global", "jp", "au", "ca"].contains(p))
            .map_or(self.lite_model.as_str(), |(_, m)| m);
        let req = ConverseTokensRequest::builder()
            .messages(user(prompt)?)
            .build();
        match self
            .client
            .count_tokens()
            .model_id(model)
            .input(CountTokensInput::Converse(req))
            .send()
            .await
        {
            Ok(out) => Ok(u64::try_from(out.input_tokens()).unwrap_or(0)),
            Err(SdkError::ServiceError(s)) if s.err().code() == Some("ValidationException") => {
                Ok(conservative_tokens(prompt))
            }
            Err(e) => Err(classify(&e)),
        }
    }

    fn name(&self) -> &'static str {
        "bedrock"
    }
}

fn user(prompt: &str) -> Result<Message, GenerationError> {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(prompt.to_owned()))
        .build()
        .map_err(|e| GenerationError::Unavailable(e.to_string()))
}

/// One token per three characters, rounded up.
pub fn conservative_tokens(prompt: &str) -> u64 {
    u64::try_from(prompt.chars().count().div_ceil(3)).unwrap_or(u64::MAX)
}
