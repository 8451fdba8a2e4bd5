//! What this gateway offers for one request, and whether a payment header
//! pays for exactly that. Pure functions: no I/O, the clock is an argument.
//!
//! x402 in one paragraph: an unpaid request gets `402` with the seller's
//! *requirements* (v1: JSON body; v2: base64 JSON in `PAYMENT-REQUIRED`). The
//! buyer signs an EIP-3009 `TransferWithAuthorization` for the amount to the
//! seller and retries with `X-PAYMENT` (v1) or `PAYMENT-SIGNATURE` (v2). The
//! seller checks the payment against what it offered *for this request*,
//! asks a facilitator to verify it, delivers, and has the facilitator settle
//! it on chain. Everything a buyer controls is checked here first, before any
//! state is written or any peer is called: a payment signed for a cheaper
//! request, another seller, another token or chain, or outside its time
//! window never reaches the facilitator.
//!
//! Kept in one file past ~500 lines on purpose: the code is under 400 lines
//! and reads top to bottom as the order the checks run in (decode, payload,
//! window, terms); the rest is its table of refusal tests, which belong
//! beside the rules they pin.

use alloy::primitives::{Address, B256, U256};
use axum::http::StatusCode;
use x402::{
    Network, Usdc,
    eip3009::{self, Authorization},
    wire::{
        self, PaymentPayload, PaymentRequiredV1, PaymentRequiredV2, Requirements, RequirementsV1,
        RequirementsV2, ResourceInfo, SCHEME_EXACT, TokenExtra,
    },
};

/// Longest payment header accepted (a real one is ~1.2 KB).
pub const MAX_PAYMENT_HEADER_BYTES: usize = 4 * 1024;
/// The facilitator refuses authorizations expiring sooner than this; so do we,
/// before spending a call on it.
pub const MIN_VALIDITY_SECS: u64 = 6;

/// Who gets paid, in what, where: fixed by configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seller {
    pub network: Network,
    pub asset: Address,
    pub pay_to: Address,
    /// The token's EIP-712 domain name and version (`extra` in requirements).
    pub token_name: String,
    pub token_version: String,
    pub max_timeout_seconds: u64,
}

/// The requirements offered for one request, in both versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub price: Usdc,
    pub resource: ResourceInfo,
    pub v1: RequirementsV1,
    pub v2: RequirementsV2,
}

/// Authorizations asked for by default are valid this long.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: u64 = 300;

impl Seller {
    /// A seller of `network`'s USDC (`asset`) paid to `pay_to`, with the
    /// token's EIP-712 name for that network ("USDC" on Base Sepolia, "USD
    /// Coin" on Base) and version "2".
    pub fn usdc(network: Network, asset: Address, pay_to: Address) -> Seller {
        Seller {
            network,
            asset,
            pay_to,
            token_name: match network {
                Network::BaseSepolia => "USDC",
                Network::Base => "USD Coin",
            }
            .into(),
            token_version: "2".into(),
            max_timeout_seconds: DEFAULT_MAX_TIMEOUT_SECONDS,
        }
    }

    pub fn offer(&self, price: Usdc, resource: ResourceInfo) -> Offered {
        let extra = Some(TokenExtra {
            name: self.token_name.clone(),
            version: self.token_version.clone(),
        });
        Offered {
            price,
            v1: RequirementsV1 {
                scheme: SCHEME_EXACT.into(),
                network: self.network.v1_name().into(),
                max_amount_required: price.atomic_string(),
                resource: resource.url.clone(),
                description: resource.description.clone(),
                mime_type: resource.mime_type.clone(),
                pay_to: self.pay_to,
                max_timeout_seconds: self.max_timeout_seconds,
                asset: self.asset,
                output_schema: None,
                extra: extra.clone(),
            },
            v2: RequirementsV2 {
                scheme: SCHEME_EXACT.into(),
                network: self.network.caip2().into(),
                amount: price.atomic_string(),
                asset: self.asset,
                pay_to: self.pay_to,
                max_timeout_seconds: self.max_timeout_seconds,
                extra,
            },
            resource,
        }
    }

