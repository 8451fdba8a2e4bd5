//! API Gateway WebSocket chat Lambda: the browser's way to talk to the agent.
//!
//! Routes: `$connect` records the connection (DynamoDB, with a TTL),
//! `$disconnect` forgets it, `$default` takes a chat message, calls the agent on
//! Bedrock AgentCore Runtime (`InvokeAgentRuntime`, streamed as SSE) and relays
//! every agent event to the browser as it arrives (`PostToConnection`).
//! The client protocol and the frame-size rule are in [`outbound`].
//!
//! Each outside system sits behind one trait with its AWS implementation:
//! [`connections::ConnectionStore`] (DynamoDB), [`callback::ClientSink`]
//! (API Gateway Management API), [`runtime::AgentRuntime`] (AgentCore).

pub mod callback;
pub mod config;
pub mod connections;
pub mod handler;
pub mod message;
pub mod outbound;
pub mod runtime;

pub use handler::{Handler, Outcome};
