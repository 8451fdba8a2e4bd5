//! x402 wire format, versions 1 and 2.
//!
//! | | v1 | v2 |
//! |---|---|---|
//! | 402 requirements | JSON body [`PaymentRequiredV1`] | `PAYMENT-REQUIRED` header, base64 [`PaymentRequiredV2`] |
//! | payment | `X-PAYMENT` header, base64 [`PaymentPayloadV1`] | `PAYMENT-SIGNATURE` header, base64 [`PaymentPayloadV2`] |
//! | settlement | `X-PAYMENT-RESPONSE`, base64 [`SettleResponse`] | `PAYMENT-RESPONSE`, same shape |
//!
//! Base64 is the standard alphabet with padding (the official decoders reject
//! URL-safe base64). A v2 payment repeats, verbatim, the requirement it
//! accepts; a v1 payment names only scheme and network, so the seller matches
//! it against its own offer.

use alloy::primitives::{Address, Bytes};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::HeaderName;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{eip3009::Authorization, money::Usdc, network::Network};

// The spec spells the headers upper-case; header names are case-insensitive
// and `HeaderName` holds them lower-case, which is also how HTTP/1 clients
// built on `http` (reqwest, hyper) write them.

/// v2 seller -> buyer, on the 402: base64 [`PaymentRequiredV2`].
pub const PAYMENT_REQUIRED: HeaderName = HeaderName::from_static("payment-required");
/// v2 buyer -> seller, on the paid retry: base64 [`PaymentPayloadV2`].
pub const PAYMENT_SIGNATURE: HeaderName = HeaderName::from_static("payment-signature");
/// v2 seller -> buyer, on the paid answer: base64 [`SettleResponse`].
pub const PAYMENT_RESPONSE: HeaderName = HeaderName::from_static("payment-response");
/// v1 buyer -> seller, on the paid retry: base64 [`PaymentPayloadV1`] (v1's
/// requirements come in the 402's JSON body, not a header).
pub const X_PAYMENT: HeaderName = HeaderName::from_static("x-payment");
/// v1 seller -> buyer, on the paid answer: base64 [`SettleResponse`].
pub const X_PAYMENT_RESPONSE: HeaderName = HeaderName::from_static("x-payment-response");

/// The only scheme this project speaks: an exact amount via EIP-3009.
pub const SCHEME_EXACT: &str = "exact";

/// `extra` of an EVM `exact` requirement: the token's EIP-712 domain name and version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenExtra {
    pub name: String,
    pub version: String,
}

/// One thing a v1 seller accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsV1 {
    pub scheme: String,
    pub network: String,
    /// Atomic units, decimal string.
    pub max_amount_required: String,
    pub resource: String,
    pub description: String,
    pub mime_type: String,
    #[serde(with = "crate::checksummed")]
    pub pay_to: Address,
    pub max_timeout_seconds: u64,
    #[serde(with = "crate::checksummed")]
    pub asset: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<TokenExtra>,
}

/// The v1 402 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1 {
    pub x402_version: u8,
    #[serde(default)]
    pub error: String,
    pub accepts: Vec<RequirementsV1>,
}

/// What is being sold (v2 puts it beside the requirements, not inside).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub mime_type: String,
}

/// One thing a v2 seller accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsV2 {
    pub scheme: String,
    pub network: String,
    /// Atomic units, decimal string.
    pub amount: String,
    #[serde(with = "crate::checksummed")]
    pub asset: Address,
    #[serde(with = "crate::checksummed")]
    pub pay_to: Address,
    pub max_timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<TokenExtra>,
}

/// The v2 `PAYMENT-REQUIRED` document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV2 {
    pub x402_version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub resource: ResourceInfo,
    pub accepts: Vec<RequirementsV2>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
}

/// The EVM `exact` payload: an EIP-3009 authorization and its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEvmPayload {
    pub signature: Bytes,
    pub authorization: Authorization,
}

/// `X-PAYMENT` (v1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV1 {
    pub x402_version: u8,
    pub scheme: String,
    pub network: String,
    pub payload: ExactEvmPayload,
}

