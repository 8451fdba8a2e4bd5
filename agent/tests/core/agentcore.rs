//! `SIGNER=agentcore`: the agent pays through AgentCore Payments, reached
//! through the real `aws-sdk-bedrockagentcore` client against `testkit`'s
//! wire-format stand-in (which holds the wallet key and enforces its own
//! session limit), while the gateway, the facilitator and the chain are the
//! real local stack. The chain is the judge: one transfer per request.

use crate::scripted::{ScriptedModel, Step};
use std::{path::Path, sync::Arc, time::Duration};

use serde_json::{Value, json};
use testkit::{
    TempDir,
    agentcore_payments::{AgentCorePaymentsStandIn, CONNECTOR_ID, INSTRUMENT_ID, MANAGER_ARN},
};
use tools::{
    ledger::{self, MoneyRules},
    seller::agentcore::AgentCoreSeller,
};
use tools::{
    policy::PaymentPolicy,
    signer::agentcore::{AgentCoreConfig, AgentCorePayments, InstrumentWallet, client_token},
    wallet::ChainWallet,
};
use x402::catalog::ImageRequest;

use crate::{
    money::Money,
    process::{AgentProcess, invoke},
    support::{Harness, Options, usdc},
};

async fn payments(m: &Money) -> (Arc<AgentCorePaymentsStandIn>, Arc<AgentCorePayments>) {
    let standin = AgentCorePaymentsStandIn::start(m.buyer.clone(), Some(m.stack.clone())).await;
    let p = AgentCorePayments::connect(
        aws_sdk_bedrockagentcore::Client::new(&standin.sdk_config()),
        AgentCoreConfig {
            payment_manager_arn: MANAGER_ARN.into(),
            payment_connector_id: CONNECTOR_ID.into(),
            payment_instrument_id: INSTRUMENT_ID.into(),
            default_user_id: "default".into(),
            agent_name: "x402-agent".into(),
            session_minutes: 60,
        },
        m.stack.network,
    )
    .await
    .unwrap();
    (standin, Arc::new(p))
}

fn options(m: &Money, p: &Arc<AgentCorePayments>) -> Options {
    let defaults = Options::default();
    let policy = PaymentPolicy::new(
        m.stack.network,
        m.stack.usdc_contract,
        vec![m.stack.seller_wallet],
    );
    Options {
        seller: Some(Arc::new(AgentCoreSeller::new(
            &m.seller.base_url(),
            p.clone(),
            policy,
        ))),
        wallet: Some(Arc::new(InstrumentWallet::new(
            p.clone(),
            ChainWallet::new(
                &m.stack.rpc_url,
                m.stack.network,
                m.stack.usdc_contract,
                p.address(),
            )
            .unwrap(),
        ))),
        rules: MoneyRules {
            seller: m.stack.seller_wallet,
            asset: m.stack.usdc_contract,
            network: m.stack.network,
            ..defaults.rules
        },
        ..defaults
    }
}

fn tool_json(req: &agent::model::ModelRequest) -> Value {
    let agent::model::ContentBlock::ToolResult(r) =
        req.messages.last().unwrap().content.last().unwrap()
    else {
        panic!("expected a tool result")
    };
    serde_json::to_value(r).unwrap()
}

