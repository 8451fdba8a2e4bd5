//! The buyer side of x402: a client that pays only within an explicit
//! policy ([`client`], [`policy`]), the signers that may sign for it
//! ([`signer`]), the wallet's balances ([`wallet`]), the seller's quotes
//! ([`quote`]), and where bought images are kept ([`storage`]).
#![deny(clippy::float_arithmetic)]

pub mod client;
pub mod document;
pub mod names;
pub mod policy;
pub mod purchase;
pub mod quote;
pub mod signer;
pub mod storage;
pub mod wallet;
