//! x402 for this project: the wire format (v1 and v2), EIP-3009 typed data,
//! exact USDC amounts, networks, the facilitator client, and the seller's
//! public API types. Shared by the buyer (`tools`) and the seller
//! (`gateway-lambda`) so both sides agree on every byte.
#![deny(clippy::float_arithmetic)]

pub mod catalog;
pub mod checksummed;
pub mod eip3009;
pub mod facilitator;
pub mod money;
pub mod network;
pub mod wire;

pub use money::Usdc;
pub use network::Network;
