//! The chaos suite for money: many paid requests through the whole product
//! while faults are injected everywhere money or content passes, then a
//! reconciliation against the chain.
//!
//! Faults, planned by [`e2e::chaos_plan`] as a pure function of (seed,
//! request, arrival, point), so `CHAOS_SEED` replays the same plan (the
//! printed digest names it):
//! - facilitator `/verify` and `/settle`: errors, hangs (timeouts), and
//!   "settled on chain but the answer was lost";
//! - generation failures (the gateway's model);
//! - S3 and AgentCore Memory failures (the agent's AWS endpoint), with the
//!   AWS SDK's retries off (`AWS_MAX_ATTEMPTS=1`) so they reach the agent;
//! - dropped gateway responses (agent -> gateway);
//! - the agent process killed (SIGKILL) and restarted mid-flight, after
//!   pauses the plan sets.
//!
//! Each proxy ties a call to its request: the prompt (agent -> gateway),
//! the session id (agent -> AWS), the payment's nonce, learned from the
//! paid request, (gateway -> facilitator). What stays unplanned is timing:
//! where a kill lands, which worker takes which request.
//!
//! The client retries each request (same session, same prompt) until the
//! image arrives or it gives up (12 turns that reached the agent; a refused
//! connection while the agent restarts is not a turn). Then, for every
//! request: paid if and only if delivered, the delivered image's URL loads
//! the very PNG the gateway sent with that request's settlement, never paid
//! twice, and the sum of receipts equals the buyer's on-chain balance
//! change. Every fault the plan put on an arrival that every delivered
//! request makes must have fired, the agent must have been killed, and no
//! call at a fault point may go untied to its request. `CHAOS_REQUESTS`
//! (default 200) sets the number of requests.
//!
//! Files: `faults.rs` (the fault bookkeeping), `model.rs` (the gateway's
//! failing model), `client.rs` (one request's outcome), `adversaries.rs`
//! (the cheating buyers and their checks). This file is the one test, read
//! top to bottom: set up, run the clients under faults, reconcile.

