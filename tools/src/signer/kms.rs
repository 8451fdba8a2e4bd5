//! AWS KMS: an `ECC_SECG_P256K1` key that signs digests and never leaves KMS.
//!
//! Written on `aws-sdk-kms` directly rather than `alloy-signer-aws`: that
//! crate pins `aws-smithy-types =1.6.1`, which conflicts with the AWS SDK
//! versions the rest of the workspace uses. The work is small, and the
//! encodings are read with `k256` (the secp256k1 crate alloy itself uses):
//! - `GetPublicKey` returns a DER `SubjectPublicKeyInfo` holding the
//!   secp256k1 point, whose Keccak hash (uncompressed, without the `04`
//!   tag) gives the address.
//! - `Sign` (`MessageType::Digest`, `ECDSA_SHA_256`) over the EIP-712 digest
//!   returns a DER `(r, s)`. Ethereum wants low-s (EIP-2) and a recovery id,
//!   which KMS does not give: normalise s, then try both parities and keep
//!   the one that recovers to the key's address.

use alloy::{
    primitives::{Address, B256, Signature, U256},
    sol_types::Eip712Domain,
};
use async_trait::async_trait;
use aws_sdk_kms::{
    Client,
    primitives::Blob,
    types::{MessageType, SigningAlgorithmSpec},
};
use k256::{elliptic_curve::sec1::ToEncodedPoint as _, pkcs8::DecodePublicKey as _};
use x402::eip3009::Authorization;

use super::{PaymentSigner, SignerError};

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

/// The address of a DER `SubjectPublicKeyInfo` holding a secp256k1 point.
pub fn address_from_spki(der: &[u8]) -> Result<Address, SignerError> {
    let key = k256::PublicKey::from_public_key_der(der)
        .map_err(|e| remote(format!("public key is not a secp256k1 key: {e}")))?;
    let point = key.to_encoded_point(false);
    // `04 || x || y`: the address hashes `x || y`.
    Ok(Address::from_raw_public_key(&point.as_bytes()[1..]))
}

/// `(r, s)` of a DER `SEQUENCE { INTEGER r, INTEGER s }`, with s made low
/// (EIP-2: s <= n/2; KMS may return either twin).
pub fn parse_der_signature(der: &[u8]) -> Result<(U256, U256), SignerError> {
    let sig =
        k256::ecdsa::Signature::from_der(der).map_err(|_| remote("malformed DER signature"))?;
    let sig = sig.normalize_s().unwrap_or(sig);
    let (r, s) = sig.split_bytes();
    Ok((U256::from_be_slice(&r), U256::from_be_slice(&s)))
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
        super::ensure_payer(auth, self.address)?;
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

    /// secp256k1's group order n.
    const N: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

    fn der(r: U256, s: U256) -> Vec<u8> {
        let int = |v: U256| {
            let mut b = v.to_be_bytes::<32>().to_vec();
            while b.len() > 1 && b[0] == 0 && b[1] & 0x80 == 0 {
                b.remove(0);
            }
            if b[0] & 0x80 != 0 {
                b.insert(0, 0);
            }
            let mut out = vec![0x02, u8::try_from(b.len()).unwrap()];
            out.extend(b);
            out
        };
        let mut inner = int(r);
        inner.extend(int(s));
        let mut out = vec![0x30, u8::try_from(inner.len()).unwrap()];
        out.extend(inner);
        out
    }

    #[test]
    fn a_high_s_is_made_low() {
        let n = U256::from_str_radix(N, 16).unwrap();
        let (r, low) = (U256::from(7u64), U256::from(0x0102u64));
        assert_eq!(parse_der_signature(&der(r, n - low)).unwrap(), (r, low));
        assert_eq!(parse_der_signature(&der(r, low)).unwrap(), (r, low));
    }

    #[test]
    fn the_address_is_the_keccak_of_the_spki_point() {
        // DER `SubjectPublicKeyInfo` prefix for an uncompressed secp256k1 point.
        const SPKI_SECP256K1: &str = "3056301006072a8648ce3d020106052b8104000a034200";
        let key = alloy::signers::local::PrivateKeySigner::random();
        let point = key.credential().verifying_key().to_encoded_point(false);
        let mut der = alloy::hex::decode(SPKI_SECP256K1).unwrap();
        der.extend_from_slice(point.as_bytes());
        assert_eq!(address_from_spki(&der).unwrap(), key.address());
        der.truncate(der.len() - 1);
        assert!(address_from_spki(&der).is_err());
    }
}
