//! The AgentCore Payments backend through the real `aws-sdk-bedrockagentcore`
//! client (endpoint override) against `testkit`'s wire-format stand-in of the
//! payments data plane, which checks SigV4, holds the wallet key, enforces
//! its own session limit and honours `clientToken`. The paid path settles
//! for real: our gateway in-process, the official facilitator, Anvil.

use std::sync::Arc;

use alloy::signers::local::PrivateKeySigner;
use serde_json::json;
use testkit::agentcore_payments::{
    AgentCorePaymentsStandIn, CONNECTOR_ID, INSTRUMENT_ID, MANAGER_ARN,
};
use tools::{
    client::{PaidRequest, X402Client},
    policy::{Limits, PaymentPolicy},
    signer::{
        LocalSigner,
        agentcore::{
            AgentCoreConfig, AgentCoreError, AgentCorePayments, PaymentCall,
            RULE_INSTRUMENT_INACTIVE, RULE_SESSION_LIMIT, client_token,
        },
    },
};
use x402::Usdc;

fn stack() -> testkit::Stack {
    testkit::Stack::load().expect("the local stack must be up (cargo xtask stack)")
}

fn usdc(s: &str) -> Usdc {
    s.parse().unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn gateway(stack: &testkit::Stack) -> String {
    use gateway_lambda::{app, generate::LocalGenerator, payment::Seller, wiring::local_state};
    let dir = testkit::TempDir::new("tools-acgw");
    let state = local_state(
        Seller::usdc(stack.network, stack.usdc_contract, stack.seller_wallet),
        Arc::new(stack.facilitator()),
        Arc::new(LocalGenerator),
        &stack.rpc_url,
        &dir,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        // The gateway keeps its results in `dir` for as long as it serves.
        let _dir = dir;
        axum::serve(listener, app(Arc::new(state))).await.unwrap();
    });
    url
}

struct World {
    stack: testkit::Stack,
    standin: Arc<AgentCorePaymentsStandIn>,
    payments: AgentCorePayments,
    client: X402Client,
    policy: PaymentPolicy,
    url: String,
}

async fn world(funds: u64) -> World {
    let stack = stack();
    let wallet = stack.fresh_wallet(funds).await.unwrap();
    let standin = AgentCorePaymentsStandIn::start(wallet.clone(), Some(stack.clone())).await;
    let payments = AgentCorePayments::connect(
        aws_sdk_bedrockagentcore::Client::new(&standin.sdk_config()),
        AgentCoreConfig {
            payment_manager_arn: MANAGER_ARN.into(),
            payment_connector_id: CONNECTOR_ID.into(),
            payment_instrument_id: INSTRUMENT_ID.into(),
            default_user_id: "default".into(),
            agent_name: "x402-agent".into(),
            session_minutes: 30,
        },
        stack.network,
    )
    .await
    .unwrap();
    let policy = PaymentPolicy::new(
        stack.network,
        stack.usdc_contract,
        vec![stack.seller_wallet],
    );
    // The client quotes and sends; AgentCore signs. Its own signer is never
    // used on this path: an unrelated key proves it.
    let client = X402Client::new(
        Arc::new(LocalSigner::new(PrivateKeySigner::random())),
        policy.clone(),
    );
    let url = format!("{}/generate_image", gateway(&stack).await);
    World {
        stack,
        standin,
        payments,
        client,
        policy,
        url,
    }
}

#[tokio::test]
async fn agentcore_pays_our_gateway_and_the_transfer_is_on_chain() {
    let w = world(1_000_000).await;
    assert_eq!(w.payments.address(), w.standin.wallet.address());
    assert_eq!(w.payments.usdc_balance().await.unwrap(), usdc("1.00"));

    let session = w
        .payments
        .open_session("user-1", usdc("0.50"), "agent-session-1#1", now())
        .await
        .unwrap();
    assert!(session.expires_at > now() + 29 * 60);
    let req = PaidRequest::post_json(w.url.clone(), &json!({"prompt": "a cat"}));
    let quote = w.client.quote(&req).await.unwrap();
    let call = PaymentCall {
        payment_session_id: &session.payment_session_id,
        request_id: "img-1",
        user_id: "user-1",
    };
    let payment = w
        .payments
        .prepare(&w.policy, &quote, &Limits::single(quote.amount), &call)
        .await
        .unwrap();
    assert_eq!(payment.payer, w.standin.wallet.address());
    assert_eq!(payment.header_name, "PAYMENT-SIGNATURE");

    // What the service saw: SigV4, our ids, the requirement exactly as the
    // seller sent it, the token derived from our request id.
    let sent = w.standin.calls_to("processPayment");
    assert_eq!(sent.len(), 1);
    let c = &sent[0];
    assert!(c.signed);
    assert_eq!(c.body["clientToken"], client_token("img-1"));
    assert_eq!(c.body["paymentSessionId"], session.payment_session_id);
    assert_eq!(c.body["paymentInstrumentId"], INSTRUMENT_ID);
    assert_eq!(c.body["paymentType"], "CRYPTO_X402");
    assert_eq!(c.body["paymentInput"]["cryptoX402"]["version"], "2");
    assert_eq!(
        c.body["paymentInput"]["cryptoX402"]["payload"],
        serde_json::to_value(&quote.requirement).unwrap()
    );
    assert_eq!(c.user_id.as_deref(), Some("user-1"));
    assert_eq!(c.agent_name.as_deref(), Some("x402-agent"));
    let created = &w.standin.calls_to("createPaymentSession")[0];
    assert_eq!(
        created.body["limits"]["maxSpendAmount"],
        json!({"value": "0.50", "currency": "USD"})
    );
    assert_eq!(created.body["expiryTimeInMinutes"], 30);

    // The payload is what goes to the seller; the seller settles it.
    let paid = w.client.send(&req, &payment).await.unwrap();
    let receipt = paid.receipt.expect("settled");
    let hash = receipt.transaction.parse().unwrap();
    assert!(w.stack.wait_for_receipt(hash).await.unwrap());
    assert_eq!(
        w.stack
            .usdc_balance(w.standin.wallet.address())
            .await
            .unwrap(),
        usdc("0.96")
    );
    assert_eq!(w.payments.usdc_balance().await.unwrap(), usdc("0.96"));
    assert_eq!(
        w.standin.session_spent(&session.payment_session_id),
        Some(usdc("0.04"))
    );
}

