//! Proof of payment, and what to do with a payment whose settlement did not
//! plainly succeed. Pure functions: the chain's answers and the clock are
//! arguments.
//!
//! # What counts as paid
//! `authorizationState(payer, nonce) == true` means the nonce is *used or
//! canceled*, not "paid to us": a buyer can burn it between `/verify` and
//! `/settle` with `cancelAuthorization`, or with a `transferWithAuthorization`
//! / `receiveWithAuthorization` of its own under the same nonce (0 USDC to
//! itself), and the facilitator's settlement then reverts. So the gateway
//! delivers only on a **proof**: a successful transaction whose receipt holds,
//! from the token contract, `AuthorizationUsed(payer, nonce)` immediately
//! followed by `Transfer(payer -> payTo, exactly the price)`. FiatToken (and
//! our dev token) emit exactly that pair, in that order, for one
//! authorization (`_markAuthorizationAsUsed`, then `_transfer`); requiring
//! adjacency means a transaction that burns our nonce and, beside it, pays
//! us with another authorization cannot prove two payments with one
//! transfer.
//!
//! # When a payment may be released
//! A record in `Settling` holds content kept for a payment whose settlement
//! may land. It is released (deleted, the content stays unsold, the buyer may
//! present the payment again) only when the money can no longer move:
//! `validBefore` has passed with the nonce unused (the token refuses the
//! authorization from then on), or the transaction we know of is final and
//! reverted with the nonce still unused. A clear facilitator failure alone
//! is not enough: an earlier, unclear attempt may still be in the pool.

use alloy::primitives::{Address, B256, U256};

use crate::chain::{Head, MinedTx, TokenEvent};

/// What a payment must have done on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub payer: Address,
    pub nonce: B256,
    pub pay_to: Address,
    pub amount: U256,
}

/// What one mined transaction did for a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Successful, and it used this authorization to pay us the price.
    Paid,
    /// Successful, used this authorization, but not to pay us the price: the
    /// nonce is burnt and this payment can never pay.
    UsedNotPaid(String),
    /// Reverted: changed nothing.
    Reverted,
    /// Successful, but does not use this authorization.
    Unrelated,
}

/// Judges a mined transaction against the payment it should prove.
pub fn judge(mined: &MinedTx, e: &Expected) -> Judgement {
    if !mined.success {
        return Judgement::Reverted;
    }
    let ev = &mined.token_events;
    let Some(i) = ev.iter().position(|x| {
        *x == TokenEvent::AuthorizationUsed {
            authorizer: e.payer,
            nonce: e.nonce,
        }
    }) else {
        return Judgement::Unrelated;
    };
    match ev.get(i + 1) {
        Some(TokenEvent::Transfer { from, to, value })
            if *from == e.payer && *to == e.pay_to && *value == e.amount =>
        {
            Judgement::Paid
        }
        Some(TokenEvent::Transfer { from, to, value }) => Judgement::UsedNotPaid(format!(
            "the authorization was used to transfer {value} from {from} to {to}, not {} to \
             the seller {}",
            e.amount, e.pay_to
        )),
        _ => Judgement::UsedNotPaid("the authorization was used without a transfer".into()),
    }
}

/// What the chain says about a payment, gathered by the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Onchain {
    /// A transaction proves the payment.
    Paid { tx: B256 },
    /// The nonce is used (or canceled) and no transaction proves a payment
    /// to us: final.
    Burnt { reason: String, tx: Option<B256> },
    /// The nonce is unused. `known` is what became of the transaction we know
    /// of, if any.
    Unused { known: Known },
    /// The chain could not be read, or a transaction using the nonce has no
    /// receipt yet.
    Unknown(String),
}

/// The transaction the facilitator named for this payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// None named.
    None,
    /// Named, not mined (in a pool, or dropped: we cannot tell which).
    Pending,
    /// Mined and reverted in `block`.
    Reverted { block: u64 },
}

/// What to do with a payment in `Settling`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Deliver: the transaction proves the payment.
    Deliver { tx: B256 },
    /// Refuse for good and record it: the nonce was used without paying us.
    RefuseFinal { reason: String },
    /// Release the record and the reservation: no money can move any more.
    Release { reason: &'static str },
    /// Keep the record (and the reservation): the settlement may still land;
    /// a retry asks the chain again before settling again.
    Keep,
}

