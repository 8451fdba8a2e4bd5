//! Addresses as EIP-55 checksummed strings. alloy serializes lowercase, but the
//! official x402 SDK compares offered and accepted addresses as strings, so
//! everything we put on the wire is checksummed. Parsing accepts any case.

use alloy::primitives::Address;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(a: &Address, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&a.to_checksum(None))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
    Address::deserialize(d)
}
