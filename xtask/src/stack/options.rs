//! Which ports the stack listens on and what it starts.

use anyhow::{Context, Result};

/// Default ports (CONTRIBUTING.md), each overridable by its variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub anvil: u16,
    pub facilitator: u16,
    pub moto: u16,
    pub gateway: u16,
    pub agent: u16,
}

impl Ports {
    pub const DEFAULT: Ports = Ports {
        anvil: 18545,
        facilitator: 14021,
        moto: 15000,
        gateway: 13001,
        agent: 18080,
    };

    /// Defaults overridden by `STACK_ANVIL_PORT`, `STACK_FACILITATOR_PORT`,
    /// `STACK_MOTO_PORT`, `STACK_GATEWAY_PORT`, `STACK_AGENT_PORT`.
    pub fn from_env() -> Result<Ports> {
        let d = Ports::DEFAULT;
        Ok(Ports {
            anvil: port_from_env("STACK_ANVIL_PORT", d.anvil)?,
            facilitator: port_from_env("STACK_FACILITATOR_PORT", d.facilitator)?,
            moto: port_from_env("STACK_MOTO_PORT", d.moto)?,
            gateway: port_from_env("STACK_GATEWAY_PORT", d.gateway)?,
            agent: port_from_env("STACK_AGENT_PORT", d.agent)?,
        })
    }
}

fn port_from_env(var: &str, default: u16) -> Result<u16> {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{var}={v:?} is not a port")),
        Err(_) => Ok(default),
    }
}

#[derive(Clone, Debug)]
pub struct StackOptions {
    pub ports: Ports,
    /// Start the gateway and the agent too (when their binaries are real).
    pub apps: bool,
    /// Build the app binaries first (see [`super::build_apps`]).
    pub build_apps: bool,
    /// Build them as the tests do (`--workspace --all-targets`), so a
    /// following `cargo test` reuses every dependency; off for the demo,
    /// which needs only the two binaries.
    pub build_for_tests: bool,
    /// Which build of the apps to run (`target/debug` or `target/release`).
    pub release: bool,
}

impl StackOptions {
    pub fn from_env() -> Result<StackOptions> {
        Ok(StackOptions {
            ports: Ports::from_env()?,
            apps: true,
            build_apps: true,
            build_for_tests: true,
            release: false,
        })
    }
}
