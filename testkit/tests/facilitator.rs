//! Acceptance: an EIP-3009 `TransferWithAuthorization` signed here with alloy
//! (EIP-712 typed data under the token's own domain) goes through the local
//! *official* x402 facilitator's `/verify` and `/settle`, in both the v2 and
//! the v1 shapes, on Anvil, and moves exactly the amount, once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::{Signer, local::PrivateKeySigner},
    sol_types::SolStruct,
};
use anyhow::{Result, ensure};
use testkit::{Stack, alloy};
use x402::{
    Usdc,
    eip3009::{Authorization, TransferWithAuthorization},
    facilitator::Facilitator,
    wire::{
        ExactEvmPayload, PaymentPayload, PaymentPayloadV1, PaymentPayloadV2, Requirements,
        RequirementsV1, RequirementsV2, ResourceInfo, SCHEME_EXACT, TokenExtra,
    },
};

const AMOUNT: u64 = 12_345; // 0.012345 USDC

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A payment of `amount` from `buyer` to `pay_to`, in the shape of x402 `version`.
async fn payment(
    stack: &Stack,
    version: u8,
    buyer: &PrivateKeySigner,
    pay_to: Address,
    amount: Usdc,
) -> Result<(PaymentPayload, Requirements)> {
    let extra = TokenExtra {
        name: "USDC".into(),
        version: "2".into(),
    };
    let network = stack.network.name_for(version).to_owned();
    let auth = Authorization {
        from: buyer.address(),
        to: pay_to,
        value: amount.to_u256(),
        valid_after: U256::from(now() - 600),
        valid_before: U256::from(now() + 300),
        nonce: Authorization::random_nonce(),
    };
    let signature = buyer
        .sign_hash(&auth.signing_hash(&stack.usdc_domain()))
        .await?;
    let exact = ExactEvmPayload {
        signature: Bytes::from(signature.as_bytes()),
        authorization: auth,
    };
    Ok(match version {
        1 => {
            let req = RequirementsV1 {
                scheme: SCHEME_EXACT.into(),
                network: network.clone(),
                max_amount_required: amount.atomic_string(),
                resource: "http://127.0.0.1/test".into(),
                description: "facilitator acceptance test".into(),
                mime_type: "application/json".into(),
                pay_to,
                max_timeout_seconds: 300,
                asset: stack.usdc_contract,
                output_schema: None,
                extra: Some(extra),
            };
            let p = PaymentPayloadV1 {
                x402_version: 1,
                scheme: SCHEME_EXACT.into(),
                network,
                payload: exact,
            };
            (PaymentPayload::V1(p), Requirements::V1(req))
        }
        _ => {
            let req = RequirementsV2 {
                scheme: SCHEME_EXACT.into(),
                network,
                amount: amount.atomic_string(),
                asset: stack.usdc_contract,
                pay_to,
                max_timeout_seconds: 300,
                extra: Some(extra),
            };
            let p = PaymentPayloadV2 {
                x402_version: 2,
                resource: Some(ResourceInfo {
                    url: "http://127.0.0.1/test".into(),
                    description: "facilitator acceptance test".into(),
                    mime_type: "application/json".into(),
                }),
                accepted: req.clone(),
                payload: exact,
                extensions: None,
            };
            (PaymentPayload::V2(p), Requirements::V2(req))
        }
    })
}

/// The same payment with one byte of the signature's `s` flipped.
fn tampered(payment: &PaymentPayload) -> PaymentPayload {
    let mut p = payment.clone();
    let exact = match &mut p {
        PaymentPayload::V1(v) => &mut v.payload,
        PaymentPayload::V2(v) => &mut v.payload,
    };
    let mut sig = exact.signature.to_vec();
    sig[40] ^= 0x01;
    exact.signature = sig.into();
    p
}

async fn pay_once_exactly(version: u8) -> Result<()> {
    let stack = Stack::load()?;
    let facilitator = stack.facilitator();
    let buyer = stack.fresh_wallet(1_000_000).await?;
    // A payee of this test's own, so parallel tests cannot disturb its balance.
    let seller = PrivateKeySigner::random().address();
    let amount = Usdc::from_atomic(AMOUNT);

    let (pay, req) = payment(&stack, version, &buyer, seller, amount).await?;
    let nonce = pay.exact().authorization.nonce;

    // A tampered signature is invalid.
    let bad = facilitator.verify(&tampered(&pay), &req).await?;
    assert!(!bad.is_valid, "tampered signature accepted: {bad:?}");
    let reason = bad.invalid_reason.unwrap_or_default();
    assert!(
        reason.contains("signature"),
        "unexpected reason for a bad signature: {reason}"
    );

    let ok = facilitator.verify(&pay, &req).await?;
    assert!(ok.is_valid, "valid payment rejected: {ok:?}");
    assert_eq!(
        ok.payer.as_deref().map(str::to_lowercase),
        Some(format!("{:#x}", buyer.address()))
    );

    let buyer_before = stack.usdc_balance(buyer.address()).await?;
    let seller_before = stack.usdc_balance(seller).await?;
    assert!(!stack.authorization_state(buyer.address(), nonce).await?);
    let first_block = stack.block_number().await? + 1;

    let settled = facilitator.settle(&pay, &req).await?;
    assert!(settled.success, "settle failed: {settled:?}");
    assert_eq!(settled.network, stack.network.name_for(version));
    assert!(
        settled.transaction.starts_with("0x") && settled.transaction.len() == 66,
        "{settled:?}"
    );

    assert_eq!(
        stack.usdc_balance(buyer.address()).await?,
        buyer_before.saturating_sub(amount)
    );
    assert_eq!(
        stack.usdc_balance(seller).await?,
        seller_before.checked_add(amount).unwrap()
    );
    assert!(
        stack.authorization_state(buyer.address(), nonce).await?,
        "nonce not marked used"
    );
    let last_block = stack.block_number().await?;
    assert_eq!(
        stack
            .count_transfers(buyer.address(), seller, first_block..=last_block)
            .await?,
        1
    );

    // The same authorization again: verify says no, settle fails, nothing moves.
    let again = facilitator.verify(&pay, &req).await?;
    assert!(
        !again.is_valid,
        "used authorization verified again: {again:?}"
    );
    let replay = facilitator.settle(&pay, &req).await?;
    assert!(!replay.success, "replayed settle succeeded: {replay:?}");
    assert!(replay.transaction.is_empty(), "{replay:?}");
    assert_eq!(
        stack.usdc_balance(buyer.address()).await?,
        buyer_before.saturating_sub(amount)
    );
    assert_eq!(
        stack.usdc_balance(seller).await?,
        seller_before.checked_add(amount).unwrap()
    );
    let end = stack.block_number().await?;
    assert_eq!(
        stack
            .count_transfers(buyer.address(), seller, first_block..=end)
            .await?,
        1
    );
    Ok(())
}

