//! A signed payment the seller answered with `402`: refused, or paid anyway?
//!
//! The seller's `402` is only the seller's word. Once the buyer has signed
//! and sent an EIP-3009 authorization, whoever holds it can settle it until
//! its `validBefore`, and a seller may settle and still answer `402` (a bug,
//! a lost race, a lie). So the ledger calls a payment **refused, no money
//! moved** only when the chain says so for good:
//!
//! ```text
//!                     authorizationState(payer, nonce) at block B (timestamp T)
//!                          │
//!          unused ─────────┴───────── used
//!            │                          │
//!   T >= validBefore?         its tx has AuthorizationUsed(payer, nonce)
//!     yes: Refused            and Transfer(payer -> payTo) >= the amount?
//!     no:  Pending              yes: Paid { tx }   (money moved: recover the
//!    (may still settle)              content with the same payment, or say so)
//!                               no:  UsedUnproven (never "no money moved")
//! ```
//!
//! Why the chain's clock: EIP-3009 accepts an authorization while
//! `block.timestamp < validBefore`. The nonce state and the timestamp are
//! read at the same block `B`; blocks after `B` have timestamps `>= T`, so
//! unused at `B` with `T >= validBefore` means it can never be mined. The
//! buyer's own clock plays no part (a fast local clock would call a payment
//! refused that can still land).

use crate::wallet::AuthorizationFacts;

use crate::ledger::PreparedPayment;

/// What a `402` to a signed payment means, per the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Unused at a block at or past `validBefore`: it can never settle.
    /// Refused; no money moved.
    Refused,
    /// Unused, but still valid: the signed payment may yet settle. The
    /// request stays prepared (and counted against the budget).
    Pending { valid_before: u64 },
    /// Used by a successful transaction that paid the payee at least the
    /// amount: money moved. Recover the content with the same payment.
    Paid { transaction: String },
    /// Used, but no transfer of the amount to the payee was found (log out
    /// of reach, a reverted or different transaction). Not refused: the
    /// payment stays prepared.
    UsedUnproven { transaction: Option<String> },
}

/// Decides what a `402` to `payment` means, from the chain's facts (read at
/// one block; its timestamp is the clock).
pub fn verdict(payment: &PreparedPayment, facts: &AuthorizationFacts) -> Verdict {
    if !facts.used {
        return if facts.block_timestamp >= payment.valid_before {
            Verdict::Refused
        } else {
            Verdict::Pending {
                valid_before: payment.valid_before,
            }
        };
    }
    let transaction = facts.transaction.map(|t| format!("{t:#x}"));
    match (transaction, facts.paid_to_payee) {
        (Some(transaction), Some(paid)) if paid >= payment.amount => Verdict::Paid { transaction },
        (transaction, _) => Verdict::UsedUnproven { transaction },
    }
}

/// The ledger's reason for a refusal the chain confirmed.
pub fn refused_reason(seller_reason: &str, facts: &AuthorizationFacts) -> String {
    format!(
        "{seller_reason}; on chain the authorization is unused and expired (block {} at {})",
        facts.block, facts.block_timestamp
    )
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};
    use x402::Usdc;

    use super::*;

    const VALID_BEFORE: u64 = 1_000;

    fn payment() -> PreparedPayment {
        PreparedPayment {
            header_name: "PAYMENT-SIGNATURE".into(),
            header_value: "secret".into(),
            amount: Usdc::from_atomic(40_000),
            pay_to: Address::repeat_byte(2),
            payer: Address::repeat_byte(1),
            nonce: format!("{:#x}", B256::repeat_byte(7)),
            valid_before: VALID_BEFORE,
        }
    }

    fn facts(at: u64, used: bool, tx: Option<u8>, paid: Option<u64>) -> AuthorizationFacts {
        AuthorizationFacts {
            block: 42,
            block_timestamp: at,
            used,
            transaction: tx.map(B256::repeat_byte),
            paid_to_payee: paid.map(Usdc::from_atomic),
        }
    }

    #[test]
    fn a_402_is_refused_only_when_the_chain_says_unused_and_expired() {
        let tx = format!("{:#x}", B256::repeat_byte(9));
        let cases: &[(&str, AuthorizationFacts, Verdict)] = &[
            (
                "unused, expired exactly at validBefore",
                facts(VALID_BEFORE, false, None, None),
                Verdict::Refused,
            ),
            (
                "unused, long expired",
                facts(VALID_BEFORE + 3_600, false, None, None),
                Verdict::Refused,
            ),
            (
                "unused, one second before validBefore: may still land",
                facts(VALID_BEFORE - 1, false, None, None),
                Verdict::Pending {
                    valid_before: VALID_BEFORE,
                },
            ),
            (
                "used, paid in full",
                facts(VALID_BEFORE - 1, true, Some(9), Some(40_000)),
                Verdict::Paid {
                    transaction: tx.clone(),
                },
            ),
            (
                "used, paid in full, after validBefore",
                facts(VALID_BEFORE + 10, true, Some(9), Some(40_000)),
                Verdict::Paid {
                    transaction: tx.clone(),
                },
            ),
            (
                "used, paid less than the amount",
                facts(VALID_BEFORE + 10, true, Some(9), Some(39_999)),
                Verdict::UsedUnproven {
                    transaction: Some(tx.clone()),
                },
            ),
            (
                "used (cancelled / burned): no transfer to the payee",
                facts(VALID_BEFORE + 10, true, Some(9), None),
                Verdict::UsedUnproven {
                    transaction: Some(tx),
                },
            ),
            (
                "used, the log is out of reach",
                facts(VALID_BEFORE + 10, true, None, None),
                Verdict::UsedUnproven { transaction: None },
            ),
        ];
        for (case, f, want) in cases {
            assert_eq!(&verdict(&payment(), f), want, "{case}");
        }
    }

    #[test]
    fn the_refusal_reason_names_the_chain_evidence() {
        let r = refused_reason("expired", &facts(VALID_BEFORE, false, None, None));
        assert!(r.contains("unused and expired"), "{r}");
        assert!(r.contains("block 42"), "{r}");
    }
}