fn types(ledger: &[Value]) -> Vec<String> {
    ledger
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

fn image(prompt: &str) -> Step {
    Step::tool("generate_image", json!({ "prompt": prompt }))
}

fn request_id(session: &str, prompt: &str) -> String {
    ledger::request_id(
        session,
        &ImageRequest {
            prompt: prompt.into(),
            size: Default::default(),
            quality: Default::default(),
            seed: None,
        },
    )
}

#[tokio::test]
async fn the_agent_pays_through_agentcore_and_the_receipt_is_in_the_ledger() {
    let m = Money::new(1_000_000).await;
    let (standin, p) = payments(&m).await;
    let model = Arc::new(ScriptedModel::new([
        image("a lighthouse"),
        Step::dynamic(|req| {
            let r = tool_json(req);
            assert_eq!(r["content"][0]["json"]["status"], "generated", "{r}");
            Step::tool("check_balance", json!({}))
        }),
        Step::dynamic(|req| {
            let r = tool_json(req);
            assert_eq!(r["content"][0]["json"]["usdc_balance"], "0.96", "{r}");
            Step::text("Done.")
        }),
        // Turn 2: another image from the same payment session.
        image("a harbour"),
        Step::text("Again."),
    ]));
    let h = Harness::new(model, options(&m, &p));
    let out = h
        .turn("ac-1", "Generate an image of a lighthouse")
        .await
        .0
        .unwrap();
    assert_eq!(out.payments.len(), 1);
    assert_eq!(m.balance().await, usdc("0.96"), "paid exactly the quote");
    assert_eq!(m.transfers_to(m.stack.seller_wallet).await, 1);
    assert_eq!(
        types(&h.ledger("ac-1").await),
        ["quoted", "payment_session", "prepared", "paid", "stored"]
    );

    let opened = standin.calls_to("createPaymentSession");
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].body["limits"]["maxSpendAmount"]["value"], "1.00",
        "the session budget"
    );
    assert_eq!(opened[0].user_id.as_deref(), Some("tester"));
    let paid = standin.calls_to("processPayment");
    assert_eq!(paid.len(), 1);
    assert_eq!(
        paid[0].body["clientToken"],
        client_token(&request_id("ac-1", "a lighthouse"))
    );
    assert_eq!(paid[0].user_id.as_deref(), Some("tester"));
    assert_eq!(paid[0].agent_name.as_deref(), Some("x402-agent"));
    assert!(paid.iter().all(|c| c.signed));
    assert_eq!(standin.calls_to("getPaymentInstrumentBalance").len(), 1);

    h.turn("ac-1", "Generate an image of a harbour")
        .await
        .0
        .unwrap();
    assert_eq!(m.balance().await, usdc("0.92"));
    assert_eq!(
        standin.calls_to("createPaymentSession").len(),
        1,
        "the session's payment session is reused"
    );
    let sessions: Vec<_> = standin
        .calls_to("processPayment")
        .iter()
        .map(|c| c.body["paymentSessionId"].clone())
        .collect();
    assert_eq!(sessions[0], sessions[1]);
}

#[tokio::test]
async fn our_budget_refuses_before_agentcore_is_called() {
    let m = Money::new(1_000_000).await;
    let (standin, p) = payments(&m).await;
    let model = Arc::new(ScriptedModel::new([
        image("a castle"),
        Step::dynamic(|req| {
            let r = tool_json(req);
            assert_eq!(r["status"], "error", "{r}");
            let text = r.to_string();
            assert!(text.contains("session budget"), "{text}");
            Step::text("Over budget.")
        }),
    ]));
    let h = Harness::new(model, options(&m, &p));
    h.turn_with_budget("ac-2", "Generate a castle", Some(usdc("0.03")))
        .await
        .0
        .unwrap();
    assert!(
        standin.calls_to("processPayment").is_empty(),
        "AgentCore never called"
    );
    assert!(standin.calls_to("createPaymentSession").is_empty());
    assert_eq!(m.balance().await, usdc("1.00"));
}

#[tokio::test]
async fn agentcores_own_limit_is_reported_as_such_and_recorded() {
    let m = Money::new(1_000_000).await;
    let (standin, p) = payments(&m).await;
    standin.cap_sessions(usdc("0.01"));
    let model = Arc::new(ScriptedModel::new([
        image("a bridge"),
        Step::dynamic(|req| {
            let r = tool_json(req);
            assert_eq!(r["status"], "error", "{r}");
            let text = r.to_string();
            assert!(text.contains("agentcore_session_limit"), "{text}");
            assert!(text.contains("0.04"), "{text}");
            Step::text("The payment service refused.")
        }),
    ]));
    let h = Harness::new(model, options(&m, &p));
    h.turn("ac-3", "Generate a bridge").await.0.unwrap();
    let ledger = h.ledger("ac-3").await;
    assert_eq!(
        types(&ledger),
        ["quoted", "payment_session", "service_refused"]
    );
    let refused = &ledger[2];
    assert_eq!(refused["rule"], "agentcore_session_limit");
    assert_eq!(refused["amount"], "0.04");
    assert_eq!(refused["limit"], "0.01");
    assert_eq!(standin.payments_signed(), 0);
    assert_eq!(m.balance().await, usdc("1.00"));
}

