//! One lock per actor + session: the turns of one session run one at a time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OwnedMutexGuard;

use crate::session::ids::session_key;

/// One async lock per (actor, session), created on demand and dropped when
/// nobody holds or waits for it, so the map does not grow with every
/// session ever seen.
#[derive(Clone, Default)]
pub(super) struct SessionLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

pub(super) struct SessionGuard {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    locks: SessionLocks,
}

impl SessionLocks {
    pub(super) async fn lock(&self, actor: &str, session: &str) -> SessionGuard {
        // Keyed like the session store, so every spelling that reaches one
        // stored session (and its one budget) waits for the same lock.
        let key = session_key(actor, session);
        let mutex = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        SessionGuard {
            guard: Some(guard),
            key,
            locks: self.clone(),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map holds it: no holder, no waiter.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}
