//! The gateway against the local stack: Anvil with our EIP-3009 USDC, the
//! official x402 facilitator. Money moves for real; each test has its own
//! fresh buyer wallet and asserts the chain.

mod adversarial;
mod chain;
mod faults;
mod hostile;
mod interop;
mod logs;
mod paid;
mod support;