    pub fn domain(&self) -> alloy::sol_types::Eip712Domain {
        eip3009::domain(
            &self.token_name,
            &self.token_version,
            self.network.chain_id(),
            self.asset,
        )
    }
}

impl Offered {
    /// The v1 `402` body.
    pub fn v1_body(&self, error: &str) -> PaymentRequiredV1 {
        PaymentRequiredV1 {
            x402_version: 1,
            error: error.into(),
            accepts: vec![self.v1.clone()],
        }
    }

    /// The v2 `PAYMENT-REQUIRED` document.
    pub fn v2_doc(&self, error: &str) -> PaymentRequiredV2 {
        PaymentRequiredV2 {
            x402_version: 2,
            error: Some(error.into()),
            resource: self.resource.clone(),
            accepts: vec![self.v2.clone()],
            extensions: None,
        }
    }
}

/// A payment that pays for exactly what was offered.
#[derive(Clone, Debug)]
pub struct CheckedPayment {
    pub payload: PaymentPayload,
    /// The requirement to send to the facilitator beside it.
    pub requirements: Requirements,
    pub payer: Address,
    pub nonce: B256,
    pub amount: Usdc,
    /// The authorization's window, unix seconds.
    pub valid_after: u64,
    pub valid_before: u64,
}

impl CheckedPayment {
    pub fn version(&self) -> u8 {
        self.payload.version()
    }
}

/// Why a payment header was refused. `status` is 400 for a header that is
/// not an x402 payment at all, 402 for a payment that does not pay for this
/// request (the answer carries the requirements again), 431 for one too big.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HeaderRefusal {
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `amount_mismatch`.
    pub code: &'static str,
    pub reason: String,
}

fn malformed(code: &'static str, reason: impl Into<String>) -> HeaderRefusal {
    HeaderRefusal {
        status: StatusCode::BAD_REQUEST,
        code,
        reason: reason.into(),
    }
}

fn refused(code: &'static str, reason: impl Into<String>) -> HeaderRefusal {
    HeaderRefusal {
        status: StatusCode::PAYMENT_REQUIRED,
        code,
        reason: reason.into(),
    }
}

/// Checks `header` (the value of `X-PAYMENT` or `PAYMENT-SIGNATURE`) against
/// `offered`, at unix time `now`: [`decode`], then [`check_payload`].
pub fn check(
    header: &str,
    seller: &Seller,
    offered: &Offered,
    now: u64,
) -> Result<CheckedPayment, HeaderRefusal> {
    check_payload(decode(header)?, seller, offered, now)
}

/// Decodes a payment header (size, base64, JSON, version); nothing is
/// checked against the offer yet.
pub fn decode(header: &str) -> Result<PaymentPayload, HeaderRefusal> {
    if header.len() > MAX_PAYMENT_HEADER_BYTES {
        return Err(HeaderRefusal {
            status: StatusCode::from_u16(431).expect("431 is a status"),
            code: "payment_header_too_large",
            reason: format!(
                "the payment header is {} bytes; at most {MAX_PAYMENT_HEADER_BYTES} are accepted",
                header.len()
            ),
        });
    }
    wire::decode_payment(header).map_err(|e| match e {
        wire::HeaderError::Base64 => {
            malformed("invalid_base64", "the payment header is not valid base64")
        }
        wire::HeaderError::Json(m) => malformed(
            "invalid_payload",
            format!("the payment header is not an x402 payment: {m}"),
        ),
        wire::HeaderError::Version(v) => malformed(
            "unsupported_version",
            format!("x402Version {v} is not supported (1 or 2)"),
        ),
        other => malformed("invalid_payload", other.to_string()),
    })
}

/// Checks a decoded payment against `offered`, at unix time `now`:
/// [`check_terms`], then [`check_window`].
pub fn check_payload(
    payload: PaymentPayload,
    seller: &Seller,
    offered: &Offered,
    now: u64,
) -> Result<CheckedPayment, HeaderRefusal> {
    let p = check_terms(payload, seller, offered)?;
    check_window(&p, now)?;
    Ok(p)
}

