//! The official x402 TypeScript clients pay this gateway: `@x402/fetch` (v2)
//! and `x402-fetch` (v1), run with node from `local/` (`local/interop/pay.mjs`).

use std::path::PathBuf;

use alloy::hex;
use serde_json::{Value, json};
use x402::Usdc;

use crate::support::*;

fn local_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../local")
}

async fn official_client(version: &str, url: &str, body: &Value, key: &str, rpc: &str) -> Value {
    let out = tokio::process::Command::new("node")
        .current_dir(local_dir())
        .args(["interop/pay.mjs", version, url, &body.to_string()])
        .env("BUYER_PRIVATE_KEY", key)
        .env("RPC_URL", rpc)
        .output()
        .await
        .expect("node runs (cargo xtask setup installs local/)");
    assert!(
        out.status.success(),
        "{version} client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn the_official_v2_and_v1_clients_pay_the_gateway() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    for version in ["v2", "v1"] {
        let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
        let key = format!("0x{}", hex::encode(buyer.to_bytes()));
        let before = stack.usdc_balance(buyer.address()).await.unwrap();
        let url = format!("{}/generate_image", gw.url);
        let out = official_client(
            version,
            &url,
            &json!({"prompt": format!("interop with the {version} client")}),
            &key,
            &stack.rpc_url,
        )
        .await;
        assert_eq!(out["status"], 200, "{version}: {out}");
        assert!(
            out["body"]["imageBase64"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{version}"
        );
        let receipt = &out["paymentResponse"];
        assert_eq!(receipt["success"], true, "{version}: {out}");
        assert_eq!(
            receipt["transaction"].as_str().unwrap().len(),
            66,
            "{version}"
        );
        assert_eq!(
            spent(&stack, buyer.address(), before).await,
            Usdc::from_atomic(40_000),
            "{version}"
        );
    }
}
