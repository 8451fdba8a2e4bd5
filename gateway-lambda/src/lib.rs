//! The x402 seller gateway: seller-set prices, verify -> generate -> settle,
//! nothing lost.

pub mod generate;
pub mod aws;