/// Whether `p`'s authorization can still be settled at unix time `now` (with
/// [`MIN_VALIDITY_SECS`] to spare). Checked only for a payment that needs a
/// new claim: a payment already settled is looked up first and replayed
/// whatever the time (see [`crate::claim`]).
pub fn check_window(p: &CheckedPayment, now: u64) -> Result<(), HeaderRefusal> {
    if p.valid_before < now.saturating_add(MIN_VALIDITY_SECS) {
        return Err(refused(
            "authorization_expired",
            format!("authorization expired (validBefore {})", p.valid_before),
        ));
    }
    if p.valid_after > now {
        return Err(refused(
            "authorization_not_yet_valid",
            format!(
                "authorization is not valid yet (validAfter {})",
                p.valid_after
            ),
        ));
    }
    Ok(())
}

/// Checks everything about a decoded payment that does not change with
/// time: version, scheme, network, asset, payee, amount, and that the
/// signature is the payer's over exactly these terms.
pub fn check_terms(
    payload: PaymentPayload,
    seller: &Seller,
    offered: &Offered,
) -> Result<CheckedPayment, HeaderRefusal> {
    let requirements = match &payload {
        PaymentPayload::V1(p) => {
            if p.scheme != SCHEME_EXACT {
                return Err(refused(
                    "unsupported_scheme",
                    format!("scheme {:?} is not offered (only \"exact\")", p.scheme),
                ));
            }
            if p.network != seller.network.v1_name() {
                return Err(refused(
                    "network_mismatch",
                    format!(
                        "payment is for network {:?}; this seller takes {:?}",
                        p.network,
                        seller.network.v1_name()
                    ),
                ));
            }
            Requirements::V1(offered.v1.clone())
        }
        PaymentPayload::V2(p) => {
            let a = &p.accepted;
            if a.scheme != SCHEME_EXACT {
                return Err(refused(
                    "unsupported_scheme",
                    format!("scheme {:?} is not offered (only \"exact\")", a.scheme),
                ));
            }
            if a.network != offered.v2.network {
                return Err(refused(
                    "network_mismatch",
                    format!(
                        "payment is for network {:?}; this seller takes {:?}",
                        a.network, offered.v2.network
                    ),
                ));
            }
            if a.asset != offered.v2.asset {
                return Err(refused(
                    "asset_mismatch",
                    format!(
                        "payment is in token {}; this seller takes {}",
                        a.asset.to_checksum(None),
                        offered.v2.asset.to_checksum(None)
                    ),
                ));
            }
            if a.pay_to != offered.v2.pay_to {
                return Err(refused(
                    "pay_to_mismatch",
                    format!(
                        "payment accepts payee {}; this seller is {}",
                        a.pay_to.to_checksum(None),
                        offered.v2.pay_to.to_checksum(None)
                    ),
                ));
            }
            if a.amount != offered.v2.amount {
                return Err(refused(
                    "amount_mismatch",
                    format!(
                        "payment accepts amount {}; this request costs {} ({} USDC)",
                        a.amount, offered.v2.amount, offered.price
                    ),
                ));
            }
            if a.extra != offered.v2.extra {
                return Err(refused(
                    "extra_mismatch",
                    "payment names another token domain (extra.name/version)",
                ));
            }
            Requirements::V2(offered.v2.clone())
        }
    };

    let exact = payload.exact();
    let auth: &Authorization = &exact.authorization;
    if auth.to != seller.pay_to {
        return Err(refused(
            "pay_to_mismatch",
            format!(
                "authorization pays {}; this seller is {}",
                auth.to.to_checksum(None),
                seller.pay_to.to_checksum(None)
            ),
        ));
    }
    if auth.value != offered.price.to_u256() {
        return Err(refused(
            "amount_mismatch",
            format!(
                "authorization is for {} atomic units; this request costs {} ({} USDC)",
                auth.value,
                offered.price.atomic(),
                offered.price
            ),
        ));
    }
    match auth.recover_signer(&seller.domain(), &exact.signature) {
        Some(signer) if signer == auth.from => {}
        _ => {
            return Err(refused(
                "invalid_signature",
                "the signature is not the payer's over these terms and this token",
            ));
        }
    }
    // Out-of-range times saturate: u64 seconds outlast the chain.
    let secs = |v: U256| u64::try_from(v).unwrap_or(u64::MAX);
    Ok(CheckedPayment {
        requirements,
        payer: auth.from,
        nonce: auth.nonce,
        amount: offered.price,
        valid_after: secs(auth.valid_after),
        valid_before: secs(auth.valid_before),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{Bytes, address},
        signers::{SignerSync, local::PrivateKeySigner},
    };
    use base64::Engine as _;
    use x402::wire::{ExactEvmPayload, PaymentPayloadV1, PaymentPayloadV2, encode_header};

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn seller() -> Seller {
        Seller {
            network: Network::BaseSepolia,
            asset: x402::network::BASE_SEPOLIA_USDC,
            pay_to: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            token_name: "USDC".into(),
            token_version: "2".into(),
            max_timeout_seconds: 300,
        }
    }

    fn offered(price: u64) -> Offered {
        seller().offer(
            Usdc::from_atomic(price),
            ResourceInfo {
                url: "http://127.0.0.1/generate_image".into(),
                description: "an image".into(),
                mime_type: "application/json".into(),
            },
        )
    }

    fn signed(key: &PrivateKeySigner, auth: Authorization, domain_of: &Seller) -> ExactEvmPayload {
        let sig = key
            .sign_hash_sync(&auth.signing_hash(&domain_of.domain()))
            .unwrap();
        ExactEvmPayload {
            signature: Bytes::from(sig.as_bytes().to_vec()),
            authorization: auth,
        }
    }

    fn auth(from: Address, value: u64) -> Authorization {
        Authorization {
            from,
            to: seller().pay_to,
            value: U256::from(value),
            valid_after: U256::from(NOW - 600),
            valid_before: U256::from(NOW + 300),
            nonce: B256::repeat_byte(7),
        }
    }

    fn v2(payload: ExactEvmPayload, accepted: RequirementsV2) -> String {
        encode_header(&PaymentPayloadV2 {
            x402_version: 2,
            resource: None,
            accepted,
            payload,
            extensions: None,
        })
    }

    fn v1(payload: ExactEvmPayload, network: &str) -> String {
        encode_header(&PaymentPayloadV1 {
            x402_version: 1,
            scheme: "exact".into(),
            network: network.into(),
            payload,
        })
    }

    fn code(r: Result<CheckedPayment, HeaderRefusal>) -> &'static str {
        r.unwrap_err().code
    }

    #[test]
    fn exact_payments_of_both_versions_pass() {
        let key = PrivateKeySigner::random();
        let o = offered(40_000);
        let p = signed(&key, auth(key.address(), 40_000), &seller());
        let ok = check(&v2(p.clone(), o.v2.clone()), &seller(), &o, NOW).unwrap();
        assert_eq!(ok.payer, key.address());
        assert_eq!(ok.amount, Usdc::from_atomic(40_000));
        assert!(matches!(ok.requirements, Requirements::V2(_)));
        let ok = check(&v1(p, "base-sepolia"), &seller(), &o, NOW).unwrap();
        assert!(matches!(ok.requirements, Requirements::V1(_)));
    }

    #[test]
    fn malformed_headers_are_400_with_the_reason() {
        let o = offered(40_000);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for (h, c) in [
            ("%%%not base64", "invalid_base64"),
            (&*b64("not json"), "invalid_payload"),
            (&*b64(r#"{"x402Version":3}"#), "unsupported_version"),
            (&*b64(r#"{"x402Version":2}"#), "invalid_payload"),
        ] {
            let r = check(h, &seller(), &o, NOW).unwrap_err();
            assert_eq!((r.status, r.code), (StatusCode::BAD_REQUEST, c), "{h}");
        }
        let big = "A".repeat(MAX_PAYMENT_HEADER_BYTES + 1);
        assert_eq!(
            check(&big, &seller(), &o, NOW).unwrap_err().status.as_u16(),
            431
        );
    }

    #[test]
    fn a_payment_for_anything_else_is_refused_with_402() {
        let key = PrivateKeySigner::random();
        let o = offered(60_000);
        let good = |value| signed(&key, auth(key.address(), value), &seller());

        // Signed for a cheaper request (0.04) presented for a dearer one (0.06).
        let cheap = offered(40_000);
        assert_eq!(
            code(check(&v2(good(40_000), cheap.v2), &seller(), &o, NOW)),
            "amount_mismatch"
        );
        assert_eq!(
            code(check(&v1(good(40_000), "base-sepolia"), &seller(), &o, NOW)),
            "amount_mismatch"
        );

        let mut a = o.v2.clone();
        a.scheme = "upto".into();
        assert_eq!(
            code(check(&v2(good(60_000), a), &seller(), &o, NOW)),
            "unsupported_scheme"
        );
        let mut a = o.v2.clone();
        a.network = "eip155:8453".into();
        assert_eq!(
            code(check(&v2(good(60_000), a), &seller(), &o, NOW)),
            "network_mismatch"
        );
        assert_eq!(
            code(check(&v1(good(60_000), "base"), &seller(), &o, NOW)),
            "network_mismatch"
        );
        let mut a = o.v2.clone();
        a.asset = x402::network::BASE_USDC;
        assert_eq!(
            code(check(&v2(good(60_000), a), &seller(), &o, NOW)),
            "asset_mismatch"
        );
        let mut a = o.v2.clone();
        a.pay_to = key.address();
        assert_eq!(
            code(check(&v2(good(60_000), a), &seller(), &o, NOW)),
            "pay_to_mismatch"
        );

        // The authorization itself pays someone else.
        let mut au = auth(key.address(), 60_000);
        au.to = key.address();
        let p = signed(&key, au, &seller());
        assert_eq!(
            code(check(&v2(p, o.v2.clone()), &seller(), &o, NOW)),
            "pay_to_mismatch"
        );
    }

    #[test]
    fn time_window_and_signature_are_checked() {
        let key = PrivateKeySigner::random();
        let o = offered(40_000);
        let mut au = auth(key.address(), 40_000);
        au.valid_before = U256::from(NOW - 1);
        let p = signed(&key, au, &seller());
        assert_eq!(
            code(check(&v2(p, o.v2.clone()), &seller(), &o, NOW)),
            "authorization_expired"
        );
        let mut au = auth(key.address(), 40_000);
        au.valid_before = U256::from(NOW + MIN_VALIDITY_SECS - 1);
        let p = signed(&key, au, &seller());
        assert_eq!(
            code(check(&v2(p, o.v2.clone()), &seller(), &o, NOW)),
            "authorization_expired"
        );
        let mut au = auth(key.address(), 40_000);
        au.valid_after = U256::from(NOW + 60);
        let p = signed(&key, au, &seller());
        assert_eq!(
            code(check(&v2(p, o.v2.clone()), &seller(), &o, NOW)),
            "authorization_not_yet_valid"
        );

        // Signed by another key.
        let other = PrivateKeySigner::random();
        let p = signed(&other, auth(key.address(), 40_000), &seller());
        assert_eq!(
            code(check(&v2(p, o.v2.clone()), &seller(), &o, NOW)),
            "invalid_signature"
        );
        // Signed over different fields (value 1), presented with value 40000.
        let mut p = signed(&key, auth(key.address(), 1), &seller());
        p.authorization.value = U256::from(40_000);
        assert_eq!(
            code(check(&v2(p, o.v2.clone()), &seller(), &o, NOW)),
            "invalid_signature"
        );
        // Signed for another token's domain (v1 cannot name the asset).
        let mut elsewhere = seller();
        elsewhere.asset = x402::network::BASE_USDC;
        let p = signed(&key, auth(key.address(), 40_000), &elsewhere);
        assert_eq!(
            code(check(&v1(p, "base-sepolia"), &seller(), &o, NOW)),
            "invalid_signature"
        );
        // The official v2 client sends validAfter = 0: fine.
        let mut au = auth(key.address(), 40_000);
        au.valid_after = U256::ZERO;
        let p = signed(&key, au, &seller());
        assert!(check(&v2(p, o.v2.clone()), &seller(), &o, NOW).is_ok());
    }
}