/// `PAYMENT-SIGNATURE` (v2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV2 {
    pub x402_version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    pub accepted: RequirementsV2,
    pub payload: ExactEvmPayload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
}

/// A payment in either version, as a seller receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived, one per request
pub enum PaymentPayload {
    V1(PaymentPayloadV1),
    V2(PaymentPayloadV2),
}

impl PaymentPayload {
    pub fn version(&self) -> u8 {
        match self {
            PaymentPayload::V1(_) => 1,
            PaymentPayload::V2(_) => 2,
        }
    }

    pub fn exact(&self) -> &ExactEvmPayload {
        match self {
            PaymentPayload::V1(p) => &p.payload,
            PaymentPayload::V2(p) => &p.payload,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PaymentPayload::V1(p) => serde_json::to_value(p),
            PaymentPayload::V2(p) => serde_json::to_value(p),
        }
        .expect("payload serializes")
    }
}

/// A requirement in either version, as sent to the facilitator beside a
/// payment, and as a buyer keeps it with its quote. Untagged: the JSON is the
/// requirement itself (v1 has `maxAmountRequired`, v2 `amount`, so reading
/// it back finds the version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Requirements {
    V1(RequirementsV1),
    V2(RequirementsV2),
}

impl Requirements {
    /// The token's EIP-712 name and version, when the seller gave them.
    pub fn extra(&self) -> Option<&TokenExtra> {
        match self {
            Requirements::V1(r) => r.extra.as_ref(),
            Requirements::V2(r) => r.extra.as_ref(),
        }
    }
}

/// Settlement result: the facilitator's `/settle` answer and the body of
/// `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// Transaction hash; empty on failure.
    #[serde(default)]
    pub transaction: String,
    #[serde(default)]
    pub network: String,
}

/// The facilitator's `/verify` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub is_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// One entry of the facilitator's `/supported` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    pub x402_version: u8,
    pub scheme: String,
    pub network: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supported {
    pub kinds: Vec<SupportedKind>,
}

