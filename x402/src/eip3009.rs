//! EIP-3009 `transferWithAuthorization`: the signed message behind an x402
//! `exact` EVM payment.
//!
//! The buyer signs, as EIP-712 typed data under the token's own domain
//! (`name`/`version` from the requirement's `extra`, the chain id, the token
//! address), an authorization to move `value` from `from` to `to` between
//! `validAfter` and `validBefore`, identified by a random 32-byte `nonce`.
//! Anyone holding the signature (the facilitator) can submit it; the token
//! marks `(from, nonce)` used, so one authorization moves money at most once.

use alloy::{
    primitives::{Address, B256, Signature, U256},
    sol,
    sol_types::{Eip712Domain, SolStruct},
};
use alloy_dyn_abi::{Resolver, TypedData};
use serde::{Deserialize, Serialize};

sol! {
    /// The EIP-712 struct USDC signs for `transferWithAuthorization`.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

pub use usdc::IUsdc;

#[allow(clippy::too_many_arguments)] // generated bindings mirror the ABI
mod usdc {
    alloy::sol! {
    /// The subset of the USDC (FiatToken v2 / EIP-3009) interface we read and call.
    #[sol(rpc)]
    interface IUsdc {
        event Transfer(address indexed from, address indexed to, uint256 value);
        event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);

        function name() external view returns (string);
        function version() external view returns (string);
        function decimals() external view returns (uint8);
        function balanceOf(address account) external view returns (uint256);
        function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
        function DOMAIN_SEPARATOR() external view returns (bytes32);
        function transferWithAuthorization(
            address from, address to, uint256 value, uint256 validAfter, uint256 validBefore,
            bytes32 nonce, bytes signature) external;
    }
    }
}

/// The authorization as it travels in an x402 payload: numbers as decimal
/// strings, addresses checksummed, nonce as 0x-hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    #[serde(with = "crate::checksummed")]
    pub from: Address,
    #[serde(with = "crate::checksummed")]
    pub to: Address,
    #[serde(with = "dec_u256")]
    pub value: U256,
    #[serde(with = "dec_u256")]
    pub valid_after: U256,
    #[serde(with = "dec_u256")]
    pub valid_before: U256,
    pub nonce: B256,
}

impl Authorization {
    pub fn to_typed(&self) -> TransferWithAuthorization {
        TransferWithAuthorization {
            from: self.from,
            to: self.to,
            value: self.value,
            validAfter: self.valid_after,
            validBefore: self.valid_before,
            nonce: self.nonce,
        }
    }

    /// The EIP-712 digest a signer signs for this authorization.
    pub fn signing_hash(&self, domain: &Eip712Domain) -> B256 {
        self.to_typed().eip712_signing_hash(domain)
    }

    /// The address that produced `signature` over this authorization, if the
    /// signature parses. Compare with `from` to check it.
    pub fn recover_signer(&self, domain: &Eip712Domain, signature: &[u8]) -> Option<Address> {
        let sig = Signature::try_from(signature).ok()?;
        sig.recover_address_from_prehash(&self.signing_hash(domain))
            .ok()
    }

    /// A fresh random 32-byte nonce.
    pub fn random_nonce() -> B256 {
        B256::from(rand::random::<[u8; 32]>())
    }
}

/// The token's EIP-712 domain.
pub fn domain(name: &str, version: &str, chain_id: u64, token: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(name.to_owned().into()),
        Some(version.to_owned().into()),
        Some(U256::from(chain_id)),
        Some(token),
        None,
    )
}

/// The authorization as EIP-712 typed data (alloy's [`TypedData`]): the
/// struct's types from the `sol!` definition, the message in the x402 wire
/// form ([`Authorization`]'s serde: decimal amounts, checksummed addresses).
pub fn typed_data(auth: &Authorization, domain: &Eip712Domain) -> TypedData {
    TypedData {
        domain: domain.clone(),
        resolver: Resolver::from_struct::<TransferWithAuthorization>(),
        primary_type: TransferWithAuthorization::NAME.into(),
        message: serde_json::to_value(auth).expect("an authorization serializes"),
    }
}

