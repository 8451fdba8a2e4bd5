//! Quotes: the estimate for a purchase is the seller's own price, read from
//! its `402`. Cached briefly per request shape, so estimating and then
//! buying does not ask twice; a seller that cannot be reached gives no quote
//! (the error says so), never an invented price.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use crate::client::{ClientError, PaidRequest, Quote, X402Client};

/// How long a quote is reused. Short: prices may change, and the payment
/// is always checked against the seller's live `402` anyway.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

pub struct QuoteCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Instant, Quote)>>,
}

impl Default for QuoteCache {
    fn default() -> Self {
        QuoteCache::new(DEFAULT_TTL)
    }
}

impl QuoteCache {
    pub fn new(ttl: Duration) -> Self {
        QuoteCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Method, URL and body: two requests with the same shape cost the same.
    fn key(req: &PaidRequest) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(req.method.as_str());
        h.update([0]);
        h.update(&req.url);
        h.update([0]);
        if let Some(b) = &req.body {
            h.update(b);
        }
        h.finalize().into()
    }

    /// A fresh cached quote for `req`, or the seller's current one.
    pub async fn quote(
        &self,
        client: &X402Client,
        req: &PaidRequest,
    ) -> Result<Quote, ClientError> {
        let key = Self::key(req);
        let now = Instant::now();
        {
            let mut entries = self.entries.lock().expect("quote cache lock");
            entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if let Some((_, q)) = entries.get(&key) {
                return Ok(q.clone());
            }
        }
        let q = client.quote(req).await?;
        self.entries
            .lock()
            .expect("quote cache lock")
            .insert(key, (Instant::now(), q.clone()));
        Ok(q)
    }

    /// Forgets `req`'s quote (e.g. the seller refused a payment made from it).
    pub fn invalidate(&self, req: &PaidRequest) {
        self.entries
            .lock()
            .expect("quote cache lock")
            .remove(&Self::key(req));
    }
}
