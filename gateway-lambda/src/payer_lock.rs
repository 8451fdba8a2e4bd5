//! One reservation change at a time per payer inside this instance.
//!
//! A payer's reservations are one record changed by compare-and-set
//! ([`crate::reservation`]). Many requests from one wallet at once (an agent
//! serving many sessions) would otherwise keep invalidating each other's
//! version until some run out of attempts and are turned away although
//! nothing is wrong with their payment. Taking this lock around the
//! read-decide-write leaves the compare-and-set to settle only what other
//! instances do. Written here because it is a map of weak async mutexes, a
//! few lines that no maintained crate we depend on provides.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use alloy::primitives::Address;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct PayerLocks {
    inner: Mutex<Locks>,
}

#[derive(Default)]
struct Locks {
    by_payer: HashMap<Address, Weak<AsyncMutex<()>>>,
    /// Entries whose lock nobody holds are dropped when the map reaches this
    /// size, which then doubles: amortised O(1) per new payer.
    sweep_at: usize,
}

impl PayerLocks {
    /// Waits for `payer`'s turn; the turn ends when the guard is dropped.
    pub async fn lock(&self, payer: Address) -> OwnedMutexGuard<()> {
        let lock = {
            let mut l = self.inner.lock().expect("payer lock map poisoned");
            match l.by_payer.get(&payer).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    if l.by_payer.len() >= l.sweep_at {
                        l.by_payer.retain(|_, w| w.strong_count() > 0);
                        l.sweep_at = (l.by_payer.len() * 2).max(64);
                    }
                    let lock = Arc::new(AsyncMutex::new(()));
                    l.by_payer.insert(payer, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().by_payer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_payer_waits_for_its_turn_and_others_do_not() {
        let locks = PayerLocks::default();
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let held = locks.lock(a).await;
        // Another payer is not held up.
        let _b = locks.lock(b).await;
        // The same payer is, until the guard goes.
        assert!(
            tokio::time::timeout(std::time::Duration::ZERO, locks.lock(a))
                .await
                .is_err()
        );
        drop(held);
        let _a = locks.lock(a).await;
    }

    #[tokio::test]
    async fn locks_nobody_holds_are_swept() {
        let locks = PayerLocks::default();
        for i in 0..1_000u16 {
            let mut a = [0u8; 20];
            a[..2].copy_from_slice(&i.to_be_bytes());
            drop(locks.lock(Address::from(a)).await);
        }
        assert!(locks.len() <= 128, "{} entries kept", locks.len());
    }
}
