//! The main job as a test: the original sample's conversation through the
//! agent binary -> tools -> the gateway -> the official facilitator ->
//! Anvil, with session state in AgentCore Memory and images in S3 (moto).

use base64::Engine as _;
use e2e::harness::*;
use x402::Usdc;

#[tokio::test]
async fn the_sample_conversation_buys_one_image_end_to_end() {
    let stack = stack();
    let aws = stack.aws_config().await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let gateway = start_gateway(&stack, GatewayOptions::default()).await;
    let dir = temp_dir("full-path");
    let setup = AgentSetup {
        port: free_port(),
        gateway_url: gateway.url.clone(),
        buyer: buyer.clone(),
        aws_endpoint: stack.aws_endpoint_url.clone(),
        memory_id: format!("e2e-memory-{:x}", rand::random::<u32>()),
        bucket: stack.create_bucket("e2e-images").await.unwrap(),
        dir: dir.to_path_buf(),
        env: Vec::new(),
    };
    let agent = AgentProcess::start(&stack, &setup).await;
    let http = reqwest::Client::new();
    let session = format!("e2e-full-path-session-{:032x}", rand::random::<u128>());
    let start = stack.block_number().await.unwrap();
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    let say = |p: &'static str| {
        let (http, url, session) = (http.clone(), agent.url.clone(), session.clone());
        async move { invoke(&http, &url, &session, p).await.unwrap() }
    };
    let text = |o: &serde_json::Value| {
        o["output"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let help = say("What can you help me with?").await;
    assert!(text(&help).contains("image"), "{}", text(&help));
    let wallet = say("What are my wallet details?").await;
    assert!(
        text(&wallet).contains(&buyer.address().to_checksum(None)),
        "{}",
        text(&wallet)
    );
    assert!(text(&wallet).contains("1.00 USDC"), "{}", text(&wallet));

    let image = say("Generate an image of a futuristic city at sunset").await;
    let reply = text(&image);
    let payments = image["output"]["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "{image}");
    let tx = payments[0]["transaction"].as_str().unwrap();
    assert_eq!(tx.len(), 66);
    assert!(
        reply.contains("0.04"),
        "the reply mentions the cost: {reply}"
    );
    assert!(
        reply.contains(tx),
        "the reply mentions the transaction: {reply}"
    );

    // The image: a 1024x1024 PNG behind the returned (presigned S3) URL.
    let images = image["output"]["images"].as_object().unwrap();
    assert_eq!(images.len(), 1);
    let url = images.values().next().unwrap().as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1") && url.contains(&setup.bucket),
        "{url}"
    );
    let png = http.get(url).send().await.unwrap().bytes().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1024);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 1024);
    assert!(
        !image
            .to_string()
            .contains(&base64::engine::general_purpose::STANDARD.encode(&png[..64])),
        "URLs, not bytes"
    );

    // The ledger in Memory holds the receipt.
    let ledger = ledger(&aws, &setup.memory_id, &session).await;
    let paid: Vec<_> = ledger.iter().filter(|e| e["type"] == "paid").collect();
    assert_eq!(paid.len(), 1, "{ledger:?}");
    assert_eq!(paid[0]["receipt"]["transaction"], tx);

    // The chain: exactly one transfer of the price, buyer to seller.
    let end = stack.block_number().await.unwrap();
    assert_eq!(
        stack
            .count_transfers(buyer.address(), stack.seller_wallet, start..=end)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        stack
            .transferred(buyer.address(), stack.seller_wallet, start..=end)
            .await
            .unwrap(),
        Usdc::from_atomic(40_000)
    );
    assert_eq!(
        before.saturating_sub(stack.usdc_balance(buyer.address()).await.unwrap()),
        Usdc::from_atomic(40_000)
    );
    agent.kill().await;
}
