//! The user pool's signing keys: Cognito's JWKS endpoint.
//!
//! Keys are fetched once and kept for the life of the Lambda container.
//! Cognito rotates keys by publishing the new one before signing with it, so
//! a token naming a key id we do not hold triggers one refetch; to keep
//! forged key ids from turning every request into a fetch, refetches are at
//! most one per [`MIN_REFETCH_INTERVAL`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use tokio::sync::Mutex;

/// Shortest time between two JWKS fetches.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long one JWKS fetch may take (the authorizer's own timeout is 10 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest JWKS document accepted (Cognito's holds two keys, ~1 KB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JwksError(String);

/// Where verification keys come from.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The RS256 key with id `kid`, or `None` if the pool does not publish it.
    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, JwksError>;
}

/// Cognito's `/.well-known/jwks.json` over HTTPS (any URL, for local stand-ins).
pub struct HttpJwks {
    url: String,
    client: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl HttpJwks {
    pub fn new(url: impl Into<String>) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| JwksError(format!("HTTP client: {e}")))?;
        Ok(Self {
            url: url.into(),
            client,
            cache: Mutex::default(),
        })
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, JwksError> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| JwksError(format!("GET {}: {e}", self.url)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError(format!("GET {}: HTTP {status}", self.url)));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| JwksError(format!("GET {}: {e}", self.url)))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(JwksError(format!(
                "JWKS larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| JwksError(format!("JWKS: {e}")))?;
        Ok(rsa_keys(&set))
    }
}

/// The RSA keys of a JWKS by key id; other key types are skipped.
fn rsa_keys(set: &JwkSet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, key))
        })
        .collect()
}

#[async_trait]
impl KeySource for HttpJwks {
    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, JwksError> {
        // One lock across the fetch: concurrent misses wait for one fetch.
        let mut cache = self.cache.lock().await;
        if let Some(key) = cache.keys.get(kid) {
            return Ok(Some(key.clone()));
        }
        let may_fetch = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= MIN_REFETCH_INTERVAL);
        if !may_fetch {
            return Ok(None);
        }
        let keys = self.fetch().await?;
        cache.fetched_at = Some(Instant::now());
        cache.keys = keys;
        Ok(cache.keys.get(kid).cloned())
    }
}