#[tokio::test]
async fn v2_payment_settles_exactly_once() -> Result<()> {
    pay_once_exactly(2).await
}

#[tokio::test]
async fn v1_payment_settles_exactly_once() -> Result<()> {
    pay_once_exactly(1).await
}

/// The typed data we sign hashes under the domain the token itself reports.
#[tokio::test]
async fn token_domain_matches_the_typed_data() -> Result<()> {
    let stack = Stack::load()?;
    let usdc = stack.usdc();
    assert_eq!(usdc.name().call().await?, "USDC");
    assert_eq!(usdc.version().call().await?, "2");
    assert_eq!(usdc.decimals().call().await?, 6);
    let on_chain = usdc.DOMAIN_SEPARATOR().call().await?;
    assert_eq!(on_chain, stack.usdc_domain().separator());
    // And the struct hash is the EIP-3009 one.
    let t = TransferWithAuthorization {
        from: Address::ZERO,
        to: Address::ZERO,
        value: U256::ZERO,
        validAfter: U256::ZERO,
        validBefore: U256::ZERO,
        nonce: Default::default(),
    };
    assert_eq!(
        t.eip712_type_hash(),
        alloy::primitives::keccak256(
            "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
        )
    );
    Ok(())
}

/// Settlements arriving together all land: the facilitator does not trip
/// over its own account nonce.
#[tokio::test]
async fn concurrent_settlements_all_land() -> Result<()> {
    let stack = Stack::load()?;
    let facilitator = stack.facilitator();
    let seller = PrivateKeySigner::random().address();
    let amount = Usdc::from_atomic(AMOUNT);
    let mut payments = Vec::new();
    for i in 0..4u8 {
        let buyer = stack.fresh_wallet(1_000_000).await?;
        payments.push(payment(&stack, 1 + i % 2, &buyer, seller, amount).await?);
    }
    let results =
        futures::future::join_all(payments.iter().map(|(p, r)| facilitator.settle(p, r))).await;
    for r in results {
        let r = r?;
        ensure!(r.success, "concurrent settle failed: {r:?}");
    }
    let want = Usdc::from_atomic(AMOUNT * 4);
    // Polled, not slept: all four are mined by the time settle answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stack.usdc_balance(seller).await? != want {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "seller did not receive 4 payments"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Settlements sent together with ones that fail before any transaction is
/// sent (a v1 replay of a used authorization: its gas estimate reverts) all
/// land. A failed send must not hand a concurrent settlement a nonce an
/// in-flight one already holds (viem's nonce manager did, after its reset).
#[tokio::test]
async fn settlements_beside_reverting_ones_all_land() -> Result<()> {
    let stack = Stack::load()?;
    let facilitator = stack.facilitator();
    let amount = Usdc::from_atomic(AMOUNT);
    for round in 0..3 {
        let seller = PrivateKeySigner::random().address();
        let mut good = Vec::new();
        let mut replays = Vec::new();
        for i in 0..4u8 {
            let buyer = stack.fresh_wallet(2_000_000).await?;
            good.push(payment(&stack, 1 + i % 2, &buyer, seller, amount).await?);
            let used = payment(&stack, 1, &buyer, seller, amount).await?;
            let first = facilitator.settle(&used.0, &used.1).await?;
            ensure!(first.success, "setting up a used authorization: {first:?}");
            replays.push(used);
        }
        let before = stack.usdc_balance(seller).await?;
        // Interleaved: replay, good, replay, good, ...
        let all: Vec<_> = replays
            .iter()
            .zip(&good)
            .flat_map(|(r, g)| [(r, false), (g, true)])
            .collect();
        let results =
            futures::future::join_all(all.iter().map(|((p, r), _)| facilitator.settle(p, r))).await;
        for (r, (_, should_land)) in results.into_iter().zip(&all) {
            let r = r?;
            if *should_land {
                ensure!(r.success, "round {round}: settlement failed: {r:?}");
            } else {
                ensure!(
                    !r.success && r.transaction.is_empty(),
                    "round {round}: a replay settled: {r:?}"
                );
            }
        }
        assert_eq!(
            stack.usdc_balance(seller).await?,
            before.checked_add(Usdc::from_atomic(AMOUNT * 4)).unwrap(),
            "round {round}"
        );
    }
    Ok(())
}
