//! The chain the agent pays on and the one address it pays (`NETWORK`,
//! `RPC_URL`, `USDC_CONTRACT`, `SELLER_WALLET`), and the seller's URL
//! (`GATEWAY_URL`).

use alloy::primitives::Address;
use plumbing::env::Env;
use x402::Network;

use super::{is_http_url, required_parse};

#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// `NETWORK` (`base-sepolia` | `base`, v2 names accepted), default `base-sepolia`.
    pub network: Network,
    /// `RPC_URL`, default the network's public RPC (used for balances only;
    /// payments are settled by the seller's facilitator).
    pub rpc_url: String,
    /// `USDC_CONTRACT`, default the network's USDC.
    pub usdc_contract: Address,
    /// `SELLER_WALLET` (required): the only address the agent ever pays.
    /// A quote naming any other `payTo` is refused before signing.
    pub seller_wallet: Address,
}

pub(super) fn chain(env: &mut Env) -> ChainConfig {
    let network = match env.opt("NETWORK") {
        None => Network::BaseSepolia,
        Some(s) => Network::from_any_name(&s).unwrap_or_else(|_| {
            env.problem(format!(
                "NETWORK={s:?} is not a supported network (base-sepolia, base)"
            ));
            Network::BaseSepolia
        }),
    };
    let chain = ChainConfig {
        network,
        rpc_url: env
            .opt("RPC_URL")
            .unwrap_or_else(|| default_rpc_url(network).into()),
        usdc_contract: env.parse_or("USDC_CONTRACT", network.default_usdc()),
        seller_wallet: required_parse(env, "SELLER_WALLET", "the only address the agent may pay"),
    };
    if chain.seller_wallet == Address::ZERO && env.opt("SELLER_WALLET").is_some() {
        env.problem("SELLER_WALLET must not be the zero address");
    }
    if !is_http_url(&chain.rpc_url) {
        env.problem("RPC_URL must be an http(s) URL");
    }
    chain
}

/// `GATEWAY_URL`, trailing slash trimmed; set but not an http(s) URL is a problem.
pub(super) fn gateway_url(env: &mut Env) -> Option<String> {
    let gateway_url = env.opt("GATEWAY_URL");
    if let Some(gateway_url) = &gateway_url
        && !is_http_url(gateway_url)
    {
        env.problem(format!(
            "GATEWAY_URL={gateway_url:?} must be an http(s) URL"
        ));
    }
    gateway_url.map(|u| u.trim_end_matches('/').to_owned())
}

fn default_rpc_url(network: Network) -> &'static str {
    match network {
        Network::Base => "https://mainnet.base.org",
        Network::BaseSepolia => "https://sepolia.base.org",
    }
}
