//! The service half of the agent, tested over its real boundaries: the HTTP /
//! SSE / WebSocket contract in-process and over loopback, and the session
//! stores against the local stack's moto.

mod binary;
mod contract;
mod memory_store;
mod otlp;
mod support;
