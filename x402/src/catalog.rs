//! The seller's public API: request and response bodies of the gateway's paid
//! routes, shared so the buyer builds exactly what the seller prices.

use serde::{Deserialize, Serialize};

/// Longest prompt the seller accepts (Nova Canvas's own limit is 1024 characters).
pub const MAX_PROMPT_CHARS: usize = 1024;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ImageSize {
    #[default]
    #[serde(rename = "1024x1024")]
    S1024,
    #[serde(rename = "2048x2048")]
    S2048,
}

impl ImageSize {
    pub const fn pixels(self) -> u32 {
        match self {
            ImageSize::S1024 => 1024,
            ImageSize::S2048 => 2048,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ImageSize::S1024 => "1024x1024",
            ImageSize::S2048 => "2048x2048",
        }
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ImageQuality {
    #[default]
    Standard,
    Premium,
}

impl ImageQuality {
    pub const fn as_str(self) -> &'static str {
        match self {
            ImageQuality::Standard => "standard",
            ImageQuality::Premium => "premium",
        }
    }
}

/// `POST /generate_image` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRequest {
    pub prompt: String,
    #[serde(default)]
    pub size: ImageSize,
    #[serde(default)]
    pub quality: ImageQuality,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
}

/// `POST /generate_image` success body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageResponse {
    /// PNG, base64 (standard alphabet).
    pub image_base64: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub size: ImageSize,
    pub quality: ImageQuality,
    pub seed: u32,
    /// Price paid, decimal USDC.
    pub price: crate::Usdc,
    /// Explorer link for the settlement transaction.
    pub transaction_url: String,
}
