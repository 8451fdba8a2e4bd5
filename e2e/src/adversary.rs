//! Buyers who cheat (issue 12), for the chaos suite: a valid x402 payment,
//! then the same EIP-3009 nonce burned on chain another way while the
//! gateway generates, so the facilitator's settlement reverts; and one
//! balance spent many times at once. Signed by hand with the `x402` crate's
//! types and sent with nothing but HTTP and the chain.

use alloy::{
    primitives::{B256, Bytes, U256},
    providers::ProviderBuilder,
    signers::{SignerSync, local::PrivateKeySigner},
    sol,
    sol_types::SolStruct,
};
use serde_json::Value;
use x402::{
    eip3009::{Authorization, IUsdc},
    wire::{self, ExactEvmPayload, PaymentPayloadV2, PaymentRequiredV2},
};

sol! {
    /// EIP-3009's cancellation, as the token signs it.
    struct CancelAuthorization {
        address authorizer;
        bytes32 nonce;
    }

    #[sol(rpc)]
    interface ICancel {
        function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature) external;
    }
}

/// How a burner uses up its nonce after the gateway verified the payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Burn {
    /// `cancelAuthorization(payer, nonce, sig)`.
    Cancel,
    /// A `transferWithAuthorization` of 0 USDC to itself with the same nonce.
    SameNonceTransfer,
}

/// Burns `nonce` of `payer` on chain the way `how` says; waits for the
/// transaction and fails if it reverted.
pub async fn burn(
    stack: &testkit::Stack,
    payer: &PrivateKeySigner,
    nonce: B256,
    how: Burn,
) -> anyhow::Result<B256> {
    let p = ProviderBuilder::new()
        .wallet(payer.clone())
        .connect_http(stack.rpc_url.parse()?);
    let domain = stack.usdc_domain();
    let pending = match how {
        Burn::Cancel => {
            let hash = CancelAuthorization {
                authorizer: payer.address(),
                nonce,
            }
            .eip712_signing_hash(&domain);
            let sig = payer.sign_hash_sync(&hash)?;
            ICancel::new(stack.usdc_contract, &p)
                .cancelAuthorization(payer.address(), nonce, Bytes::from(sig.as_bytes().to_vec()))
                .send()
                .await?
        }
        Burn::SameNonceTransfer => {
            let now = unix_now();
            let auth = Authorization {
                from: payer.address(),
                to: payer.address(),
                value: U256::ZERO,
                valid_after: U256::from(now - 600),
                valid_before: U256::from(now + 600),
                nonce,
            };
            let sig = payer.sign_hash_sync(&auth.signing_hash(&domain))?;
            IUsdc::new(stack.usdc_contract, &p)
                .transferWithAuthorization(
                    auth.from,
                    auth.to,
                    auth.value,
                    auth.valid_after,
                    auth.valid_before,
                    auth.nonce,
                    Bytes::from(sig.as_bytes().to_vec()),
                )
                .send()
                .await?
        }
    };
    let receipt = pending.get_receipt().await?;
    anyhow::ensure!(receipt.status(), "the burn reverted");
    Ok(receipt.transaction_hash)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A v2 `PAYMENT-SIGNATURE` paying exactly what `required` asks, with a
/// fresh nonce; returns the header and the nonce.
pub fn pay(
    stack: &testkit::Stack,
    payer: &PrivateKeySigner,
    required: &PaymentRequiredV2,
) -> anyhow::Result<(String, B256)> {
    let accepted = required
        .accepts
        .first()
        .ok_or_else(|| anyhow::anyhow!("no accepted requirements"))?
        .clone();
    let now = unix_now();
    let auth = Authorization {
        from: payer.address(),
        to: accepted.pay_to,
        value: accepted.amount.parse()?,
        valid_after: U256::from(now - 600),
        valid_before: U256::from(now + 300),
        nonce: Authorization::random_nonce(),
    };
    let nonce = auth.nonce;
    let sig = payer.sign_hash_sync(&auth.signing_hash(&stack.usdc_domain()))?;
    let header = wire::encode_header(&PaymentPayloadV2 {
        x402_version: 2,
        resource: Some(required.resource.clone()),
        accepted,
        payload: ExactEvmPayload {
            signature: Bytes::from(sig.as_bytes().to_vec()),
            authorization: auth,
        },
        extensions: None,
    });
    Ok((header, nonce))
}

/// What the gateway answered one adversarial request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// The image came back.
    pub delivered: bool,
    /// The settlement header's transaction, if any.
    pub transaction: Option<String>,
}

/// `POST url` with `body`, unpaid: the 402's requirements.
pub async fn quote(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> anyhow::Result<PaymentRequiredV2> {
    let r = http.post(url).json(body).send().await?;
    anyhow::ensure!(
        r.status() == 402,
        "expected a 402 quote, got {}",
        r.status()
    );
    let h = r
        .headers()
        .get(wire::PAYMENT_REQUIRED)
        .ok_or_else(|| anyhow::anyhow!("402 without PAYMENT-REQUIRED"))?
        .to_str()?
        .to_owned();
    Ok(wire::decode_header(&h)?)
}

/// `POST url` with `body` and a payment header.
pub async fn send_paid(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    header: &str,
) -> anyhow::Result<Answer> {
    let r = http
        .post(url)
        .header(wire::PAYMENT_SIGNATURE, header)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let transaction = r
        .headers()
        .get(wire::PAYMENT_RESPONSE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| wire::decode_header::<wire::SettleResponse>(h).ok())
        .map(|s| s.transaction.to_lowercase());
    let v: Value = r.json().await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        delivered: v.get("imageBase64").is_some(),
        transaction,
    })
}