/// A normalised offer: what a seller asks for, independent of version. The
/// buyer's policy and the seller's checks both work on this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub version: u8,
    pub network: Network,
    pub amount: Usdc,
    pub asset: Address,
    pub pay_to: Address,
    pub max_timeout_seconds: u64,
    pub extra: Option<TokenExtra>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    #[error("scheme {0:?} is not supported (only \"exact\")")]
    Scheme(String),
    #[error(transparent)]
    Network(#[from] crate::network::UnknownNetwork),
    #[error(transparent)]
    Amount(#[from] crate::money::AmountError),
}

impl Offer {
    pub fn from_v1(r: &RequirementsV1) -> Result<Self, OfferError> {
        if r.scheme != SCHEME_EXACT {
            return Err(OfferError::Scheme(r.scheme.clone()));
        }
        Ok(Offer {
            version: 1,
            network: r.network.parse()?,
            amount: Usdc::parse_atomic(&r.max_amount_required)?,
            asset: r.asset,
            pay_to: r.pay_to,
            max_timeout_seconds: r.max_timeout_seconds,
            extra: r.extra.clone(),
        })
    }

    pub fn from_v2(r: &RequirementsV2) -> Result<Self, OfferError> {
        if r.scheme != SCHEME_EXACT {
            return Err(OfferError::Scheme(r.scheme.clone()));
        }
        Ok(Offer {
            version: 2,
            network: r.network.parse()?,
            amount: Usdc::parse_atomic(&r.amount)?,
            asset: r.asset,
            pay_to: r.pay_to,
            max_timeout_seconds: r.max_timeout_seconds,
            extra: r.extra.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("header is not valid base64")]
    Base64,
    #[error("header is not valid JSON: {0}")]
    Json(String),
    #[error("unsupported x402Version {0}")]
    Version(u64),
}

/// Encodes a document as an x402 header value: base64(JSON), standard alphabet.
pub fn encode_header<T: Serialize>(doc: &T) -> String {
    STANDARD.encode(serde_json::to_vec(doc).expect("x402 documents serialize"))
}

/// Decodes an x402 header value.
pub fn decode_header<T: DeserializeOwned>(value: &str) -> Result<T, HeaderError> {
    let raw = STANDARD
        .decode(value.trim())
        .map_err(|_| HeaderError::Base64)?;
    serde_json::from_slice(&raw).map_err(|e| HeaderError::Json(e.to_string()))
}

/// Decodes a payment header of either version, dispatching on `x402Version`.
pub fn decode_payment(value: &str) -> Result<PaymentPayload, HeaderError> {
    let doc: serde_json::Value = decode_header(value)?;
    match doc.get("x402Version").and_then(serde_json::Value::as_u64) {
        Some(1) => serde_json::from_value(doc)
            .map(PaymentPayload::V1)
            .map_err(|e| HeaderError::Json(e.to_string())),
        Some(2) => serde_json::from_value(doc)
            .map(PaymentPayload::V2)
            .map_err(|e| HeaderError::Json(e.to_string())),
        Some(v) => Err(HeaderError::Version(v)),
        None => Err(HeaderError::Json("missing x402Version".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::BASE_SEPOLIA_USDC;
    use alloy::primitives::{B256, U256, address};

    fn req_v2() -> RequirementsV2 {
        RequirementsV2 {
            scheme: "exact".into(),
            network: "eip155:84532".into(),
            amount: "40000".into(),
            asset: BASE_SEPOLIA_USDC,
            pay_to: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            max_timeout_seconds: 300,
            extra: Some(TokenExtra {
                name: "USDC".into(),
                version: "2".into(),
            }),
        }
    }

    fn payload() -> ExactEvmPayload {
        ExactEvmPayload {
            signature: Bytes::from(vec![1u8; 65]),
            authorization: Authorization {
                from: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
                to: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
                value: U256::from(40_000u64),
                valid_after: U256::ZERO,
                valid_before: U256::from(1u64 << 40),
                nonce: B256::repeat_byte(1),
            },
        }
    }

    #[test]
    fn v2_requirement_field_names_match_the_spec() {
        let j = serde_json::to_value(req_v2()).unwrap();
        for k in [
            "scheme",
            "network",
            "amount",
            "asset",
            "payTo",
            "maxTimeoutSeconds",
            "extra",
        ] {
            assert!(j.get(k).is_some(), "missing {k}");
        }
        assert_eq!(
            j["asset"], "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "checksummed"
        );
    }

    #[test]
    fn payment_headers_round_trip_and_dispatch_on_version() {
        let v2 = PaymentPayloadV2 {
            x402_version: 2,
            resource: None,
            accepted: req_v2(),
            payload: payload(),
            extensions: None,
        };
        let h = encode_header(&v2);
        assert_eq!(decode_payment(&h).unwrap(), PaymentPayload::V2(v2));

        let v1 = PaymentPayloadV1 {
            x402_version: 1,
            scheme: "exact".into(),
            network: "base-sepolia".into(),
            payload: payload(),
        };
        let h = encode_header(&v1);
        assert_eq!(decode_payment(&h).unwrap(), PaymentPayload::V1(v1));
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        assert!(matches!(decode_payment("%%%"), Err(HeaderError::Base64)));
        let not_json = STANDARD.encode("hello");
        assert!(matches!(
            decode_payment(&not_json),
            Err(HeaderError::Json(_))
        ));
        let v3 = STANDARD.encode(r#"{"x402Version":3}"#);
        assert!(matches!(decode_payment(&v3), Err(HeaderError::Version(3))));
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode([0xfb, 0xff]);
        assert!(decode_header::<serde_json::Value>(&url_safe).is_err());
    }

    #[test]
    fn offers_normalise_both_versions() {
        let o = Offer::from_v2(&req_v2()).unwrap();
        assert_eq!(o.amount, Usdc::from_atomic(40_000));
        assert_eq!(o.network, Network::BaseSepolia);
        let mut r = req_v2();
        r.scheme = "upto".into();
        assert!(matches!(Offer::from_v2(&r), Err(OfferError::Scheme(_))));
    }
}