/// The full EIP-712 typed-data document (`eth_signTypedData_v4` shape) for an
/// authorization: what a remote signer that inspects fields (CDP) receives.
///
/// [`typed_data`] with the domain written out here rather than by alloy's
/// serde: CDP's typed-data message takes `chainId` as a number (alloy writes
/// a hex string), and the document keeps the `EIP712Domain` type list (alloy
/// leaves it out and infers it from the domain) and checksummed addresses.
pub fn typed_data_json(auth: &Authorization, domain: &Eip712Domain) -> serde_json::Value {
    let TypedData {
        mut resolver,
        primary_type,
        message,
        ..
    } = typed_data(auth, domain);
    resolver
        .ingest_string(domain.encode_type())
        .expect("alloy's own EIP712Domain type parses");
    let mut dom = serde_json::Map::new();
    if let Some(n) = &domain.name {
        dom.insert("name".into(), n.to_string().into());
    }
    if let Some(v) = &domain.version {
        dom.insert("version".into(), v.to_string().into());
    }
    if let Some(c) = domain.chain_id {
        dom.insert(
            "chainId".into(),
            serde_json::json!(u64::try_from(c).unwrap_or(u64::MAX)),
        );
    }
    if let Some(a) = domain.verifying_contract {
        dom.insert("verifyingContract".into(), a.to_checksum(None).into());
    }
    if let Some(salt) = domain.salt {
        dom.insert("salt".into(), salt.to_string().into());
    }
    serde_json::json!({
        "domain": dom,
        "types": resolver,
        "primaryType": primary_type,
        "message": message,
    })
}

/// `U256` as a decimal string, the x402 wire form (alloy's own serde is hex).
pub mod dec_u256 {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a decimal integer"
            )));
        }
        U256::from_str_radix(&s, 10).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    fn sample() -> Authorization {
        Authorization {
            from: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
            to: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            value: U256::from(40_000u64),
            valid_after: U256::from(0u64),
            valid_before: U256::from(2_000_000_000u64),
            nonce: B256::repeat_byte(7),
        }
    }

    #[test]
    fn wire_form_is_decimal_strings_and_checksummed() {
        let j = serde_json::to_value(sample()).unwrap();
        assert_eq!(j["value"], "40000");
        assert_eq!(j["validBefore"], "2000000000");
        assert_eq!(j["from"], "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
        let back: Authorization = serde_json::from_value(j).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn refuses_hex_or_negative_numbers() {
        let mut j = serde_json::to_value(sample()).unwrap();
        j["value"] = "0x10".into();
        assert!(serde_json::from_value::<Authorization>(j.clone()).is_err());
        j["value"] = "-1".into();
        assert!(serde_json::from_value::<Authorization>(j).is_err());
    }

    /// The document CDP receives, field for field (as it was when it was
    /// written out by hand): decimal amounts, checksummed addresses, the
    /// chain id as a number, the domain's own type list.
    #[test]
    fn typed_data_document_is_the_eth_sign_typed_data_v4_shape() {
        let d = domain("USDC", "2", 84532, crate::network::BASE_SEPOLIA_USDC);
        let transfer = serde_json::json!([
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "validAfter", "type": "uint256"},
            {"name": "validBefore", "type": "uint256"},
            {"name": "nonce", "type": "bytes32"}
        ]);
        let message = serde_json::json!({
            "from": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "value": "40000",
            "validAfter": "0",
            "validBefore": "2000000000",
            "nonce": "0x0707070707070707070707070707070707070707070707070707070707070707",
        });
        assert_eq!(
            typed_data_json(&sample(), &d),
            serde_json::json!({
                "domain": {
                    "name": "USDC",
                    "version": "2",
                    "chainId": 84532,
                    "verifyingContract": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                },
                "types": {
                    "EIP712Domain": [
                        {"name": "name", "type": "string"},
                        {"name": "version", "type": "string"},
                        {"name": "chainId", "type": "uint256"},
                        {"name": "verifyingContract", "type": "address"}
                    ],
                    "TransferWithAuthorization": transfer,
                },
                "primaryType": "TransferWithAuthorization",
                "message": message,
            })
        );
        // A domain without version and contract lists only what it has.
        let partial = Eip712Domain::new(
            Some("USD Coin".into()),
            None,
            Some(U256::from(8453u64)),
            None,
            None,
        );
        assert_eq!(
            typed_data_json(&sample(), &partial),
            serde_json::json!({
                "domain": {"name": "USD Coin", "chainId": 8453},
                "types": {
                    "EIP712Domain": [
                        {"name": "name", "type": "string"},
                        {"name": "chainId", "type": "uint256"}
                    ],
                    "TransferWithAuthorization": transfer,
                },
                "primaryType": "TransferWithAuthorization",
                "message": message,
            })
        );
    }

    #[test]
    fn typed_data_document_hashes_like_the_sol_struct() {
        // The JSON document a remote signer receives must describe the same
        // digest we compute locally.
        let d = domain("USDC", "2", 84532, crate::network::BASE_SEPOLIA_USDC);
        let doc = typed_data_json(&sample(), &d);
        let td: alloy_dyn_abi::TypedData = serde_json::from_value(doc).unwrap();
        assert_eq!(td.eip712_signing_hash().unwrap(), sample().signing_hash(&d));
        assert_eq!(
            typed_data(&sample(), &d).eip712_signing_hash().unwrap(),
            sample().signing_hash(&d)
        );
    }
}
