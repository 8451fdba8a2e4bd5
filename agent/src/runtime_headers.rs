//! The headers AgentCore Runtime sets on every invocation it forwards to the
//! container (`/invocations`, `/ws`).

/// Session id AgentCore assigns to a conversation (33-256 chars when set by AgentCore).
pub const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// Id of one invocation, for logs.
pub const REQUEST_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-request-id";
/// The caller's user id; becomes the AgentCore Memory actor.
pub const USER_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-user-id";
