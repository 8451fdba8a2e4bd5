//! The agent runtime: an Amazon Bedrock AgentCore Runtime container that
//! chats, and pays x402 sellers for images under a session budget.
//!
//! Data flows one way: request ([`server`]) -> session ([`session`]) -> tool
//! loop ([`turn`]) -> tool (`tools::toolbox`) -> payment (`tools` crate) ->
//! result -> session -> response, with progress as [`events::AgentEvent`]s.
//! The tools and their money rules (ledger, caps, consent) are the `tools`
//! crate's; this crate is the runtime around them: server, turn loop, models,
//! session store, observability, wiring.

pub mod chat;
pub mod config;
/// serde_json <-> Smithy `Document`: [`tools::document`].
pub use tools::document;
pub mod events;
pub mod model;
pub mod observability;
pub mod runtime_headers;
pub mod server;
pub mod session;
pub mod turn;
pub mod web;
pub mod wiring;
