//! One configurable faulty facilitator for the fault tests: the real
//! facilitator (usually the stack's official one, [`crate::Stack::facilitator`])
//! with a fault chosen per route, switched at run time, and the calls counted.
//! The facilitator is an outside system, so this wraps the real one instead
//! of replacing it: whatever is forwarded really verifies or settles on chain.
//!
//! Each route (`/verify`, `/settle`) has a standing [`Fault`] (initially
//! [`Fault::Pass`]), faults queued for its next calls only ([`Faulty::next`]),
//! and optionally a hook run alongside each forwarded call
//! ([`Faulty::during`]), for a test that must act while the facilitator
//! works (drain the payer's balance while the settlement is in the pool).
//!
//! ```ignore
//! use testkit::facilitator::{Fault, Faulty, Route};
//!
//! // settle fails with HTTP 500 (nothing forwarded) until switched back
//! let f = Faulty::new(stack.facilitator());
//! f.set(Route::Settle, Fault::Status(500));
//! // ... gateway built with `f.clone()` as its `Arc<dyn Facilitator>` ...
//! f.set(Route::Settle, Fault::Pass);
//!
//! // the first settle lands on chain but its answer never comes back
//! f.next(Route::Settle, Fault::Hang);
//! f.answered(Route::Settle, 1).await; // the real facilitator has answered
//! assert_eq!(f.settled_transactions().len(), 1);
//!
//! // hold every settlement's answer until the test releases it, and count them
//! f.set(Route::Settle, Fault::Hold);
//! f.release();
//! assert_eq!(f.calls(Route::Settle), 2);
//! ```
//!
//! A seller stand-in that counts successful settlements and can hold after
//! one (the agent's tests) maps onto it like this:
//!
//! ```ignore
//! let facilitator = Faulty::new(stack.facilitator());
//! // gateway state built with `facilitator.clone()` as its facilitator
//! facilitator.set(Route::Settle, Fault::Hold);        // hold after settling
//! facilitator.answered(Route::Settle, 1).await;       // it has settled
//! facilitator.set(Route::Settle, Fault::Pass);        // later calls answer
//! facilitator.release();                              // the held one answers
//! assert_eq!(facilitator.settled_transactions().len(), 1);
//! ```
//!
//! A process under test (not in this process) cannot take a `Faulty`; the
//! wire-level proxies stay for those (`e2e::fault_proxy`, the gateway's
//! two-instance test).

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use async_trait::async_trait;
use tokio::{sync::watch, task::JoinHandle};
use x402::{
    facilitator::{Facilitator, FacilitatorError},
    wire::{PaymentPayload, Requirements, SettleResponse, Supported, VerifyResponse},
};

/// A facilitator route that can misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Verify,
    Settle,
}

impl Route {
    fn index(self) -> usize {
        match self {
            Route::Verify => 0,
            Route::Settle => 1,
        }
    }
}

/// What one call on a route does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward and answer what the facilitator answered.
    Pass,
    /// Nothing forwarded: fail as an HTTP error with this status
    /// (`FacilitatorError::Status`, body `injected`).
    Status(u16),
    /// Nothing forwarded: a clear "no" with this reason (`/verify`:
    /// `isValid: false`; `/settle`: `success: false`, no transaction).
    Refuse(String),
    /// Forward, let the facilitator answer (and settle), then never answer
    /// the caller, as when the process dies after money moved.
    Hang,
    /// Forward in the background and fail the caller with
    /// `FacilitatorError::Timeout` as soon as the [`Faulty::during`] hook has
    /// finished (at once without one): the call goes on, its answer is lost
    /// to the caller. A lost settlement's answer is kept
    /// ([`Faulty::take_lost_settle`]).
    LoseAnswer,
    /// Forward, then hold the answer until [`Faulty::release`].
    Hold,
}

/// Runs alongside a forwarded call, given the payment it carries.
pub type Hook =
    Arc<dyn Fn(PaymentPayload) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

