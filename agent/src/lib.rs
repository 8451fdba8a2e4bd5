//! The agent runtime: an Amazon Bedrock AgentCore Runtime container that
//! chats, and pays x402 sellers for images under a session budget.
//!
//! Data flows one way: request ([`server`]) -> session ([`session`]) -> tool
//! loop ([`turn`]) -> tool ([`agent_tools`]) -> payment (`tools` crate) ->
//! result -> session -> response, with progress as [`events::AgentEvent`]s.

pub mod access;
pub mod agent_tools;
pub mod chat;
pub mod config;
pub mod declined;
/// serde_json <-> Smithy `Document`: [`tools::document`].
pub use tools::document;
pub mod events;
pub mod ledger;
pub mod model;
pub mod observability;
pub mod runtime_headers;
pub mod server;
pub mod session;
pub mod turn;
pub mod web;
pub mod wiring;
