//! The agent's tools and what they stand on.
//!
//! - The tools themselves ([`toolbox`]: `estimate_image_cost`,
//!   `generate_image`, `make_payment`, `check_balance`, `analyze_image`,
//!   one file each) and the money rules they follow: the payment
//!   [`ledger`] (a request's state machine, the budget and consent rules),
//!   what a declined payment means on chain ([`declined`]), the daily caps
//!   and session owners across sessions ([`access`]), and what they show the
//!   user ([`progress`]).
//! - The buyer side of x402: the seller as the tools see it ([`seller`]), a
//!   client that pays only within an explicit policy ([`client`],
//!   [`policy`]), the signers that may sign for it ([`signer`]), the
//!   wallet's balances ([`wallet`]), the seller's quotes ([`quote`]), and
//!   where bought images are kept ([`storage`]).
#![deny(clippy::float_arithmetic)]

pub mod access;
pub mod client;
pub mod clock;
pub mod declined;
pub mod document;
pub mod ids;
pub mod ledger;
pub mod names;
pub mod policy;
pub mod progress;
pub mod purchase;
pub mod quote;
pub mod seller;
pub mod signer;
pub mod storage;
pub mod toolbox;
pub mod wallet;
