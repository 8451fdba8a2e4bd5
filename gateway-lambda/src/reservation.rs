//! In-flight reservations: one balance must not buy many generations.
//!
//! Every authorization a buyer signs passes `/verify` on its own, against the
//! whole balance: N concurrent requests with N nonces against a balance that
//! covers one would all verify, all generate (the model costs the seller real
//! money) and one would settle. So before generating, the gateway reserves
//! the price against the payer's on-chain balance minus what that payer
//! already has in flight; a request the balance cannot cover gets `402`
//! before any generation.
//!
//! The reservations of one payer are one record (a DynamoDB item, a file
//! locally), changed only by compare-and-set on its `version`, so instances
//! cannot both spend the same headroom. An entry is removed when its payment
//! is settled, refused or released; one left behind by a crash lapses at its
//! authorization's `validBefore`, after which that authorization can no longer
//! move money. Pure functions here; the store is
//! [`crate::store::ReservationStore`].

use alloy::primitives::{B256, U256};
use serde::{Deserialize, Serialize};

/// One payment in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    pub nonce: B256,
    /// Atomic units.
    pub amount: U256,
    /// The authorization's `validBefore` (unix seconds): after it, this
    /// payment can no longer be settled and the entry lapses.
    pub until: u64,
}

/// A payer's payments in flight, with the compare-and-set token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservations {
    pub entries: Vec<Reserved>,
    /// Incremented by every write.
    pub version: u64,
}

/// The balance does not cover this payment beside those in flight.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the payer's balance ({balance}) minus its payments in flight ({in_flight}) does not cover \
     {amount}"
)]
pub struct Shortfall {
    pub balance: U256,
    pub in_flight: U256,
    pub amount: U256,
}

impl Reservations {
    /// The total of entries still live at `now`.
    pub fn in_flight(&self, now: u64) -> U256 {
        self.entries
            .iter()
            .filter(|e| e.until > now)
            .fold(U256::ZERO, |a, e| a.saturating_add(e.amount))
    }

    /// The latest `until`: the record is useless after it (its TTL).
    pub fn last_until(&self) -> u64 {
        self.entries.iter().map(|e| e.until).max().unwrap_or(0)
    }
}

/// Adds `entry` at `now` if `balance` covers it beside the live entries;
/// lapsed entries are dropped. Reserving a nonce already reserved changes
/// nothing (a retry or a takeover of the same payment). Returns the next
/// record to write, or `None` if nothing needs writing.
pub fn reserve(
    current: &Reservations,
    entry: Reserved,
    balance: U256,
    now: u64,
) -> Result<Option<Reservations>, Shortfall> {
    if current.entries.iter().any(|e| e.nonce == entry.nonce) {
        return Ok(None);
    }
    let in_flight = current.in_flight(now);
    if in_flight.saturating_add(entry.amount) > balance {
        return Err(Shortfall {
            balance,
            in_flight,
            amount: entry.amount,
        });
    }
    let mut entries: Vec<Reserved> = current
        .entries
        .iter()
        .filter(|e| e.until > now)
        .cloned()
        .collect();
    entries.push(entry);
    Ok(Some(Reservations {
        entries,
        version: current.version + 1,
    }))
}

/// Removes `nonce`'s entry (and lapsed ones). `None` if it was not there.
pub fn release(current: &Reservations, nonce: B256, now: u64) -> Option<Reservations> {
    if !current.entries.iter().any(|e| e.nonce == nonce) {
        return None;
    }
    Some(Reservations {
        entries: current
            .entries
            .iter()
            .filter(|e| e.nonce != nonce && e.until > now)
            .cloned()
            .collect(),
        version: current.version + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u8, amount: u64, until: u64) -> Reserved {
        Reserved {
            nonce: B256::repeat_byte(n),
            amount: U256::from(amount),
            until,
        }
    }

    fn set(entries: Vec<Reserved>) -> Reservations {
        Reservations {
            entries,
            version: 4,
        }
    }

    #[test]
    fn reserves_only_what_the_balance_covers_beside_what_is_in_flight() {
        let bal = U256::from(100);
        // (name, current, new entry, now, accepted?, entries after)
        let cases: Vec<(&str, Reservations, Reserved, u64, bool, usize)> = vec![
            ("empty, fits", set(vec![]), r(1, 100, 50), 10, true, 1),
            ("empty, too much", set(vec![]), r(1, 101, 50), 10, false, 0),
            ("beside one, fits", set(vec![r(2, 60, 50)]), r(1, 40, 50), 10, true, 2),
            ("beside one, over", set(vec![r(2, 60, 50)]), r(1, 41, 50), 10, false, 0),
            (
                "a lapsed entry no longer counts and is dropped",
                set(vec![r(2, 100, 10)]),
                r(1, 100, 50),
                10,
                true,
                1,
            ),
        ];
        for (name, cur, e, now, ok, len) in cases {
            match reserve(&cur, e, bal, now) {
                Ok(Some(next)) => {
                    assert!(ok, "{name}");
                    assert_eq!(next.entries.len(), len, "{name}");
                    assert_eq!(next.version, cur.version + 1, "{name}");
                }
                Ok(None) => panic!("{name}: nothing written"),
                Err(s) => {
                    assert!(!ok, "{name}: {s}");
                    assert_eq!(s.balance, bal);
                }
            }
        }
    }

    #[test]
    fn reserving_the_same_nonce_again_changes_nothing() {
        let cur = set(vec![r(1, 100, 50)]);
        // Even with the balance already spent by its own settlement.
        assert_eq!(reserve(&cur, r(1, 100, 50), U256::ZERO, 10), Ok(None));
    }

    #[test]
    fn release_removes_the_entry_and_lapsed_ones() {
        let cur = set(vec![r(1, 10, 50), r(2, 10, 5), r(3, 10, 50)]);
        let next = release(&cur, B256::repeat_byte(1), 10).unwrap();
        assert_eq!(next.entries, vec![r(3, 10, 50)]);
        assert_eq!(next.version, 5);
        assert_eq!(release(&cur, B256::repeat_byte(9), 10), None);
        assert_eq!(cur.in_flight(10), U256::from(20));
        assert_eq!(cur.last_until(), 50);
    }
}