mod adversaries;
mod client;
mod faults;
mod model;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::{B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent as _,
};
use async_trait::async_trait;
use base64::Engine as _;
use e2e::{
    adversary::{self, Burn},
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

use self::{
    adversaries::{check_adversaries, run_adversaries},
    client::{Outcome, fetch_png, session_id},
    faults::Chaos,
    model::{Cheats, FlakyModel},
};

const PRICE: u64 = 40_000;
const WORKERS: usize = 8;
const MAX_ATTEMPTS: u32 = 12;
const SESSION_MARK: &str = "chaos-session-";
const PROMPT_MARK: &str = "subject number ";
/// Adversaries' prompts carry [`ADV_MARK`]; their plan index is `ADV_BASE + k`.
const ADV_BASE: u64 = 1_000_000;
const ADV_MARK: &str = "adversary number ";

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn money_is_right_under_chaos() {
    let requests = usize::try_from(env_u64("CHAOS_REQUESTS").unwrap_or(200)).unwrap();
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(rand::random);
    let plan = Plan::new(seed, u64::try_from(requests).unwrap());
    println!(
        "chaos: {requests} requests, seed {seed}, plan digest {} (CHAOS_SEED={seed} replays it)",
        plan.digest(MAX_ATTEMPTS)
    );
    let chaos = Arc::new(Chaos::new(plan));

    let stack = stack();
    let aws = stack.aws_config().await;
    let funds = u64::try_from(requests).unwrap() * PRICE + 1_000_000;
    let buyer = stack.fresh_wallet(funds).await.unwrap();
    let start_block = stack.block_number().await.unwrap();
    let before = stack.usdc_balance(buyer.address()).await.unwrap();

    // Facilitator faults, between the gateway and the official facilitator.
    let facilitator = {
        let c = chaos.clone();
        FaultProxy::start(&stack.facilitator_url, Arc::new(move |s| c.facilitator(s)))
            .await
            .unwrap()
    };
    let cheats = Arc::new(Cheats {
        stack: Some(stack.clone()),
        ..Cheats::default()
    });
    let model = Arc::new(FlakyModel {
        chaos: chaos.clone(),
        cheats: cheats.clone(),
    });
    let gateway = start_gateway(
        &stack,
        GatewayOptions {
            facilitator_url: Some(facilitator.url()),
            generator: Some(model.clone()),
            facilitator_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(3),
        },
    )
    .await;
    // Dropped gateway responses, between the agent and the gateway; the
    // images the gateway sends, with their settlements, are recorded.
    let to_gateway = {
        let (c, o) = (chaos.clone(), chaos.clone());
        FaultProxy::start_observed(
            &gateway.url,
            Arc::new(move |s| c.gateway(s)),
            Arc::new(move |s, status, headers, body| o.gateway_answer(s, status, headers, body)),
        )
        .await
        .unwrap()
    };
    // S3 and Memory failures, between the agent and moto.
    let to_aws = {
        let c = chaos.clone();
        FaultProxy::start(&stack.aws_endpoint_url, Arc::new(move |s| c.aws(s)))
            .await
            .unwrap()
    };

    let dir = temp_dir("chaos");
    let setup = AgentSetup {
        port: free_port(),
        gateway_url: to_gateway.url(),
        buyer: buyer.clone(),
        aws_endpoint: to_aws.url(),
        memory_id: format!("chaos-{seed:x}-{:x}", rand::random::<u32>()),
        bucket: stack.create_bucket("e2e-images").await.unwrap(),
        dir: dir.to_path_buf(),
        // One attempt per AWS call: an injected S3 or Memory failure reaches
        // the agent's own code instead of being absorbed by the SDK's retry.
        env: vec![("AWS_MAX_ATTEMPTS".into(), "1".into())],
    };
    let agent = Arc::new(tokio::sync::Mutex::new(Some(
        AgentProcess::start(&stack, &setup).await,
    )));
    let agent_url = format!("http://127.0.0.1:{}", setup.port);

    // The killer: SIGKILL the agent at random moments, restart it.
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
            let mut kill = 0;
            while !done.load(Ordering::SeqCst) {
                // A planned pause, not a synchronisation.
                tokio::time::sleep(plan.kill_pause(kill)).await;
                kill += 1;
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let mut slot = agent.lock().await;
                if let Some(a) = slot.take() {
                    a.kill().await;
                    kills.fetch_add(1, Ordering::SeqCst);
                }
                *slot = Some(AgentProcess::start(&stack, &setup).await);
            }
        })
    };

    // The clients.
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<BTreeMap<usize, Outcome>>> = Arc::default();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (next, outcomes, url) = (next.clone(), outcomes.clone(), agent_url.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= requests {
                        break;
                    }
                    let session = session_id(i);
                    let prompt = format!("Generate an image of chaos subject number {i}");
                    let mut o = Outcome::default();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
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
                                o.delivered = out["output"]["images"]
                                    .as_object()
                                    .is_some_and(|m| !m.is_empty());
                                if o.delivered {
                                    o.image = Some(fetch_png(&http, &out).await);
                                }
                            }
                            Err(InvokeError::Unreachable(_)) => {
                                // The agent is down (killed, restarting):
                                // nothing ran, so this was no attempt. Retry
                                // shortly, within the request's deadline.
                                o.attempts -= 1;
                                assert!(
                                    tokio::time::Instant::now() < deadline,
                                    "request {i}: the agent stayed unreachable"
                                );
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Err(InvokeError::Failed(_)) => {
                                // It failed or died mid-turn: retry shortly.
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                    outcomes.lock().unwrap().insert(i, o);
                }
            })
        })
        .collect();
    // Cheating buyers, at the same time, straight to the gateway (their
    // facilitator calls get the same faults).
    let adversaries = tokio::spawn(run_adversaries(
        stack.clone(),
        cheats.clone(),
        chaos.clone(),
        format!("{}/generate_image", gateway.url),
        u64::try_from(requests).unwrap(),
    ));
    for w in workers {
        w.await.unwrap();
    }
    let adversaries = adversaries.await.unwrap();
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
    let mut on_chain: HashMap<B256, u32> = HashMap::new();
    for l in &logs {
        *on_chain.entry(l.transaction_hash.unwrap()).or_default() += 1;
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
    let mut discrepancies = Vec::new();
    let mut ledger_txs: BTreeMap<String, usize> = BTreeMap::new();
    let mut delivered = 0;
    for (i, o) in &outcomes {
        // What the agent recorded as paid for this request (its durable ledger).
        let entries = ledger(&aws, &setup.memory_id, &session_id(*i)).await;
        let paid: BTreeSet<String> = entries
            .iter()
            .filter(|e| e["type"] == "paid")
            .filter_map(|e| e["receipt"]["transaction"].as_str().map(str::to_owned))
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
            if !tx.is_empty() && !paid.contains(tx) {
                discrepancies.push(format!("request {i}: receipt {tx} not in its ledger"));
            }
        }
        // The picture behind the URL is the one the gateway sent with this
        // request's settlement.
        match (&o.image, paid.iter().next()) {
            (Some(Err(problem)), _) => {
                discrepancies.push(format!("request {i}: delivered image: {problem}"));
            }
            (Some(Ok(sha)), Some(tx)) => {
                let sent = chaos.sent.lock().unwrap();
                match sent.get(&tx.to_lowercase()) {
                    Some(s) if s.request == *i as u64 && s.sha == *sha => {}
                    Some(s) => discrepancies.push(format!(
                        "request {i}: the image behind its URL is not the one sent with its \
                         settlement {tx} (sent for request {}, same bytes: {})",
                        s.request,
                        s.sha == *sha
                    )),
                    None => discrepancies.push(format!(
                        "request {i}: no image was sent with its settlement {tx}"
                    )),
                }
            }
            _ => {}
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
            .copied()
            .unwrap_or(0);
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
    let receipts_total = Usdc::from_atomic(PRICE * u64::try_from(ledger_txs.len()).unwrap());
    if receipts_total != moved || moved != spent {
        discrepancies.push(format!(
            "receipts sum {receipts_total}, transfers {moved}, balance change {spent}"
        ));
    }

    let cheat_summary = check_adversaries(
        &stack,
        &cheats,
        &adversaries,
        start_block..=stack.block_number().await.unwrap(),
        &mut discrepancies,
    )
    .await;

    // The faults this run claims to survive did happen: every fault the
    // plan put on an arrival that each delivered request makes (its first
    // /verify, /settle, generation, S3 put and Memory read, its quote and
    // paid request, its first two Memory writes) fired. A proxy whose route
    // match broke fires none of its kinds and fails here by name.
    let fired = chaos.fired.lock().unwrap().clone();
    let reached = chaos.reached.lock().unwrap().clone();
    let mut planned: BTreeMap<Kind, u64> = BTreeMap::new();
    for (i, o) in &outcomes {
        if !o.delivered {
            continue;
        }
        for what in What::ALL {
            for arrival in 0..what.guaranteed_arrivals() {
                if let Some(kind) = plan.fault(*i as u64, arrival, what) {
                    *planned.entry(kind).or_default() += 1;
                }
            }
        }
    }
    println!("chaos: faults (fired / planned on arrivals every delivered request makes):");
    let mut missing = Vec::new();
    for kind in Kind::ALL {
        let (f, p) = (
            fired.get(&kind).copied().unwrap_or(0),
            planned.get(&kind).copied().unwrap_or(0),
        );
        let reach = if kind.must_reach_agent() {
            format!(
                ", {} reached the agent",
                reached.get(&kind).copied().unwrap_or(0)
            )
        } else {
            String::new()
        };
        let name = kind.to_string();
        println!("  {name:<45} {f:>4} / {p}{reach}");
        if f < p {
            missing.push(format!("{kind}: fired {f} times, planned at least {p}"));
        }
        if p == 0 && delivered * 10 >= requests * 9 {
            missing.push(format!(
                "{kind}: planned on no delivered request (its forced request {} was not delivered)",
                plan.forced(kind)
            ));
        }
        if kind.must_reach_agent() && f > 0 && reached.get(&kind).copied().unwrap_or(0) == 0 {
            missing.push(format!("{kind}: fired but never on the SDK's last attempt"));
        }
    }
    println!(
        "  {:<45} {}",
        "agent SIGKILL + restart",
        kills.load(Ordering::SeqCst)
    );
    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    for o in outcomes.values() {
        *attempts.entry(o.attempts).or_default() += 1;
    }
    println!(
        "chaos: outcomes: {delivered} delivered and paid once, {} not delivered and not paid, \
         {} on-chain transfers, {moved} USDC moved; attempts per request {attempts:?}",
        outcomes.len() - delivered,
        logs.len()
    );
    println!("chaos: adversaries: {cheat_summary}");
    println!("chaos: {} discrepancies", discrepancies.len());
    let unattributed = chaos.unattributed.lock().unwrap().clone();
    assert!(
        unattributed.is_empty(),
        "seed {seed}: calls at a fault point not tied to a request (the plan cannot key \
         them): {unattributed:?}"
    );
    let unsettled = chaos.unsettled_content.lock().unwrap().clone();
    assert!(
        unsettled.is_empty(),
        "seed {seed}: the gateway sent content without a settlement: {unsettled:?}"
    );
    assert!(
        missing.is_empty(),
        "seed {seed}: faults that never fired:\n{}",
        missing.join("\n")
    );
    assert!(
        cheats.burned.lock().unwrap().iter().any(|(_, r)| r.is_ok()),
        "seed {seed}: no adversary burned its nonce between verify and settle"
    );
    assert!(
        kills.load(Ordering::SeqCst) > 0,
        "seed {seed}: the agent was never killed"
    );
    assert!(
        discrepancies.is_empty(),
        "seed {seed}:\n{}",
        discrepancies.join("\n")
    );
    assert_eq!(outcomes.len(), requests);
    assert!(
        delivered * 10 >= requests * 9,
        "seed {seed}: only {delivered}/{requests} delivered: the retries should get through"
    );
}
