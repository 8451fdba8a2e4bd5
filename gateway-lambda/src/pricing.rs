//! What the seller charges. Prices come only from here: the buyer's request
//! names *what* it wants, never what it pays.

use serde::Serialize;
use x402::{
    Usdc,
    catalog::{ImageQuality, ImageSize},
};

/// Image prices by size and quality (atomic USDC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ImagePrices {
    pub standard_1024: Usdc,
    pub premium_1024: Usdc,
    pub standard_2048: Usdc,
    pub premium_2048: Usdc,
}

impl Default for ImagePrices {
    /// 0.04 / 0.06 / 0.06 / 0.08 USDC.
    fn default() -> Self {
        ImagePrices {
            standard_1024: Usdc::from_atomic(40_000),
            premium_1024: Usdc::from_atomic(60_000),
            standard_2048: Usdc::from_atomic(60_000),
            premium_2048: Usdc::from_atomic(80_000),
        }
    }
}

impl ImagePrices {
    pub fn price(&self, size: ImageSize, quality: ImageQuality) -> Usdc {
        match (size, quality) {
            (ImageSize::S1024, ImageQuality::Standard) => self.standard_1024,
            (ImageSize::S1024, ImageQuality::Premium) => self.premium_1024,
            (ImageSize::S2048, ImageQuality::Standard) => self.standard_2048,
            (ImageSize::S2048, ImageQuality::Premium) => self.premium_2048,
        }
    }
}

/// Nova 2 Lite text pricing: USD per 1,000 tokens, as micro-USDC.
pub const TEXT_INPUT_MICRO_PER_1K: u128 = 300; // $0.0003 / 1K input tokens
pub const TEXT_OUTPUT_MICRO_PER_1K: u128 = 2_500; // $0.0025 / 1K output tokens
/// The output estimate is at least this many tokens...
pub const TEXT_MIN_OUTPUT_TOKENS: u64 = 800;
/// ...plus this margin (percent)...
pub const TEXT_OUTPUT_MARGIN_PERCENT: u64 = 20;
/// ...and never more than the generation limit, which is also the
/// `maxTokens` the model is called with: the estimate is an upper bound on
/// what the buyer can receive.
pub const TEXT_MAX_OUTPUT_TOKENS: u64 = 4_096;

/// The output tokens charged for a prompt of `input_tokens`: a reply as long
/// as the prompt but at least [`TEXT_MIN_OUTPUT_TOKENS`], +20 %, capped.
pub fn text_output_estimate(input_tokens: u64) -> u64 {
    let base = input_tokens.max(TEXT_MIN_OUTPUT_TOKENS);
    let with_margin = base
        .saturating_mul(100 + TEXT_OUTPUT_MARGIN_PERCENT)
        .div_ceil(100);
    with_margin.min(TEXT_MAX_OUTPUT_TOKENS)
}

/// Price of a `nova-llm` request, rounded *up* to whole micro-USDC.
pub fn text_price(input_tokens: u64) -> Usdc {
    let output = text_output_estimate(input_tokens);
    let micro_times_1k = u128::from(input_tokens) * TEXT_INPUT_MICRO_PER_1K
        + u128::from(output) * TEXT_OUTPUT_MICRO_PER_1K;
    Usdc::div_ceil(micro_times_1k, 1_000).expect("bounded by the output cap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_image_prices_are_the_published_list() {
        let p = ImagePrices::default();
        assert_eq!(
            p.price(ImageSize::S1024, ImageQuality::Standard)
                .to_string(),
            "0.04"
        );
        assert_eq!(
            p.price(ImageSize::S1024, ImageQuality::Premium).to_string(),
            "0.06"
        );
        assert_eq!(
            p.price(ImageSize::S2048, ImageQuality::Standard)
                .to_string(),
            "0.06"
        );
        assert_eq!(
            p.price(ImageSize::S2048, ImageQuality::Premium).to_string(),
            "0.08"
        );
    }

    #[test]
    fn output_estimate_has_a_floor_a_margin_and_a_cap() {
        assert_eq!(text_output_estimate(0), 960); // 800 + 20 %
        assert_eq!(text_output_estimate(1_000), 1_200);
        assert_eq!(text_output_estimate(1_001), 1_202); // rounded up
        assert_eq!(text_output_estimate(1_000_000), TEXT_MAX_OUTPUT_TOKENS);
    }

    #[test]
    fn text_price_rounds_up_to_whole_micro_usdc() {
        // 10 input tokens: 10 * 0.3 = 3 micro; 960 output: 960 * 2.5 = 2400 micro.
        assert_eq!(text_price(10), Usdc::from_atomic(2_403));
        // 1 input token: 0.3 micro + 2400 micro = 2400.3 -> 2401.
        assert_eq!(text_price(1), Usdc::from_atomic(2_401));
        // Capped output: the price stops growing with output, only with input.
        assert_eq!(text_price(100_000), Usdc::from_atomic(30_000 + 10_240));
    }
}
