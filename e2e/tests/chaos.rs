//! The chaos suite for money: many paid requests through the whole product
//! while faults are injected everywhere money or content passes, then a
//! reconciliation against the chain.
//!
//! Faults (the schedule is [`e2e::chaos_plan`], a pure function of the seed;
//! the seed and the schedule's digest are printed, `CHAOS_SEED` replays it):
//! - facilitator `/verify` and `/settle`: errors, hangs (timeouts), and
//!   "settled on chain but the answer was lost";
//! - generation failures (the gateway's model);
//! - S3 `PutObject` and AgentCore Memory `CreateEvent` / `ListEvents`
//!   failures (the agent's AWS endpoint). The agent runs with
//!   `AWS_MAX_ATTEMPTS=1` so the SDK does not retry them away, and each is
//!   asserted to have hit the SDK's last attempt (its `amz-sdk-request`
//!   header);
//! - dropped gateway responses (agent -> gateway);
//! - the agent process killed (SIGKILL) and restarted mid-flight.
//!
//! Every fault kind must fire at least [`Kind::minimum`] times (scaled to
//! the run) and the agent must have been killed: a route that no longer
//! matches fails the suite with the kind's name.
//!
//! The client retries each request (same session, same prompt) until the
//! image arrives or it gives up. Then, for every request: paid if and only
//! if delivered, never paid twice, every delivered image fetched from its URL
//! and equal to the PNG the gateway sent with that request's settlement, the
//! seller never delivered without a transfer to it of the price on chain, and
//! the sum of receipts equals the buyer's on-chain balance change.
//! `CHAOS_REQUESTS` (default 200) sets the number of requests.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use alloy::{
    primitives::{B256, U256},
    sol_types::SolEvent,
};
use async_trait::async_trait;
use base64::Engine as _;
use e2e::{
    adversary::{self, Answer, Burn},
    chaos_plan::{Kind, Plan, What, request_index},
    fault_proxy::{Fault, FaultProxy, Seen},
    harness::*,
};
use gateway_lambda::generate::{
    GeneratedImage, GenerationError, Generator, ImageJob, LocalGenerator,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use x402::{Usdc, wire};

const PRICE: u64 = 40_000;
const WORKERS: usize = 8;
const MAX_ATTEMPTS: u32 = 12;
const SESSION_MARK: &str = "chaos-session-";
const PROMPT_MARK: &str = "subject number ";
/// Adversaries' prompts carry this; their plan index is `ADV_BASE + k`.
const ADV_MARK: &str = "adversary number ";
const ADV_BASE: u64 = 1_000_000;
/// Concurrent authorizations a many-spender signs against one price.
const COPIES: usize = 5;

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// What the gateway sent with a settlement: for which request, and the
/// image's SHA-256.
struct Sent {
    request: u64,
    sha: [u8; 32],
}

/// The run's fault bookkeeping, shared by the proxies and the model.
struct Chaos {
    plan: Plan,
    /// How many times each request has reached each point so far.
    arrivals: Mutex<HashMap<(u64, What), u32>>,
    fired: Mutex<BTreeMap<Kind, u64>>,
    /// S3/Memory faults that hit the SDK's last attempt (reached the agent).
    reached: Mutex<BTreeMap<Kind, u64>>,
    /// Payment nonce -> request, learned from the agent's paid requests.
    nonces: Mutex<HashMap<String, u64>>,
    /// Requests at a fault point that could not be tied to a request.
    unattributed: Mutex<Vec<String>>,
    /// Transaction -> what the gateway sent with it.
    sent: Mutex<HashMap<String, Sent>>,
    /// Content the gateway sent without a settlement header.
    unsettled_content: Mutex<Vec<String>>,
    stack: testkit::Stack,
    /// Adversary k's nonce to burn while the gateway generates for it.
    burns: Mutex<HashMap<u64, (PrivateKeySigner, B256, Burn)>>,
    /// Burns done: adversary, burn transaction or why it failed.
    burned: Mutex<Vec<(u64, Result<B256, String>)>>,
    /// Adversary k -> images generated for it.
    adversary_generations: Mutex<HashMap<u64, u32>>,
}

impl Chaos {
    fn new(plan: Plan, stack: testkit::Stack) -> Chaos {
        Chaos {
            stack,
            burns: Mutex::default(),
            burned: Mutex::default(),
            adversary_generations: Mutex::default(),
            plan,
            arrivals: Mutex::default(),
            fired: Mutex::default(),
            reached: Mutex::default(),
            nonces: Mutex::default(),
            unattributed: Mutex::default(),
            sent: Mutex::default(),
            unsettled_content: Mutex::default(),
        }
    }

    /// The planned fault for this request's next arrival at `what`.
    fn next(&self, request: u64, what: What) -> Option<Kind> {
        let attempt = {
            let mut a = self.arrivals.lock().unwrap();
            let n = a.entry((request, what)).or_default();
            *n += 1;
            *n - 1
        };
        let kind = self.plan.fault(request, attempt, what)?;
        *self.fired.lock().unwrap().entry(kind).or_default() += 1;
        Some(kind)
    }

    fn unattributed(&self, what: What, s: &Seen<'_>) -> Fault {
        self.unattributed
            .lock()
            .unwrap()
            .push(format!("{what:?}: {} {}", s.method, s.path));
        Fault::Pass
    }

    /// gateway -> facilitator.
    fn facilitator(&self, s: &Seen<'_>) -> Fault {
        let what = match s.path {
            "/verify" => What::Verify,
            "/settle" => What::Settle,
            _ => return Fault::Pass,
        };
        let nonce = serde_json::from_slice::<Value>(s.body).ok().and_then(|v| {
            v.pointer("/paymentPayload/payload/authorization/nonce")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
        });
        let request = nonce.and_then(|n| self.nonces.lock().unwrap().get(&n).copied());
        let Some(request) = request else {
            return self.unattributed(what, s);
        };
        match self.next(request, what) {
            Some(Kind::VerifyError) => Fault::Status(500),
            Some(Kind::SettleError) => Fault::Status(502),
            Some(Kind::SettleLost) => Fault::DropResponse,
            Some(Kind::VerifyHang | Kind::SettleHang) => Fault::Hang,
            _ => Fault::Pass,
        }
    }

    /// agent -> gateway: learns the payment's nonce, may drop the answer.
    fn gateway(&self, s: &Seen<'_>) -> Fault {
        if *s.method != http::Method::POST {
            return Fault::Pass;
        }
        let prompt = serde_json::from_slice::<Value>(s.body)
            .ok()
            .and_then(|v| v["prompt"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let Some(request) = request_index(&prompt, PROMPT_MARK) else {
            return self.unattributed(What::Gateway, s);
        };
        if let Some(nonce) = payment_nonce(s.headers) {
            self.nonces.lock().unwrap().insert(nonce, request);
        }
        match self.next(request, What::Gateway) {
            Some(Kind::GatewayDropped) => Fault::DropResponse,
            _ => Fault::Pass,
        }
    }

    /// What the gateway answered (before any drop).
    fn gateway_answer(&self, s: &Seen<'_>, status: u16, headers: &http::HeaderMap, body: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let Some(b64) = v["imageBase64"].as_str() else {
            return;
        };
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        let request = serde_json::from_slice::<Value>(s.body).ok().and_then(|v| {
            v["prompt"]
                .as_str()
                .and_then(|p| request_index(p, PROMPT_MARK))
        });
        let tx = headers
            .get(wire::PAYMENT_RESPONSE)
            .or_else(|| headers.get(wire::X_PAYMENT_RESPONSE))
            .and_then(|h| h.to_str().ok())
            .and_then(|h| wire::decode_header::<wire::SettleResponse>(h).ok())
            .filter(|r| r.success && !r.transaction.is_empty());
        match (tx, request) {
            (Some(r), Some(request)) if status == 200 => {
                self.sent.lock().unwrap().insert(
                    r.transaction.to_lowercase(),
                    Sent {
                        request,
                        sha: Sha256::digest(&png).into(),
                    },
                );
            }
            _ => self.unsettled_content.lock().unwrap().push(format!(
                "HTTP {status} with an image for request {request:?}"
            )),
        }
    }

    /// agent -> S3 and AgentCore Memory.
    fn aws(&self, s: &Seen<'_>) -> Fault {
        let what = match *s.method {
            http::Method::PUT => What::S3Put,
            http::Method::POST if s.path.contains("/memories/") && s.path.ends_with("/events") => {
                What::MemoryWrite
            }
            http::Method::POST if s.path.contains("/memories/") => What::MemoryRead,
            _ => return Fault::Pass,
        };
        let request = request_index(s.path, SESSION_MARK)
            .or_else(|| request_index(&String::from_utf8_lossy(s.body), SESSION_MARK));
        let Some(request) = request else {
            return self.unattributed(what, s);
        };
        match self.next(request, what) {
            Some(kind) => {
                if s.is_last_sdk_attempt() {
                    *self.reached.lock().unwrap().entry(kind).or_default() += 1;
                }
                Fault::Status(500)
            }
            None => Fault::Pass,
        }
    }
}

/// The EIP-3009 nonce in a `PAYMENT-SIGNATURE` / `X-PAYMENT` header.
fn payment_nonce(headers: &http::HeaderMap) -> Option<String> {
    let h = headers
        .get(wire::PAYMENT_SIGNATURE)
        .or_else(|| headers.get(wire::X_PAYMENT))?
        .to_str()
        .ok()?;
    let v: Value = wire::decode_header(h).ok()?;
    v.pointer("/payload/authorization/nonce")?
        .as_str()
        .map(str::to_lowercase)
}

/// The gateway's model, failing where the plan says.
struct FlakyModel(Arc<Chaos>);

#[async_trait]
impl Generator for FlakyModel {
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError> {
        let adversary = request_index(&job.prompt, ADV_MARK);
        if let Some(k) = adversary {
            // Verified, not settled yet: the cheat burns its nonce now.
            let burn = self.0.burns.lock().unwrap().remove(&k);
            if let Some((key, nonce, how)) = burn {
                let r = adversary::burn(&self.0.stack, &key, nonce, how)
                    .await
                    .map_err(|e| format!("{e:#}"));
                self.0.burned.lock().unwrap().push((k, r));
            }
        }
        let index = adversary
            .map(|k| ADV_BASE + k)
            .or_else(|| request_index(&job.prompt, PROMPT_MARK));
        match index {
            Some(i) => {
                if self.0.next(i, What::Model) == Some(Kind::ModelFailure) {
                    return Err(GenerationError::Unavailable(
                        "injected model failure".into(),
                    ));
                }
            }
            None => {
                self.0
                    .unattributed
                    .lock()
                    .unwrap()
                    .push(format!("Model: {}", job.prompt));
            }
        }
        let image = LocalGenerator.image(job).await;
        if let Some(k) = adversary
            && image.is_ok()
        {
            *self
                .0
                .adversary_generations
                .lock()
                .unwrap()
                .entry(k)
                .or_default() += 1;
        }
        image
    }
    async fn text(&self, p: &str) -> Result<String, GenerationError> {
        LocalGenerator.text(p).await
    }
    async fn count_input_tokens(&self, p: &str) -> Result<u64, GenerationError> {
        LocalGenerator.count_input_tokens(p).await
    }
    fn name(&self) -> &'static str {
        "flaky"
    }
}

#[derive(Default, Debug)]
struct Outcome {
    delivered: bool,
    attempts: u32,
    receipts: BTreeSet<String>,
    images: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "unfinished (issue 18): with AWS_MAX_ATTEMPTS=1 a 30-request run delivered nothing and paid 7 requests with no ledger entry; debug before enabling"]
async fn money_is_right_under_chaos() {
    let requests = env_u64("CHAOS_REQUESTS").unwrap_or(200);
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(rand::random);
    let plan = Plan::new(seed);
    println!(
        "chaos: {requests} requests, seed {seed}, schedule digest {} \
         (CHAOS_SEED={seed} replays this schedule)",
        plan.digest(requests, 2 * MAX_ATTEMPTS)
    );
    let stack = stack();
    let chaos = Arc::new(Chaos::new(plan, stack.clone()));
    let adversaries = std::env::var("CHAOS_ADVERSARIES").is_ok_and(|v| v == "1");
    let aws = aws(&stack).await;
    let funds = requests * PRICE + 1_000_000;
    let buyer = stack.fresh_wallet(funds).await.unwrap();
    let start_block = stack.block_number().await.unwrap();
    let before = stack.usdc_balance(buyer.address()).await.unwrap();

    let c = chaos.clone();
    let facilitator =
        FaultProxy::start(&stack.facilitator_url, Arc::new(move |s| c.facilitator(s)))
            .await
            .unwrap();
    let gateway = start_gateway(
        &stack,
        GatewayOptions {
            facilitator_url: Some(facilitator.url()),
            generator: Some(Arc::new(FlakyModel(chaos.clone()))),
            facilitator_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(3),
        },
    )
    .await;
    let (c, c2) = (chaos.clone(), chaos.clone());
    let to_gateway = FaultProxy::start_observed(
        &gateway,
        Arc::new(move |s| c.gateway(s)),
        Arc::new(move |s, status, h, b| c2.gateway_answer(s, status, h, b)),
    )
    .await
    .unwrap();
    let c = chaos.clone();
    let to_aws = FaultProxy::start(&stack.aws_endpoint_url, Arc::new(move |s| c.aws(s)))
        .await
        .unwrap();

    let setup = AgentSetup {
        port: free_port(),
        gateway_url: to_gateway.url(),
        buyer: buyer.clone(),
        aws_endpoint: to_aws.url(),
        memory_id: format!("chaos-{seed:x}-{:x}", rand::random::<u32>()),
        bucket: create_bucket(&aws).await,
        dir: temp_dir("chaos"),
        // The SDK's own retries would absorb nearly every S3/Memory fault.
        env: vec![("AWS_MAX_ATTEMPTS".into(), "1".into())],
    };
    let agent = Arc::new(tokio::sync::Mutex::new(Some(
        AgentProcess::start(&stack, &setup).await,
    )));
    let agent_url = format!("http://127.0.0.1:{}", setup.port);

    // The killer: SIGKILL the agent at planned intervals, restart it.
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killer = {
        let (agent, done, kills, stack, setup) = (
            agent.clone(),
            done.clone(),
            kills.clone(),
            stack.clone(),
            setup.clone(),
        );
        tokio::spawn(async move {
            let mut k = 0;
            while !done.load(Ordering::SeqCst) {
                // A point in time, not a synchronisation.
                tokio::time::sleep(plan.kill_pause(k)).await;
                k += 1;
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let mut slot = agent.lock().await;
                if let Some(a) = slot.take()
                    && a.kill().await
                {
                    kills.fetch_add(1, Ordering::SeqCst);
                }
                *slot = Some(AgentProcess::start(&stack, &setup).await);
            }
        })
    };

    // The cheats, beside the honest clients.
    let cheats = adversaries.then(|| {
        tokio::spawn(run_adversaries(
            stack.clone(),
            chaos.clone(),
            format!("{gateway}/generate_image"),
            requests,
        ))
    });

    // The clients.
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<BTreeMap<u64, Outcome>>> = Arc::default();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (next, outcomes, url) = (next.clone(), outcomes.clone(), agent_url.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst) as u64;
                    if i >= requests {
                        break;
                    }
                    let session = session_id(i);
                    let prompt = format!("Generate an image of chaos {PROMPT_MARK}{i}");
                    let mut o = Outcome::default();
                    while o.attempts < MAX_ATTEMPTS && !o.delivered {
                        o.attempts += 1;
                        match invoke(&http, &url, &session, &prompt).await {
                            Ok(out) => {
                                for p in out["output"]["payments"].as_array().into_iter().flatten()
                                {
                                    o.receipts.insert(
                                        p["transaction"].as_str().unwrap_or_default().to_owned(),
                                    );
                                }
                                if let Some(images) = out["output"]["images"].as_object() {
                                    o.images = images
                                        .values()
                                        .filter_map(|u| u.as_str().map(str::to_owned))
                                        .collect();
                                }
                                o.delivered = !o.images.is_empty();
                            }
                            Err(_) => {
                                // The agent is restarting or failed: retry shortly.
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                    outcomes.lock().unwrap().insert(i, o);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let cheats = match cheats {
        Some(c) => c.await.unwrap(),
        None => Vec::new(),
    };
    done.store(true, Ordering::SeqCst);
    killer.await.unwrap();
    if let Some(a) = agent.lock().await.take() {
        a.kill().await;
    }

    // ---- Reconciliation ------------------------------------------------
    let end_block = stack.block_number().await.unwrap();
    let logs = stack
        .transfer_logs(
            buyer.address(),
            stack.seller_wallet,
            start_block..=end_block,
        )
        .await
        .unwrap();
    // Transaction -> (transfers buyer -> configured seller, total value).
    let mut on_chain: HashMap<B256, (u32, U256)> = HashMap::new();
    for l in &logs {
        let t = testkit::ITestUsdc::Transfer::decode_log_data(l.data()).unwrap();
        let e = on_chain.entry(l.transaction_hash.unwrap()).or_default();
        e.0 += 1;
        e.1 += t.value;
    }
    let moved = stack
        .transferred(
            buyer.address(),
            stack.seller_wallet,
            start_block..=end_block,
        )
        .await
        .unwrap();
    let spent = before.saturating_sub(stack.usdc_balance(buyer.address()).await.unwrap());

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let sent = std::mem::take(&mut *chaos.sent.lock().unwrap());
    let http = reqwest::Client::new();
    let mut discrepancies = Vec::new();
    let mut ledger_txs: BTreeMap<String, usize> = BTreeMap::new();
    let mut delivered = 0;
    let mut images_checked = 0;
    for (i, o) in &outcomes {
        // What the agent recorded as paid for this request (its durable ledger).
        let entries = ledger(&aws, &setup.memory_id, &session_id(*i)).await;
        let paid: BTreeSet<String> = entries
            .iter()
            .filter(|e| e["type"] == "paid")
            .filter_map(|e| e["receipt"]["transaction"].as_str().map(str::to_lowercase))
            .collect();
        if paid.len() > 1 {
            discrepancies.push(format!("request {i}: paid {} times: {paid:?}", paid.len()));
        }
        let was_paid = !paid.is_empty();
        if o.delivered != was_paid {
            discrepancies.push(format!(
                "request {i}: delivered={} but paid={paid:?} (attempts {})",
                o.delivered, o.attempts
            ));
        }
        for tx in &o.receipts {
            if !tx.is_empty() && !paid.contains(&tx.to_lowercase()) {
                discrepancies.push(format!("request {i}: receipt {tx} not in its ledger"));
            }
        }
        // The delivered image is the PNG the gateway sent with this
        // request's settlement, fetched from where the agent put it.
        if o.delivered {
            for tx in &paid {
                match sent.get(tx) {
                    Some(s) if s.request == *i => {
                        for url in &o.images {
                            match fetch_png(&http, url).await {
                                Ok(png) if <[u8; 32]>::from(Sha256::digest(&png)) == s.sha => {
                                    images_checked += 1;
                                }
                                Ok(_) => discrepancies.push(format!(
                                    "request {i}: the image at {url} is not the one paid by {tx}"
                                )),
                                Err(e) => discrepancies.push(format!("request {i}: {url}: {e}")),
                            }
                        }
                    }
                    Some(s) => discrepancies.push(format!(
                        "request {i}: {tx} settled request {}'s image",
                        s.request
                    )),
                    None => discrepancies.push(format!(
                        "request {i}: the gateway never sent an image with {tx}"
                    )),
                }
            }
        }
        for tx in paid {
            *ledger_txs.entry(tx).or_default() += 1;
        }
        delivered += usize::from(o.delivered);
    }
    for (tx, n) in &ledger_txs {
        let on = tx
            .parse::<B256>()
            .ok()
            .and_then(|h| on_chain.get(&h))
            .map_or(0, |e| e.0);
        if on != 1 || *n != 1 {
            discrepancies.push(format!(
                "tx {tx}: {n} ledger entries, {on} transfers on chain"
            ));
        }
    }
    for tx in on_chain.keys() {
        if !ledger_txs.contains_key(&format!("{tx:#x}")) {
            discrepancies.push(format!(
                "on-chain transfer {tx:#x} belongs to no request's ledger"
            ));
        }
    }
    // The seller never delivers without a verified transfer to it: every
    // image the gateway sent came with a transaction that moved exactly the
    // price from the buyer to the configured seller.
    for (tx, s) in &sent {
        let t = tx.parse::<B256>().ok().and_then(|h| on_chain.get(&h));
        if t.is_none_or(|(n, v)| *n != 1 || *v != U256::from(PRICE)) {
            discrepancies.push(format!(
                "request {}: the gateway delivered with {tx}, which is not one transfer of \
                 {PRICE} to the seller ({t:?})",
                s.request
            ));
        }
    }
    for d in chaos.unsettled_content.lock().unwrap().iter() {
        discrepancies.push(format!("the gateway delivered without a settlement: {d}"));
    }
    let cheat_summary = check_adversaries(
        &stack,
        &chaos,
        &cheats,
        start_block..=end_block,
        &mut discrepancies,
    )
    .await;
    let receipts_total = Usdc::from_atomic(PRICE * u64::try_from(ledger_txs.len()).unwrap());
    if receipts_total != moved || moved != spent {
        discrepancies.push(format!(
            "receipts sum {receipts_total}, transfers {moved}, balance change {spent}"
        ));
    }

    // ---- The faults must have happened ---------------------------------
    let fired = chaos.fired.lock().unwrap().clone();
    let reached = chaos.reached.lock().unwrap().clone();
    let kills = kills.load(Ordering::SeqCst);
    println!("chaos: faults injected (fired / minimum, reached the agent):");
    let mut missing = Vec::new();
    for kind in Kind::ALL {
        let (n, min) = (
            fired.get(&kind).copied().unwrap_or(0),
            kind.minimum(requests),
        );
        let r = reached.get(&kind).copied().unwrap_or(0);
        println!(
            "  {:<44} {n:>5} / {min:<4} {}",
            kind.to_string(),
            if kind.must_reach_agent() {
                r.to_string()
            } else {
                String::new()
            }
        );
        if n < min {
            missing.push(format!(
                "fault `{kind}` fired {n} times, expected at least {min}"
            ));
        }
        if kind.must_reach_agent() && r < min {
            missing.push(format!(
                "fault `{kind}` reached the agent (SDK's last attempt) {r} times, expected at \
                 least {min}"
            ));
        }
    }
    let min_kills = u32::try_from((requests / 50).max(2)).unwrap();
    println!(
        "  {:<44} {kills:>5} / {min_kills}",
        "agent SIGKILL + restart"
    );
    if kills < min_kills {
        missing.push(format!(
            "the agent was SIGKILLed {kills} times, expected at least {min_kills}"
        ));
    }
    let unattributed = chaos.unattributed.lock().unwrap().clone();
    if !unattributed.is_empty() {
        missing.push(format!(
            "{} requests at fault points could not be tied to a chaos request (route or id \
             format changed?): {:?}",
            unattributed.len(),
            &unattributed[..unattributed.len().min(5)]
        ));
    }

    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    for o in outcomes.values() {
        *attempts.entry(o.attempts).or_default() += 1;
    }
    println!(
        "chaos: outcomes: {delivered} delivered and paid once, {} not delivered and not paid, \
         {} on-chain transfers, {moved} USDC moved, {images_checked} images fetched and matched; \
         attempts per request {attempts:?}",
        outcomes.len() - delivered,
        logs.len()
    );
    if adversaries {
        println!("chaos: adversaries: {cheat_summary}");
        if chaos.burned.lock().unwrap().is_empty() {
            missing.push("no adversary burned its nonce between verify and settle".into());
        }
    } else {
        println!("chaos: adversaries off (CHAOS_ADVERSARIES=1 mixes them in)");
    }
    println!("chaos: {} discrepancies", discrepancies.len());
    assert!(
        discrepancies.is_empty(),
        "seed {seed}:\n{}",
        discrepancies.join("\n")
    );
    assert!(
        missing.is_empty(),
        "seed {seed}: the chaos did not happen as planned:\n{}",
        missing.join("\n")
    );
    assert_eq!(outcomes.len(), usize::try_from(requests).unwrap());
    assert_eq!(
        images_checked, delivered,
        "every delivered image was fetched"
    );
    assert!(
        delivered * 10 >= outcomes.len() * 9,
        "seed {seed}: only {delivered}/{requests} delivered: the retries should get through"
    );
}

/// The bytes behind an image URL (a presigned S3 GET), checked to be a
/// 1024x1024 PNG.
async fn fetch_png(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let png = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
    let dims = |at: usize| {
        png.get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
    };
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || dims(16) != Some(1024) || dims(20) != Some(1024) {
        return Err(format!("not a 1024x1024 PNG ({} bytes)", png.len()));
    }
    Ok(png)
}

fn session_id(i: u64) -> String {
    format!("{SESSION_MARK}{i:06}-{:024}", 0)
}

/// One cheat and what the gateway answered it.
struct Cheat {
    k: u64,
    payer: PrivateKeySigner,
    burn: Option<Burn>,
    answers: Vec<Answer>,
}

/// Burners (half by `cancelAuthorization`, half by a same-nonce transfer)
/// retry like honest buyers; many-spenders send [`COPIES`] authorizations
/// at once against a balance for one. Straight to the gateway (their
/// facilitator calls still get the plan's faults).
#[allow(clippy::needless_pass_by_value)] // owned: spawned, it outlives the caller's borrow
async fn run_adversaries(
    stack: testkit::Stack,
    chaos: Arc<Chaos>,
    url: String,
    requests: u64,
) -> Vec<Cheat> {
    let burners = (requests / 25).max(2);
    let spenders = (requests / 50).max(1);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for k in 0..burners + spenders {
        let (stack, chaos, url, http) = (stack.clone(), chaos.clone(), url.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let copies = if k < burners { 1 } else { COPIES };
            let payer = stack.fresh_wallet(PRICE).await.unwrap();
            let burn = (k < burners).then_some(if k % 2 == 0 {
                Burn::Cancel
            } else {
                Burn::SameNonceTransfer
            });
            let mut signed = Vec::new();
            for j in 0..copies {
                let body = serde_json::json!({"prompt": format!("chaos {ADV_MARK}{k} copy {j}")});
                let q = adversary::quote(&http, &url, &body).await.unwrap();
                let (header, nonce) = adversary::pay(&stack, &payer, &q).unwrap();
                chaos
                    .nonces
                    .lock()
                    .unwrap()
                    .insert(format!("{nonce:#x}"), ADV_BASE + k);
                if let Some(how) = burn {
                    chaos
                        .burns
                        .lock()
                        .unwrap()
                        .insert(k, (payer.clone(), nonce, how));
                }
                signed.push((body, header));
            }
            let answers = if burn.is_some() {
                // Retried like an honest buyer would, until a final answer.
                let (body, header) = &signed[0];
                let mut answers = Vec::new();
                for _ in 0..6 {
                    let Ok(a) = adversary::send_paid(&http, &url, body, header).await else {
                        continue;
                    };
                    let last = a.status != 409 && a.status < 500;
                    answers.push(a);
                    if last {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                answers
            } else {
                let sends = signed.iter().map(|(body, header)| {
                    let (http, url) = (http.clone(), url.clone());
                    async move { adversary::send_paid(&http, &url, body, header).await }
                });
                futures::future::join_all(sends)
                    .await
                    .into_iter()
                    .filter_map(Result::ok)
                    .collect()
            };
            Cheat {
                k,
                payer,
                burn,
                answers,
            }
        }));
    }
    let mut cheats = Vec::new();
    for t in tasks {
        cheats.push(t.await.unwrap());
    }
    cheats
}

/// The seller never delivers without a verified transfer to it: every
/// image a cheat got came with a transaction holding a transfer of the
/// price from the cheat to the configured seller; a burner never gets one;
/// one balance buys at most one generation.
async fn check_adversaries(
    stack: &testkit::Stack,
    chaos: &Chaos,
    cheats: &[Cheat],
    blocks: std::ops::RangeInclusive<u64>,
    discrepancies: &mut Vec<String>,
) -> String {
    let generations = chaos.adversary_generations.lock().unwrap().clone();
    let (mut delivered, mut refused) = (0, 0);
    for c in cheats {
        let logs = stack
            .transfer_logs(c.payer.address(), stack.seller_wallet, blocks.clone())
            .await
            .unwrap();
        let paid: HashMap<String, U256> = logs
            .iter()
            .map(|l| {
                let t = testkit::ITestUsdc::Transfer::decode_log_data(l.data()).unwrap();
                (format!("{:#x}", l.transaction_hash.unwrap()), t.value)
            })
            .collect();
        for a in &c.answers {
            if !a.delivered {
                refused += 1;
                continue;
            }
            delivered += 1;
            if c.burn.is_some() {
                discrepancies.push(format!(
                    "adversary {} ({:?}): delivered after burning its nonce (HTTP {}, tx {:?})",
                    c.k, c.burn, a.status, a.transaction
                ));
            }
            match a.transaction.as_ref().and_then(|tx| paid.get(tx)) {
                Some(v) if *v == U256::from(PRICE) => {}
                other => discrepancies.push(format!(
                    "adversary {}: delivered with {:?}, which is no transfer of {PRICE} to the \
                     seller ({other:?})",
                    c.k, a.transaction
                )),
            }
        }
        if c.burn.is_none() {
            let n = generations.get(&c.k).copied().unwrap_or(0);
            let got = c.answers.iter().filter(|a| a.delivered).count();
            if n > 1 || got > 1 {
                discrepancies.push(format!(
                    "adversary {}: one balance bought {n} generations and {got} deliveries",
                    c.k
                ));
            }
        }
    }
    let burned = chaos.burned.lock().unwrap().clone();
    for (k, r) in &burned {
        if let Err(e) = r {
            discrepancies.push(format!("adversary {k}: its burn failed: {e}"));
        }
    }
    format!(
        "{} cheats, {} nonces burned mid-request, {delivered} deliveries (each paid), \
         {refused} refusals",
        cheats.len(),
        burned.len()
    )
}
