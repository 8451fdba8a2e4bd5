//! A private key held in this process. For development against Anvil; in
//! production prefer a custodian (`cdp`, `kms`).

use alloy::{
    primitives::{Address, Signature},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::Eip712Domain,
};
use async_trait::async_trait;
use x402::eip3009::Authorization;

use super::{PaymentSigner, SignerError};

/// Signs with an in-memory secp256k1 key. `Debug` shows only the address.
pub struct LocalSigner {
    key: PrivateKeySigner,
}

impl LocalSigner {
    pub fn new(key: PrivateKeySigner) -> Self {
        LocalSigner { key }
    }

    /// From a 0x-prefixed (or bare) hex private key.
    pub fn from_hex(hex: &str) -> Result<Self, SignerError> {
        let key = hex
            .trim()
            .parse::<PrivateKeySigner>()
            .map_err(|_| SignerError::Config("invalid private key (not 32 bytes of hex)".into()))?;
        Ok(LocalSigner { key })
    }
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl PaymentSigner for LocalSigner {
    fn address(&self) -> Address {
        self.key.address()
    }

    async fn sign_transfer_authorization(
        &self,
        auth: &Authorization,
        domain: &Eip712Domain,
    ) -> Result<Signature, SignerError> {
        super::ensure_payer(auth, self.address())?;
        self.key
            .sign_hash_sync(&auth.signing_hash(domain))
            .map_err(|e| SignerError::Remote(e.to_string()))
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}
