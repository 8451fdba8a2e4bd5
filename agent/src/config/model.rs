//! The model the tool loop talks to (`MODEL_PROVIDER`, `MODEL_ID`,
//! `MAX_TURNS`, `MAX_TOKENS`).

use plumbing::env::Env;

use super::positive;

/// Claude Sonnet 4.5 through the US cross-region inference profile.
pub const DEFAULT_MODEL_ID: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
pub const DEFAULT_MAX_TURNS: u32 = 8;
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelProvider {
    /// The deterministic offline planner (no AWS); labelled offline in `model`.
    Offline,
    /// Amazon Bedrock Converse / ConverseStream.
    Bedrock,
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// `MODEL_PROVIDER` (`offline` | `bedrock`), default `offline`.
    pub provider: ModelProvider,
    /// `MODEL_ID`, default Claude Sonnet 4.5 (US inference profile).
    pub model_id: String,
    /// `MAX_TURNS`, default 8: model calls per invocation before giving up.
    pub max_turns: u32,
    /// `MAX_TOKENS`, default 4096: the model's output limit per call.
    pub max_tokens: u32,
}

pub(super) fn model(env: &mut Env) -> ModelConfig {
    ModelConfig {
        provider: match env.opt("MODEL_PROVIDER").as_deref() {
            None | Some("offline") => ModelProvider::Offline,
            Some("bedrock") => ModelProvider::Bedrock,
            Some(other) => {
                env.problem(format!(
                    "MODEL_PROVIDER={other:?} must be `offline` or `bedrock`"
                ));
                ModelProvider::Offline
            }
        },
        model_id: env
            .opt("MODEL_ID")
            .unwrap_or_else(|| DEFAULT_MODEL_ID.into()),
        max_turns: positive(env, "MAX_TURNS", DEFAULT_MAX_TURNS),
        max_tokens: positive(env, "MAX_TOKENS", DEFAULT_MAX_TOKENS),
    }
}