type SettleResult = Result<SettleResponse, FacilitatorError>;

#[derive(Default)]
struct Plan {
    standing: Option<Fault>,
    next: VecDeque<Fault>,
    during: Option<Hook>,
}

impl Plan {
    fn take(&mut self) -> Fault {
        self.next
            .pop_front()
            .or_else(|| self.standing.clone())
            .unwrap_or(Fault::Pass)
    }
}

/// The real facilitator with faults injected per route; see the module docs.
pub struct Faulty {
    inner: Arc<dyn Facilitator>,
    plans: [Mutex<Plan>; 2],
    calls: [AtomicU32; 2],
    /// Answers the real facilitator gave per route (also held, hung and lost ones).
    answered: [watch::Sender<u32>; 2],
    /// Bumped by `release`: a held call waits for a bump after it started.
    releases: watch::Sender<u64>,
    settled: Arc<Mutex<Vec<String>>>,
    lost: Mutex<VecDeque<JoinHandle<SettleResult>>>,
}

impl Faulty {
    /// `inner` with every route passing through.
    pub fn new(inner: impl Facilitator + 'static) -> Arc<Faulty> {
        Faulty::wrap(Arc::new(inner))
    }

    /// [`Faulty::new`] for a facilitator already shared.
    pub fn wrap(inner: Arc<dyn Facilitator>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            plans: Default::default(),
            calls: Default::default(),
            answered: [watch::channel(0).0, watch::channel(0).0],
            releases: watch::channel(0).0,
            settled: Arc::default(),
            lost: Mutex::default(),
        })
    }

    fn plan(&self, route: Route) -> std::sync::MutexGuard<'_, Plan> {
        self.plans[route.index()].lock().unwrap()
    }

    /// `fault` for every later call on `route` (after any queued by [`Faulty::next`]).
    pub fn set(&self, route: Route, fault: Fault) {
        self.plan(route).standing = Some(fault);
    }

    /// `fault` for the next call on `route` only; queued faults are used in
    /// order before the standing one.
    pub fn next(&self, route: Route, fault: Fault) {
        self.plan(route).next.push_back(fault);
    }

    /// Runs `hook` alongside each forwarded call on `route` (not for
    /// [`Fault::Status`] or [`Fault::Refuse`], which forward nothing). The
    /// caller's answer waits for the hook.
    pub fn during<F, Fut>(&self, route: Route, hook: F)
    where
        F: Fn(PaymentPayload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.plan(route).during = Some(Arc::new(move |p| Box::pin(hook(p))));
    }

    /// Calls made on `route`, whatever their fault.
    pub fn calls(&self, route: Route) -> u32 {
        self.calls[route.index()].load(Ordering::SeqCst)
    }

    /// Resolves once the real facilitator has answered `n` forwarded calls on
    /// `route` (whether or not the caller got the answer).
    pub async fn answered(&self, route: Route, n: u32) {
        let mut rx = self.answered[route.index()].subscribe();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    /// Lets every call held by [`Fault::Hold`] so far answer.
    pub fn release(&self) {
        self.releases.send_modify(|g| *g += 1);
    }

    /// Transactions of the successful settlements the facilitator reported,
    /// in order, including answers the caller never got.
    pub fn settled_transactions(&self) -> Vec<String> {
        self.settled.lock().unwrap().clone()
    }

    /// The oldest settlement whose answer [`Fault::LoseAnswer`] kept from the
    /// caller; await it for the facilitator's real answer.
    pub fn take_lost_settle(&self) -> Option<JoinHandle<SettleResult>> {
        self.lost.lock().unwrap().pop_front()
    }

    /// One call on `route`: decide, forward (or not), and apply the fault.
    async fn call<T: Send + 'static>(
        &self,
        route: Route,
        payment: &PaymentPayload,
        forward: Pin<Box<dyn Future<Output = Result<T, FacilitatorError>> + Send>>,
        refuse: impl FnOnce(String) -> T,
        keep_lost: impl FnOnce(JoinHandle<Result<T, FacilitatorError>>),
    ) -> Result<T, FacilitatorError> {
        self.calls[route.index()].fetch_add(1, Ordering::SeqCst);
        let (fault, during) = {
            let mut plan = self.plan(route);
            (plan.take(), plan.during.clone())
        };
        let hook = async {
            if let Some(h) = &during {
                h(payment.clone()).await;
            }
        };
        let answered = &self.answered[route.index()];
        match fault {
            Fault::Status(status) => Err(FacilitatorError::Status {
                status,
                body: "injected".into(),
            }),
            Fault::Refuse(reason) => Ok(refuse(reason)),
            Fault::LoseAnswer => {
                let counter = answered.clone();
                keep_lost(tokio::spawn(async move {
                    let out = forward.await;
                    counter.send_modify(|c| *c += 1);
                    out
                }));
                hook.await;
                Err(FacilitatorError::Timeout)
            }
            Fault::Pass | Fault::Hang | Fault::Hold => {
                let held_since = *self.releases.borrow();
                let (out, ()) = tokio::join!(forward, hook);
                answered.send_modify(|c| *c += 1);
                match fault {
                    Fault::Hang => std::future::pending().await,
                    Fault::Hold => {
                        let mut rx = self.releases.subscribe();
                        let _ = rx.wait_for(|g| *g > held_since).await;
                    }
                    _ => {}
                }
                out
            }
        }
    }
}

