//! Coinbase CDP server wallet signers.
//!
//! - [`CdpSigner`] (`SIGNER=cdp`, the production default): the key lives in
//!   CDP and never leaves it. Each authorization is sent as EIP-712 typed
//!   data to `POST /v2/evm/accounts/{address}/sign/typed-data`, so CDP
//!   policies can police the fields (cap `value`, pin `verifyingContract`).
//! - [`CdpExportedSigner`] (`SIGNER=cdp-export`): the account's key is
//!   exported once at start-up (`POST /v2/evm/accounts/{address}/export`
//!   with an RSA-OAEP-SHA256 public key generated in memory; CDP answers
//!   with the key encrypted to it), then signing is local. The key is
//!   zeroized on drop and never logged; `Debug` shows only the address.
//!
//! Both find the account by name (`CDP_ACCOUNT_NAME`) and create it if it
//! does not exist. Authentication is `cdp-sdk`'s `WalletAuth` middleware:
//! a bearer JWT per request from the API key, plus an `X-Wallet-Auth` JWT
//! from the wallet secret on account writes.

use alloy::{
    primitives::{Address, Signature},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use async_trait::async_trait;
use base64::Engine as _;
use cdp_sdk::{Client, auth::WalletAuth, types};
use plumbing::secrets::{ExposeSecret as _, SecretString};
use x402::eip3009::{self, Authorization};
use zeroize::Zeroizing;

use super::{LocalSigner, PaymentSigner, SignerError};

/// Credentials and account of a CDP server wallet. `Debug` redacts secrets.
#[derive(Clone, Debug)]
pub struct CdpConfig {
    pub api_key_id: String,
    pub api_key_secret: SecretString,
    pub wallet_secret: SecretString,
    pub account_name: String,
    /// `https://api.cdp.coinbase.com/platform` unless overridden (tests).
    pub base_url: String,
}

fn remote(e: impl std::fmt::Display) -> SignerError {
    SignerError::Remote(format!("CDP: {e}"))
}

/// An authenticated client and the account's address (created if missing).
async fn connect(cfg: &CdpConfig) -> Result<(Client, Address), SignerError> {
    let auth = WalletAuth::builder()
        .api_key_id(cfg.api_key_id.clone())
        .api_key_secret(cfg.api_key_secret.expose_secret().to_owned())
        .wallet_secret(cfg.wallet_secret.expose_secret().to_owned())
        .build()
        .map_err(|e| SignerError::Config(format!("CDP credentials: {e}")))?;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let client = Client::new_with_client(&cfg.base_url, http);
    let account = match client
        .get_evm_account_by_name()
        .name(&cfg.account_name)
        .send()
        .await
    {
        Ok(a) => a.into_inner(),
        Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => {
            let body = types::CreateEvmAccountBody::builder().name(Some(
                cfg.account_name
                    .parse()
                    .map_err(|e| SignerError::Config(format!("CDP_ACCOUNT_NAME: {e}")))?,
            ));
            client
                .create_evm_account()
                .x_wallet_auth("")
                .x_idempotency_key(format!("create-{}", cfg.account_name))
                .body(body)
                .send()
                .await
                .map_err(remote)?
                .into_inner()
        }
        Err(e) => return Err(remote(e)),
    };
    let address: Address = account
        .address
        .parse()
        .map_err(|e| remote(format!("account address: {e}")))?;
    Ok((client, address))
}

/// Remote typed-data signing: the key never leaves CDP.
pub struct CdpSigner {
    client: Client,
    address: Address,
}

impl std::fmt::Debug for CdpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdpSigner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl CdpSigner {
    pub async fn connect(cfg: &CdpConfig) -> Result<Self, SignerError> {
        let (client, address) = connect(cfg).await?;
        Ok(CdpSigner { client, address })
    }
}

#[async_trait]
impl PaymentSigner for CdpSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transfer_authorization(
        &self,
        auth: &Authorization,
        domain: &Eip712Domain,
    ) -> Result<Signature, SignerError> {
        super::ensure_payer(auth, self.address)?;
        let typed: types::Eip712Message =
            serde_json::from_value(eip3009::typed_data_json(auth, domain))
                .map_err(|e| SignerError::Config(format!("typed data: {e}")))?;
        let out = self
            .client
            .sign_evm_typed_data()
            .address(self.address.to_checksum(None))
            .x_wallet_auth("")
            .x_idempotency_key(format!("{:#x}", auth.nonce))
            .body(typed)
            .send()
            .await
            .map_err(remote)?
            .into_inner();
        let sig: Signature = out
            .signature
            .parse()
            .map_err(|e| remote(format!("signature: {e}")))?;
        // Trust, but verify: it must be the account's signature over these terms.
        match auth.recover_signer(domain, &sig.as_bytes()) {
            Some(a) if a == self.address => Ok(sig),
            _ => Err(SignerError::WrongSigner {
                expected: self.address,
            }),
        }
    }

    fn kind(&self) -> &'static str {
        "cdp"
    }
}