/// Decides, given the chain's answer, the authorization's `validBefore`, the
/// chain's head and how many blocks on top make a block final.
///
/// The clock here is the chain's: the token compares `validBefore` with
/// `block.timestamp`, and no later block can have a smaller timestamp than the
/// head, so "expired" is judged by the head's timestamp, never by ours (a
/// gateway clock running ahead would release a payment that can still land).
pub fn next(onchain: &Onchain, valid_before: u64, head: Head, confirmations: u64) -> Next {
    let now = head.timestamp;
    match onchain {
        Onchain::Paid { tx } => Next::Deliver { tx: *tx },
        Onchain::Burnt { reason, .. } => Next::RefuseFinal {
            reason: reason.clone(),
        },
        Onchain::Unused { .. } if now >= valid_before => Next::Release {
            reason: "the authorization expired unused; it can never be settled",
        },
        Onchain::Unused {
            known: Known::Reverted { block },
        } if block.saturating_add(confirmations) <= head.number => Next::Release {
            reason: "the settlement reverted and the authorization is unused",
        },
        Onchain::Unused { .. } | Onchain::Unknown(_) => Next::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYER: Address = Address::repeat_byte(0xaa);
    const SELLER: Address = Address::repeat_byte(0x5e);
    const NONCE: B256 = B256::repeat_byte(7);

    fn expected() -> Expected {
        Expected {
            payer: PAYER,
            nonce: NONCE,
            pay_to: SELLER,
            amount: U256::from(40_000),
        }
    }

    fn used(nonce: B256) -> TokenEvent {
        TokenEvent::AuthorizationUsed {
            authorizer: PAYER,
            nonce,
        }
    }

    fn transfer(to: Address, value: u64) -> TokenEvent {
        TokenEvent::Transfer {
            from: PAYER,
            to,
            value: U256::from(value),
        }
    }

    fn mined(success: bool, token_events: Vec<TokenEvent>) -> MinedTx {
        MinedTx {
            tx: B256::repeat_byte(1),
            block: 10,
            success,
            token_events,
        }
    }

    #[test]
    fn only_the_authorization_paying_us_the_price_is_a_proof() {
        let other = B256::repeat_byte(8);
        let cases: Vec<(&str, MinedTx, Option<Judgement>)> = vec![
            (
                "settlement",
                mined(true, vec![used(NONCE), transfer(SELLER, 40_000)]),
                Some(Judgement::Paid),
            ),
            (
                "reverted settlement",
                mined(false, vec![]),
                Some(Judgement::Reverted),
            ),
            (
                "same nonce, 0 to itself",
                mined(true, vec![used(NONCE), transfer(PAYER, 0)]),
                None,
            ),
            (
                "same nonce, less to us",
                mined(true, vec![used(NONCE), transfer(SELLER, 39_999)]),
                None,
            ),
            (
                "same nonce, more to us",
                mined(true, vec![used(NONCE), transfer(SELLER, 40_001)]),
                None,
            ),
            (
                "our nonce burnt, another authorization pays us",
                mined(
                    true,
                    vec![
                        used(NONCE),
                        transfer(PAYER, 0),
                        used(other),
                        transfer(SELLER, 40_000),
                    ],
                ),
                None,
            ),
            (
                "used, no transfer",
                mined(true, vec![used(NONCE), TokenEvent::Other]),
                None,
            ),
            (
                "another nonce only",
                mined(true, vec![used(other), transfer(SELLER, 40_000)]),
                Some(Judgement::Unrelated),
            ),
            (
                "a transfer to us without the authorization",
                mined(true, vec![transfer(SELLER, 40_000)]),
                Some(Judgement::Unrelated),
            ),
        ];
        for (name, m, want) in cases {
            let got = judge(&m, &expected());
            match want {
                Some(w) => assert_eq!(got, w, "{name}"),
                None => assert!(matches!(got, Judgement::UsedNotPaid(_)), "{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_record_is_released_only_when_no_money_can_move() {
        let tx = B256::repeat_byte(3);
        let vb = 1_000;
        let unused = |known| Onchain::Unused { known };
        // (name, chain answer, head timestamp, head number, confirmations, decision)
        let cases: Vec<(&str, Onchain, u64, u64, u64, Next)> = vec![
            ("proved", Onchain::Paid { tx }, 0, 0, 0, Next::Deliver { tx }),
            (
                "burnt",
                Onchain::Burnt {
                    reason: "canceled".into(),
                    tx: None,
                },
                0,
                0,
                0,
                Next::RefuseFinal {
                    reason: "canceled".into(),
                },
            ),
            ("unused, window open", unused(Known::None), 999, 0, 0, Next::Keep),
            ("pending, window open", unused(Known::Pending), 999, 0, 0, Next::Keep),
            (
                "unused, expired",
                unused(Known::Pending),
                1_000,
                0,
                0,
                Next::Release {
                    reason: "the authorization expired unused; it can never be settled",
                },
            ),
            (
                "reverted, final",
                unused(Known::Reverted { block: 10 }),
                999,
                12,
                2,
                Next::Release {
                    reason: "the settlement reverted and the authorization is unused",
                },
            ),
            (
                "reverted, not final yet",
                unused(Known::Reverted { block: 10 }),
                999,
                11,
                2,
                Next::Keep,
            ),
            ("chain unreadable", Onchain::Unknown("x".into()), 999, 0, 0, Next::Keep),
            (
                "chain unreadable after expiry: still kept",
                Onchain::Unknown("x".into()),
                5_000,
                0,
                0,
                Next::Keep,
            ),
        ];
        for (name, onchain, timestamp, number, conf, want) in cases {
            let head = Head { number, timestamp };
            assert_eq!(next(&onchain, vb, head, conf), want, "{name}");
        }
    }
}