#[async_trait]
impl Facilitator for Faulty {
    async fn verify(
        &self,
        p: &PaymentPayload,
        r: &Requirements,
    ) -> Result<VerifyResponse, FacilitatorError> {
        let (inner, p2, r2) = (self.inner.clone(), p.clone(), r.clone());
        self.call(
            Route::Verify,
            p,
            Box::pin(async move { inner.verify(&p2, &r2).await }),
            |reason| VerifyResponse {
                is_valid: false,
                invalid_reason: Some(reason),
                payer: None,
            },
            drop,
        )
        .await
    }

    async fn settle(
        &self,
        p: &PaymentPayload,
        r: &Requirements,
    ) -> Result<SettleResponse, FacilitatorError> {
        let (inner, p2, r2) = (self.inner.clone(), p.clone(), r.clone());
        let network = match r {
            Requirements::V1(r) => r.network.clone(),
            Requirements::V2(r) => r.network.clone(),
        };
        let record = self.settled.clone();
        let settled = async move {
            let out = inner.settle(&p2, &r2).await;
            if let Ok(s) = &out
                && s.success
            {
                record.lock().unwrap().push(s.transaction.to_lowercase());
            }
            out
        };
        self.call(
            Route::Settle,
            p,
            Box::pin(settled),
            |reason| SettleResponse {
                success: false,
                error_reason: Some(reason),
                payer: None,
                transaction: String::new(),
                network,
            },
            |lost| self.lost.lock().unwrap().push_back(lost),
        )
        .await
    }

    async fn supported(&self) -> Result<Supported, FacilitatorError> {
        self.inner.supported().await
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, Bytes, U256};
    use x402::{
        eip3009::Authorization,
        wire::{ExactEvmPayload, PaymentPayloadV1, RequirementsV2},
    };

    use super::*;

    /// Answers every call at once; settles with transaction `0xab`.
    struct Always;

    #[async_trait]
    impl Facilitator for Always {
        async fn verify(
            &self,
            _: &PaymentPayload,
            _: &Requirements,
        ) -> Result<VerifyResponse, FacilitatorError> {
            Ok(VerifyResponse {
                is_valid: true,
                invalid_reason: None,
                payer: None,
            })
        }
        async fn settle(
            &self,
            _: &PaymentPayload,
            r: &Requirements,
        ) -> Result<SettleResponse, FacilitatorError> {
            let Requirements::V2(r) = r else {
                unreachable!()
            };
            Ok(SettleResponse {
                success: true,
                error_reason: None,
                payer: None,
                transaction: "0xAB".into(),
                network: r.network.clone(),
            })
        }
        async fn supported(&self) -> Result<Supported, FacilitatorError> {
            Err(FacilitatorError::Timeout)
        }
    }

