//! The request log of the stack's own gateway process (its stdout, in the
//! stack's log directory): one JSON line per request with the outcome,
//! amount, payer, nonce and transaction, and never the payment's signature or
//! header.

use alloy::primitives::Address;
use serde_json::{Value, json};
use x402::wire::{self, PaymentPayloadV2};

use crate::support::*;

/// The gateway's `request` lines that mention `nonce`.
fn request_lines(log: &str, nonce: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request" && v["nonce"] == nonce)
        .collect()
}

#[tokio::test]
async fn one_json_line_per_request_with_the_outcome_and_never_the_signature() {
    let stack = stack();
    let gateway = stack
        .gateway_url
        .clone()
        .expect("the stack runs the gateway binary");
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{gateway}/generate_image");
    let body = json!({"prompt": "a lighthouse in a storm, for the log test"});

    let q = quote(&url, &body).await;
    let header = pay_v2(&stack, &buyer, &q);
    let payload: PaymentPayloadV2 = wire::decode_header(&header).unwrap();
    let nonce = payload.payload.authorization.nonce.to_string();
    let signature = hex::encode(&payload.payload.signature);

    // A forged copy (another key's signature over the same fields) is refused...
    let thief = alloy::signers::local::PrivateKeySigner::random();
    let forged_payload = sign(&stack, &thief, payload.payload.authorization.clone());
    let forged_signature = hex::encode(&forged_payload.signature);
    let forged = v2_header(&q, forged_payload);
    let refused = send(&url, &body, (wire::PAYMENT_SIGNATURE, &forged)).await;
    assert_eq!(refused.status, 402, "{}", refused.body);
    // ...and the real one settles.
    let paid = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let tx = paid.settlement().unwrap().transaction;

    // The line is written before the response is sent.
    let log = std::fs::read_to_string(stack.logs_dir.join("gateway.log")).unwrap();
    let lines = request_lines(&log, &nonce);
    assert_eq!(lines.len(), 2, "one line per request: {lines:?}");
    let (first, second) = (&lines[0], &lines[1]);
    assert_eq!(first["outcome"], "refused", "{first}");
    assert!(
        first["reason"].as_str().unwrap().contains("signature"),
        "{first}"
    );
    assert_eq!(second["outcome"], "settled", "{second}");
    assert_eq!(second["status"], 200);
    assert_eq!(second["route"], "/generate_image");
    assert_eq!(second["amount"], "0.04");
    assert_eq!(second["tx"], tx.as_str());
    let payer: Address = second["payer"].as_str().unwrap().parse().unwrap();
    assert_eq!(payer, buyer.address());
    for timing in ["verify_ms", "generate_ms", "settle_ms", "total_ms"] {
        assert!(second[timing].is_u64(), "{timing} in {second}");
    }

    // Neither signature (hex, in any case) nor either header, anywhere in the log.
    let lower = log.to_lowercase();
    assert!(!lower.contains(&signature), "signature logged");
    assert!(
        !lower.contains(&forged_signature),
        "forged signature logged"
    );
    assert!(
        !log.contains(&header) && !log.contains(&forged),
        "header logged"
    );
}
