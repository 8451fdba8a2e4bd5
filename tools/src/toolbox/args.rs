//! The tools' arguments and results as Rust types, and the specs (name,
//! description, JSON Schema generated from the argument types) the model sees.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use x402::{
    Usdc,
    catalog::{ImageQuality, ImageSize},
};

use super::ToolError;
use crate::names::{
    ANALYZE_IMAGE, CHECK_BALANCE, ESTIMATE_IMAGE_COST, GENERATE_IMAGE, MAKE_PAYMENT,
};

/// A tool as the model sees it: name, description, JSON Schema of the input
/// (generated from the Rust argument type with `schemars`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// `estimate_image_cost` and `generate_image` arguments: what to draw. There
/// is deliberately no price, payee or budget field.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageArgs {
    /// What the image should show (at most 1024 characters). Omit only when
    /// passing `request_id` to finish a request the user already approved.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Image size; default 1024x1024.
    #[serde(default)]
    pub size: Option<ImageSize>,
    /// Image quality; default standard.
    #[serde(default)]
    pub quality: Option<ImageQuality>,
    /// Optional seed for a reproducible image (a different seed is a different image).
    #[serde(default)]
    pub seed: Option<u32>,
    /// The `request_id` from an earlier `authorization required` answer:
    /// generates exactly that request (after `make_payment`).
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `make_payment` arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MakePaymentArgs {
    /// The `request_id` the user approved, from `generate_image`'s
    /// `authorization_required` answer.
    pub request_id: String,
}

/// `check_balance` takes no arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBalanceArgs {}

/// `analyze_image` arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeImageArgs {
    /// Id of an image generated in this conversation; default the latest.
    #[serde(default)]
    pub image_id: Option<String>,
    /// What to look for; default a general description.
    #[serde(default)]
    pub question: Option<String>,
}

/// `generate_image`'s result.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GenerateResult {
    Generated {
        request_id: String,
        image_id: String,
        url: String,
        price_usdc: Option<Usdc>,
        transaction_url: Option<String>,
        /// True when this request was paid earlier (no new payment).
        already_paid: bool,
    },
    AuthorizationRequired {
        request_id: String,
        price_usdc: Usdc,
        auto_approve_max_usdc: Usdc,
        message: String,
    },
}

fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
        o.entry("properties").or_insert_with(|| json!({}));
    }
    v
}

/// The tool specs the model sees, generated from the argument types.
pub fn specs() -> Vec<ToolSpec> {
    let spec = |name: &str, description: &str, input_schema: Value| ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema,
    };
    vec![
        spec(
            GENERATE_IMAGE,
            "Generate an image from a text prompt, paying the image service in USDC. Within the \
             auto-approve limit and the session budget this quotes, pays, generates and stores the \
             image in one call and returns its URL. Above the limit it returns \
             status=authorization_required with the price and a request_id: tell the user the \
             price; they approve or decline in their app, and an approval makes the payment \
             without you. Repeating a call never pays twice.",
            schema_of::<ImageArgs>(),
        ),
        spec(
            ESTIMATE_IMAGE_COST,
            "Get the price of an image without paying. Only use when the user asks about cost.",
            schema_of::<ImageArgs>(),
        ),
        spec(
            MAKE_PAYMENT,
            "Check whether the user approved paying for a request that needed authorization. \
             Approvals come only from the user's app, never from chat text; without one this \
             is refused. It does not pay by itself.",
            schema_of::<MakePaymentArgs>(),
        ),
        spec(
            CHECK_BALANCE,
            "Show the wallet address, its USDC balance, the session budget, what was spent and what remains.",
            schema_of::<CheckBalanceArgs>(),
        ),
        spec(
            ANALYZE_IMAGE,
            "Describe or answer a question about an image generated in this conversation. Only when the user asks.",
            schema_of::<AnalyzeImageArgs>(),
        ),
    ]
}

pub(super) fn parse<T: DeserializeOwned>(tool: &str, input: Value) -> Result<T, ToolError> {
    // Models sometimes send `null` for "no arguments".
    let input = if input.is_null() { json!({}) } else { input };
    serde_json::from_value(input).map_err(|e| ToolError::InvalidArguments {
        tool: tool.into(),
        message: e.to_string(),
    })
}
