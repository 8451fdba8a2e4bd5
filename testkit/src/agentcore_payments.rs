//! A local stand-in for the Amazon Bedrock AgentCore Payments data plane
//! (restJson: `POST /payments/{operation}`), for tests that go through the
//! real `aws-sdk-bedrockagentcore` client with an endpoint override.
//!
//! It behaves like the service where our money rules depend on it:
//! - every request must carry a SigV4 `Authorization` header for the
//!   `bedrock-agentcore` service, the configured manager ARN, connector and
//!   instrument;
//! - a payment session has its own `maxSpendAmount` and expiry, enforced
//!   here (`ServiceQuotaExceededException` over the limit, a
//!   `ValidationException` once expired);
//! - `clientToken` makes `ProcessPayment` idempotent: the same token with the
//!   same request returns the *same* payload, with a different request a
//!   `ConflictException`;
//! - it signs the EIP-3009 authorization for the requirement it is given
//!   with a secp256k1 key it holds (the "embedded wallet"), and returns the
//!   x402 payment payload of the requirement's version.
//!
//! Every call is recorded ([`Call`]) so tests can assert what was sent, and
//! a `ProcessPayment` can be held after it took effect and before it
//! answers ([`AgentCorePaymentsStandIn::hold_next_payment`]), to kill a
//! client in between.
//!
//! One file past ~500 lines on purpose: one service's wire format and the
//! behaviour our rules depend on, read together.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use alloy::{
    primitives::{Address, U256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::sync::Notify;
use x402::{
    Network, Usdc,
    eip3009::{self, Authorization},
};

pub const MANAGER_ARN: &str =
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-standin";
pub const CONNECTOR_ID: &str = "pc-standin";
pub const INSTRUMENT_ID: &str = "pi-standin";

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Call {
    /// `processPayment`, `createPaymentSession`...
    pub operation: String,
    pub body: Value,
    pub user_id: Option<String>,
    pub agent_name: Option<String>,
    pub signed: bool,
}

struct Session {
    max_spend: Usdc,
    spent: Usdc,
    created_at: u64,
    minutes: u64,
    expired: bool,
    user_id: Option<String>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    sessions: HashMap<String, Session>,
    /// clientToken -> (request body, response body).
    tokens: HashMap<String, (Value, Value)>,
    /// Distinct payloads signed.
    signed: u32,
    instrument_active: bool,
    /// A limit of the service's own below what sessions ask for.
    cap: Option<Usdc>,
}

/// The running stand-in.
pub struct AgentCorePaymentsStandIn {
    pub url: String,
    pub wallet: PrivateKeySigner,
    inner: Mutex<Inner>,
    chain: Option<crate::Stack>,
    hold: AtomicBool,
    /// Notified when a held `ProcessPayment` took effect and waits.
    pub held: Notify,
    release: Notify,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn iso(secs: u64) -> String {
    aws_smithy_types::DateTime::from_secs(i64::try_from(secs).unwrap_or(0))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .expect("formats")
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/json"),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

impl AgentCorePaymentsStandIn {
    /// Starts on 127.0.0.1 with `wallet` as the instrument's key. With a
    /// `chain`, balances are read from it; otherwise they are zero.
    pub async fn start(wallet: PrivateKeySigner, chain: Option<crate::Stack>) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let me = Arc::new(AgentCorePaymentsStandIn {
            url,
            wallet,
            inner: Mutex::new(Inner {
                instrument_active: true,
                ..Inner::default()
            }),
            chain,
            hold: AtomicBool::new(false),
            held: Notify::new(),
            release: Notify::new(),
        });
        let app = Router::new()
            .route("/payments/{op}", post(handle))
            .with_state(me.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        me
    }

    /// AWS settings that reach this stand-in: its URL as the endpoint, a
    /// region and test credentials (requests are SigV4-signed with them).
    /// `aws_sdk_bedrockagentcore::Client::new(&standin.sdk_config())`.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("test", "test", None, None, "test"),
                ),
            )
            .endpoint_url(&self.url)
            .build()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, operation: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation == operation)
            .collect()
    }

    /// How many distinct payments were signed (a replayed token signs none).
    pub fn payments_signed(&self) -> u32 {
        self.inner.lock().unwrap().signed
    }

    /// What a session has spent, as the service counts it.
    pub fn session_spent(&self, id: &str) -> Option<Usdc> {
        self.inner.lock().unwrap().sessions.get(id).map(|s| s.spent)
    }

    /// Expires every session now.
    pub fn expire_sessions(&self) {
        for s in self.inner.lock().unwrap().sessions.values_mut() {
            s.expired = true;
        }
    }

    /// The service allows at most `cap` per session, whatever was asked (a
    /// limit of its own that ours does not know about).
    pub fn cap_sessions(&self, cap: Usdc) {
        self.inner.lock().unwrap().cap = Some(cap);
    }

    pub fn set_instrument_active(&self, active: bool) {
        self.inner.lock().unwrap().instrument_active = active;
    }

    /// The next `ProcessPayment` signs and records, then waits for
    /// [`Self::release`] before answering.
    pub fn hold_next_payment(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.release.notify_one();
    }

    async fn balance(&self) -> Usdc {
        match &self.chain {
            Some(s) => s.usdc_balance(self.wallet.address()).await.unwrap(),
            None => Usdc::ZERO,
        }
    }
}

