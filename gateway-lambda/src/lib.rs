//! The x402 seller gateway: seller-set prices, verify -> generate -> settle,
//! nothing lost, nothing delivered without proof of payment. [`app`] is the
//! HTTP edge, [`flow`] the paid flow, and its rules are pure functions with
//! table tests: [`payment`] (does this header pay for this request),
//! [`claim`] (claim or replay), [`reservation`] (one balance, one
//! generation), [`settlement`] (proof of payment, when to release);
//! [`store`] draws the payment state machine.

pub mod app;
pub mod aws;
pub mod chain;
pub mod claim;
pub mod config;
pub mod error;
pub mod flow;
pub mod generate;
pub mod payer_lock;
pub mod payment;
pub mod pricing;
pub mod reservation;
pub mod settlement;
pub mod state;
pub mod store;
pub mod wiring;

pub use app::app;
pub use state::AppState;

/// Serves the gateway for `state` on `listener` until `shutdown` resolves;
/// paid flows in flight finish first. The binary only reads the
/// configuration, binds and calls this (or hands [`app`] to the Lambda
/// runtime).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: std::sync::Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    plumbing::serve(listener, app(state), shutdown).await
}
