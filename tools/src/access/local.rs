//! The local [`AccessStore`]: one JSON file, rewritten atomically (temporary
//! file, `fsync`, rename) under a lock on every change, so a reservation is
//! durable before the payment it covers is signed and survives `kill -9`.
//! One process owns the file (like the local session store); within it, the
//! lock makes check-and-reserve one step for all sessions.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::policy::caps::{Committed, DailyCaps, check_caps};
use alloy::primitives::Address;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use x402::Usdc;

use super::{AccessError, AccessStore, Claim, Reservation};

/// `<dir>/access.json`.
pub struct LocalAccessStore {
    /// `None`: kept in memory only ([`LocalAccessStore::in_memory`]).
    path: Option<PathBuf>,
    state: Mutex<Option<State>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// Session id -> owning user.
    owners: BTreeMap<String, String>,
    /// Counter key ([`user_key`], [`wallet_key`]) -> committed.
    committed: BTreeMap<String, Usdc>,
    /// Reservation id -> its counters and amount.
    reservations: BTreeMap<String, Held>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Held {
    user_key: String,
    wallet_key: String,
    amount: Usdc,
}

fn user_key(user: &str, day: &str) -> String {
    format!("user\n{user}\n{day}")
}

fn wallet_key(wallet: Address, day: &str) -> String {
    format!("wallet\n{wallet:#x}\n{day}")
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> AccessError {
    AccessError::Unavailable(format!("{}: {e}", path.display()))
}

impl LocalAccessStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalAccessStore {
            path: Some(dir.into().join("access.json")),
            state: Mutex::new(None),
        }
    }

    /// Not durable: for tests of other parts, and for a server built
    /// without a configured store.
    pub fn in_memory() -> Self {
        LocalAccessStore {
            path: None,
            state: Mutex::new(None),
        }
    }

    async fn load(&self) -> Result<State, AccessError> {
        let Some(path) = &self.path else {
            return Ok(State::default());
        };
        match tokio::fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| unavailable(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(unavailable(path, e)),
        }
    }

    async fn save(&self, state: &State) -> Result<(), AccessError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let shown = path.clone();
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| unavailable(&shown, e))?
        .map_err(|e| unavailable(&shown, e))
    }

    /// Runs `change` on the current state under the lock; saves it when
    /// `change` says so, before the lock is released.
    async fn update<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<(T, bool), AccessError>,
    ) -> Result<T, AccessError> {
        let mut guard = self.state.lock().await;
        if guard.is_none() {
            *guard = Some(self.load().await?);
        }
        let mut next = guard.clone().expect("loaded above");
        let (out, changed) = change(&mut next)?;
        if changed {
            self.save(&next).await?;
            *guard = Some(next);
        }
        Ok(out)
    }
}

#[async_trait]
impl AccessStore for LocalAccessStore {
    async fn claim_session(&self, user: &str, session: &str) -> Result<Claim, AccessError> {
        self.update(|s| match s.owners.get(session) {
            Some(owner) if owner == user => Ok((Claim::Owned, false)),
            Some(_) => Ok((Claim::OtherUser, false)),
            None => {
                s.owners.insert(session.to_owned(), user.to_owned());
                Ok((Claim::Owned, true))
            }
        })
        .await
    }

    async fn reserve(&self, r: &Reservation, caps: &DailyCaps) -> Result<(), AccessError> {
        self.update(|s| {
            if s.reservations.contains_key(&r.id) {
                return Ok(((), false));
            }
            let (uk, wk) = (user_key(&r.user, &r.day), wallet_key(r.wallet, &r.day));
            let committed = Committed {
                user: s.committed.get(&uk).copied().unwrap_or_default(),
                wallet: s.committed.get(&wk).copied().unwrap_or_default(),
            };
            check_caps(r.amount, committed, caps)?;
            for k in [&uk, &wk] {
                let c = s.committed.entry(k.clone()).or_default();
                *c = c
                    .checked_add(r.amount)
                    .unwrap_or(Usdc::from_atomic(u64::MAX));
            }
            s.reservations.insert(
                r.id.clone(),
                Held {
                    user_key: uk,
                    wallet_key: wk,
                    amount: r.amount,
                },
            );
            Ok(((), true))
        })
        .await
    }

    async fn release(&self, r: &Reservation) -> Result<(), AccessError> {
        self.update(|s| {
            let Some(held) = s.reservations.remove(&r.id) else {
                return Ok(((), false));
            };
            for k in [&held.user_key, &held.wallet_key] {
                if let Some(c) = s.committed.get_mut(k) {
                    *c = c.saturating_sub(held.amount);
                }
            }
            Ok(((), true))
        })
        .await
    }

    async fn committed(
        &self,
        user: &str,
        wallet: Address,
        day: &str,
    ) -> Result<Committed, AccessError> {
        self.update(|s| {
            let get = |k: String| s.committed.get(&k).copied().unwrap_or_default();
            Ok((
                Committed {
                    user: get(user_key(user, day)),
                    wallet: get(wallet_key(wallet, day)),
                },
                false,
            ))
        })
        .await
    }
}