async fn handle(
    State(s): State<Arc<AgentCorePaymentsStandIn>>,
    Path(op): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signed = header("authorization").is_some_and(|a| {
        a.starts_with("AWS4-HMAC-SHA256 Credential=")
            && a.contains("/bedrock-agentcore/aws4_request")
            && a.contains("Signature=")
    });
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "ValidationException", "bad JSON");
    };
    let call = Call {
        operation: op.clone(),
        body: body.clone(),
        user_id: header("x-amzn-bedrock-agentcore-payments-user-id"),
        agent_name: header("x-amzn-bedrock-agentcore-payments-agent-name"),
        signed,
    };
    s.inner.lock().unwrap().calls.push(call.clone());
    if !signed {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "missing SigV4 authorization",
        );
    }
    if body["paymentManagerArn"] != MANAGER_ARN {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "payment manager not found",
        );
    }
    match op.as_str() {
        "getPaymentInstrument" | "getPaymentInstrumentBalance" => {
            if body["paymentInstrumentId"] != INSTRUMENT_ID
                || body["paymentConnectorId"] != CONNECTOR_ID
            {
                return error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    "payment instrument not found",
                );
            }
            let address = s.wallet.address().to_checksum(None);
            if op == "getPaymentInstrument" {
                let status = if s.inner.lock().unwrap().instrument_active {
                    "ACTIVE"
                } else {
                    "BLOCKED"
                };
                return ok(json!({"paymentInstrument": {
                    "paymentInstrumentId": INSTRUMENT_ID,
                    "paymentManagerArn": MANAGER_ARN,
                    "paymentConnectorId": CONNECTOR_ID,
                    "userId": call.user_id.unwrap_or_default(),
                    "paymentInstrumentType": "EMBEDDED_CRYPTO_WALLET",
                    "paymentInstrumentDetails": {"embeddedCryptoWallet": {
                        "network": "ETHEREUM", "linkedAccounts": [], "walletAddress": address}},
                    "createdAt": iso(now()), "updatedAt": iso(now()), "status": status}}));
            }
            let chain = body["chain"].as_str().unwrap_or_default().to_owned();
            ok(
                json!({"paymentInstrumentId": INSTRUMENT_ID, "tokenBalance": {
                "amount": s.balance().await.atomic_string(), "decimals": 6, "token": "USDC",
                "network": "ETHEREUM", "chain": chain}}),
            )
        }
        "createPaymentSession" => create_session(&s, &body, call.user_id),
        "getPaymentSession" => {
            let id = body["paymentSessionId"].as_str().unwrap_or_default();
            let inner = s.inner.lock().unwrap();
            match inner.sessions.get(id) {
                Some(sess) => ok(json!({"paymentSession": session_json(id, sess, inner.cap)})),
                None => error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    "payment session not found",
                ),
            }
        }
        "processPayment" => process(&s, body).await,
        _ => error(StatusCode::NOT_FOUND, "UnknownOperationException", &op),
    }
}

fn session_json(id: &str, s: &Session, cap: Option<Usdc>) -> Value {
    let max = cap.map_or(s.max_spend, |c| c.min(s.max_spend));
    json!({"paymentSessionId": id, "paymentManagerArn": MANAGER_ARN,
        "limits": {"maxSpendAmount": {"value": s.max_spend.to_string(), "currency": "USD"}},
        "userId": s.user_id.clone().unwrap_or_default(),
        "expiryTimeInMinutes": s.minutes, "createdAt": iso(s.created_at), "updatedAt": iso(now()),
        "availableLimits": {"availableSpendAmount": {
            "value": max.saturating_sub(s.spent).to_string(), "currency": "USD"}}})
}

fn create_session(s: &AgentCorePaymentsStandIn, body: &Value, user: Option<String>) -> Response {
    let Some(max) = body["limits"]["maxSpendAmount"]["value"]
        .as_str()
        .and_then(|v| v.parse::<Usdc>().ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "limits.maxSpendAmount",
        );
    };
    if body["limits"]["maxSpendAmount"]["currency"] != "USD" {
        return error(StatusCode::BAD_REQUEST, "ValidationException", "currency");
    }
    let minutes = body["expiryTimeInMinutes"].as_u64().unwrap_or(60);
    let mut inner = s.inner.lock().unwrap();
    let token = body["clientToken"].as_str().map(str::to_owned);
    if let Some((req, resp)) = token.as_ref().and_then(|t| inner.tokens.get(t)) {
        return if req == body {
            ok(resp.clone())
        } else {
            error(
                StatusCode::CONFLICT,
                "ConflictException",
                "clientToken reused with a different request",
            )
        };
    }
    let id = format!("ps-{}", inner.sessions.len() + 1);
    let sess = Session {
        max_spend: max,
        spent: Usdc::ZERO,
        created_at: now(),
        minutes,
        expired: false,
        user_id: user,
    };
    let resp = json!({"paymentSession": session_json(&id, &sess, None)});
    inner.sessions.insert(id, sess);
    if let Some(t) = token {
        inner.tokens.insert(t, (body.clone(), resp.clone()));
    }
    ok(resp)
}

