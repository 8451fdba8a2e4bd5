//! `/ping` and what it reports: whether any turn is in flight.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Json, extract::State};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::AppState;

/// `/ping` state: how many units of work are in flight and since when the
/// status has been what it is.
#[derive(Clone)]
pub struct Health {
    state: Arc<watch::Sender<HealthState>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HealthState {
    in_flight: usize,
    since: u64,
}

/// What `/ping` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum PingStatus {
    Healthy,
    HealthyBusy,
}

impl Health {
    /// Unix-seconds wall clock.
    pub fn system() -> Self {
        Health::with_clock(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    pub fn with_clock(clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        let since = clock();
        Health {
            state: Arc::new(watch::Sender::new(HealthState {
                in_flight: 0,
                since,
            })),
            clock: Arc::new(clock),
        }
    }

    /// Marks work in flight until the guard is dropped. Background work
    /// (anything that must not be cut short by AgentCore stopping an idle
    /// session) takes one too.
    pub fn busy(&self) -> BusyGuard {
        let now = (self.clock)();
        self.state.send_modify(|s| {
            if s.in_flight == 0 {
                s.since = now;
            }
            s.in_flight += 1;
        });
        BusyGuard(self.clone())
    }

    /// Status and the unix time it last changed.
    pub fn status(&self) -> (PingStatus, u64) {
        let s = *self.state.borrow();
        let status = if s.in_flight == 0 {
            PingStatus::Healthy
        } else {
            PingStatus::HealthyBusy
        };
        (status, s.since)
    }

    /// Resolves when nothing is in flight (graceful shutdown waits on it so
    /// a SIGTERM never cuts a payment in half).
    pub async fn idle(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| s.in_flight == 0).await;
    }
}

/// Holds the service `HealthyBusy` while alive.
pub struct BusyGuard(Health);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let now = (self.0.clock)();
        self.0.state.send_modify(|s| {
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.since = now;
            }
        });
    }
}

pub(super) async fn ping(State(state): State<AppState>) -> Json<Value> {
    let (status, since) = state.health.status();
    Json(json!({"status": status, "time_of_last_update": since}))
}