/// The CDP account's key, exported once, signing locally (the key is a
/// k256 signing key, zeroized on drop).
pub struct CdpExportedSigner {
    key: LocalSigner,
}

impl std::fmt::Debug for CdpExportedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdpExportedSigner")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

/// RSA key size for the export's transport encryption.
const EXPORT_RSA_BITS: usize = 2048;

impl CdpExportedSigner {
    pub async fn connect(cfg: &CdpConfig) -> Result<Self, SignerError> {
        use rsa::{Oaep, RsaPrivateKey, pkcs8::EncodePublicKey};
        let (client, address) = connect(cfg).await?;
        // A fresh transport key in memory, used once.
        let rsa_key = tokio::task::spawn_blocking(|| {
            RsaPrivateKey::new(&mut rsa::rand_core::OsRng, EXPORT_RSA_BITS)
        })
        .await
        .map_err(|e| SignerError::Config(e.to_string()))?
        .map_err(|e| SignerError::Config(format!("RSA key: {e}")))?;
        let public_der = rsa_key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| SignerError::Config(format!("RSA public key: {e}")))?;
        let body = types::ExportEvmAccountBody::builder().export_encryption_key(
            base64::engine::general_purpose::STANDARD.encode(public_der.as_bytes()),
        );
        let out = client
            .export_evm_account()
            .address(address.to_checksum(None))
            .x_wallet_auth("")
            .x_idempotency_key(format!("export-{address:#x}-{:x}", rand::random::<u64>()))
            .body(body)
            .send()
            .await
            .map_err(remote)?
            .into_inner();
        let encrypted = base64::engine::general_purpose::STANDARD
            .decode(&out.encrypted_private_key)
            .map_err(|_| remote("exported key is not base64"))?;
        let raw = Zeroizing::new(
            rsa_key
                .decrypt(Oaep::new::<sha2::Sha256>(), &encrypted)
                .map_err(|_| remote("cannot decrypt the exported key"))?,
        );
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            raw.as_slice()
                .try_into()
                .map_err(|_| remote("exported key is not 32 bytes"))?,
        );
        let key = PrivateKeySigner::from_bytes(&(*bytes).into())
            .map_err(|_| remote("exported key is not a secp256k1 key"))?;
        if key.address() != address {
            return Err(SignerError::WrongSigner { expected: address });
        }
        Ok(CdpExportedSigner {
            key: LocalSigner::new(key),
        })
    }
}

#[async_trait]
impl PaymentSigner for CdpExportedSigner {
    fn address(&self) -> Address {
        self.key.address()
    }

    async fn sign_transfer_authorization(
        &self,
        auth: &Authorization,
        domain: &Eip712Domain,
    ) -> Result<Signature, SignerError> {
        self.key.sign_transfer_authorization(auth, domain).await
    }

    fn kind(&self) -> &'static str {
        "cdp-export"
    }
}
