//! Who signs the buyer's payments. One trait, several custodians, chosen by
//! configuration (`SIGNER=local|cdp|cdp-export|kms`).
//!
//! The signer is handed the EIP-3009 `TransferWithAuthorization` *fields* and
//! the token's EIP-712 domain, not a bare hash: a remote custodian (CDP) sees
//! and can police what it signs, and a local one hashes with
//! [`x402::eip3009::signing_hash`].

pub mod local;

pub use local::LocalSigner;

use alloy::{
    primitives::{Address, Signature},
    sol_types::Eip712Domain,
};
use async_trait::async_trait;
use x402::eip3009::Authorization;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    #[error("signer configuration: {0}")]
    Config(String),
    /// The custodian (CDP, KMS) refused or could not be reached.
    #[error("remote signer: {0}")]
    Remote(String),
    /// The signature returned does not recover to the signer's address.
    #[error("signature does not recover to {expected}")]
    WrongSigner { expected: Address },
}

/// Signs EIP-3009 authorizations for one address.
#[async_trait]
pub trait PaymentSigner: Send + Sync + std::fmt::Debug {
    /// The payer: the `from` of every authorization this signer signs.
    fn address(&self) -> Address;

    /// Signs `auth` as EIP-712 typed data under `domain`. Implementations
    /// check that `auth.from == self.address()` and that the signature
    /// recovers to it before returning.
    async fn sign_transfer_authorization(
        &self,
        auth: &Authorization,
        domain: &Eip712Domain,
    ) -> Result<Signature, SignerError>;

    /// For logs: `"local"`, `"cdp"`, `"cdp-export"`, `"kms"`.
    fn kind(&self) -> &'static str;
}