    fn payment() -> (PaymentPayload, Requirements) {
        let p = PaymentPayload::V1(PaymentPayloadV1 {
            x402_version: 1,
            scheme: "exact".into(),
            network: "base-sepolia".into(),
            payload: ExactEvmPayload {
                signature: Bytes::new(),
                authorization: Authorization {
                    from: Address::ZERO,
                    to: Address::ZERO,
                    value: U256::from(1),
                    valid_after: U256::ZERO,
                    valid_before: U256::MAX,
                    nonce: Authorization::random_nonce(),
                },
            },
        });
        let r = Requirements::V2(RequirementsV2 {
            scheme: "exact".into(),
            network: "eip155:84532".into(),
            amount: "1".into(),
            asset: Address::ZERO,
            pay_to: Address::ZERO,
            max_timeout_seconds: 60,
            extra: None,
        });
        (p, r)
    }

    #[tokio::test]
    async fn queued_faults_come_first_then_the_standing_one() {
        let f = Faulty::new(Always);
        let (p, r) = payment();
        f.set(Route::Settle, Fault::Refuse("no".into()));
        f.next(Route::Settle, Fault::Status(502));
        f.next(Route::Settle, Fault::Pass);
        let first = f.settle(&p, &r).await.unwrap_err();
        assert!(matches!(
            first,
            FacilitatorError::Status { status: 502, .. }
        ));
        assert!(f.settle(&p, &r).await.unwrap().success);
        let third = f.settle(&p, &r).await.unwrap();
        assert!(!third.success);
        assert_eq!(third.error_reason.as_deref(), Some("no"));
        assert_eq!(third.network, "eip155:84532");
        assert_eq!(f.calls(Route::Settle), 3);
        assert_eq!(f.calls(Route::Verify), 0);
        assert_eq!(f.settled_transactions(), ["0xab"], "forwarded once");
        assert!(f.verify(&p, &r).await.unwrap().is_valid, "verify passes");
    }

    #[tokio::test]
    async fn a_held_answer_waits_for_release_and_a_lost_one_is_kept() {
        let f = Faulty::new(Always);
        let (p, r) = payment();
        f.set(Route::Settle, Fault::Hold);
        let held = tokio::spawn({
            let (f, p, r) = (f.clone(), p.clone(), r.clone());
            async move { f.settle(&p, &r).await }
        });
        f.answered(Route::Settle, 1).await;
        assert!(!held.is_finished(), "held until released");
        f.release();
        assert!(held.await.unwrap().unwrap().success);

        f.set(Route::Settle, Fault::LoseAnswer);
        let hooked = Arc::new(AtomicU32::new(0));
        let seen = hooked.clone();
        f.during(Route::Settle, move |_| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        let lost = f.settle(&p, &r).await.unwrap_err();
        assert!(matches!(lost, FacilitatorError::Timeout));
        assert_eq!(hooked.load(Ordering::SeqCst), 1);
        let kept = f.take_lost_settle().expect("kept").await.unwrap().unwrap();
        assert!(kept.success);
        assert_eq!(f.settled_transactions().len(), 2);
    }

    #[tokio::test]
    async fn a_hung_call_never_answers_after_the_facilitator_did() {
        let f = Faulty::new(Always);
        let (p, r) = payment();
        f.next(Route::Verify, Fault::Hang);
        let hung = tokio::spawn({
            let (f, p, r) = (f.clone(), p.clone(), r.clone());
            async move { f.verify(&p, &r).await }
        });
        f.answered(Route::Verify, 1).await;
        tokio::task::yield_now().await;
        assert!(!hung.is_finished());
        hung.abort();
        assert!(
            f.verify(&p, &r).await.unwrap().is_valid,
            "only the next call hung"
        );
    }
}
