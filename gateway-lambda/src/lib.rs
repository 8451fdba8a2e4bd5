//! The x402 seller gateway: seller-set prices, verify -> generate -> settle,
//! nothing lost. See [`app`] for the paid flow and [`store`] for the payment
//! state machine.

pub mod app;
pub mod aws;
pub mod chain;
pub mod config;
pub mod generate;
pub mod payment;
pub mod pricing;
pub mod store;
pub mod wiring;

pub use app::{AppState, app};
