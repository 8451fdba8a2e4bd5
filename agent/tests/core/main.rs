//! The core of the agent, tested over its real boundaries: the Bedrock
//! adapter through the real SDK against a wire-format stand-in, the tool loop
//! with a scripted model, and the money rules against the local stack
//! (Anvil, the official x402 facilitator) with real payments.

mod access;
mod agentcore;
mod bedrock_server;
mod bedrock_wire;
mod consent;
mod declined;
mod money;
mod process;
mod scripted;
mod seller;
mod spans;
mod support;
mod tool_loop;
