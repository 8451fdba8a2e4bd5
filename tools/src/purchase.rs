//! What a purchase is made of, as data: the seller's [`Quote`] read from its
//! `402`, the [`PreparedPayment`] signed against it, and the [`Receipt`] of
//! its settlement. The client produces them, signers (AgentCore Payments)
//! take them, callers persist them.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use x402::{Network, Usdc, wire};

use crate::policy::Ask;

/// The seller's price for one request, normalised from its `402`, plus what
/// the payment must repeat verbatim. Serialisable: callers persist it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// x402 protocol version the seller spoke (1 or 2).
    pub version: u8,
    pub amount: Usdc,
    #[serde(with = "x402::checksummed")]
    pub pay_to: Address,
    #[serde(with = "x402::checksummed")]
    pub asset: Address,
    pub network: Network,
    /// The paid URL.
    pub resource: String,
    pub max_timeout_seconds: u64,
    /// The requirement the seller offered (a v2 payment repeats it as
    /// `accepted`; it also carries the token's EIP-712 name/version in
    /// `extra`). Stored as its JSON.
    pub requirement: x402::wire::Requirements,
    /// v2 `resource` object, repeated in the payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_info: Option<x402::wire::ResourceInfo>,
}

impl Quote {
    pub fn ask(&self) -> Ask {
        Ask {
            network: self.network,
            asset: self.asset,
            pay_to: self.pay_to,
            amount: self.amount,
            max_timeout_seconds: self.max_timeout_seconds,
        }
    }
}

/// A signed payment, ready to send. `header_value` is a bearer instrument
/// until settled: never logged (`Debug` hides it), only stored and sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedPayment {
    /// `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1), spelled as
    /// [`PreparedPayment::header_name_for`] gives it.
    pub header_name: String,
    pub header_value: String,
    pub amount: Usdc,
    #[serde(with = "x402::checksummed")]
    pub pay_to: Address,
    #[serde(with = "x402::checksummed")]
    pub payer: Address,
    /// EIP-3009 nonce (0x-hex): what makes the payment single-use on chain.
    pub nonce: String,
    /// Unix seconds after which the authorization can no longer settle.
    pub valid_before: u64,
}

impl PreparedPayment {
    /// The header a payment of x402 `version` goes in ([`wire::X_PAYMENT`]
    /// for v1, [`wire::PAYMENT_SIGNATURE`] otherwise), as `header_name`
    /// holds it: the spec's upper-case spelling, which is what the ledger
    /// stores (pinned by `ledger/format_v1.json`). Header names are
    /// case-insensitive, so the request sent is the same either way.
    pub fn header_name_for(version: u8) -> String {
        let name = if version == 1 {
            wire::X_PAYMENT
        } else {
            wire::PAYMENT_SIGNATURE
        };
        name.as_str().to_ascii_uppercase()
    }
}

impl std::fmt::Debug for PreparedPayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPayment")
            .field("header_name", &self.header_name)
            .field("header_value", &"[redacted]")
            .field("amount", &self.amount)
            .field("pay_to", &self.pay_to)
            .field("payer", &self.payer)
            .field("nonce", &self.nonce)
            .field("valid_before", &self.valid_before)
            .finish()
    }
}

/// What a settled payment bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Settlement transaction hash.
    pub transaction: String,
    /// As the seller named it (`base-sepolia` for v1, `eip155:84532` for v2).
    pub network: String,
    pub payer: String,
    pub amount: Usdc,
    #[serde(with = "x402::checksummed")]
    pub pay_to: Address,
    pub resource: String,
}

#[cfg(test)]
mod tests {
    use super::PreparedPayment;

    /// The ledger stores the spec's spelling (`ledger/format_v1.json`), not
    /// `HeaderName`'s lower case.
    #[test]
    fn header_names_are_spelled_as_the_ledger_stores_them() {
        assert_eq!(PreparedPayment::header_name_for(2), "PAYMENT-SIGNATURE");
        assert_eq!(PreparedPayment::header_name_for(1), "X-PAYMENT");
    }
}
