//! The run's fault bookkeeping, shared by the proxies and the gateway's
//! model: which planned faults fired where, and what the gateway sent with
//! each settlement.

use super::*;

/// What the gateway sent with a settlement: for which request, and the
/// image's SHA-256.
pub(crate) struct Sent {
    pub(crate) request: u64,
    pub(crate) sha: [u8; 32],
}

/// The run's fault bookkeeping, shared by the proxies and the model.
pub(crate) struct Chaos {
    pub(crate) plan: Plan,
    /// How many times each request has reached each point so far.
    pub(crate) arrivals: Mutex<HashMap<(u64, What), u32>>,
    pub(crate) fired: Mutex<BTreeMap<Kind, u64>>,
    /// S3/Memory faults that hit the SDK's last attempt (reached the agent).
    pub(crate) reached: Mutex<BTreeMap<Kind, u64>>,
    /// Payment nonce -> request, learned from the paid requests.
    pub(crate) nonces: Mutex<HashMap<String, u64>>,
    /// Calls at a fault point that could not be tied to a request.
    pub(crate) unattributed: Mutex<Vec<String>>,
    /// Transaction -> what the gateway sent with it.
    pub(crate) sent: Mutex<HashMap<String, Sent>>,
    /// Content the gateway sent without a settlement.
    pub(crate) unsettled_content: Mutex<Vec<String>>,
}

impl Chaos {
    pub(crate) fn new(plan: Plan) -> Chaos {
        Chaos {
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
    pub(crate) fn next(&self, request: u64, what: What) -> Option<Kind> {
        let arrival = {
            let mut a = self.arrivals.lock().unwrap();
            let n = a.entry((request, what)).or_default();
            *n += 1;
            *n - 1
        };
        let kind = self.plan.fault(request, arrival, what)?;
        *self.fired.lock().unwrap().entry(kind).or_default() += 1;
        Some(kind)
    }

    pub(crate) fn unattributed(&self, what: What, s: &Seen<'_>) -> Fault {
        self.unattributed
            .lock()
            .unwrap()
            .push(format!("{what:?}: {} {}", s.method, s.path));
        Fault::Pass
    }

    /// gateway -> facilitator.
    pub(crate) fn facilitator(&self, s: &Seen<'_>) -> Fault {
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
    pub(crate) fn gateway(&self, s: &Seen<'_>) -> Fault {
        if *s.method != http::Method::POST {
            return Fault::Pass;
        }
        let Some(request) = prompt_index(s.body) else {
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

    /// What the gateway answered (before any drop): each image it sent,
    /// with the settlement it was sent with.
    pub(crate) fn gateway_answer(
        &self,
        s: &Seen<'_>,
        status: u16,
        headers: &http::HeaderMap,
        body: &[u8],
    ) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let Some(b64) = v["imageBase64"].as_str() else {
            return;
        };
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        let request = prompt_index(s.body);
        let settled = headers
            .get(wire::PAYMENT_RESPONSE)
            .or_else(|| headers.get(wire::X_PAYMENT_RESPONSE))
            .and_then(|h| h.to_str().ok())
            .and_then(|h| wire::decode_header::<wire::SettleResponse>(h).ok())
            .filter(|r| r.success && !r.transaction.is_empty());
        match (settled, request) {
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
    pub(crate) fn aws(&self, s: &Seen<'_>) -> Fault {
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

/// The request index in a gateway request's JSON `prompt`.
pub(crate) fn prompt_index(body: &[u8]) -> Option<u64> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    request_index(v["prompt"].as_str()?, PROMPT_MARK)
}

/// The EIP-3009 nonce in a `PAYMENT-SIGNATURE` / `X-PAYMENT` header.
pub(crate) fn payment_nonce(headers: &http::HeaderMap) -> Option<String> {
    let h = headers
        .get(wire::PAYMENT_SIGNATURE)
        .or_else(|| headers.get(wire::X_PAYMENT))?
        .to_str()
        .ok()?;
    let payment = wire::decode_payment(h).ok()?;
    Some(format!("{:#x}", payment.exact().authorization.nonce))
}
