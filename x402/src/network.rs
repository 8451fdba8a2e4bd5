//! The EVM networks this project pays on, under both of x402's names for them.
//!
//! x402 v1 names networks with slugs (`base-sepolia`); v2 uses CAIP-2 ids
//! (`eip155:84532`). Both denote the same chain, the same USDC contract and
//! the same explorer; this type is the one place that knows the mapping.

use std::{fmt, str::FromStr};

use alloy::primitives::{Address, address};
use serde::{Deserialize, Serialize};

/// USDC on Base Sepolia (and, locally, our EIP-3009 token placed at the same address).
pub const BASE_SEPOLIA_USDC: Address = address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e");
/// USDC on Base mainnet.
pub const BASE_USDC: Address = address!("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    BaseSepolia,
    Base,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown network {0:?} (expected base-sepolia, eip155:84532, base or eip155:8453)")]
pub struct UnknownNetwork(pub String);

impl Network {
    pub const fn chain_id(self) -> u64 {
        match self {
            Network::BaseSepolia => 84532,
            Network::Base => 8453,
        }
    }

    /// The x402 v1 network name.
    pub const fn v1_name(self) -> &'static str {
        match self {
            Network::BaseSepolia => "base-sepolia",
            Network::Base => "base",
        }
    }

    /// The x402 v2 (CAIP-2) network id.
    pub const fn caip2(self) -> &'static str {
        match self {
            Network::BaseSepolia => "eip155:84532",
            Network::Base => "eip155:8453",
        }
    }

    /// The name for a given x402 version.
    pub const fn name_for(self, version: u8) -> &'static str {
        if version == 1 {
            self.v1_name()
        } else {
            self.caip2()
        }
    }

    pub const fn default_usdc(self) -> Address {
        match self {
            Network::BaseSepolia => BASE_SEPOLIA_USDC,
            Network::Base => BASE_USDC,
        }
    }

    pub fn explorer_tx_url(self, tx: &str) -> String {
        match self {
            Network::BaseSepolia => format!("https://sepolia.basescan.org/tx/{tx}"),
            Network::Base => format!("https://basescan.org/tx/{tx}"),
        }
    }

    /// Accepts either the v1 or the v2 name.
    pub fn from_any_name(s: &str) -> Result<Self, UnknownNetwork> {
        match s {
            "base-sepolia" | "eip155:84532" => Ok(Network::BaseSepolia),
            "base" | "eip155:8453" => Ok(Network::Base),
            _ => Err(UnknownNetwork(s.to_owned())),
        }
    }
}

impl FromStr for Network {
    type Err = UnknownNetwork;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Network::from_any_name(s)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v1_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_names_map_to_one_network() {
        for n in [Network::BaseSepolia, Network::Base] {
            assert_eq!(Network::from_any_name(n.v1_name()).unwrap(), n);
            assert_eq!(Network::from_any_name(n.caip2()).unwrap(), n);
        }
        assert!(Network::from_any_name("eip155:1").is_err());
        assert_eq!(Network::BaseSepolia.chain_id(), 84532);
    }
}
