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
    /// Nova 2 Lite text (Converse) for `/generate` with `model: "nova-llm"`,
    /// at most [`crate::pricing::TEXT_MAX_OUTPUT_TOKENS`] output tokens.
    async fn text(&self, prompt: &str) -> Result<String, GenerationError>;
    /// Text of at most `max_output_tokens` output tokens: the gateway calls
    /// this with the number of output tokens it priced, so it never serves
    /// more than it charged for. A backend that calls a model must override
    /// it (Bedrock passes it as `maxTokens`); the default is for backends
    /// whose output is bounded anyway (the local one, test doubles).
    async fn text_within(
        &self,
        prompt: &str,
        max_output_tokens: u64,
    ) -> Result<String, GenerationError> {
        let _ = max_output_tokens;
        self.text(prompt).await
    }
    /// Input tokens of `prompt` as Bedrock `CountTokens` counts them, used to
    /// price `nova-llm` before anything is generated.
    async fn count_input_tokens(&self, prompt: &str) -> Result<u64, GenerationError>;
    /// For logs and `/health`: `"bedrock"` or `"local"`.
    fn name(&self) -> &'static str;
}

/// A deterministic stand-in for development and tests: a real PNG whose
/// pixels depend only on the prompt and seed, and text derived from the
/// prompt. No network, no randomness, fast enough to benchmark around.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalGenerator;

impl LocalGenerator {
    /// Renders a smooth gradient with a few bands whose colours come from
    /// SHA-256(prompt, seed). Compresses well, so 2048x2048 stays small.
    pub fn render(job: &ImageJob) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(job.prompt.as_bytes())
            .chain_update(job.seed.to_be_bytes())
            .chain_update([u8::from(job.premium)])
            .finalize();
        let (w, h) = (job.width as usize, job.height as usize);
        let c0 = [digest[0], digest[1], digest[2]];
        let c1 = [digest[3], digest[4], digest[5]];
        let bands = 2 + usize::from(digest[6] % 6);
        let mut data = vec![0u8; w * h * 3];
        for (y, row) in data.chunks_exact_mut(w * 3).enumerate() {
            let band = y * bands / h.max(1);
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let t = u16::try_from(x * 255 / w.max(1)).unwrap_or(255);
                for i in 0..3 {
                    let a = u16::from(c0[i]);
                    let b = u16::from(c1[i] ^ digest[7 + band % 8]);
                    px[i] = u8::try_from((a * (255 - t) + b * t) / 255).unwrap_or(u8::MAX);
                }
            }
        }
        let mut png = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut png, job.width, job.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut writer = enc.write_header().expect("PNG header writes to memory");
            writer
                .write_image_data(&data)
                .expect("PNG data writes to memory");
        }
        png
    }
}

#[async_trait]
impl Generator for LocalGenerator {
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError> {
        let job = job.clone();
        tokio::task::spawn_blocking(move || GeneratedImage {
            png: LocalGenerator::render(&job),
            width: job.width,
            height: job.height,
            seed: job.seed,
        })
        .await
        .map_err(|e| GenerationError::Unavailable(e.to_string()))
    }

    async fn text(&self, prompt: &str) -> Result<String, GenerationError> {
        let words: Vec<&str> = prompt.split_whitespace().collect();
        let topic = words.iter().take(12).copied().collect::<Vec<_>>().join(" ");
        Ok(format!(
            "[local text model] You asked about: \"{topic}\". This answer is generated \
             deterministically for development: {} words in, {} characters in.",
            words.len(),
            prompt.chars().count()
        ))
    }

    async fn count_input_tokens(&self, prompt: &str) -> Result<u64, GenerationError> {
        // About four characters per token, like the usual estimate.
        Ok(u64::try_from(prompt.chars().count().div_ceil(4)).unwrap_or(u64::MAX))
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
