//! Cheating buyers beside the honest ones, and the checks that they got
//! nothing they did not pay for.

use super::*;

/// One cheating buyer and what the gateway answered it.
pub(crate) struct Cheat {
    pub(crate) k: u64,
    pub(crate) payer: PrivateKeySigner,
    pub(crate) burn: Option<Burn>,
    pub(crate) answers: Vec<adversary::Answer>,
}

/// Authorizations a many-spender sends at once against a balance for one.
pub(crate) const COPIES: usize = 5;

/// Burners (half by `cancelAuthorization`, half by a same-nonce transfer)
/// retry like honest buyers; many-spenders send [`COPIES`] authorizations
/// at once against a balance for one.
pub(crate) async fn run_adversaries(
    stack: testkit::Stack,
    cheats: Arc<Cheats>,
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
    let tasks: Vec<_> = (0..burners + spenders)
        .map(|k| {
            let (stack, cheats, chaos, url, http) = (
                stack.clone(),
                cheats.clone(),
                chaos.clone(),
                url.clone(),
                http.clone(),
            );
            tokio::spawn(async move {
                let copies = if k < burners { 1 } else { COPIES };
                let payer = stack.fresh_wallet(PRICE).await.unwrap();
                let burn = (k < burners).then_some(if k % 2 == 0 {
                    Burn::Cancel
                } else {
                    Burn::SameNonceTransfer
                });
                let mut signed = Vec::new();
                for j in 0..copies {
                    let body = serde_json::json!({
                        "prompt": format!("chaos {ADV_MARK}{k} copy {j}")
                    });
                    let q = adversary::quote(&http, &url, &body).await.unwrap();
                    let (header, nonce) = adversary::pay(&stack, &payer, &q).unwrap();
                    // Its facilitator calls get the plan's faults too.
                    chaos
                        .nonces
                        .lock()
                        .unwrap()
                        .insert(format!("{nonce:#x}"), ADV_BASE + k);
                    if let Some(how) = burn {
                        cheats
                            .burns
                            .lock()
                            .unwrap()
                            .insert(k, (payer.clone(), nonce, how));
                    }
                    signed.push((body, header));
                }
                let answers = if burn.is_some() {
                    // Retried like an honest buyer, until a final answer.
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
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The seller never delivers without a verified transfer to it: every
/// image a cheat got came with a transaction holding a transfer of the
/// price from the cheat to the configured seller; a burner never gets one
/// and never pays; one balance buys at most one generation.
pub(crate) async fn check_adversaries(
    stack: &testkit::Stack,
    cheats: &Cheats,
    list: &[Cheat],
    blocks: std::ops::RangeInclusive<u64>,
    discrepancies: &mut Vec<String>,
) -> String {
    let generations = cheats.generations.lock().unwrap().clone();
    let (mut delivered, mut refused) = (0, 0);
    for c in list {
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
        if c.burn.is_some() && !paid.is_empty() {
            discrepancies.push(format!(
                "adversary {}: the seller was paid by a buyer that burned its nonce",
                c.k
            ));
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
    let burned = cheats.burned.lock().unwrap().clone();
    for (k, r) in &burned {
        if let Err(e) = r {
            discrepancies.push(format!("adversary {k}: its burn failed: {e}"));
        }
    }
    format!(
        "{} cheats, {} nonces burned mid-request, {delivered} deliveries (each paid), \
         {refused} refusals",
        list.len(),
        burned.len()
    )
}
