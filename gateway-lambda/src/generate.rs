//! Generation backends: what the seller sells. One trait, with Bedrock
//! (Nova Canvas for images, Nova 2 Lite for text) and a local deterministic
//! backend side by side, chosen by configuration.

use async_trait::async_trait;

/// A generated image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedImage {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The seed actually used (chosen by the gateway when the buyer gave none).
    pub seed: u32,
}

/// One image request as the backend sees it (already validated and priced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageJob {
    pub prompt: String,
    pub width: u32,
    pub height: u32,
    /// `true` for premium quality.
    pub premium: bool,
    pub seed: u32,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerationError {
    /// The model refused the input (content filter, validation): the buyer
    /// should change the request. HTTP 422.
    #[error("the model refused the request: {0}")]
    Refused(String),
    /// The backend failed or could not be reached. HTTP 502.
    #[error("the model is unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time. HTTP 504 (treated like 502 for money).
    #[error("the model timed out")]
    Timeout,
}

/// The thing that makes what the gateway sells. Nothing here touches money.
#[async_trait]
pub trait Generator: Send + Sync {
    /// Nova Canvas `TEXT_IMAGE` (or the local stand-in).
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError>;
    /// Nova 2 Lite text (Converse) for `/generate` with `model: "nova-llm"`.
    async fn text(&self, prompt: &str) -> Result<String, GenerationError>;
    /// Input tokens of `prompt` as Bedrock `CountTokens` counts them, used to
    /// price `nova-llm` before anything is generated.
    async fn count_input_tokens(&self, prompt: &str) -> Result<u64, GenerationError>;
    /// For logs and `/health`: `"bedrock"` or `"local"`.
    fn name(&self) -> &'static str;
}