#[tokio::test]
async fn a_retried_process_payment_returns_the_same_payment_and_signs_once() {
    let w = world(1_000_000).await;
    let session = w
        .payments
        .open_session("u", usdc("1.00"), "s#1", now())
        .await
        .unwrap();
    let quote = w
        .client
        .quote(&PaidRequest::post_json(
            w.url.clone(),
            &json!({"prompt": "a dog"}),
        ))
        .await
        .unwrap();
    let call = PaymentCall {
        payment_session_id: &session.payment_session_id,
        request_id: "img-retry",
        user_id: "u",
    };
    let limits = Limits::single(quote.amount);
    let a = w
        .payments
        .prepare(&w.policy, &quote, &limits, &call)
        .await
        .unwrap();
    let b = w
        .payments
        .prepare(&w.policy, &quote, &limits, &call)
        .await
        .unwrap();
    assert_eq!(a, b, "the same clientToken gives the same payload");
    assert_eq!(w.standin.payments_signed(), 1);
    assert_eq!(w.standin.calls_to("processPayment").len(), 2);
    // Re-opening the session with the same idempotency gets the same session.
    let again = w
        .payments
        .open_session("u", usdc("1.00"), "s#1", now())
        .await
        .unwrap();
    assert_eq!(again.payment_session_id, session.payment_session_id);
}

#[tokio::test]
async fn our_budget_refuses_before_the_service_is_called() {
    let w = world(1_000_000).await;
    let quote = w
        .client
        .quote(&PaidRequest::post_json(
            w.url.clone(),
            &json!({"prompt": "a cow"}),
        ))
        .await
        .unwrap();
    let limits = Limits {
        authorised: quote.amount,
        spent: usdc("0.98"),
        budget: usdc("1.00"),
    };
    let call = PaymentCall {
        payment_session_id: "ps-none",
        request_id: "img-over",
        user_id: "u",
    };
    let err = w
        .payments
        .prepare(&w.policy, &quote, &limits, &call)
        .await
        .unwrap_err();
    let p = match err {
        AgentCoreError::Policy(p) => p,
        other => panic!("expected our policy: {other}"),
    };
    assert_eq!(p.rule(), "session_budget");
    assert!(
        w.standin.calls_to("processPayment").is_empty(),
        "AgentCore never called"
    );
}

#[tokio::test]
async fn the_services_own_refusals_are_reported_as_such() {
    let w = world(1_000_000).await;
    // The service's session allows 0.05: one 0.04 image, not two.
    let session = w
        .payments
        .open_session("u", usdc("0.05"), "limit#1", now())
        .await
        .unwrap();
    let mut quotes = Vec::new();
    for p in ["a bee", "a fox"] {
        quotes.push(
            w.client
                .quote(&PaidRequest::post_json(
                    w.url.clone(),
                    &json!({"prompt": p}),
                ))
                .await
                .unwrap(),
        );
    }
    let call = |id: &'static str| PaymentCall {
        payment_session_id: &session.payment_session_id,
        request_id: id,
        user_id: "u",
    };
    let generous = Limits::single(usdc("1.00"));
    w.payments
        .prepare(&w.policy, &quotes[0], &generous, &call("img-a"))
        .await
        .unwrap();
    let err = w
        .payments
        .prepare(&w.policy, &quotes[1], &generous, &call("img-b"))
        .await
        .unwrap_err();
    let r = match err {
        AgentCoreError::Refused(r) => r,
        other => panic!("expected the service's refusal: {other}"),
    };
    assert_eq!(r.rule, RULE_SESSION_LIMIT);
    assert_eq!(r.amount, usdc("0.04"));
    assert_eq!(r.limit, Some(usdc("0.01")), "what the session still allows");

    // Expired: told apart, so the caller opens a new session.
    w.standin.expire_sessions();
    let err = w
        .payments
        .prepare(&w.policy, &quotes[1], &generous, &call("img-c"))
        .await
        .unwrap_err();
    assert!(err.is_session_expired(), "{err}");

    // An inactive instrument.
    let fresh = w
        .payments
        .open_session("u", usdc("1.00"), "limit#2", now())
        .await
        .unwrap();
    w.standin.set_instrument_active(false);
    let err = w
        .payments
        .prepare(
            &w.policy,
            &quotes[1],
            &generous,
            &PaymentCall {
                payment_session_id: &fresh.payment_session_id,
                request_id: "img-d",
                user_id: "u",
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentCoreError::Refused(r) if r.rule == RULE_INSTRUMENT_INACTIVE),
        "{err}"
    );
    assert_eq!(w.standin.payments_signed(), 1);
}
