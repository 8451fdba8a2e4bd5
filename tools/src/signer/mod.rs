//! Who signs the buyer's payments. One trait, several custodians, chosen by
//! configuration (`SIGNER=local|cdp|cdp-export|kms`).
//!
//! The signer is handed the EIP-3009 `TransferWithAuthorization` *fields* and
//! the token's EIP-712 domain, not a bare hash: a remote custodian (CDP) sees
//! and can police what it signs, and a local one hashes with
//! [`x402::eip3009::signing_hash`].
//!
//! AgentCore Payments ([`agentcore`]) is a custodian of another kind: it is
//! handed the seller's x402 *requirement* and returns the whole signed
//! payment, so it is not a `PaymentSigner` but a backend one level up,
//! beside [`X402Client::prepare`](crate::client::X402Client::prepare) (its
//! module docs say why and what it checks).

pub mod agentcore;
pub mod cdp;
pub mod kms;
pub mod local;

use std::sync::Arc;

pub use cdp::{CdpConfig, CdpExportedSigner, CdpSigner};
pub use kms::KmsSigner;
pub use local::LocalSigner;

use alloy::{
    primitives::{Address, Signature},
    sol_types::Eip712Domain,
};
use async_trait::async_trait;
use plumbing::secrets::{ExposeSecret as _, SecretString};
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

/// The refusal every signer gives first: it signs only for its own address
/// (`auth.from`), whatever it is asked.
pub(crate) fn ensure_payer(auth: &Authorization, signer: Address) -> Result<(), SignerError> {
    if auth.from == signer {
        Ok(())
    } else {
        Err(SignerError::WrongSigner {
            expected: auth.from,
        })
    }
}

/// What one signer needs to be built, its secrets already read
/// (`SIGNER=local|cdp|cdp-export|kms`). Not the agent's
/// `config::SignerConfig`: that is the setting as configured (secrets
/// possibly by Secrets Manager ARN, and AgentCore Payments, which signs
/// whole payments rather than typed data); the agent's wiring resolves it
/// into this.
#[derive(Clone, Debug)]
pub enum SignerSpec {
    /// `BUYER_PRIVATE_KEY` (redacted in `Debug`).
    Local(SecretString),
    Cdp(CdpConfig),
    CdpExport(CdpConfig),
    /// `KMS_KEY_ID` (id, ARN or alias) and the AWS configuration to reach it.
    Kms {
        key_id: String,
        aws: Box<aws_config::SdkConfig>,
    },
}

/// Builds the configured signer (remote ones connect and resolve their
/// address now, so a misconfiguration stops start-up, not the first payment).
pub async fn from_config(cfg: SignerSpec) -> Result<Arc<dyn PaymentSigner>, SignerError> {
    Ok(match cfg {
        SignerSpec::Local(key) => Arc::new(LocalSigner::from_hex(key.expose_secret())?),
        SignerSpec::Cdp(c) => Arc::new(CdpSigner::connect(&c).await?),
        SignerSpec::CdpExport(c) => Arc::new(CdpExportedSigner::connect(&c).await?),
        SignerSpec::Kms { key_id, aws } => {
            Arc::new(KmsSigner::connect(aws_sdk_kms::Client::new(&aws), key_id).await?)
        }
    })
}