#[tokio::test]
async fn an_expired_payment_session_is_replaced_with_the_budget_that_remains() {
    let m = Money::new(1_000_000).await;
    let (standin, p) = payments(&m).await;
    let model = Arc::new(ScriptedModel::new([
        image("a tree"),
        Step::text("One."),
        image("a leaf"),
        Step::text("Two."),
    ]));
    let h = Harness::new(model, options(&m, &p));
    h.turn("ac-4", "a tree").await.0.unwrap();
    standin.expire_sessions();
    h.turn("ac-4", "a leaf").await.0.unwrap();
    assert_eq!(m.balance().await, usdc("0.92"), "both paid once");
    let opened = standin.calls_to("createPaymentSession");
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[1].body["limits"]["maxSpendAmount"]["value"], "0.96");
    assert_ne!(opened[0].body["clientToken"], opened[1].body["clientToken"]);
    assert_eq!(
        types(&h.ledger("ac-4").await),
        [
            "quoted",
            "payment_session",
            "prepared",
            "paid",
            "stored",
            "quoted",
            "payment_session",
            "prepared",
            "paid",
            "stored"
        ]
    );
}

// ---------------------------------------------------------------------------
// The binary, killed between ProcessPayment and sending.

/// The binary paying through the stand-in (`SIGNER=agentcore`).
async fn start_agent(m: &Money, standin: &AgentCorePaymentsStandIn, dir: &Path) -> AgentProcess {
    AgentProcess::start(m, dir, |cmd| {
        cmd.env("SIGNER", "agentcore")
            .env("AGENTCORE_PAYMENT_MANAGER_ARN", MANAGER_ARN)
            .env("AGENTCORE_PAYMENT_CONNECTOR_ID", CONNECTOR_ID)
            .env("AGENTCORE_PAYMENT_INSTRUMENT_ID", INSTRUMENT_ID)
            .env("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", &standin.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
    })
    .await
}

#[tokio::test]
async fn killed_between_process_payment_and_sending_then_restarted_pays_once() {
    let m = Money::new(1_000_000).await;
    let standin = AgentCorePaymentsStandIn::start(m.buyer.clone(), Some(m.stack.clone())).await;
    let dir = TempDir::new("agent-core-agentcore-kill");
    standin.hold_next_payment();
    let AgentProcess { mut child, url } = start_agent(&m, &standin, &dir).await;
    let first =
        tokio::spawn(
            async move { invoke(&url, "ac-kill", "Generate an image of a lighthouse").await },
        );
    // AgentCore has signed (and counted) the payment; the agent has not got it.
    tokio::time::timeout(Duration::from_secs(60), standin.held.notified())
        .await
        .expect("the agent reaches ProcessPayment");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(first.await.unwrap().is_err(), "died with the process");
    standin.release();
    assert_eq!(m.seller.paid_requests(), 0, "nothing reached the seller");

    let AgentProcess { child: _child, url } = start_agent(&m, &standin, &dir).await;
    let out = invoke(&url, "ac-kill", "Generate an image of a lighthouse")
        .await
        .unwrap();
    assert_eq!(
        out["output"]["images"].as_object().unwrap().len(),
        1,
        "delivered after the restart: {out}"
    );
    let calls = standin.calls_to("processPayment");
    assert_eq!(calls.len(), 2, "asked again after the restart");
    assert_eq!(
        calls[0].body, calls[1].body,
        "same session, token and requirement"
    );
    assert_eq!(standin.payments_signed(), 1, "the same payload came back");
    assert_eq!(
        standin.calls_to("createPaymentSession").len(),
        1,
        "the session was reused"
    );
    assert_eq!(m.balance().await, usdc("0.96"), "paid exactly once");
    assert_eq!(m.transfers_to(m.stack.seller_wallet).await, 1);
    assert_eq!(m.seller.settlements(), 1);
}
