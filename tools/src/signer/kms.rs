//! AWS KMS: an `ECC_SECG_P256K1` key that signs digests and never leaves KMS.
//!
//! Written on `aws-sdk-kms` directly rather than `alloy-signer-aws`: that
//! crate pins `aws-smithy-types =1.6.1`, which conflicts with the AWS SDK
//! versions the rest of the workspace uses. The work is small:
//! - `GetPublicKey` returns a DER `SubjectPublicKeyInfo`; its last 65 bytes
//!   are the uncompressed secp256k1 point, whose Keccak hash gives the address.
//! - `Sign` (`MessageType::Digest`, `ECDSA_SHA_256`) over the EIP-712 digest
//!   returns a DER `(r, s)`. Ethereum wants low-s (EIP-2) and a recovery id,
//!   which KMS does not give: normalise s, then try both parities and keep
//!   the one that recovers to the key's address.

use alloy::{
    primitives::{Address, B256, Signature, U256, keccak256},
    sol_types::Eip712Domain,
};
use async_trait::async_trait;
use aws_sdk_kms::{
    Client,
    primitives::Blob,
    types::{MessageType, SigningAlgorithmSpec},
};
use x402::eip3009::Authorization;

use super::{PaymentSigner, SignerError};

/// secp256k1 group order n, and n/2 (the low-s bound).
const SECP256K1_N: U256 = U256::from_be_slice(&[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
]);

pub struct KmsSigner {
    client: Client,
    key_id: String,
    address: Address,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner")
            .field("key_id", &self.key_id)
            .field("address", &self.address)
            .finish()
    }
}

fn remote(e: impl std::fmt::Display) -> SignerError {
    SignerError::Remote(format!("KMS: {e}"))
}

impl KmsSigner {
    pub async fn connect(client: Client, key_id: String) -> Result<Self, SignerError> {
        let out = client
            .get_public_key()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|e| remote(aws_sdk_kms::error::DisplayErrorContext(e)))?;
        let der = out
            .public_key()
            .ok_or_else(|| remote("no public key"))?
            .as_ref();
        let address = address_from_spki(der)?;
        Ok(KmsSigner {
            client,
            key_id,
            address,
        })
    }

    async fn sign_digest(&self, digest: B256) -> Result<Signature, SignerError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(digest.as_slice()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| remote(aws_sdk_kms::error::DisplayErrorContext(e)))?;
        let der = out
            .signature()
            .ok_or_else(|| remote("no signature"))?
            .as_ref();
        let (r, s) = parse_der_signature(der)?;
        let s = if s > SECP256K1_N >> 1 {
            SECP256K1_N - s
        } else {
            s
        };
        for parity in [false, true] {
            let sig = Signature::new(r, s, parity);
            if sig.recover_address_from_prehash(&digest).ok() == Some(self.address) {
                return Ok(sig);
            }
        }
        Err(SignerError::WrongSigner {
            expected: self.address,
        })
    }
}

/// The address of a DER `SubjectPublicKeyInfo` holding an uncompressed
/// secp256k1 point (`04 || x || y`, the last 65 bytes).
pub fn address_from_spki(der: &[u8]) -> Result<Address, SignerError> {
    if der.len() < 65 || der[der.len() - 65] != 0x04 {
        return Err(remote("public key is not an uncompressed EC point"));
    }
    let point = &der[der.len() - 64..];
    Ok(Address::from_slice(&keccak256(point)[12..]))
}

/// `SEQUENCE { INTEGER r, INTEGER s }` (short-form lengths: an ECDSA
/// secp256k1 signature is at most 72 bytes).
pub fn parse_der_signature(der: &[u8]) -> Result<(U256, U256), SignerError> {
    let bad = || remote("malformed DER signature");
    let int = |b: &[u8]| -> Result<(U256, usize), SignerError> {
        if b.len() < 2 || b[0] != 0x02 {
            return Err(bad());
        }
        let len = usize::from(b[1]);
        let v = b.get(2..2 + len).ok_or_else(bad)?;
        let v = if v.first() == Some(&0) { &v[1..] } else { v };
        if v.len() > 32 {
            return Err(bad());
        }
        Ok((U256::from_be_slice(v), 2 + len))
    };
    if der.len() < 2 || der[0] != 0x30 || usize::from(der[1]) != der.len() - 2 {
        return Err(bad());
    }
    let (r, n) = int(&der[2..])?;
    let (s, _) = int(&der[2 + n..])?;
    Ok((r, s))
}

#[async_trait]
impl PaymentSigner for KmsSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transfer_authorization(
        &self,
        auth: &Authorization,
        domain: &Eip712Domain,
    ) -> Result<Signature, SignerError> {
        if auth.from != self.address {
            return Err(SignerError::WrongSigner {
                expected: auth.from,
            });
        }
        self.sign_digest(auth.signing_hash(domain)).await
    }

    fn kind(&self) -> &'static str {
        "kms"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_signatures_parse_with_and_without_sign_padding() {
        // r with a leading 0x00 pad (high bit set), s short.
        let mut der = vec![0x30, 0, 0x02, 33, 0x00];
        der.extend([0x80; 32]);
        der.extend([0x02, 2, 0x01, 0x02]);
        der[1] = u8::try_from(der.len() - 2).unwrap();
        let (r, s) = parse_der_signature(&der).unwrap();
        assert_eq!(r, U256::from_be_slice(&[0x80; 32]));
        assert_eq!(s, U256::from(0x0102));
        assert!(parse_der_signature(&[0x30, 1, 0]).is_err());
        assert!(parse_der_signature(&[]).is_err());
    }
}
