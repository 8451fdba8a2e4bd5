//! The buyer side of x402: a client that pays only within an explicit
//! policy, the signers that may sign for it, the wallet's balances, and
//! where bought images are kept.

pub mod signer;