async fn process(s: &Arc<AgentCorePaymentsStandIn>, body: Value) -> Response {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "ValidationException", m);
    let Some(token) = body["clientToken"].as_str().map(str::to_owned) else {
        return bad("clientToken is required by this stand-in");
    };
    if body["paymentType"] != "CRYPTO_X402" {
        return bad("paymentType");
    }
    if body["paymentInstrumentId"] != INSTRUMENT_ID {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "payment instrument not found",
        );
    }
    let session_id = body["paymentSessionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let input = &body["paymentInput"]["cryptoX402"];
    let version = input["version"].as_str().unwrap_or_default().to_owned();
    let req = input["payload"].clone();
    let response = {
        let mut inner = s.inner.lock().unwrap();
        if let Some((sent, resp)) = inner.tokens.get(&token) {
            return if *sent == body {
                ok(resp.clone())
            } else {
                error(
                    StatusCode::CONFLICT,
                    "ConflictException",
                    "clientToken reused with a different request",
                )
            };
        }
        if !inner.instrument_active {
            return bad(&format!("Payment instrument {INSTRUMENT_ID} is not ACTIVE"));
        }
        let Some(sess) = inner.sessions.get(&session_id) else {
            return error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                &format!("Payment session {session_id} not found"),
            );
        };
        if sess.expired || now() >= sess.created_at + sess.minutes * 60 {
            return bad(&format!("Payment session {session_id} has expired"));
        }
        let (amount, network) = match version.as_str() {
            "2" => (
                req["amount"].as_str(),
                Network::from_any_name(req["network"].as_str().unwrap_or_default()),
            ),
            "1" => (
                req["maxAmountRequired"].as_str(),
                Network::from_any_name(req["network"].as_str().unwrap_or_default()),
            ),
            _ => return bad("cryptoX402.version must be 1 or 2"),
        };
        let (Some(amount), Ok(network)) =
            (amount.and_then(|a| Usdc::parse_atomic(a).ok()), network)
        else {
            return bad("the requirement's amount or network");
        };
        let (Some(pay_to), Some(asset), Some(name), Some(ver)) = (
            req["payTo"]
                .as_str()
                .and_then(|a| a.parse::<Address>().ok()),
            req["asset"]
                .as_str()
                .and_then(|a| a.parse::<Address>().ok()),
            req["extra"]["name"].as_str(),
            req["extra"]["version"].as_str(),
        ) else {
            return bad("the requirement's payTo, asset or extra");
        };
        let max = inner.cap.map_or(sess.max_spend, |c| c.min(sess.max_spend));
        if sess.spent.checked_add(amount).is_none_or(|t| t > max) {
            let left = max.saturating_sub(sess.spent);
            return error(
                StatusCode::PAYMENT_REQUIRED,
                "ServiceQuotaExceededException",
                &format!(
                    "Payment of {amount} USD exceeds the session's remaining limit of {left} USD"
                ),
            );
        }
        let t = now();
        let auth = Authorization {
            from: s.wallet.address(),
            to: pay_to,
            value: amount.to_u256(),
            valid_after: U256::from(t.saturating_sub(600)),
            valid_before: U256::from(t + req["maxTimeoutSeconds"].as_u64().unwrap_or(60).max(60)),
            nonce: Authorization::random_nonce(),
        };
        let domain = eip3009::domain(name, ver, network.chain_id(), asset);
        let sig = s
            .wallet
            .sign_hash_sync(&auth.signing_hash(&domain))
            .expect("signs");
        let exact = json!({"signature": alloy::hex::encode_prefixed(sig.as_bytes()),
            "authorization": serde_json::to_value(&auth).unwrap()});
        let payload = if version == "2" {
            json!({"x402Version": 2, "accepted": req, "payload": exact})
        } else {
            json!({"x402Version": 1, "scheme": req["scheme"], "network": req["network"], "payload": exact})
        };
        if let Some(sess) = inner.sessions.get_mut(&session_id) {
            sess.spent = sess.spent.checked_add(amount).unwrap_or(sess.max_spend);
        }
        inner.signed += 1;
        let resp = json!({"processPaymentId": format!("pp-{}", inner.signed),
            "paymentManagerArn": MANAGER_ARN, "paymentSessionId": session_id,
            "paymentInstrumentId": INSTRUMENT_ID, "paymentType": "CRYPTO_X402",
            "status": "PROOF_GENERATED",
            "paymentOutput": {"cryptoX402": {"version": version, "payload": payload}},
            "createdAt": iso(t), "updatedAt": iso(t)});
        inner.tokens.insert(token, (body.clone(), resp.clone()));
        resp
    };
    if s.hold.swap(false, Ordering::SeqCst) {
        let released = s.release.notified();
        s.held.notify_one();
        released.await;
    }
    ok(response)
}
